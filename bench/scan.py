#!/usr/bin/env python3
"""Scanner benchmark: `python3 bench/scan.py [--out DIR] [--skip-million] [--no-syncthing]`.

Builds the release binary, generates the data sets (deterministic) and measures:
  1. the first scan of bench/mkdata.py's ~550 MB mixed set, from the page cache
     (hashing throughput);
  2. 100,000 small files: first scan (indexing time) and an unchanged rescan;
  3. 1,000,000 empty files: first scan, unchanged rescan and peak RSS.
Each scan is a separate `peerfold scan --json` process, so peak RSS is that process's own (from
wait4's rusage); the file system is synced before each. Peerfold's figures are the median of
three runs (first scans in fresh temporary homes), with the largest peak RSS of the three. The
mixed set's throughput uses the scan's own duration (hashing and indexing, without process
start); the other times are the whole process. Data sets are kept in --out between runs.

Unless --no-syncthing is given, Debian's Syncthing does the same in the same run: a
`syncthing serve` with a temporary home indexes the same folder (timed from its start until
/rest/db/status reports the folder idle with every file), then rescans it unchanged
(POST /rest/db/scan, which returns when the scan is done); peak RSS is the VmHWM of the process
doing the work (`syncthing serve` runs it as a child of a monitor process). Syncthing
runs on loopback only, with discovery, relays, NAT traversal, usage reporting and upgrades off.
"""
import argparse, json, os, pathlib, shutil, subprocess, sys, tempfile, time
import urllib.request

from benchlib import build, free_port, make_small, st_options

ROOT = pathlib.Path(__file__).resolve().parent.parent
MKDATA = ROOT / "bench" / "mkdata.py"


def warm(d):
    """Reads every file once so the scan is served from the page cache."""
    for p in d.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                while f.read(1 << 20):
                    pass


