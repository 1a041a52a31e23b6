#!/usr/bin/env python3
"""Sync benchmark: `python3 bench/sync.py [--out DIR] [--fs fresh|out] [--runs N]
[--cases mixed,small,latency] [--transports quic,tcp] [--no-syncthing] [--binary PATH]
[--multisource-mb MB] [--scale-files N] [--scale-limit-min M]`.

Cases (default mixed,small,latency): mixed, small, small100k, latency, multisource, scale.

Builds the release binary, generates the data sets (deterministic; kept in --out between runs,
default /tmp/peerfold-bench, shared with bench/scan.py) and measures one-way sync between two
daemons on loopback, over QUIC and over TCP+TLS:
  1. mixed: bench/mkdata.py's ~550 MB set (2,042 files: 2,000 of 1–64 KiB, 40 of
     1–8 MiB, two of 160 MiB);
  2. small: 10,000 files of 0–8 KiB (size (i * 7919) mod 8192, 4 KiB on average) in 10
     directories;
  3. latency: both daemons connected on a folder of 100 small files; a file on A is saved (a
     plain write of new content, one save every ~0.3 s after the previous one arrived) 20
     times per run and B's copy is polled every 2 ms until it has the new content (a save
     not there after 60 s counts as a miss). Over QUIC (the first of --transports).
  4. small100k: as small, with 100,000 files in 100 directories (410 MB).
  5. multisource (root only; Peerfold only): three daemons in network namespaces a, b, c; the
     links a–c and b–c shaped on the sender's side by `tc tbf` (netem is not available here,
     so no delay is added). C downloads --multisource-mb MB (default 160, 16 files of random
     data) from A alone at 20 MB/s, from A and B at 20 MB/s each, and from A at 20 and B at
     5 MB/s. B gets the set from A over an unshaped a–b link first (so both hold the same
     versions); the time runs from starting C until it has everything. With PF_BENCH_TRACE=FILE,
     each shaped link's bytes are sampled every 0.1 s and appended to FILE, with C's log kept
     beside it (its level from PF_BENCH_RUST_LOG, which sets every daemon's; default warn).
     In every case, PF_BENCH_LOGS=DIR keeps each Peerfold daemon's log there when it stops
     (e.g. with PF_BENCH_RUST_LOG=warn,peerfold_net::quic=debug, each QUIC connection's MTU,
     lost packets and black holes as it closes).
  6. scale (`--cases scale --transports tcp`; `--scale-files N`, default 1,000,000): N files
     in directories of 1,000, every hundredth of 1 KiB and the rest empty. As 1, plus: A's
     first scan time, the bytes B read from its connection (index and data; the data is N/100
     KiB), B's index database size (Peerfold: index.db with its WAL; Syncthing: its LevelDB
     directory), and files are counted on B instead of hashed. Syncthing is stopped after 30
     minutes, Peerfold after --scale-limit-min (default 29), and where B was (its status
     counts) is reported. Status is polled every files/100,000 seconds (10 s for a million):
     each poll counts what B needs, a pass over its whole index.
When the mixed case runs, `dd` writes 1 GiB with conv=fdatasync into --out before and after the
transfers, and each program's mixed rate is reported as a share of dd's mean rate.
For 1, 2, 4 and 6, the sending daemon A is started on the data set and waited for until its first
scan is done (its status shows every file, idle); then the receiving daemon B is started with
an empty folder. The time runs from starting B until B's status shows every file present and
nothing needed; B's tree is then compared with A's (names, sizes, SHA-256 of every file). Each
case runs --runs times (default 3) and the median is reported, with the CPU time both daemons
used for the transfer (utime + stime from /proc/PID/stat: the sender's since its first scan
ended, the receiver's from its start) per GB, and each daemon's peak RSS (VmHWM of
/proc/PID/status, the sender's including its first scan). The sender's data is in the page
cache (its scan just read it); the receiver writes through the page cache and fsyncs each file
(both programs do). `sync` runs before each measurement so earlier writes are not flushed
during it; nothing else is dropped.
The daemons' homes and the receiving trees (and dd's file) are on a new ext4 file system made
for the run (`--fs fresh`, the default as root: mkfs's defaults, so with a journal as on users'
disks, in a sparse image in --out on a loop device with direct I/O; see bench/benchlib.py
fresh_fs for why); the data sets stay in --out. With `--fs out` they are in --out, and a run
waits until 40 s have passed since the previous run deleted its trees: ext4 without a journal
skips recently freed inodes one lookup at a time when it allocates (see DELETIONS_SETTLE_S).

Peerfold is driven only through its CLI (`id`, `device add`, `folder add`, `serve`, `status
--json`), with default options. Unless --no-syncthing is given, Debian's Syncthing does the same
in the same run: two `syncthing serve` instances with temporary homes and a pre-written
config.xml, the transport forced by the listen and device addresses (quic:// or tcp://), the
default compression (metadata), the watcher on with fsWatcherDelayS=1 (its default is 10 s),
progress read from /rest/db/status. Everything listens on and dials 127.0.0.1 only (multisource:
addresses of its own namespaces' links); discovery, relays, NAT traversal, usage reporting and
upgrades are off.
"""
import argparse, contextlib, hashlib, json, os, pathlib, shutil, statistics, subprocess, sys, tempfile, time
import urllib.request

