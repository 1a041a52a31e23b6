#!/usr/bin/env bash
# Builds the headless daemon's Debian package, peerfold_VERSION_ARCH.deb, from a release build:
# /usr/bin/peerfold, the hardened systemd unit (run as the system user `peerfold`, home
# /var/lib/peerfold), a man page made from the binary's own --help, and the docs. No GTK or
# WebKit: the desktop app is a package of its own.
#
#   packaging/deb/build.sh [OUT_DIR]     # default OUT_DIR: $CARGO_TARGET_DIR/deb
#
# The web UI is embedded in the binary, so `npm install && npm run build` must have run first
# (PEERFOLD_DEB_WITHOUT_UI=1 packages a binary without it, which serves a page saying so).
# Needs cargo, dpkg-dev (dpkg-shlibdeps) and binutils. Prints the package's path last.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
target="$(realpath -m "${CARGO_TARGET_DIR:-target}")"
out="$(realpath -m "${1:-$target/deb}")"

if [ ! -f ui/dist/index.html ] && [ "${PEERFOLD_DEB_WITHOUT_UI:-}" != 1 ]; then
  echo "ui/dist is missing: run \`npm install && npm run build\` first (or set PEERFOLD_DEB_WITHOUT_UI=1)" >&2
  exit 1
fi
cargo build --release --locked -p peerfold --bin peerfold
bin="$target/release/peerfold"
version="$("$bin" --version | awk '{print $2}')"
arch="$(dpkg --print-architecture)"

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
root="$stage/debian/peerfold"
install -D -m 0755 "$bin" "$root/usr/bin/peerfold"
# The release profile keeps line tables for profiling; the package does without them.
strip --strip-unneeded "$root/usr/bin/peerfold"
install -D -m 0644 "$here/peerfold.service" "$root/usr/lib/systemd/system/peerfold.service"
install -D -m 0644 "$here/copyright" "$root/usr/share/doc/peerfold/copyright"
install -D -m 0644 "$here/README.Debian" "$root/usr/share/doc/peerfold/README.Debian"

# The man page: every command's --help, verbatim (clap's text, so it cannot drift from the
# binary), as preformatted troff sections.
troff_verbatim() {
  # Backslashes escaped; a line starting with . or ' would be a request.
  sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"
}
subcommands() {
  # The names under "Commands:" in a --help text, but `help`.
  awk '/^Commands:/ {on = 1; next} on && /^$/ {exit} on && /^  [a-z]/ && $1 != "help" {print $1}'
}
man_section() {
  local words=("$@")
  local text
  text="$("$bin" "${words[@]}" --help)"
  printf '.SS "peerfold %s"\n.nf\n' "${words[*]}"
  printf '%s\n' "$text" | troff_verbatim
  printf '.fi\n'
  local sub
  for sub in $(printf '%s\n' "$text" | subcommands); do
    man_section "${words[@]}" "$sub"
  done
}
{
  printf '.TH PEERFOLD 1 "" "peerfold %s" "User Commands"\n' "$version"
  printf '.SH NAME\npeerfold \\- peer-to-peer folder sync, wire-compatible with Syncthing\n'
  printf '.SH SYNOPSIS\n.B peerfold\n[\\fIOPTIONS\\fR] \\fICOMMAND\\fR\n'
  printf '.SH DESCRIPTION\n.nf\n'
  "$bin" --help | troff_verbatim
  printf '.fi\n.SH COMMANDS\n'
  for sub in $("$bin" --help | subcommands); do
    man_section "$sub"
  done
  printf '.SH FILES\n'
  printf '.TP\n.I /var/lib/peerfold\nThe service'"'"'s home: key, certificate, config.toml and index.\n'
  printf '.TP\n.I /usr/share/doc/peerfold/README.Debian\nRunning it as a service, and granting it a folder.\n'
} >"$stage/peerfold.1"
install -d "$root/usr/share/man/man1"
gzip -9n <"$stage/peerfold.1" >"$root/usr/share/man/man1/peerfold.1.gz"
chmod 0644 "$root/usr/share/man/man1/peerfold.1.gz"

install -d -m 0755 "$root/DEBIAN"
# Depends from the libraries the binary links (dpkg-shlibdeps wants a debian/control beside).
mkdir -p "$stage/debian"
printf 'Source: peerfold\n\nPackage: peerfold\nArchitecture: any\n' >"$stage/debian/control"
shlibs="$(cd "$stage" && dpkg-shlibdeps -O debian/peerfold/usr/bin/peerfold | sed -n 's/^shlibs:Depends=//p')"
if [ -z "$shlibs" ]; then
  echo "dpkg-shlibdeps found no dependencies for the binary" >&2
  exit 1
fi

for script in postinst prerm postrm; do
  install -m 0755 "$here/$script" "$root/DEBIAN/$script"
done
installed_size="$(du -sk --exclude=DEBIAN "$root" | cut -f1)"
cat >"$root/DEBIAN/control" <<CONTROL
Package: peerfold
Version: $version
Architecture: $arch
Maintainer: The Peerfold authors
Installed-Size: $installed_size
Depends: $shlibs, adduser
Section: net
Priority: optional
Description: peer-to-peer folder sync, wire-compatible with Syncthing (daemon)
 Peerfold keeps folders identical across your devices with no central server,
 speaking Syncthing's Block Exchange Protocol (BEP v1) over QUIC and TCP+TLS.
 .
 This package holds the headless daemon and CLI, run as the systemd service
 peerfold.service under its own system user, with its web UI on
 127.0.0.1:8384. See /usr/share/doc/peerfold/README.Debian.
CONTROL
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
  >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"

mkdir -p "$out"
deb="$out/peerfold_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
