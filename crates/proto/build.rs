//! Generates the BEP wire types (`bep.rs` in `OUT_DIR`, included by `src/bep/wire.rs`) from
//! `proto/bep.proto`. The schema is parsed by protox, a protobuf compiler in Rust, so building
//! needs no `protoc`.
//!
//! A Response's block data is a `bytes::Bytes`: decoded from a frame held in `Bytes` it is a view
//! of the received bytes rather than a copy, and sent, it is queued as it is rather than copied
//! into the transmit buffer.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/bep.proto");
    let descriptors = protox::compile(["bep.proto"], ["proto"])?;
    prost_build::Config::new().bytes([".bep.Response.data"]).compile_fds(descriptors)?;
    Ok(())
}
