#!/usr/bin/env python3
"""Checks the workspace's crate graph against the rules in ARCHITECTURE.md ("Crates").

Reads `cargo metadata --format-version 1 --no-deps` (every workspace member, src-tauri
included: its manifest is only read, nothing is built), prints each crate's normal and build
dependencies, and fails when a crate depends on one of ours it may not, or on an outside crate
its layer forbids (the protocol crate on tokio, anything but the index on sqlx, ...).
Development dependencies are not checked: tests may use what they like.

    python3 .ci/crate-graph.py              # check the workspace
    python3 .ci/crate-graph.py --metadata F # check a saved `cargo metadata` output instead

Python 3 standard library only.
"""

import json
import subprocess
import sys

# Our crates each may depend on, besides outside crates.
ALLOWED_OURS = {
    "peerfold-proto": set(),
    "peerfold-db": {"peerfold-proto"},
    "peerfold-net": {"peerfold-proto"},
    "peerfold-engine": {"peerfold-proto", "peerfold-db", "peerfold-net"},
    "peerfold": {"peerfold-engine"},
    # The desktop app reaches the engine's typed service only, never the HTTP API.
    "peerfold-desktop": {"peerfold-engine"},
}

# Outside crates a layer must not use.
ASYNC_IO_TLS = {
    "tokio", "tokio-rustls", "quinn", "rustls", "rcgen", "socket2", "hyper", "hyper-util",
    "axum", "mainline", "igd-next", "notify", "if-addrs",
}
FORBIDDEN_OUTSIDE = {
    # Sans-IO: no runtime, no sockets, no TLS, no database, no filesystem helpers.
    "peerfold-proto": ASYNC_IO_TLS | {"sqlx", "tempfile", "directories", "rustix", "libc"},
    # The index: SQL only, no network.
    "peerfold-db": ASYNC_IO_TLS - {"tokio"},
    # The transport: no SQL, no HTTP API, no discovery.
    "peerfold-net": {"sqlx", "axum", "hyper", "mainline", "igd-next", "if-addrs"},
    # The engine serves the control socket's one route with hyper, but has no HTTP API.
    "peerfold-engine": {"sqlx", "axum", "utoipa-axum", "rust-embed", "cookie", "argon2"},
    "peerfold": {"sqlx"},
    "peerfold-desktop": {"sqlx", "axum", "utoipa-axum", "rust-embed"},
}


def metadata(path=None):
    if path:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)


def check(meta):
    """The graph's lines to print and the rule violations found."""
    members = set(meta["workspace_members"])
    packages = [p for p in meta["packages"] if p["id"] in members]
    ours = {p["name"] for p in packages}
    lines, errors = [], []
    for name in ALLOWED_OURS:
        if name not in ours:
            errors.append(f"{name}: not a workspace member (the rules name it)")
    for package in sorted(packages, key=lambda p: p["name"]):
        name = package["name"]
        deps = sorted({d["name"] for d in package["dependencies"] if d.get("kind") in (None, "build")})
        ours_used = [d for d in deps if d in ours]
        outside = [d for d in deps if d not in ours]
        lines.append(f"{name} -> {', '.join(ours_used) or '(none of ours)'}")
        lines.append(f"    outside: {', '.join(outside)}")
        if name not in ALLOWED_OURS:
            errors.append(f"{name}: a workspace crate with no rule in .ci/crate-graph.py")
            continue
        for dep in ours_used:
            if dep not in ALLOWED_OURS[name]:
                allowed = ", ".join(sorted(ALLOWED_OURS[name])) or "none"
                errors.append(f"{name} depends on {dep}; it may depend on {allowed} of ours")
        for dep in outside:
            if dep in FORBIDDEN_OUTSIDE.get(name, set()):
                errors.append(f"{name} depends on {dep}, which its layer must not use")
    return lines, errors


def main(argv):
    path = argv[2] if len(argv) > 2 and argv[1] == "--metadata" else None
    lines, errors = check(metadata(path))
    print("\n".join(lines))
    if errors:
        print("\ncrate graph: rules broken (see ARCHITECTURE.md, \"Crates\"):", file=sys.stderr)
        for e in errors:
            print(f"  {e}", file=sys.stderr)
        return 1
    print("\ncrate graph: every dependency is allowed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
