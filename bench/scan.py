#!/usr/bin/env python3
"""Scanner benchmark: `python3 bench/scan.py [--out DIR] [--skip-million]`.

Builds the release binary, generates the data sets (deterministic) and measures:
  1. the first scan of ../shared/tools/mkdata.py's ~550 MB mixed set, from the page cache
     (hashing throughput);
  2. 100,000 small files: first scan (indexing time) and an unchanged rescan;
  3. 1,000,000 empty files: first scan, unchanged rescan and peak RSS.
Each scan is a separate `peerfold scan --json` process with its own temporary home, so peak RSS
is that process's own (from wait4's rusage). Data sets are kept in --out between runs.
"""
import argparse, json, os, pathlib, shutil, subprocess, sys, tempfile, time

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def build():
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    return target / "release" / "peerfold"


def make_small(d, n, size_of):
    """n files in directories of 1000, sizes from size_of(i)."""
    if (d / ".complete").exists():
        return
    shutil.rmtree(d, ignore_errors=True)
    for i in range(n):
        sub = d / f"d{i // 1000:04d}"
        if i % 1000 == 0:
            sub.mkdir(parents=True)
        size = size_of(i)
        with open(sub / f"f{i:07d}", "wb") as f:
            if size:
                f.write((i.to_bytes(8, "little") * (size // 8 + 1))[:size])
    (d / ".complete").touch()


def warm(d):
    """Reads every file once so the scan is served from the page cache."""
    for p in d.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                while f.read(1 << 20):
                    pass


def scan(binary, home, folder):
    """Runs one scan; returns (summary, seconds, peak RSS in MB)."""
    start = time.perf_counter()
    proc = subprocess.Popen([str(binary), "--home", str(home), "scan", "--json", str(folder)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, rusage = os.wait4(proc.pid, 0)
    secs = time.perf_counter() - start
    if status != 0:
        sys.exit(f"scan of {folder} failed: {err.decode()}")
    return json.loads(out), secs, rusage.ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("BENCH_DIR", "/tmp/peerfold-bench"))
    ap.add_argument("--skip-million", action="store_true")
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    binary = build()
    rows = []

    mixed = out / "mixed"
    if not (mixed / ".complete").exists():
        shutil.rmtree(mixed, ignore_errors=True)
        subprocess.run([sys.executable, str(SHARED / "tools" / "mkdata.py"), str(mixed)], check=True)
        (mixed / ".complete").touch()
    warm(mixed)
    with tempfile.TemporaryDirectory() as home:
        s, secs, rss = scan(binary, home, mixed)
        rows.append(("mixed set, first scan", s["files"], s["hashed_bytes"] / 1e6,
                     s["duration"]["secs"] + s["duration"]["nanos"] / 1e9, rss))

    small = out / "small-100k"
    make_small(small, 100_000, lambda i: (i * 7919) % 4096)
    warm(small)
    with tempfile.TemporaryDirectory() as home:
        for label in ("100k small files, first scan", "100k small files, unchanged rescan"):
            s, secs, rss = scan(binary, home, small)
            rows.append((label, s["files"], s["hashed_bytes"] / 1e6, secs, rss))

    if not args.skip_million:
        million = out / "empty-1m"
        make_small(million, 1_000_000, lambda i: 0)
        with tempfile.TemporaryDirectory() as home:
            for label in ("1M empty files, first scan", "1M empty files, unchanged rescan"):
                s, secs, rss = scan(binary, home, million)
                rows.append((label, s["files"], s["hashed_bytes"] / 1e6, secs, rss))

    print(f"\n{'case':38} {'files':>9} {'MB hashed':>10} {'seconds':>8} {'MB/s':>7} {'files/s':>9} {'peak RSS MB':>12}")
    for label, files, mb, secs, rss in rows:
        print(f"{label:38} {files:>9} {mb:>10.1f} {secs:>8.2f} {mb / secs:>7.0f} {files / secs:>9.0f} {rss:>12.0f}")


if __name__ == "__main__":
    main()