def scan(binary, home, folder):
    """Runs one scan; returns (summary, seconds, peak RSS in MB)."""
    # Dirty pages left by earlier steps would otherwise be written back during this one.
    os.sync()
    start = time.perf_counter()
    proc = subprocess.Popen([str(binary), "--home", str(home), "scan", "--json", str(folder)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, rusage = os.wait4(proc.pid, 0)
    secs = time.perf_counter() - start
    if status != 0:
        sys.exit(f"scan of {folder} failed: {err.decode()}")
    return json.loads(out), secs, rusage.ru_maxrss / 1024


ST_CONFIG = """<configuration version="36">
  <folder id="bench" label="bench" path="{folder}" type="sendreceive" rescanIntervalS="0"
          fsWatcherEnabled="false" markerName=".stfolder">
    <device id="{id}"></device>
  </folder>
  <device id="{id}" name="bench"><address>dynamic</address></device>
  <gui enabled="true" tls="false"><address>127.0.0.1:{gui}</address><apikey>bench-key</apikey></gui>
{options}</configuration>
"""


def st_get(gui, path):
    req = urllib.request.Request(f"http://127.0.0.1:{gui}{path}", headers={"X-API-Key": "bench-key"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read() or b"null")


def st_post(gui, path):
    req = urllib.request.Request(f"http://127.0.0.1:{gui}{path}", data=b"", method="POST",
                                 headers={"X-API-Key": "bench-key"})
    with urllib.request.urlopen(req, timeout=3600) as r:
        return r.read()


def children(pid):
    """The pids whose parent is `pid`."""
    out = []
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def peak_rss_mb(pid):
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
    return int(next(l.split()[1] for l in status.splitlines() if l.startswith("VmHWM"))) / 1024


def syncthing_scan(folder, files, deadline_s=1800):
    """Syncthing indexes `folder` (holding `files` files); returns (index s, rescan s, peak RSS MB)."""
    with tempfile.TemporaryDirectory() as home:
        subprocess.run(["syncthing", "generate", "--no-default-folder", f"--home={home}"],
                       capture_output=True, check=True)
        dev = subprocess.run(["syncthing", "serve", "--device-id", f"--home={home}"],
                             capture_output=True, text=True, check=True).stdout.strip()
        gui = free_port()
        pathlib.Path(home, "config.xml").write_text(
            ST_CONFIG.format(folder=folder, id=dev, gui=gui, options=st_options(f"tcp://127.0.0.1:{free_port()}")))
        env = dict(os.environ, STNOUPGRADE="1", STNORESTART="1")
        start = time.perf_counter()
        proc = subprocess.Popen(["syncthing", "serve", f"--home={home}", "--no-browser", "--no-restart",
                                 "--no-upgrade"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while True:
                if time.perf_counter() - start > deadline_s:
                    sys.exit("syncthing did not finish indexing in time")
                try:
                    st = st_get(gui, "/rest/db/status?folder=bench")
                    if st["state"] == "idle" and st["localFiles"] >= files:
                        break
                except OSError:
                    pass
                time.sleep(0.05)
            indexed = time.perf_counter() - start
            t = time.perf_counter()
            st_post(gui, "/rest/db/scan?folder=bench")
            rescan = time.perf_counter() - t
            # `syncthing serve` is a monitor process; the work is done by its child.
            rss = max(peak_rss_mb(pid) for pid in [proc.pid, *children(proc.pid)])
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        return indexed, rescan, rss


RUNS = 3


def median(runs):
    """The run with the median time."""
    return sorted(runs, key=lambda r: r[1])[len(runs) // 2]


def scan_secs(summary):
    return summary["duration"]["secs"] + summary["duration"]["nanos"] / 1e9


def first_and_rescan(binary, folder, label):
    """RUNS first scans (fresh homes) and RUNS unchanged rescans; the median of each, as rows.
    Times are the whole process: start, identity, index open, scan, exit."""
    firsts, rescans = [], []
    for _ in range(RUNS):
        with tempfile.TemporaryDirectory() as home:
            firsts.append(scan(binary, home, folder))
            rescans.append(scan(binary, home, folder))
    rows = []
    for name, runs in ((f"{label}, first scan", firsts), (f"{label}, unchanged rescan", rescans)):
        s, secs, rss = median(runs)
        rows.append((name, s["files"], s["hashed_bytes"] / 1e6, secs, max(r[2] for r in runs)))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("BENCH_DIR", "/tmp/peerfold-bench"))
    ap.add_argument("--skip-million", action="store_true")
    ap.add_argument("--no-syncthing", action="store_true", help="do not run Syncthing beside Peerfold")
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    binary = build()
    syncthing = not args.no_syncthing
    if syncthing and not shutil.which("syncthing"):
        sys.exit("syncthing is not installed (apt-get install syncthing), or pass --no-syncthing")
    rows = []

    mixed = out / "mixed"
    if not (out / "mixed.complete").exists():
        shutil.rmtree(mixed, ignore_errors=True)
        subprocess.run([sys.executable, str(MKDATA), str(mixed)], check=True)
        (out / "mixed.complete").touch()
    warm(mixed)
    runs = []
    for _ in range(RUNS):
        with tempfile.TemporaryDirectory() as home:
            runs.append(scan(binary, home, mixed))
    s, _, rss = median(runs)
    rows.append(("mixed set, first scan", s["files"], s["hashed_bytes"] / 1e6, scan_secs(s), rss))
    if syncthing:
        idx, _, rss = syncthing_scan(mixed, s["files"])
        rows.append(("  Syncthing: mixed set, first scan", s["files"], s["hashed_bytes"] / 1e6, idx, rss))

    small = out / "small-100k"
    make_small(small, 100_000, lambda i: (i * 7919) % 4096)
    warm(small)
    rows += first_and_rescan(binary, small, "100k small files")
    if syncthing:
        files = rows[-1][1]
        idx, re, rss = syncthing_scan(small, files)
        rows.append(("  Syncthing: 100k small, first scan", files, rows[-2][2], idx, rss))
        rows.append(("  Syncthing: 100k small, unchanged", files, 0.0, re, rss))

    if not args.skip_million:
        million = out / "empty-1m"
        make_small(million, 1_000_000, lambda i: 0)
        rows += first_and_rescan(binary, million, "1M empty files")
        if syncthing:
            files = rows[-1][1]
            idx, re, rss = syncthing_scan(million, files)
            rows.append(("  Syncthing: 1M empty, first scan", files, 0.0, idx, rss))
            rows.append(("  Syncthing: 1M empty, unchanged", files, 0.0, re, rss))

    print(f"\n{'case':38} {'files':>9} {'MB hashed':>10} {'seconds':>8} {'MB/s':>7} {'files/s':>9} {'peak RSS MB':>12}")
    for label, files, mb, secs, rss in rows:
        print(f"{label:38} {files:>9} {mb:>10.1f} {secs:>8.2f} {mb / secs:>7.0f} {files / secs:>9.0f} {rss:>12.0f}")


if __name__ == "__main__":
    main()
