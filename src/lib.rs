//! Peerfold: keeps folders identical across a person's devices, with no central server.
//!
//! This crate is the `peerfold` command's library: the HTTP front-end [`api`] (the control API
//! and the web UI) over the engine's typed [`service`]. The engine itself lives in the crates
//! under `crates/` (see `ARCHITECTURE.md`, "Crates"): `peerfold-proto` ([`bep`], device IDs),
//! `peerfold-db` ([`db`]), `peerfold-net` ([`net`]) and `peerfold-engine` (everything else). They
//! are re-exported here under their module names, so `peerfold::engine`, `peerfold::bep` and the
//! rest name what they always named.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(unsafe_code)]

pub mod api;

pub use peerfold_engine::{
    allocator, bandwidth, bep, check, config, control, daemon, db, discovery, disks, engine, errors, events,
    folder_files, fsutil, home, identity, ignore, import_syncthing, invite, layout, model, names, net, power,
    pull, rates, recent_log, scan, schedule, service, status, units, watch,
};
