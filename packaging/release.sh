#!/usr/bin/env bash
# Builds every release artifact this Linux machine can make, into one directory, and lists them
# with their sizes:
#   - the NAS/server package, peerfold_VERSION_ARCH.deb (packaging/deb/build.sh)
#   - the desktop app's package, Peerfold_VERSION_ARCH.deb (Tauri's deb bundler)
#   - peerfold.exe, peerfold-desktop.exe and the installer Peerfold_VERSION_x64-setup.exe
#     (packaging/windows/build.sh: mingw and Debian's makensis, no download)
#   - macOS: no artifact (that needs Apple's SDK); the macOS check runs instead, the hook
#     .ci/macos-check.sh, and this says plainly when it is not there.
#
#   packaging/release.sh [OUT_DIR]     # default OUT_DIR: $CARGO_TARGET_DIR/release-artifacts
#
# Release builds from cold take a while (README, "Platforms": about 25 minutes on 2 cores).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/.."
export CARGO_TARGET_DIR="$(realpath -m "${CARGO_TARGET_DIR:-target}")"
out="$(realpath -m "${1:-$CARGO_TARGET_DIR/release-artifacts}")"
mkdir -p "$out"

[ -d node_modules ] || npm install --no-audit --no-fund
npm run build >&2

echo "== Linux: the server package" >&2
artifacts=("$(packaging/deb/build.sh "$out" | tail -n 1)")

echo "== Linux: the desktop app's package" >&2
npx tauri build --bundles deb >&2
arch="$(dpkg --print-architecture)"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)"
cp "$CARGO_TARGET_DIR/release/bundle/deb/Peerfold_${version}_${arch}.deb" "$out/"
artifacts+=("$out/Peerfold_${version}_${arch}.deb")

echo "== Windows: the .exe's and the installer" >&2
mapfile -t windows < <(packaging/windows/build.sh "$out/windows")
artifacts+=("${windows[@]}")

echo "== macOS: the check (no artifact can be built here)" >&2
if [ -x .ci/macos-check.sh ]; then
  .ci/macos-check.sh >&2
  macos="checked (.ci/macos-check.sh)"
else
  macos="NOT checked: .ci/macos-check.sh is missing"
fi

echo
echo "Artifacts in $out:"
for a in "${artifacts[@]}"; do
  printf '%10s  %s\n' "$(numfmt --to=iec-i --suffix=B "$(stat -c %s "$a")")" "${a#"$out"/}"
done
echo "macOS: $macos"