from benchlib import build, free_port, fresh_fs, make_small, small_size, st_options

ROOT = pathlib.Path(__file__).resolve().parent.parent
MKDATA = ROOT / "bench" / "mkdata.py"
SAVES = 20
LATENCY_LIMIT_S = 60
LATENCY_FILES = 100


def is_internal(name):
    # Folder markers, trash cans and temporary files of either program.
    return name in (".stfolder", ".stversions", ".stignore") or name.startswith(".syncthing.")


def manifest(d):
    """{relative path: (size, sha256)} of every regular file, internal files left out."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(d):
        dirnames[:] = [n for n in dirnames if not is_internal(n)]
        for n in filenames:
            if is_internal(n):
                continue
            p = os.path.join(dirpath, n)
            h = hashlib.sha256()
            with open(p, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
            out[os.path.relpath(p, d)] = (os.path.getsize(p), h.hexdigest())
    return out


def proc_tree(pid):
    """`pid` and its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in pathlib.Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo += [int(c) for c in task.read_text().split()]
            except OSError:
                pass
    return out


def cpu_seconds(pid):
    """utime + stime of `pid` and its descendants, from /proc/PID/stat."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in proc_tree(pid):
        try:
            fields = pathlib.Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command: state is field 3, utime 14 and stime 15 (1-based).
        total += int(fields[11]) + int(fields[12])
    return total / tick


def peak_rss_mb(pid):
    """VmHWM (peak resident set) of `pid` and its descendants, in MB."""
    total = 0
    for p in proc_tree(pid):
        try:
            for line in pathlib.Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total / 1e6


def wait(what, cond, deadline_s, interval):
    start = time.perf_counter()
    while True:
        v = cond()
        if v:
            return v
        if time.perf_counter() - start > deadline_s:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# Peerfold, through its CLI


class Peerfold:
    def __init__(self, binary, home):
        self.binary, self.home = binary, pathlib.Path(home)
        self.proc = None

    def cli(self, *args):
        r = subprocess.run([str(self.binary), "--home", str(self.home), *args], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"peerfold {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def serve(self, listen, netns=None):
        log = open(self.home / "serve.log", "wb")
        # `ip netns exec` execs the program: the child's pid is the daemon's.
        prefix = ["ip", "netns", "exec", netns] if netns else []
        self.proc = subprocess.Popen([*prefix, str(self.binary), "--home", str(self.home), "serve", "--no-discovery",
                                      "--listen", listen, "--gui-address", "127.0.0.1:0"],
                                     env=dict(os.environ, RUST_LOG=os.environ.get("PF_BENCH_RUST_LOG", "warn")),
                                     stdout=subprocess.DEVNULL, stderr=log)
        log.close()

    def listening(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"peerfold serve exited: {(self.home / 'serve.log').read_text()}")
        return "Listening on" in (self.home / "serve.log").read_text(errors="replace")

    def status(self):
        """The daemon's whole status, `None` while the control socket is not up."""
        # Before the daemon holds the home, `status` would open (and lock) it itself.
        if not self.listening():
            return None
        try:
            return json.loads(self.cli("status", "--json"))
        except (RuntimeError, json.JSONDecodeError):
            return None

    def folder(self):
        """The folder's status, `None` while the control socket is not up."""
        try:
            return self.status()["folders"][0]
        except (TypeError, IndexError, KeyError):
            return None

    def bytes_in(self):
        """Bytes read from the (one) connected peer so far."""
        try:
            return sum(d.get("bytes_in") or 0 for d in self.status()["devices"])
        except (TypeError, KeyError):
            return None

    def db_mb(self):
        """Size of the index database (with its WAL) in MB."""
        return sum(p.stat().st_size for p in self.home.glob("index.db*")) / 1e6

    def stop(self):
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            keep_log(self.home / "serve.log")


def keep_log(log):
    """Copies a daemon's log to $PF_BENCH_LOGS, if set, before its home is deleted."""
    keep = os.environ.get("PF_BENCH_LOGS")
    if keep and log.exists():
        pathlib.Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(log, pathlib.Path(keep) / f"{log.parent.parent.name}-{log.parent.name}-{time.time():.3f}.log")


