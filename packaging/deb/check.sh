#!/usr/bin/env bash
# Checks a peerfold .deb made by build.sh, without installing it on this machine: its fields
# (no GTK or WebKit among its dependencies or the binary's libraries), its files, its unit
# (systemd-analyze verify, where the command exists) and maintainer scripts, and the binary
# itself, unpacked by dpkg into a throwaway root and run.
#
#   packaging/deb/check.sh peerfold_VERSION_ARCH.deb
set -euo pipefail
deb="$(realpath "$1")"
fail() { echo "check.sh: $*" >&2; exit 1; }

info="$(dpkg-deb --info "$deb")"
printf '%s\n' "$info"
field() { dpkg-deb --field "$deb" "$1"; }
[ "$(field Package)" = peerfold ] || fail "the package is not named peerfold"
depends="$(field Depends)"
grep -q 'libc6' <<<"$depends" || fail "Depends lacks libc6 (were they computed?): $depends"
if grep -Eiq 'gtk|webkit|javascriptcore|soup|ayatana|rsvg|gdk' <<<"$depends"; then
  fail "a desktop library among the dependencies: $depends"
fi
for script in postinst prerm postrm; do
  grep -q "^ *[0-9]* bytes, *[0-9]* lines *\\* *$script " <<<"$info" || fail "no $script"
done

contents="$(dpkg-deb --contents "$deb")"
printf '%s\n' "$contents"
for path in ./usr/bin/peerfold ./usr/lib/systemd/system/peerfold.service \
  ./usr/share/man/man1/peerfold.1.gz ./usr/share/doc/peerfold/copyright \
  ./usr/share/doc/peerfold/README.Debian; do
  grep -q " $path\$" <<<"$contents" || fail "$path is missing"
done
# `grep -q` reads from a process substitution rather than a pipe throughout: it stops at the
# first match, and with pipefail the writer's SIGPIPE would turn a found line into a failure.
if grep -q . < <(awk '$2 != "root/root"' <<<"$contents"); then
  fail "files not owned by root"
fi

# Unpacked by dpkg itself into an empty root (its database included), as an install would lay
# the files out; configuring (postinst: adduser, systemctl) needs a real system.
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
touch "$root/var/lib/dpkg/status"
dpkg --root="$root" --force-not-root --unpack "$deb"
grep -q '^Status: install ok unpacked' < <(dpkg --root="$root" --status peerfold) ||
  fail "dpkg did not unpack it"
for script in postinst prerm postrm; do
  sh -n "$root/var/lib/dpkg/info/peerfold.$script" || fail "$script is not valid sh"
done

bin="$root/usr/bin/peerfold"
version="$("$bin" --version)"
echo "$version"
[ "$version" = "peerfold $(field Version)" ] || fail "--version says '$version'"
if grep -Eiq 'NEEDED.*(gtk|webkit|javascriptcore|soup|gdk)' < <(objdump -p "$bin"); then
  fail "the binary links a desktop library"
fi
grep -q '^\.SS "peerfold serve"' < <(zcat "$root/usr/share/man/man1/peerfold.1.gz") ||
  fail "the man page lacks serve"

if command -v systemd-analyze >/dev/null; then
  # The unit as installed, but with ExecStart pointing into the unpacked tree (verify checks
  # that the binary exists; this machine has none at /usr/bin).
  mkdir "$root/verify"
  sed "s|/usr/bin/peerfold|$bin|" "$root/usr/lib/systemd/system/peerfold.service" \
    >"$root/verify/peerfold.service"
  systemd-analyze verify --man=no "$root/verify/peerfold.service"
fi
echo "check.sh: $(basename "$deb") is fine"
