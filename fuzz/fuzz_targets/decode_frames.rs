//! Arbitrary bytes from a peer, as a connection reads them: a Hello, then frames. Neither
//! decoder may panic (libFuzzer's `-malloc_limit_mb`, by default the RSS limit, also catches an
//! allocation sized by a length the peer merely announced), and every Index entry handed out
//! must convert to a domain `FileInfo` or be rejected with an error; what is accepted must be
//! canonical and survive the way back to the wire.
//!
//! The first byte chooses how the rest is split into pushes, so that partial frames are
//! exercised as well as whole ones. If the rest starts with a whole Hello, the frame decoder
//! gets the bytes after it; otherwise it gets them all.
//!
//! Run from the repository root (needs nightly): `cargo +nightly fuzz run decode_frames`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use peerfold_proto::bep::{self, FrameDecoder, Message, decode_hello, wire};

fuzz_target!(|data: &[u8]| {
    let Some((&split, stream)) = data.split_first() else { return };
    let frames = match decode_hello(stream) {
        Ok(Some((_hello, len))) => &stream[len..],
        _ => stream,
    };

    let mut decoder = FrameDecoder::new();
    let piece = usize::from(split).max(1);
    for chunk in frames.chunks(piece) {
        decoder.push(chunk);
        loop {
            match decoder.next_message() {
                Ok(Some(message)) => check(message),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});

fn check(message: Message) {
    let files = match message {
        Message::Index(index) => index.files,
        Message::IndexUpdate(update) => update.files,
        Message::ClusterConfig(cc) => {
            for device in cc.folders.iter().flat_map(|f| &f.devices) {
                let _ = device.device_id();
            }
            return;
        }
        _ => return,
    };
    for file in files {
        if let Ok(domain) = bep::FileInfo::try_from(file) {
            // What was accepted is canonical, and converts back to something that is accepted.
            assert!(bep::is_canonical_name(&domain.name));
            let back = wire::FileInfo::from(&domain);
            assert!(bep::FileInfo::try_from(back).is_ok());
        }
    }
}