def peerfold_pair(binary, work, scheme, folder_a, folder_b):
    """Two configured homes sharing folder `f`; returns (a, b, listen address a, listen address b)."""
    a, b = Peerfold(binary, work / "pf-a"), Peerfold(binary, work / "pf-b")
    ida, idb = a.cli("id").strip(), b.cli("id").strip()
    pa, pb = free_port(), free_port()
    la, lb = f"{scheme}://127.0.0.1:{pa}", f"{scheme}://127.0.0.1:{pb}"
    a.cli("device", "add", idb, "--name", "b", "--address", lb)
    b.cli("device", "add", ida, "--name", "a", "--address", la)
    a.cli("folder", "add", str(folder_a), "--id", "f", "--share", idb)
    b.cli("folder", "add", str(folder_b), "--id", "f", "--share", ida)
    return a, b, la, lb


def pf_has_all(f, files):
    return f is not None and f["state"] == "idle" and f["local"]["files"] >= files


def pf_complete(f, files):
    return (f is not None and f["global"]["files"] == files and f["local"]["files"] == files
            and f["need"]["items"] == 0)


def peerfold_transfer(binary, work, scheme, source, files, interval, deadline_s=1800):
    """Seconds from starting the receiver until it has all `files` of `source`."""
    dest = work / "dest"
    a, b, la, lb = peerfold_pair(binary, work, scheme, source, dest)
    try:
        a.serve(la)
        wait("peerfold A to listen", a.listening, 60, 0.02)
        scan_start = time.perf_counter()
        wait("peerfold A's first scan", lambda: pf_has_all(a.folder(), files), 3600, interval)
        scan_s = time.perf_counter() - scan_start
        os.sync()
        cpu_a = cpu_seconds(a.proc.pid)
        start = time.perf_counter()
        b.serve(lb)
        try:
            wait("peerfold B to receive everything", lambda: pf_complete(b.folder(), files), deadline_s, interval)
            secs, stopped = time.perf_counter() - start, None
        except TimeoutError:
            if deadline_s >= 1800:
                raise
            # The scale case's limit: where B was when stopped.
            f = b.folder() or {}
            secs, stopped = None, {k: f.get(k) for k in ("state", "global", "local", "need")}
        stats = {"cpu": cpu_seconds(a.proc.pid) - cpu_a + cpu_seconds(b.proc.pid),
                 "rss_a": peak_rss_mb(a.proc.pid), "rss_b": peak_rss_mb(b.proc.pid),
                 "scan_s": scan_s, "wire_in_mb": (b.bytes_in() or 0) / 1e6, "db_mb": b.db_mb(),
                 "stopped": stopped}
    finally:
        b.stop()
        a.stop()
    return secs, dest, stats


def peerfold_latency(binary, work, scheme, source, files):
    a, b, la, lb = peerfold_pair(binary, work, scheme, source, work / "dest")
    try:
        a.serve(la)
        b.serve(lb)
        wait("peerfold B to have the latency folder", lambda: pf_complete(b.folder(), files), 300, 0.1)
        return saves(source, work / "dest")
    finally:
        b.stop()
        a.stop()


# ---------------------------------------------------------------------------------------------
# Syncthing

ST_CONFIG = """<configuration version="36">
  <folder id="bench" label="bench" path="{folder}" type="sendreceive" rescanIntervalS="3600"
          fsWatcherEnabled="true" fsWatcherDelayS="1" markerName=".stfolder">
    <device id="{me}"></device>
    <device id="{peer}"></device>
  </folder>
  <device id="{me}" name="self" compression="metadata"><address>dynamic</address></device>
  <device id="{peer}" name="peer" compression="metadata"><address>{scheme}://127.0.0.1:{peer_port}</address></device>
  <gui enabled="true" tls="false"><address>127.0.0.1:{gui}</address><apikey>bench-key</apikey></gui>
{options}</configuration>
"""


