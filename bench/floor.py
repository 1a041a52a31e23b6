#!/usr/bin/env python3
"""What the receiving disk alone needs for bench/sync.py's small-file sets.

For each file, the least a sync program must do to put it in place durably: create a temporary
file, write its bytes, fsync it, rename it to its name (Peerfold's puller does this, and so does
Syncthing). The files are the same as sync.py's `small` and `small100k` sets (same sizes, same
directories of 1,000), written from memory, WORKERS at once as Peerfold's puller does
(FILES_AT_ONCE in crates/engine/src/pull.rs), on the same kind of new ext4 (bench/benchlib.py
`fresh_fs`). No network, no hashing, no index: a floor under any sync of these sets here.

Also measured without the fsync, to show how much of the floor is the disk's flushes.

Usage (root, for the loop device): python3 bench/floor.py [--files 10000,100000] [--runs 3]
"""

import argparse, concurrent.futures, os, pathlib, statistics, sys, tempfile, time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from benchlib import fresh_fs, small_bytes, small_path, small_size

WORKERS = 32  # --workers


def put(root, i, sync):
    sub_name, file_name = small_path(i)
    sub = root / sub_name
    name, tmp = sub / file_name, sub / f".{file_name}.tmp"
    size = small_size(i)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        if size:
            os.write(fd, small_bytes(i, size))
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, name)


def one_run(mnt, n, sync, args_workers):
    root = mnt / f"tree-{n}-{'fsync' if sync else 'nofsync'}-{time.time_ns()}"
    for d in range(0, n, 1000):
        (root / small_path(d)[0]).mkdir(parents=True)
    os.sync()
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(args_workers) as pool:
        for _ in pool.map(lambda i: put(root, i, sync), range(n), chunksize=64):
            pass
    if sync:
        # The directories' entries, as the puller syncs a directory before recording its files.
        for d in range(0, n, 1000):
            fd = os.open(root / small_path(d)[0], os.O_RDONLY | os.O_DIRECTORY)
            os.fsync(fd)
            os.close(fd)
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", default="10000,100000")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=WORKERS, help="files written at once")
    ap.add_argument("--out", default=None, help="where the file system's image goes (default: a temp dir)")
    args = ap.parse_args()
    out = pathlib.Path(args.out or tempfile.mkdtemp(prefix="pf-floor-"))
    out.mkdir(parents=True, exist_ok=True)
    print(f"{args.workers} files at once; load before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    rows = []
    with fresh_fs(out) as mnt:
        for n in (int(x) for x in args.files.split(",")):
            for sync in (True, False):
                times = [one_run(mnt, n, sync, args.workers) for _ in range(args.runs)]
                label = "write+fsync+rename" if sync else "write+rename, no fsync"
                print(f"  {n:>7} files, {label}: " + " ".join(f"{t:.2f}" for t in times) + " s", flush=True)
                rows.append((n, label, statistics.median(times), times))
    print(f"load after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"\n{'files':>7}  {'what':<24} {'median s':>8}  {'per file':>9}  runs (s)")
    for n, label, med, times in rows:
        print(f"{n:>7}  {label:<24} {med:8.2f}  {med / n * 1e6:7.0f} us  " + " ".join(f"{t:.2f}" for t in times))


if __name__ == "__main__":
    main()
