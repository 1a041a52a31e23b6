//! Integration tests of the `peerfold` binary and the engine: one test binary (ripgrep-style),
//! a module per area, a small harness in `util`.

mod api;
mod auto_accept;
mod cli;
mod crash;
mod daemon;
mod dht;
mod engine;
mod home_lock;
mod hostile;
mod hostile_memory;
mod hostile_names;
mod hostile_strangers;
mod import_syncthing;
mod interop;
mod introducer;
mod invite;
mod limits;
#[cfg(target_os = "linux")]
mod metered;
mod nat;
mod netns;
#[cfg(target_os = "linux")]
mod punch;
mod relay;
mod selective;
mod sync;
mod syncthing;
mod util;
// Runs the Windows build under Wine: a Linux host only.
#[cfg(target_os = "linux")]
mod wine;