class Syncthing:
    def __init__(self, home):
        self.home = pathlib.Path(home)
        self.home.mkdir(parents=True)
        subprocess.run(["syncthing", "generate", "--no-default-folder", f"--home={home}"],
                       capture_output=True, check=True)
        self.id = subprocess.run(["syncthing", "serve", "--device-id", f"--home={home}"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        self.gui, self.port = free_port(), free_port()
        self.proc = None

    def configure(self, folder, peer, scheme):
        (self.home / "config.xml").write_text(ST_CONFIG.format(
            folder=folder, me=self.id, peer=peer.id, scheme=scheme, peer_port=peer.port, gui=self.gui,
            options=st_options(f"{scheme}://127.0.0.1:{self.port}")))

    def serve(self):
        env = dict(os.environ, STNOUPGRADE="1", STNORESTART="1")
        with open(self.home / "serve.log", "wb") as log:
            self.proc = subprocess.Popen(["syncthing", "serve", f"--home={self.home}", "--no-browser",
                                          "--no-restart", "--no-upgrade"], env=env,
                                         stdout=log, stderr=subprocess.STDOUT)

    def status(self):
        """/rest/db/status of the folder, `None` while the REST API is not up."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.gui}/rest/db/status?folder=bench",
                                     headers={"X-API-Key": "bench-key"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.loads(r.read())
        except OSError:
            if self.proc.poll() is not None:
                raise RuntimeError("syncthing serve exited")
            return None

    def rest(self, path):
        req = urllib.request.Request(f"http://127.0.0.1:{self.gui}{path}", headers={"X-API-Key": "bench-key"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.loads(r.read())
        except OSError:
            return None

    def bytes_in(self):
        """Bytes read from the peer so far (/rest/system/connections)."""
        c = self.rest("/rest/system/connections")
        return c and c["total"]["inBytesTotal"]

    def db_mb(self):
        """Size of the index database (LevelDB directory) in MB."""
        return sum(p.stat().st_size for p in (self.home / "index-v0.14.0.db").rglob("*") if p.is_file()) / 1e6

    def stop(self):
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def st_pair(work, scheme, folder_a, folder_b):
    a, b = Syncthing(work / "st-a"), Syncthing(work / "st-b")
    a.configure(folder_a, b, scheme)
    b.configure(folder_b, a, scheme)
    return a, b


def st_has_all(s, files):
    return s is not None and s["state"] == "idle" and s["localFiles"] >= files


def st_complete(s, files):
    return (s is not None and s["globalFiles"] == files and s["localFiles"] == files and s["needFiles"] == 0
            and s["needBytes"] == 0)


def syncthing_transfer(work, scheme, source, files, interval, deadline_s=1800):
    """As peerfold_transfer; past `deadline_s` the stats say where B was (`stopped`) and the
    seconds are None."""
    dest = work / "dest"
    a, b = st_pair(work, scheme, source, dest)
    try:
        a.serve()
        scan_start = time.perf_counter()
        wait("syncthing A's first scan", lambda: st_has_all(a.status(), files), 3600, interval)
        scan_s = time.perf_counter() - scan_start
        os.sync()
        cpu_a = cpu_seconds(a.proc.pid)
        start = time.perf_counter()
        b.serve()
        try:
            wait("syncthing B to receive everything", lambda: st_complete(b.status(), files), deadline_s, interval)
            secs, stopped = time.perf_counter() - start, None
        except TimeoutError:
            s = b.status() or {}
            secs, stopped = None, {k: s.get(k) for k in ("state", "globalFiles", "localFiles", "needFiles")}
        stats = {"cpu": cpu_seconds(a.proc.pid) - cpu_a + cpu_seconds(b.proc.pid),
                 "rss_a": peak_rss_mb(a.proc.pid), "rss_b": peak_rss_mb(b.proc.pid),
                 "scan_s": scan_s, "wire_in_mb": (b.bytes_in() or 0) / 1e6, "db_mb": b.db_mb(),
                 "stopped": stopped}
    finally:
        b.stop()
        a.stop()
    return secs, dest, stats


def syncthing_latency(work, scheme, source, files):
    a, b = st_pair(work, scheme, source, work / "dest")
    try:
        a.serve()
        b.serve()
        wait("syncthing B to have the latency folder", lambda: st_complete(b.status(), files), 300, 0.1)
        return saves(source, work / "dest")
    finally:
        b.stop()
        a.stop()


# ---------------------------------------------------------------------------------------------


def saves(a, b):
    """Saves a file on A SAVES times; the seconds until B's copy had each new content."""
    out = []
    for i in range(SAVES):
        name = f"f{i % 10:03d}.txt"
        content = f"save {i} at {time.time_ns()}\n".encode() * (1 + i % 7)
        start = time.perf_counter()
        with open(a / name, "wb") as f:
            f.write(content)

        def arrived():
            try:
                return (b / name).read_bytes() == content
            except OSError:
                return False

        try:
            wait(f"save {i} to arrive", arrived, LATENCY_LIMIT_S, 0.002)
            out.append(time.perf_counter() - start)
        except TimeoutError:
            # Counted as a miss (reported) rather than ending the benchmark.
            out.append(float("inf"))
        time.sleep(0.3)
    return out


# ---------------------------------------------------------------------------------------------
# Multi-source: three devices in network namespaces, links shaped by `tc tbf`

MS_FILES = 16
MS_PORT = 22000


class Triangle:
    """Namespaces a, b, c: a–c and b–c are the shaped links C downloads over (A and B send
    through `tbf` on their end), a–b is unshaped (B gets the set from A before C starts).
    close() deletes them and kills what still runs in them."""

    def __init__(self):
        self.tag = f"pfm{os.getpid() % 100000}"
        self.ns = {k: self.tag + k for k in "abc"}
        self.made = []
        # (namespace, device, address) of both ends of each link.
        self.links = {
            "ac": [("a", "x", "10.21.1.1"), ("c", "y", "10.21.1.2")],
            "bc": [("b", "x", "10.21.2.1"), ("c", "z", "10.21.2.2")],
            "ab": [("a", "w", "10.21.3.1"), ("b", "w", "10.21.3.2")],
        }

    def dev(self, name, end):
        return f"{self.tag}{name}{end}"

    def create(self):
        for ns in self.ns.values():
            subprocess.run(["ip", "netns", "add", ns], check=True)
            self.made.append(ns)
            subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        for name, ends in self.links.items():
            (na, _, _), (nb, _, _) = ends
            da, db = self.dev(name, 0), self.dev(name, 1)
            subprocess.run(["ip", "link", "add", da, "type", "veth", "peer", "name", db], check=True)
            for (ns, _, addr), d in zip(ends, (da, db)):
                subprocess.run(["ip", "link", "set", d, "netns", self.ns[ns]], check=True)
                subprocess.run(["ip", "-n", self.ns[ns], "addr", "add", f"{addr}/24", "dev", d], check=True)
                subprocess.run(["ip", "-n", self.ns[ns], "link", "set", d, "up"], check=True)

    def addr(self, link, ns):
        return next(a for n, _, a in self.links[link] if n == ns)

    def shape(self, link, mb_per_s):
        """The sender's end of `link` (A's or B's, towards C) to `mb_per_s` MB/s."""
        ns = self.ns[link[0]]
        dev = self.dev(link, 0)
        subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate",
                        f"{mb_per_s * 8}mbit", "burst", "256kb", "latency", "100ms"], check=True)

    def close(self):
        for ns in self.made:
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), 9)
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.made.clear()


