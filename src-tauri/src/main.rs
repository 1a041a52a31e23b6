//! The `peerfold-desktop` binary: see the library.
// No console window beside the app on Windows.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() -> std::process::ExitCode {
    peerfold_engine::allocator::limit_arenas();
    peerfold_desktop::run()
}
