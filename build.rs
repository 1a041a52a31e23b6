//! Tells cargo to rebuild when the embedded web UI (`ui/dist`) changes: a release build must see
//! a new UI build (`src/api/ui.rs`), including one that appears where there was none.

fn main() {
    let ui = if std::path::Path::new("ui/dist").exists() { "ui/dist" } else { "ui" };
    println!("cargo:rerun-if-changed={ui}");
}