class LinkTrace:
    """With PF_BENCH_TRACE=FILE: the bytes each sender put on its link to C, sampled every
    0.1 s from a thread, appended to FILE as one line per sample (seconds since C started,
    MB sent per link in that interval), to see where a run's time goes."""

    def __init__(self, net, links):
        import threading
        self.net, self.links, self.samples, self.stop = net, links, [], False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def sent(self, link):
        ns, dev = self.net.ns[link[0]], self.net.dev(link, 0)
        r = subprocess.run(["ip", "netns", "exec", ns, "cat", f"/sys/class/net/{dev}/statistics/tx_bytes"],
                           capture_output=True, text=True)
        return int(r.stdout.strip() or 0)

    def run(self):
        while not self.stop:
            # The sample's time is taken between the reads: `ip netns exec` may take a while.
            before = time.perf_counter()
            sent = [self.sent(l) for l in self.links]
            self.samples.append(((before + time.perf_counter()) / 2, sent))
            time.sleep(0.1)

    def report(self, start, path, log):
        self.stop = True
        self.thread.join()
        n = sum(1 for _ in open(path)) if os.path.exists(path) else 0
        kept = f"{path}.{n}.c.log"
        shutil.copy(log, kept)
        with open(path, "a") as f:
            f.write(f"# links {self.links}, C's log {kept}\n")
            for (t0, b0), (t1, b1) in zip(self.samples, self.samples[1:]):
                f.write(f"{t1 - start:6.2f} " + " ".join(f"{(y - x) / 1e6 / (t1 - t0):6.1f}" for x, y in zip(b0, b1)) + "\n")
            f.write(f"# total MB sent: {[round((y - x) / 1e6, 1) for x, y in zip(self.samples[0][1], self.samples[-1][1])]}\n")


def make_multisource(d, mb):
    """MS_FILES files of incompressible data, `mb` MB in all."""
    done = d.with_name(d.name + ".complete")
    if done.exists():
        return
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    size = mb * 1_000_000 // MS_FILES
    for i in range(MS_FILES):
        with open(d / f"part{i:02d}.bin", "wb") as f:
            f.write(os.urandom(size))
    done.touch()


def multisource_run(binary, net, work, scheme, source, files, rates):
    """Seconds for C to get `source` from A (and from B, if `rates` has two entries: MB/s of
    A→C and B→C)."""
    homes = {k: Peerfold(binary, work / f"pf-{k}") for k in "abc"}
    ids = {k: h.cli("id").strip() for k, h in homes.items()}
    both = len(rates) == 2
    peers = {"a": ["c"] + (["b"] if both else []), "b": ["a", "c"], "c": ["a"] + (["b"] if both else [])}
    if not both:
        del peers["b"]
    link = {frozenset("ac"): "ac", frozenset("bc"): "bc", frozenset("ab"): "ab"}
    for me, others in peers.items():
        for o in others:
            name = link[frozenset(me + o)]
            homes[me].cli("device", "add", ids[o], "--name", o, "--address",
                          f"{scheme}://{net.addr(name, o)}:{MS_PORT}")
        folder = source if me == "a" else work / f"folder-{me}"
        homes[me].cli("folder", "add", str(folder), "--id", "f", *sum((["--share", ids[o]] for o in others), []))
    net.shape("ac", rates[0])
    if both:
        net.shape("bc", rates[1])
    listen = f"{scheme}://0.0.0.0:{MS_PORT}"
    started = []
    try:
        for k in peers:
            if k == "c":
                continue
            homes[k].serve(listen, net.ns[k])
            started.append(homes[k])
            wait(f"peerfold {k} to listen", homes[k].listening, 60, 0.02)
        wait("A's first scan", lambda: pf_has_all(homes["a"].folder(), files), 600, 0.1)
        if both:
            wait("B to get the set from A", lambda: pf_complete(homes["b"].folder(), files), 600, 0.1)
        os.sync()
        trace = LinkTrace(net, ["ac", "bc"] if both else ["ac"]) if os.environ.get("PF_BENCH_TRACE") else None
        start = time.perf_counter()
        homes["c"].serve(listen, net.ns["c"])
        started.append(homes["c"])
        wait("C to receive everything", lambda: pf_complete(homes["c"].folder(), files), 1800, 0.05)
        secs = time.perf_counter() - start
        if trace:
            trace.report(start, os.environ["PF_BENCH_TRACE"], work / "pf-c" / "serve.log")
    finally:
        for h in started:
            h.stop()
    return secs, work / "folder-c"


