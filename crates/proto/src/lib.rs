//! Peerfold's protocol vocabulary: the Block Exchange Protocol's data model, wire codec and
//! session rules ([`bep`]), and device IDs ([`identity`]).
//!
//! No I/O of any kind: no tokio, no filesystem, no clock, no SQL, no TLS. Bytes go in and out
//! through buffers and the time is an argument, so everything here is tested (and fuzzed) with
//! plain values. `.ci/crate-graph.py` keeps its dependencies to that.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![deny(unsafe_code)]

pub mod bep;
pub mod identity;
