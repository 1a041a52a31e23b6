#!/usr/bin/env bash
# Builds the Windows release binaries and their installer on Linux, with no download: mingw links
# peerfold.exe and peerfold-desktop.exe for x86_64-pc-windows-gnu (the app with the WebView2
# loader that the webview2-com-sys crate ships, copied beside it by tauri-build), and Debian's
# makensis packs them with peerfold.nsi into Peerfold_VERSION_x64-setup.exe.
#
#   packaging/windows/build.sh [OUT_DIR]     # default OUT_DIR: $CARGO_TARGET_DIR/windows
#   packaging/windows/build.sh --from DIR OUT_DIR
#
# `--from DIR` packs the two .exe's already built in DIR instead of making a release build, and
# compresses with zlib instead of LZMA: what CI does with the debug binaries its Wine tests
# built, to check the installer without a second, release build of everything (about 25
# minutes from cold on 2 cores) and LZMA over debug binaries (minutes more).
#
# The web UI is embedded in both, so `npm install && npm run build` must have run first. Needs
# the Rust target (rustup target add x86_64-pc-windows-gnu), gcc-mingw-w64-x86-64-posix and nsis.
# Copies the two .exe's and the installer to OUT_DIR and prints their paths, the installer last.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
target="$(realpath -m "${CARGO_TARGET_DIR:-target}")"
win=x86_64-pc-windows-gnu
from=
if [ "${1:-}" = --from ]; then
  from="$(realpath "$2")"
  shift 2
fi
out="$(realpath -m "${1:-$target/windows}")"

if [ ! -f ui/dist/index.html ]; then
  echo "ui/dist is missing: run \`npm install && npm run build\` first" >&2
  exit 1
fi
if [ -n "$from" ]; then
  bin="$from"
  compressor=zlib
else
  # Tests' cfg (peerfold_wine) must not reach a release binary.
  unset CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUSTFLAGS
  cargo build --release --locked --target "$win" -p peerfold --bin peerfold -p peerfold-desktop --bin peerfold-desktop
  bin="$target/$win/release"
  compressor="/SOLID lzma"
fi
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)"

mkdir -p "$out"
for exe in peerfold.exe peerfold-desktop.exe; do
  # The release profile keeps line tables for profiling; the shipped binaries do without.
  x86_64-w64-mingw32-strip --strip-unneeded -o "$out/$exe" "$bin/$exe"
done
cp "$bin/WebView2Loader.dll" "$out/"
installer="$out/Peerfold_${version}_x64-setup.exe"
makensis -V2 -INPUTCHARSET UTF8 "-XSetCompressor /FINAL $compressor" \
  "-DVERSION=$version" "-DBIN_DIR=$out" "-DOUT_FILE=$installer" "-DICON=$PWD/icons/icon.ico" \
  "$here/peerfold.nsi" >&2
echo "$out/peerfold.exe"
echo "$out/peerfold-desktop.exe"
echo "$installer"
