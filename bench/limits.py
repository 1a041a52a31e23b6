#!/usr/bin/env python3
"""Bandwidth-limit benchmark: `python3 bench/limits.py [--out DIR] [--runs N]
[--transports tcp,quic] [--cases global,device] [--binary PATH]`.

Builds the release binary and syncs one 100 MiB file (pseudo-random, so nothing compresses;
kept in --out between runs, default /tmp/peerfold-bench) from daemon A to daemon B on loopback
with B's receive limit at 10240 KiB/s: nominally 10.0 s. `global` sets it with `peerfold limits
--max-recv-kibps 10240 --limit-lan` (loopback is LAN, which limits leave alone by default),
`device` with `peerfold device add A --max-recv-kibps 10240` and `limits --limit-lan`. As in
bench/sync.py, A is started first and waited for until its scan is done; the time runs from
starting B until B's status shows the file present and nothing needed, and B's copy is then
compared with A's (SHA-256). Each case runs --runs times (default 3); the median is reported
with its deviation from the nominal 10 s (the issue's bound: ±20 %).
"""
import argparse, hashlib, pathlib, random, shutil, statistics, sys, tempfile, time

from benchlib import build
from sync import Peerfold, peerfold_pair, pf_complete, pf_has_all, wait

SIZE = 100 << 20
KIBPS = 10240
NOMINAL_S = SIZE / (KIBPS * 1024)


def make_file(out):
    d = out / "limits-100MiB"
    done = out / "limits-100MiB.complete"
    if not done.exists():
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        (d / "big.bin").write_bytes(random.Random(19).randbytes(SIZE))
        done.touch()
    return d


def sha256(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def run(binary, work, scheme, source, case):
    dest = work / "dest"
    a, b, la, lb = peerfold_pair(binary, work, scheme, source, dest)
    ida = a.cli("id").strip()
    if case == "global":
        b.cli("limits", "--max-recv-kibps", str(KIBPS), "--limit-lan")
    else:
        b.cli("limits", "--limit-lan")
        b.cli("device", "add", ida, "--max-recv-kibps", str(KIBPS))
    try:
        a.serve(la)
        wait("A to listen", a.listening, 60, 0.02)
        wait("A's first scan", lambda: pf_has_all(a.folder(), 1), 600, 0.1)
        start = time.perf_counter()
        b.serve(lb)
        wait("B to receive the file", lambda: pf_complete(b.folder(), 1), 600, 0.05)
        secs = time.perf_counter() - start
    finally:
        b.stop()
        a.stop()
    if sha256(dest / "big.bin") != sha256(source / "big.bin"):
        raise RuntimeError("B's copy differs from A's")
    return secs


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="/tmp/peerfold-bench")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--transports", default="tcp,quic")
    p.add_argument("--cases", default="global,device")
    p.add_argument("--binary")
    args = p.parse_args()
    binary = pathlib.Path(args.binary) if args.binary else build()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    source = make_file(out)
    for scheme in args.transports.split(","):
        for case in args.cases.split(","):
            times = []
            for _ in range(args.runs):
                with tempfile.TemporaryDirectory(dir=out) as work:
                    times.append(run(binary, pathlib.Path(work), scheme, source, case))
            median = statistics.median(times)
            off = (median / NOMINAL_S - 1) * 100
            runs = ", ".join(f"{t:.2f}" for t in times)
            print(f"{scheme:4} {case:6} 100 MiB at {KIBPS} KiB/s: median {median:.2f} s "
                  f"(nominal {NOMINAL_S:.1f} s, {off:+.1f} %; runs {runs})", flush=True)
            if abs(off) > 20:
                print("  outside the issue's ±20 %", file=sys.stderr)


if __name__ == "__main__":
    main()
