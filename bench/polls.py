#!/usr/bin/env python3
"""Status-poll cost: `python3 bench/polls.py [--out DIR] [--files N] [--polls N] [--binary PATH]...`.

What a `status` call costs the daemon on a large folder: the web UI, the tray and the CLI ask
for it every second or so, and `bench/sync.py` polls it throughout a transfer, so its cost is
paid during every sync. One daemon is started on bench/sync.py's small set of N files (default
100,000, kept in --out, default /tmp/peerfold-bench, shared with the other benchmarks), with
the folder shared with a second device that never connects (so the daemon counts both its own
files and what that device needs); once its first scan is done, `peerfold status --json` is run
--polls times (default 40) one after the other. Reported per poll: the wall time of the call
as the client sees it (process start included) and the CPU time the daemon spent (utime +
stime of /proc/PID/stat, before and after). With several --binary, each is measured in turn,
alternately, --rounds times (default 2), on the same tree, so the figures compare directly.
Everything is local: the daemon runs with --no-discovery and listens on 127.0.0.1 only.
"""
import argparse, os, pathlib, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from benchlib import build, free_port, make_small, small_size  # noqa: E402
from sync import Peerfold, cpu_seconds, pf_has_all, wait  # noqa: E402


def measure(binary, work, source, files, polls):
    a, b = Peerfold(binary, work / "pf-a"), Peerfold(binary, work / "pf-b")
    idb = b.cli("id").strip()
    a.cli("device", "add", idb, "--name", "b", "--address", f"tcp://127.0.0.1:{free_port()}")
    a.cli("folder", "add", str(source), "--id", "f", "--share", idb)
    try:
        a.serve(f"tcp://127.0.0.1:{free_port()}")
        wait("the daemon to listen", a.listening, 60, 0.05)
        wait("the first scan", lambda: pf_has_all(a.folder(), files), 3600, 1.0)
        time.sleep(2)  # the scan's last writes settle
        cpu0 = cpu_seconds(a.proc.pid)
        walls = []
        for _ in range(polls):
            s = time.perf_counter()
            f = a.folder()
            walls.append(time.perf_counter() - s)
            if f is None or f["local"]["files"] != files:
                sys.exit(f"unexpected status: {f}")
        cpu = (cpu_seconds(a.proc.pid) - cpu0) / polls
        return statistics.median(walls), cpu
    finally:
        a.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("BENCH_DIR", "/tmp/peerfold-bench"))
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--polls", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--binary", action="append", help="a peerfold binary (repeatable); default: build one")
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    binaries = [pathlib.Path(b) for b in args.binary] if args.binary else [build()]
    source = out / ("small-100k" if args.files == 100_000 else f"small-{args.files}")
    make_small(source, args.files, small_size)
    print(f"load before: {os.getloadavg()[0]:.2f}", flush=True)
    print(f"{'binary':30} {'round':>5} {'wall ms (median)':>17} {'daemon CPU ms/poll':>19}")
    for r in range(args.rounds):
        for binary in binaries:
            with tempfile.TemporaryDirectory(dir=out, prefix="polls-") as work:
                wall, cpu = measure(binary, pathlib.Path(work), source, args.files, args.polls)
            print(f"{str(binary):30} {r + 1:>5} {wall * 1000:>17.1f} {cpu * 1000:>19.1f}  "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