def multisource(args, binary, out, work_root):
    """Rows (label, MB, [seconds]) of C's download over shaped links."""
    if os.geteuid() != 0 or not shutil.which("tc"):
        sys.exit("the multisource case needs root, `ip` and `tc` (network namespaces, tbf)")
    source = out / f"multi-{args.multisource_mb}m"
    make_multisource(source, args.multisource_mb)
    expected = manifest(source)
    files = len(expected)
    mb = sum(s for s, _ in expected.values()) / 1e6
    scheme = args.transports.split(",")[0]
    cases = [("A alone, 20 MB/s", [20]), ("A 20 + B 20 MB/s", [20, 20]), ("A 20 + B 5 MB/s", [20, 5])]
    results = []
    net = Triangle()
    try:
        net.create()
        for label, rates in cases:
            secs = []
            for r in range(args.runs):
                keep = tempfile.TemporaryDirectory(dir=work_root, prefix="sync-")
                FINISHED.append(keep)
                took, dest = multisource_run(binary, net, pathlib.Path(keep.name), scheme, source, files, rates)
                if manifest(dest) != expected:
                    sys.exit(f"multisource {label}: C's tree differs from A's")
                secs.append(took)
                print(f"  peerfold  multisource {label:18} {scheme} run {r + 1}: {took:7.2f} s", flush=True)
            results.append((f"{label} ({scheme})", mb, secs))
    finally:
        net.close()
    return results


def disk_rate(work_root):
    """MB/s of `dd` writing 1 GiB of zeros into `work_root` and fdatasync'ing it (the receivers' disk)."""
    target = work_root / "dd.tmp"
    try:
        start = time.perf_counter()
        subprocess.run(["dd", "if=/dev/zero", f"of={target}", "bs=1M", "count=1024", "conv=fdatasync"],
                       capture_output=True, check=True)
        secs = time.perf_counter() - start
    finally:
        target.unlink(missing_ok=True)
    os.sync()
    return (1 << 30) / 1e6 / secs


def scale(args, binary, out, work_root):
    """The scale case: rows of (program, scheme, files, seconds or None, stats)."""
    n = args.scale_files
    source = out / f"scale-{n}"
    # Mostly empty: every hundredth file has 1 KiB, so files are transferred too.
    make_small(source, n, lambda i: 1024 if i % 100 == 0 else 0)
    files = n
    rows = []
    for scheme in args.transports.split(","):
        for prog in args.programs:
            keep = tempfile.TemporaryDirectory(dir=work_root, prefix="sync-")
            FINISHED.append(keep)
            work = pathlib.Path(keep.name)
            # Each status poll counts what B needs, which takes seconds at a million files (a
            # full pass over the index): polled often, the benchmark itself would load B.
            interval = max(0.5, files / 100_000)
            if prog == "peerfold":
                secs, dest, stats = peerfold_transfer(binary, work, scheme, source, files, interval,
                                                      args.scale_limit_min * 60)
            else:
                secs, dest, stats = syncthing_transfer(work, scheme, source, files, interval, 30 * 60)
            if secs is not None:
                # Counting is enough here: the file contents are checked by the other cases,
                # and hashing a million files would double the case's time.
                got = sum(len([f for f in fs if not is_internal(f)]) for d, ds, fs in os.walk(dest)
                          if not any(is_internal(part) for part in pathlib.Path(d).parts))
                if got != files:
                    sys.exit(f"{prog} scale over {scheme}: {got} files on B, expected {files}")
            print(f"  {prog:9} scale {scheme:4}: A's first scan {stats['scan_s']:.1f} s, B "
                  + (f"complete in {secs:.1f} s" if secs is not None else f"stopped at {stats['stopped']}")
                  + f", peak RSS A {stats['rss_a']:.0f} MB B {stats['rss_b']:.0f} MB, wire into B "
                  f"{stats['wire_in_mb']:.2f} MB, B's index DB {stats['db_mb']:.0f} MB, {stats['cpu']:.0f} CPU-s, "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)
            rows.append((prog, scheme, files, secs, stats))
            os.sync()
    return rows


