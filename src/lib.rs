//! Peerfold: keeps folders identical across a person's devices, with no central server.
//!
//! The engine is a pipeline of stages, one module each (see `ARCHITECTURE.md`):
//! [`identity`] (who this device is), [`config`] and [`home`] (what it shares, where it keeps
//! state), [`scan`] (disk → index, honouring [`ignore`] patterns), [`watch`] (change hints),
//! [`db`] (the block index), [`model`] (what peers are told and may ask, over one task per
//! connection), [`pull`] (remote changes → disk) and [`engine`] (the long-lived tasks and the
//! handle front-ends use, running [`folder_files`]' user operations and sampling [`rates`]),
//! with [`api`] the HTTP front-end over that handle and [`daemon`] the start-up that `peerfold
//! serve` and the desktop app share. [`bep`] is the protocol's vocabulary, with no I/O; [`net`] is the
//! transport under it (TLS over TCP and QUIC, peers authenticated by certificate), with no
//! knowledge of BEP messages.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
// Safe Rust everywhere but `positional_io`, whose two system calls std does not wrap.
#![deny(unsafe_code)]

pub mod api;
mod beneath;
pub mod bep;
pub mod check;
pub mod config;
pub mod control;
pub mod daemon;
pub mod db;
pub mod discovery;
pub mod disks;
pub mod engine;
pub mod folder_files;
pub mod home;
pub mod identity;
pub mod ignore;
pub mod model;
pub mod names;
pub mod net;
mod positional_io;
pub mod pull;
pub mod rates;
pub mod recent_log;
pub mod scan;
pub mod status;
pub mod watch;
