//! Generates the BEP wire types (`bep.rs` in `OUT_DIR`, included by `src/bep/wire.rs`) from
//! `proto/bep.proto`. The schema is parsed by protox, a protobuf compiler in Rust, so building
//! needs no `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/bep.proto");
    let descriptors = protox::compile(["bep.proto"], ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
