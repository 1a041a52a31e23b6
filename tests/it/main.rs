//! Integration tests of the `peerfold` binary and the engine: one test binary (ripgrep-style),
//! a module per area, a small harness in `util`.

mod api;
mod cli;
mod crash;
mod daemon;
mod dht;
mod engine;
mod hostile;
mod hostile_memory;
mod hostile_names;
mod hostile_strangers;
mod interop;
mod nat;
mod netns;
mod sync;
mod syncthing;
mod util;
