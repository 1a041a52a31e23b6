//! Arbitrary bytes from a relay, as the client reads them: the relay protocol v1 decoder may
//! neither panic nor allocate by a length the relay merely announced (libFuzzer's
//! `-malloc_limit_mb` catches that), and what it accepts must re-encode to bytes that decode to
//! the same message (not to the same bytes: padding is not checked, as in genxdr).
//!
//! Run from the repository root (needs nightly): `cargo +nightly fuzz run decode_relay`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use peerfold_net::relay::protocol::{self, HEADER_LEN, MAX_BODY};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((msg, used))) = protocol::decode(rest) {
        assert!((HEADER_LEN..=HEADER_LEN + MAX_BODY).contains(&used));
        // What was accepted re-encodes and decodes to the same message.
        if let Ok(again) = protocol::encode(&msg) {
            assert_eq!(protocol::decode(&again), Ok(Some((msg, again.len()))));
        }
        rest = &rest[used..];
    }
});