# Work directories of finished transfers, deleted when the benchmark ends. ext4 without a
# journal (as on this machine) skips inodes deleted in the last minute when it allocates one,
# and creating 10,000 files right after deleting the previous run's 10,000 cost each program
# about 10 s of kernel time in that search: the same for both, but it would be measured.
FINISHED = []


# Written when a run has deleted its transfers' trees.
CLEANED = ".cleaned"
# ext4 without a journal (this machine's disk) skips inodes freed in the last 30 s (35 while their
# table block is dirty) when it allocates one, looking each up: right after a run deleted 100,000
# files, a quarter of the receiver's CPU went there (a profile, 2026-12-07). Both programs would
# pay it, but by chance, depending on which ran first.
DELETIONS_SETTLE_S = 40


def settle_after_deletions(out):
    try:
        age = time.time() - (out / CLEANED).stat().st_mtime
    except FileNotFoundError:
        return
    if age < DELETIONS_SETTLE_S:
        print(f"waiting {DELETIONS_SETTLE_S - age:.0f} s: the last run's trees were deleted {age:.0f} s ago", flush=True)
        time.sleep(DELETIONS_SETTLE_S - age)


def run_case(args, binary, work_root, name, scheme, source, files, expected):
    """args.runs transfers with each program; returns {program: [(seconds, stats)]}."""
    results = {"peerfold": [], "syncthing": []}
    programs = args.programs
    # Each poll is a `status` call the daemon answers: fewer for the largest set.
    interval = 0.25 if files > 50_000 else 0.05 if files > 5000 else 0.1
    for r in range(args.runs):
        for prog in programs:
            keep = tempfile.TemporaryDirectory(dir=work_root, prefix="sync-")
            FINISHED.append(keep)
            work = pathlib.Path(keep.name)
            if prog == "peerfold":
                secs, dest, stats = peerfold_transfer(binary, work, scheme, source, files, interval)
            else:
                secs, dest, stats = syncthing_transfer(work, scheme, source, files, interval)
            got = manifest(dest)
            if got != expected:
                missing = set(expected) - set(got)
                wrong = [k for k in expected if k in got and got[k] != expected[k]]
                sys.exit(f"{prog} {name} over {scheme}: the trees differ ({len(missing)} missing, "
                         f"{len(wrong)} different, {len(set(got) - set(expected))} extra)")
            results[prog].append((secs, stats))
            print(f"  {prog:9} {name:6} {scheme:4} run {r + 1}: {secs:7.2f} s, {stats['cpu']:.1f} CPU-s, "
                  f"peak RSS A {stats['rss_a']:.0f} MB B {stats['rss_b']:.0f} MB, load {os.getloadavg()[0]:.2f}",
                  flush=True)
            os.sync()
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("BENCH_DIR", "/tmp/peerfold-bench"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cases", default="mixed,small,latency")
    ap.add_argument("--transports", default="quic,tcp")
    ap.add_argument("--no-syncthing", action="store_true", help="do not run Syncthing beside Peerfold")
    ap.add_argument("--binary", help="use this peerfold binary instead of building one")
    ap.add_argument("--programs", default="peerfold,syncthing", help=argparse.SUPPRESS)
    ap.add_argument("--multisource-mb", type=int, default=160, help="size of the multisource case's set")
    ap.add_argument("--scale-files", type=int, default=1_000_000, help="files in the scale case's set")
    ap.add_argument("--fs", choices=["fresh", "out"],
                    help="where the homes and receiving trees go: a new ext4 made for the run (default as root) "
                         "or --out's own file system (default otherwise)")
    ap.add_argument("--scale-limit-min", type=int, default=29,
                    help="minutes after which the scale case stops Peerfold's B and reports where it was")
    args = ap.parse_args()
    args.programs = [p for p in args.programs.split(",") if p != "syncthing" or not args.no_syncthing]
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    binary = None
    if "peerfold" in args.programs:
        binary = pathlib.Path(args.binary) if args.binary else build()
    if "syncthing" in args.programs and not shutil.which("syncthing"):
        sys.exit("syncthing is not installed (apt-get install syncthing), or pass --no-syncthing")
    fs = args.fs or ("fresh" if os.geteuid() == 0 else "out")
    print(f"receivers' file system: {'a new ext4 (bench/benchlib.py fresh_fs)' if fs == 'fresh' else out}", flush=True)
    with fresh_fs(out) if fs == "fresh" else contextlib.nullcontext(out) as work_root:
        measure(args, binary, out, work_root)


def measure(args, binary, out, work_root):
    cases = args.cases.split(",")
    transports = args.transports.split(",")
    print(f"load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}", flush=True)

    sets = {}
    if "mixed" in cases:
        mixed = out / "mixed"
        if not (out / "mixed.complete").exists():
            shutil.rmtree(mixed, ignore_errors=True)
            subprocess.run([sys.executable, str(MKDATA), str(mixed)], check=True)
            (out / "mixed.complete").touch()
        sets["mixed"] = mixed
    if "small" in cases:
        small = out / "small-10k"
        make_small(small, 10_000, small_size)
        sets["small"] = small
    if "small100k" in cases:
        small = out / "small-100k"
        make_small(small, 100_000, small_size)
        sets["small100k"] = small

    if work_root == out:
        settle_after_deletions(out)
    disk = []
    if "mixed" in cases:
        disk.append(disk_rate(work_root))
        print(f"disk: dd 1 GiB conv=fdatasync {disk[-1]:.0f} MB/s, load {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    for name, source in sets.items():
        expected = manifest(source)
        files = len(expected)
        mb = sum(s for s, _ in expected.values()) / 1e6
        for scheme in transports:
            res = run_case(args, binary, work_root, name, scheme, source, files, expected)
            for prog, runs in res.items():
                if runs:
                    secs = [x for x, _ in runs]
                    cpu_per_gb = statistics.median(st["cpu"] for _, st in runs) / (mb / 1000)
                    rss = (max(st["rss_a"] for _, st in runs), max(st["rss_b"] for _, st in runs))
                    rows.append((prog, name, scheme, files, mb, statistics.median(secs), secs, cpu_per_gb, rss))

    lat = []
    if "latency" in cases:
        for scheme in transports[:1]:
            for prog in args.programs:
                all_saves = []
                for _ in range(args.runs):
                    with tempfile.TemporaryDirectory(dir=work_root, prefix="sync-") as work:
                        work = pathlib.Path(work)
                        source = work / "src"
                        make_small(source, LATENCY_FILES, lambda i: 1000)
                        if prog == "peerfold":
                            all_saves += peerfold_latency(binary, work, scheme, source, LATENCY_FILES)
                        else:
                            all_saves += syncthing_latency(work, scheme, source, LATENCY_FILES)
                lat.append((prog, scheme, all_saves))

    multi = multisource(args, binary, out, work_root) if "multisource" in cases else []
    scaled = scale(args, binary, out, work_root) if "scale" in cases else []
    if "mixed" in cases:
        disk.append(disk_rate(work_root))

    for work in FINISHED:
        work.cleanup()
    FINISHED.clear()
    if work_root == out:
        (out / CLEANED).touch()
    print(f"load after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    print(f"\n{'program':10} {'case':9} {'via':5} {'files':>7} {'MB':>7} {'median s':>9} {'MB/s':>7} "
          f"{'files/s':>8} {'CPU-s/GB':>9} {'RSS A/B MB':>11}  runs (s)")
    for prog, name, scheme, files, mb, med, secs, cpu_per_gb, rss in rows:
        print(f"{prog:10} {name:9} {scheme:5} {files:>7} {mb:>7.1f} {med:>9.2f} {mb / med:>7.1f} "
              f"{files / med:>8.0f} {cpu_per_gb:>9.1f} {rss[0]:>5.0f}/{rss[1]:<5.0f}  "
              f"{' '.join(f'{s:.2f}' for s in secs)}")
    if disk:
        dd = statistics.mean(disk)
        print(f"disk: dd 1 GiB conv=fdatasync {' / '.join(f'{x:.0f}' for x in disk)} MB/s (before / after)")
        for prog, name, scheme, files, mb, med, secs, cpu_per_gb, rss in rows:
            if name == "mixed":
                print(f"{prog:10} mixed {scheme}: {mb / med:.0f} MB/s = {100 * mb / med / dd:.0f} % of dd's mean")
    for prog, scheme, files, secs, st in scaled:
        print(f"{prog:10} scale {scheme}: {files} files, "
              + (f"{secs:.1f} s" if secs is not None else f"stopped at its time limit, B at {st['stopped']}")
              + f", RSS A/B {st['rss_a']:.0f}/{st['rss_b']:.0f} MB, wire into B {st['wire_in_mb']:.2f} MB, "
              f"B's index DB {st['db_mb']:.0f} MB (A's first scan {st['scan_s']:.1f} s)")
    for label, mb, secs in multi:
        print(f"peerfold   multisource {label}: {mb:.0f} MB, median {statistics.median(secs):.2f} s "
              f"({mb / statistics.median(secs):.1f} MB/s), runs {' '.join(f'{x:.2f}' for x in secs)}")
    for prog, scheme, s in lat:
        ms = sorted(x * 1000 for x in s)
        missed = sum(1 for x in ms if x == float("inf"))
        print(f"{prog:10} latency {scheme}: {len(ms)} saves, median {statistics.median(ms):.0f} ms, "
              f"p90 {ms[int(len(ms) * 0.9) - 1]:.0f} ms, max {ms[-1]:.0f} ms"
              + (f", {missed} not there after {LATENCY_LIMIT_S} s" if missed else ""))


if __name__ == "__main__":
    main()
