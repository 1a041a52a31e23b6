#!/usr/bin/env bash
# The macOS check (README, "Platforms"): every target of every crate of the workspace (libraries,
# binaries, unit and integration tests, examples) type-checked and linted for Apple silicon and
# Intel Macs. What it cannot do here: this machine has no compiler for Apple targets and no Apple
# SDK, so the C parts (ring's, SQLite's, objc2's exception helper) are not compiled for macOS
# (.ci/macos/no-sdk-cc stands in for the compiler and writes empty objects), nothing is linked,
# and nothing runs.
# Needs: a built web UI (ui/dist: the desktop crate embeds it). Installs the rustup targets.
set -euo pipefail
cd "$(dirname "$0")/.."
no_sdk_cc="$PWD/.ci/macos/no-sdk-cc"
for target in aarch64-apple-darwin x86_64-apple-darwin; do
  rustup target list --installed | grep -q "^$target\$" || rustup target add "$target"
  var="${target//-/_}"
  echo "== macOS ($target): cargo clippy --workspace --all-targets"
  env "CC_$var=$no_sdk_cc" "AR_$var=ar" SDKROOT=/nonexistent \
    cargo clippy --workspace --all-targets --locked --target "$target" -- -D warnings
done
