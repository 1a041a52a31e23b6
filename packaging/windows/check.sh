#!/usr/bin/env bash
# Checks the Windows installer under Wine, in a throw-away prefix: a silent install (/S) puts the
# app, the CLI and the WebView2 loader in %LOCALAPPDATA%\Programs\Peerfold, a Start menu entry
# and an Apps & features entry; the installed CLI runs; a silent uninstall removes all of it and
# the start-at-login entry, and keeps the home (%LOCALAPPDATA%\Peerfold: identity, index).
#
#   packaging/windows/check.sh INSTALLER
#
# Needs wine64 and mingw (for the shim DLL Wine 8 needs beside a Rust .exe: .ci/wine).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
installer="$(realpath "$1")"
wine=/usr/lib/wine/wine64
tmp="$(mktemp -d)"
export WINEPREFIX="$tmp/wine" WINEDEBUG=-all
trap '/usr/lib/wine/wineserver -k 2>/dev/null || true; rm -rf "$tmp"' EXIT
fail() { echo "installer check: $*" >&2; exit 1; }

"$wine" "$installer" /S 2>/dev/null
/usr/lib/wine/wineserver -w
user_dir="$(echo "$WINEPREFIX"/drive_c/users/*/AppData | head -n 1)"
[ -d "$user_dir" ] || fail "no user profile in the prefix"
dir="$user_dir/Local/Programs/Peerfold"
for f in peerfold-desktop.exe peerfold.exe WebView2Loader.dll uninstall.exe; do
  [ -s "$dir/$f" ] || fail "$f is not installed in $dir"
done
[ -f "$user_dir/Roaming/Microsoft/Windows/Start Menu/Programs/Peerfold.lnk" ] || fail "no Start menu entry"
grep -q '^\[Software\\\\Microsoft\\\\Windows\\\\CurrentVersion\\\\Uninstall\\\\Peerfold\]' "$WINEPREFIX/user.reg" ||
  fail "not registered in Apps & features (HKCU)"

# The installed CLI runs and is the version the installer says.
x86_64-w64-mingw32-gcc -shared -O2 -o "$dir/bcryptprimitives.dll" "$here/../../.ci/wine/bcryptprimitives.c" -ladvapi32
version="$("$wine" "$dir/peerfold.exe" --version 2>/dev/null | tr -d '\r')"
case "$(basename "$installer")" in
  "Peerfold_${version#peerfold }_x64-setup.exe") ;;
  *) fail "the installed peerfold.exe says \"$version\", the installer is $(basename "$installer")" ;;
esac
rm "$dir/bcryptprimitives.dll"

# Start at login was on (as tauri-plugin-autostart writes it); a home exists.
"$wine" reg add 'HKCU\Software\Microsoft\Windows\CurrentVersion\Run' /v Peerfold /d '"C:\x\peerfold-desktop.exe" --minimized' /f >/dev/null 2>&1
mkdir -p "$user_dir/Local/Peerfold" && echo keep > "$user_dir/Local/Peerfold/config.toml"
"$wine" "$dir/uninstall.exe" /S 2>/dev/null
/usr/lib/wine/wineserver -w
[ ! -e "$dir" ] || fail "uninstalling left $(ls "$dir")"
[ ! -e "$user_dir/Roaming/Microsoft/Windows/Start Menu/Programs/Peerfold.lnk" ] || fail "uninstalling left the Start menu entry"
! grep -q 'Uninstall\\\\Peerfold\]' "$WINEPREFIX/user.reg" || fail "uninstalling left the Apps & features entry"
! grep -q '^"Peerfold"=' "$WINEPREFIX/user.reg" || fail "uninstalling left the start-at-login entry"
[ "$(cat "$user_dir/Local/Peerfold/config.toml")" = keep ] || fail "uninstalling touched the home"
echo "installer check: $(basename "$installer") installs, runs and uninstalls"
