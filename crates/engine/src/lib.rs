//! Peerfold's engine: keeps folders identical across a person's devices, with no central server.
//!
//! The engine is a pipeline of stages, one module each (see `ARCHITECTURE.md`):
//! [`identity`] (who this device is), [`config`] and [`home`] (what it shares, where it keeps
//! state), [`scan`] (disk → index, honouring [`ignore`] patterns), [`watch`] (change hints),
//! [`db`] (the block index, its own crate), [`model`] (what peers are told and may ask, over one
//! task per connection), [`pull`] (remote changes → disk; `sources` picks the peer each block is
//! asked of) and [`engine`] (the long-lived tasks and the handle front-ends use, running
//! [`folder_files`]' user operations and sampling [`rates`]), with [`service`] the typed
//! requests every front-end makes of it (the running engine or a home with no daemon),
//! [`control`] the owner-only socket that carries them to a running daemon and [`daemon`] the
//! start-up that `peerfold serve` and the desktop app share.
//! [`bep`] is the protocol's vocabulary, with no I/O (`peerfold-proto`); [`net`] is the transport
//! under it (`peerfold-net`: TLS over TCP and QUIC, peers authenticated by certificate), with no
//! knowledge of BEP messages.
//!
//! The crates below are re-exported under the module names they had before the split, so that
//! `crate::db::Index` reads the same everywhere.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
// Safe Rust everywhere but where std wraps no system call: `positional_io`'s two, glibc's
// `mallopt` (`allocator`), and on Windows the control pipe's security descriptor (`control`)
// and the free space (`disks`).
#![deny(unsafe_code)]

pub use peerfold_db as db;
pub use peerfold_net as net;
pub use peerfold_net::{errors, fsutil};
pub use peerfold_proto::bep;

pub mod allocator;
pub mod bandwidth;
mod beneath;
pub mod check;
pub mod clock;
pub mod config;
pub mod control;
pub mod daemon;
pub mod discovery;
pub mod disks;
pub mod engine;
pub mod events;
pub mod folder_files;
pub mod home;
pub mod identity;
pub mod ignore;
pub mod import_syncthing;
pub mod invite;
pub mod layout;
pub mod model;
#[cfg(test)]
mod module_graph;
pub mod names;
mod positional_io;
pub mod power;
pub mod pull;
pub mod rates;
pub mod recent_log;
pub mod scan;
pub mod schedule;
pub mod selection;
pub mod service;
mod sources;
mod stat;
pub mod status;
pub mod units;
pub mod watch;
