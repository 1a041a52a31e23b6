#!/usr/bin/env bash
# Builds what the Wine tests run: `peerfold.exe` for x86_64-pc-windows-gnu, and the shim DLL
# Wine 8 needs beside every Rust .exe (.ci/wine/bcryptprimitives.c): beside `peerfold.exe`
# for the integration test (tests/it/wine.rs) and beside the unit tests' .exe files
# (`debug/deps`) for `.ci/run`'s run of them under Wine. `npm test` and `.ci/run` call it.
#
# Needs: `rustup target add x86_64-pc-windows-gnu`, and Debian's gcc-mingw-w64-x86-64-posix.
# The build uses the same flags as `.ci/run`'s unit tests under Wine, so the two share every
# compiled dependency (the `peerfold_wine` cfg changes only tests).
set -euo pipefail
cd "$(dirname "$0")/../.."

win=x86_64-pc-windows-gnu
target_dir="${CARGO_TARGET_DIR:-target}"
for tool in x86_64-w64-mingw32-gcc; do
  command -v "$tool" >/dev/null || {
    echo "$0: $tool is missing: apt-get install --no-install-recommends gcc-mingw-w64-x86-64-posix" >&2
    exit 1
  }
done
rustup target list --installed 2>/dev/null | grep -qx "$win" || {
  echo "$0: the Rust target $win is missing: rustup target add $win" >&2
  exit 1
}
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUSTFLAGS="--cfg peerfold_wine"
cargo build --bin peerfold --target "$win" --locked
for dir in "$target_dir/$win/debug" "$target_dir/$win/debug/deps"; do
  mkdir -p "$dir"
  if [ ! "$dir/bcryptprimitives.dll" -nt .ci/wine/bcryptprimitives.c ]; then
    x86_64-w64-mingw32-gcc -shared -O2 -o "$dir/bcryptprimitives.dll" .ci/wine/bcryptprimitives.c -ladvapi32
  fi
done
