//! Generates the BEP wire types (`bep.rs` in `OUT_DIR`, included by `src/bep/wire.rs`) from
//! `proto/bep.proto`. The schema is parsed by protox, a protobuf compiler in Rust, so building
//! needs no `protoc`. Also tells cargo to rebuild when the embedded web UI (`ui/dist`) changes.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/bep.proto");
    // The web UI is embedded from ui/dist (src/api/ui.rs): a release build must see a new UI
    // build, including one that appears where there was none.
    let ui = if std::path::Path::new("ui/dist").exists() { "ui/dist" } else { "ui" };
    println!("cargo:rerun-if-changed={ui}");
    let descriptors = protox::compile(["bep.proto"], ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
