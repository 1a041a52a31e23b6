#!/usr/bin/env python3
"""Relay vs direct benchmark (issue 18): `sudo python3 bench/relay.py [--runs N]
[--cases relay,direct-quic,direct-tcp] [--shaped MBIT] [--shaped-cases relay,direct-quic]
[--shaped-runs N] [--syncthing] [--binary PATH] [--out DIR] [--keep-data]`.

Needs root (it makes network namespaces with `ip netns`), and `ip`, `nft` (nftables), `tc`
(iproute2, only with --shaped), `strelaysrv` (syncthing-relaysrv) and, with --syncthing,
`syncthing`; it says which is missing and stops.

It builds the release binary (`cargo build --release --locked -p peerfold`, in
CARGO_TARGET_DIR, default ~/.cache/peerfold-target, the shared target), then a small Internet
in network namespaces, as tests/it/punch.rs and tests/it/relay.rs do:

    home a 192.168.1.2 -- NAT a 198.51.100.1 --+                +-- NAT b 192.0.2.1 -- home b 192.168.2.2
                                               +-- public ------+
                                                   203.0.113.1: strelaysrv

Each NAT masquerades its home's outgoing connections, lets in only replies, and forwards its
public port 22000 (TCP and UDP) to its home's daemon. The public namespace routes between the
NATs. Every address is a documentation range (TEST-NET) and no namespace has a route out:
nothing reaches the real Internet. The daemons run `serve --no-discovery` (no LAN
announcements, DHT, STUN or port mapping), the relay `-pools=` (not in the public pool) with no
rate limit (strelaysrv's default). Each device knows the other by device ID with three
addresses, the other NAT's quic:// and tcp:// port 22000 and the relay, and both hold a
reservation on the relay (`[options] relays`). A case is a filter on both NATs:

  relay        each NAT drops everything from the other NAT: the devices meet only through
               the relay (transport `relay`; Peerfold keeps redialling the direct addresses);
  direct-quic  each NAT drops TCP from the other: the forwarded QUIC port works (`quic`);
  direct-tcp   each NAT drops UDP from the other: the forwarded TCP port works (`tcp`).

Per run: two fresh homes, both daemons started with empty folders and waited for until both
report the case's transport in `status --json`; then the data set (one 256 MiB file and 1,000
files of 1-64 KiB, random bytes, 301.6 MB; generated once into --out, hard-linked into a
staging directory beside A's folder) is renamed into A's folder. The time runs from that rename
(A's watcher sees it and scans) until B's `status --json` shows it holding every file and
byte and needing nothing; then B's copy is compared with the original (sizes and SHA-256 of every file).
The transport is read at every poll: a run whose transport changed is reported as such. Each
case runs --runs times (default 3; shaped cases --shaped-runs, default 2), the cases taking
turns run by run; the table (Markdown) shows the median, each run, how long each run's
daemons took from their start to the case's connection (not part of the time), and the
1-minute load average before each run.

--shaped MBIT adds the --shaped-cases again with every WAN link (both directions of each NAT's
link to the public namespace) shaped to MBIT Mbit/s by `tc tbf`: the home links are then the
bottleneck, as on a real line, and what is left of the difference is the relay's own cost.
--syncthing adds two Syncthing 1.19.2 in the same homes syncing the same set through the same
relay, unshaped and (with --shaped) shaped: relay listen and device addresses only, discovery
and NAT traversal off, the scan asked for with POST /rest/db/scan right after the rename. Its
REST API listens on its namespace's loopback and is reached with sockets made in that
namespace.

Everything is torn down at the end, on errors and on SIGTERM too: processes killed, namespaces
deleted, work directories removed, and the data set unless --keep-data.
"""
import argparse, ctypes, hashlib, http.client, json, os, pathlib, queue, random, shutil, signal, socket
import statistics, subprocess, sys, tempfile, threading, time

from benchlib import build

PUBLIC_IP = "203.0.113.1"  # the relay's address (TEST-NET-3), on the public namespace's lo
# Each NAT's public (WAN) address and the public router's address on that link.
WAN = [("198.51.100.1", "198.51.100.254"), ("192.0.2.1", "192.0.2.254")]
HOME = ["192.168.1.2", "192.168.2.2"]
PORT = 22000  # where each daemon listens in its home, and what its NAT forwards
RELAY_PORT = 22067

# What each NAT drops from the other NAT's address, per case.
BLOCKS = {"relay": "", "direct-quic": "meta l4proto tcp ", "direct-tcp": "meta l4proto udp "}
EXPECTED = {"relay": "relay", "direct-quic": "quic", "direct-tcp": "tcp"}

BIG = 256 << 20
SMALL_FILES = 1000
CONNECT_LIMIT_S = 120  # a direct link may first come up relayed; the redial is every 10 s
SYNC_LIMIT_S = 1800


def die(msg):
    sys.exit(f"relay.py: {msg}")


def wait(what, cond, limit_s, interval):
    """Polls cond() every `interval` s until it returns something true; at most limit_s."""
    deadline = time.monotonic() + limit_s
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {limit_s} s waiting for {what}")
        time.sleep(interval)


def run(*args, stdin=None):
    r = subprocess.run(args, input=stdin, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


# ---------------------------------------------------------------------------------------------
# The Internet


class Internet:
    """Five namespaces: public, NAT a, home a, NAT b, home b. close() deletes them and kills
    every process started in them."""

    def __init__(self):
        # Short: interface names built from it must stay within 15 characters.
        self.tag = f"pfb{os.getpid() % 100000}"
        self.ns = {k: self.tag + k for k in ("p", "na", "ha", "nb", "hb")}
        self.made = []
        self.procs = []

    def nat(self, i):
        return self.ns["na" if i == 0 else "nb"]

    def home(self, i):
        return self.ns["ha" if i == 0 else "hb"]

    @property
    def public(self):
        return self.ns["p"]

    def exec(self, ns, *args, stdin=None):
        return run("ip", "netns", "exec", ns, *args, stdin=stdin)

    def popen(self, ns, args, **kw):
        # `ip netns exec` execs the program: the child's pid is the program's.
        p = subprocess.Popen(["ip", "netns", "exec", ns, *args], **kw)
        self.procs.append(p)
        return p

    def wan_links(self):
        """(namespace, device) of both ends of each NAT's link to the public namespace."""
        out = []
        for i, side in enumerate("ab"):
            out += [(self.public, f"{self.tag}w{side}"), (self.nat(i), f"{self.tag}v{side}")]
        return out

    def create(self):
        for ns in self.ns.values():
            run("ip", "netns", "add", ns)
            self.made.append(ns)
            run("ip", "-n", ns, "link", "set", "lo", "up")
        pub = self.public
        run("ip", "-n", pub, "addr", "add", f"{PUBLIC_IP}/32", "dev", "lo")
        self.exec(pub, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for i, side in enumerate("ab"):
            nat, home = self.nat(i), self.home(i)
            wan, router = WAN[i]
            lan = f"192.168.{i + 1}"
            wan_p, wan_n = f"{self.tag}w{side}", f"{self.tag}v{side}"
            lan_n, lan_h = f"{self.tag}l{side}", f"{self.tag}m{side}"
            for (ns_x, x), (ns_y, y) in [((pub, wan_p), (nat, wan_n)), ((nat, lan_n), (home, lan_h))]:
                run("ip", "link", "add", x, "type", "veth", "peer", "name", y)
                run("ip", "link", "set", x, "netns", ns_x)
                run("ip", "link", "set", y, "netns", ns_y)
            for ns, dev, addr in [(pub, wan_p, f"{router}/24"), (nat, wan_n, f"{wan}/24"),
                                  (nat, lan_n, f"{lan}.1/24"), (home, lan_h, f"{lan}.2/24")]:
                run("ip", "-n", ns, "addr", "add", addr, "dev", dev)
                run("ip", "-n", ns, "link", "set", dev, "up")
            run("ip", "-n", nat, "route", "add", "default", "via", router)
            run("ip", "-n", home, "route", "add", "default", "via", f"{lan}.1")
            self.exec(nat, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            # A home router with a port forward: masquerade out, only replies and the forwarded
            # port in, nothing unsolicited to the router itself.
            rules = f"""
table ip nat {{
  chain pre {{
    type nat hook prerouting priority -100; policy accept;
    iifname "{wan_n}" tcp dport {PORT} dnat to {HOME[i]}:{PORT}
    iifname "{wan_n}" udp dport {PORT} dnat to {HOME[i]}:{PORT}
  }}
  chain post {{
    type nat hook postrouting priority 100; policy accept;
    oifname "{wan_n}" masquerade
  }}
}}
table ip filter {{
  chain through {{
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    ct status dnat accept
    iifname "{lan_n}" accept
  }}
  chain in {{
    type filter hook input priority 0; policy accept;
    iifname "{wan_n}" ct state established,related accept
    iifname "{wan_n}" drop
  }}
}}
"""
            self.exec(nat, "nft", "-f", "-", stdin=rules)

    def set_case(self, case):
        """Replaces each NAT's `block` table with the case's: what it drops from the other NAT
        (before its own filter, so replies and forwards alike)."""
        for i in (0, 1):
            nat = self.nat(i)
            subprocess.run(["ip", "netns", "exec", nat, "nft", "delete", "table", "ip", "block"],
                           capture_output=True)
            other = WAN[1 - i][0]
            self.exec(nat, "nft", "-f", "-", stdin=f"""
table ip block {{
  chain f {{
    type filter hook forward priority -10; policy accept;
    ip saddr {other} {BLOCKS[case]}drop
  }}
}}
""")

    def shape(self, mbit):
        """Every WAN link to `mbit` Mbit/s each way (None: unshaped)."""
        for ns, dev in self.wan_links():
            if mbit is None:
                subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", dev, "root"],
                               capture_output=True)
            else:
                self.exec(ns, "tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", f"{mbit}mbit",
                          "burst", "64kb", "latency", "50ms")

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for ns in self.made:
            # Anything still running in our namespaces was started by us (e.g. a child).
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            # Deleting a namespace deletes the veth ends in it, and with them the pairs.
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.made.clear()


def start_relay(net, keys):
    """strelaysrv in the public namespace, unlimited (no -global-rate, no -per-session-rate);
    returns (relay://203.0.113.1:22067/?id=ID, the URI it printed with the public address)."""
    keys.mkdir(parents=True)
    p = net.popen(net.public, ["strelaysrv", "-keys", str(keys), "-listen", f"0.0.0.0:{RELAY_PORT}",
                               "-pools=", "-status-srv=", "-nat=false"],
                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines = queue.Queue()

    def drain():
        # Keeps reading its log so that it never blocks on a full pipe.
        for line in p.stderr:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=drain, daemon=True).start()
    deadline = time.monotonic() + 30
    while True:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            line = None
        if line is None:
            raise RuntimeError("strelaysrv did not print its URI within 30 s (or exited)")
        if "URI: " in line:
            uri = line.split("URI: ", 1)[1].strip()
            break
    uri = uri.replace(f"0.0.0.0:{RELAY_PORT}", f"{PUBLIC_IP}:{RELAY_PORT}")
    relay_id = uri.split("id=", 1)[1].split("&", 1)[0]
    return f"relay://{PUBLIC_IP}:{RELAY_PORT}/?id={relay_id}", uri


# ---------------------------------------------------------------------------------------------
# The data set


def make_data(d):
    """One 256 MiB file and 1,000 files of 1-64 KiB in 10 directories, random bytes, seed 18."""
    done = d.with_name(d.name + ".complete")
    if done.exists():
        return
    shutil.rmtree(d, ignore_errors=True)
    rng = random.Random(18)
    d.mkdir(parents=True)
    with open(d / "big.bin", "wb") as f:
        for _ in range(BIG >> 20):
            f.write(rng.randbytes(1 << 20))
    for i in range(SMALL_FILES):
        sub = d / "small" / f"d{i // 100:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i:04d}.bin").write_bytes(rng.randbytes(rng.randint(1, 64) * 1024))
    done.touch()


def manifest(d):
    """{relative path: (size, sha256)} of every regular file under d."""
    out = {}
    for dirpath, _, filenames in os.walk(d):
        for n in filenames:
            p = os.path.join(dirpath, n)
            h = hashlib.sha256()
            with open(p, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
            out[os.path.relpath(p, d)] = (os.path.getsize(p), h.hexdigest())
    return out


def check_copy(expected, got, who):
    if got != expected:
        missing = set(expected) - set(got)
        wrong = [k for k in expected if k in got and got[k] != expected[k]]
        raise RuntimeError(f"{who}: B's copy differs ({len(missing)} missing, {len(wrong)} different, "
                           f"{len(set(got) - set(expected))} extra)")


# ---------------------------------------------------------------------------------------------
# Peerfold, through its CLI (the control socket is a file: reachable from outside the namespace)


def set_options(home, options):
    """Sets `key = value` lines (options: {key: TOML value}) in config.toml's [options] table,
    replacing those keys' lines there and creating the table if needed."""
    path = home / "config.toml"
    lines = [f"{k} = {v}" for k, v in options.items()]
    out, section, done = [], None, False
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            if not done and section is None and stripped != "[options]":
                out += ["[options]", *lines, ""]
                done = True
            section = stripped
            out.append(line)
            if stripped == "[options]" and not done:
                out += lines
                done = True
        elif section == "[options]" and stripped.split("=", 1)[0].strip() in options:
            continue
        else:
            out.append(line)
    if not done:
        out += ["[options]", *lines]
    path.write_text("\n".join(out) + "\n")


class Peerfold:
    def __init__(self, binary, home, ns):
        self.binary, self.home, self.ns = binary, pathlib.Path(home), ns
        self.proc = None

    def cli(self, *args):
        r = subprocess.run([str(self.binary), "--home", str(self.home), *args], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"peerfold {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def serve(self, net):
        log = open(self.home / "serve.log", "wb")
        self.proc = net.popen(self.ns, [str(self.binary), "--home", str(self.home), "serve", "--no-discovery",
                                        "--listen", f"quic://0.0.0.0:{PORT},tcp://0.0.0.0:{PORT}",
                                        "--gui-address", "127.0.0.1:0"],
                              env=dict(os.environ, RUST_LOG="warn"), stdout=subprocess.DEVNULL, stderr=log)
        log.close()

    def log(self):
        return (self.home / "serve.log").read_text(errors="replace")

    def listening(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"peerfold serve exited: {self.log()}")
        return "Listening on" in self.log()

    def status(self):
        """`status --json`, `None` if it fails."""
        try:
            return json.loads(self.cli("status", "--json"))
        except (RuntimeError, json.JSONDecodeError):
            return None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def transport(s):
    """The peer's transport in a `status --json`, if connected."""
    try:
        d = s["devices"][0]
    except (TypeError, KeyError, IndexError):
        return None
    return d.get("transport") if d.get("connected") else None


def complete(s, files, size):
    """B has every file and byte and needs nothing. Only exact figures: `global` may lag the
    index by up to a second while it changes (crates/db/src/memo.rs), `local` and `need` not;
    B starts empty, so its own counts reaching the set's are the whole set."""
    try:
        f = s["folders"][0]
    except (TypeError, KeyError, IndexError):
        return False
    return f["local"]["files"] == files and f["local"]["bytes"] == size and f["need"]["items"] == 0


def peerfold_run(binary, net, work, relay_url, case, data, expected):
    """One transfer of `data` from A to B; returns (seconds, transports seen, load before, seconds
    from starting the daemons until both had the case's transport)."""
    want = EXPECTED[case]
    files, size = len(expected), sum(s for s, _ in expected.values())
    a = Peerfold(binary, work / "pf-a", net.home(0))
    b = Peerfold(binary, work / "pf-b", net.home(1))
    ids = [a.cli("id").strip(), b.cli("id").strip()]
    for i, (me, name) in enumerate([(a, "b"), (b, "a")]):
        other, other_wan = ids[1 - i], WAN[1 - i][0]
        me.cli("device", "add", other, "--name", name, "--address", f"quic://{other_wan}:{PORT}",
               "--address", f"tcp://{other_wan}:{PORT}", "--address", relay_url)
        folder = work / ("a" if me is a else "b")
        me.cli("folder", "add", str(folder), "--id", "f", "--share", other)
        # serve --no-discovery turns all discovery off already; the file says so too.
        set_options(me.home, {"discovery": "false", "local_discovery": "false", "global_discovery": "false",
                              "port_mapping": "false", "relays": f'["{relay_url}"]'})
    stage = work / "stage"
    stage.mkdir()
    # Hard links: the data set's bytes stay in the page cache and take no new space.
    subprocess.run(["cp", "-al", str(data), str(stage / "set")], check=True)
    try:
        started = time.perf_counter()
        a.serve(net)
        b.serve(net)
        for d in (a, b):
            wait("the daemon to listen", d.listening, 60, 0.05)
        for d in (a, b):
            wait(f"a {want} connection", lambda: transport(d.status()) == want, CONNECT_LIMIT_S, 0.2)
        connect = time.perf_counter() - started
        # Both folders idle and empty: nothing but the transfer to measure.
        for d in (a, b):
            wait("the folders to be idle", lambda: (s := d.status()) and s["folders"][0]["state"] == "idle",
                 60, 0.1)
        os.sync()
        load = os.getloadavg()
        seen = set()

        def done():
            s = b.status()
            if s is not None:
                seen.add(transport(s))
            return complete(s, files, size)

        start = time.perf_counter()
        os.rename(stage / "set", work / "a" / "set")
        wait("B to have the whole set", done, SYNC_LIMIT_S, 0.1)
        secs = time.perf_counter() - start
        seen.add(transport(a.status()))
    finally:
        b.stop()
        a.stop()
    check_copy(expected, manifest(work / "b" / "set"), f"peerfold {case}")
    return secs, sorted(t or "none" for t in seen), load, connect


# ---------------------------------------------------------------------------------------------
# Syncthing 1.19.2 through the same relay (optional)

ST_KEY = "relay-bench-key"
ST_GUI_PORT = 8384
ST_CONFIG = """<configuration version="36">
  <folder id="f" label="f" path="{folder}" type="sendreceive" rescanIntervalS="3600"
          fsWatcherEnabled="false" markerName=".stfolder">
    <device id="{me}"></device>
    <device id="{peer}"></device>
  </folder>
  <device id="{me}" name="self" compression="metadata"><address>dynamic</address></device>
  <device id="{peer}" name="peer" compression="metadata"><address>{relay}</address></device>
  <gui enabled="true" tls="false"><address>127.0.0.1:{gui}</address><apikey>{key}</apikey></gui>
  <options>
    <listenAddress>{relay}</listenAddress>
    <globalAnnounceEnabled>false</globalAnnounceEnabled>
    <localAnnounceEnabled>false</localAnnounceEnabled>
    <relaysEnabled>true</relaysEnabled>
    <natEnabled>false</natEnabled>
    <startBrowser>false</startBrowser>
    <urAccepted>-1</urAccepted>
    <autoUpgradeIntervalH>0</autoUpgradeIntervalH>
    <crashReportingEnabled>false</crashReportingEnabled>
    <stunKeepaliveStartS>0</stunKeepaliveStartS>
    <announceLANAddresses>false</announceLANAddresses>
    <reconnectionIntervalS>1</reconnectionIntervalS>
  </options>
</configuration>
"""


_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


def socket_in(ns, *args):
    """A socket made in namespace `ns`: it stays there whichever thread uses it. (Made on a
    thread of its own that enters the namespace, as tests/it/punch.rs's run_in does.)"""
    out = {}

    def make():
        try:
            with open(f"/var/run/netns/{ns}") as f:
                if _libc.setns(f.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {ns}")
            out["sock"] = socket.socket(*args)
        except OSError as e:
            out["error"] = e

    t = threading.Thread(target=make)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["sock"]


class NsHTTP(http.client.HTTPConnection):
    """HTTP to an address inside namespace `ns` (Syncthing's REST API on its loopback)."""

    def __init__(self, ns, host, port, timeout):
        super().__init__(host, port, timeout=timeout)
        self.ns = ns

    def connect(self):
        self.sock = socket_in(self.ns, socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect((self.host, self.port))


class Syncthing:
    def __init__(self, home, ns):
        self.home, self.ns = pathlib.Path(home), ns
        self.home.mkdir(parents=True)
        run("syncthing", "generate", "--no-default-folder", f"--home={home}")
        self.id = run("syncthing", "serve", "--device-id", f"--home={home}").strip()
        self.gui = ST_GUI_PORT  # on the loopback of its own namespace
        self.proc = None

    def configure(self, folder, peer, relay_uri):
        (self.home / "config.xml").write_text(ST_CONFIG.format(
            folder=folder, me=self.id, peer=peer.id, relay=relay_uri.replace("&", "&amp;"), gui=self.gui,
            key=ST_KEY))

    def serve(self, net):
        # STMONITORED: no monitor process, so terminating it ends Syncthing itself.
        env = dict(os.environ, STNOUPGRADE="1", STNORESTART="1", STMONITORED="1")
        with open(self.home / "serve.log", "wb") as log:
            self.proc = net.popen(self.ns, ["syncthing", "serve", f"--home={self.home}", "--no-browser",
                                            "--no-restart", "--no-upgrade"],
                                  env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def call(self, method, path, timeout=30):
        """The REST API's JSON answer, `None` while it does not answer."""
        c = NsHTTP(self.ns, "127.0.0.1", self.gui, timeout)
        try:
            c.request(method, path, headers={"X-API-Key": ST_KEY})
            r = c.getresponse()
            body = r.read()
            if r.status != 200:
                return None
            return json.loads(body) if body.strip() else {}
        except (OSError, json.JSONDecodeError, http.client.HTTPException):
            if self.proc.poll() is not None:
                raise RuntimeError(f"syncthing exited: {(self.home / 'serve.log').read_text(errors='replace')}")
            return None
        finally:
            c.close()

    def relayed(self, peer):
        c = self.call("GET", "/rest/system/connections")
        conn = c and c["connections"].get(peer.id)
        return bool(conn and conn["connected"] and conn["type"].startswith("relay"))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def syncthing_run(net, work, relay_uri, data, expected):
    files = len(expected)
    a, b = Syncthing(work / "st-a", net.home(0)), Syncthing(work / "st-b", net.home(1))
    for me, peer, folder in [(a, b, work / "a"), (b, a, work / "b")]:
        folder.mkdir()
        (folder / ".stfolder").mkdir()
        me.configure(folder, peer, relay_uri)
    stage = work / "stage"
    stage.mkdir()
    subprocess.run(["cp", "-al", str(data), str(stage / "set")], check=True)

    def st_complete():
        s = b.call("GET", "/rest/db/status?folder=f")
        # (Its byte counts include 128 bytes per directory, so files and what is needed.)
        return bool(s and s["globalFiles"] == files and s["localFiles"] == files and s["needFiles"] == 0
                    and s["needBytes"] == 0 and s["needTotalItems"] == 0)

    try:
        started = time.perf_counter()
        a.serve(net)
        b.serve(net)
        for me, peer in [(a, b), (b, a)]:
            wait("a relayed Syncthing connection", lambda: me.relayed(peer), CONNECT_LIMIT_S, 0.2)
        connect = time.perf_counter() - started
        for me in (a, b):
            wait("Syncthing's folder to be idle",
                 lambda: (s := me.call("GET", "/rest/db/status?folder=f")) and s["state"] == "idle", 60, 0.1)
        os.sync()
        load = os.getloadavg()
        start = time.perf_counter()
        os.rename(stage / "set", work / "a" / "set")
        if a.call("POST", "/rest/db/scan?folder=f", timeout=600) is None:
            raise RuntimeError("Syncthing A refused the scan")
        wait("Syncthing B to have the whole set", st_complete, SYNC_LIMIT_S, 0.1)
        secs = time.perf_counter() - start
        relayed = a.relayed(b) and b.relayed(a)
    finally:
        b.stop()
        a.stop()
    check_copy(expected, manifest(work / "b" / "set"), "syncthing relay")
    return secs, ["relay" if relayed else "not relay at the end"], load, connect


# ---------------------------------------------------------------------------------------------


def check_tools(args):
    if os.geteuid() != 0:
        die("needs root: it makes network namespaces with `ip netns` (sudo python3 bench/relay.py)")
    tools = {"ip": "iproute2", "nft": "nftables", "strelaysrv": "syncthing-relaysrv"}
    if args.shaped:
        tools["tc"] = "iproute2"
    if args.syncthing:
        tools["syncthing"] = "syncthing"
    if not args.binary:
        tools["cargo"] = "rustup"
    missing = [f"{t} (apt-get install {pkg})" for t, pkg in tools.items() if not shutil.which(t)]
    if missing:
        die("missing: " + ", ".join(missing))


def fmt_load(load):
    return " ".join(f"{x:.2f}" for x in load)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="/tmp/peerfold-relay-bench", help="data set and work directories")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cases", default="relay,direct-quic,direct-tcp")
    ap.add_argument("--shaped", type=int, metavar="MBIT", help="also run --shaped-cases on MBIT Mbit/s links")
    ap.add_argument("--shaped-cases", default="relay,direct-quic")
    ap.add_argument("--shaped-runs", type=int, default=2, help="runs of each shaped case (link-bound, steadier)")
    ap.add_argument("--syncthing", action="store_true", help="also run Syncthing's relay case")
    ap.add_argument("--binary", help="use this peerfold binary instead of building one")
    ap.add_argument("--keep-data", action="store_true", help="keep the generated data set in --out")
    args = ap.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    shaped_cases = [c for c in args.shaped_cases.split(",") if c] if args.shaped else []
    for c in cases + shaped_cases:
        if c not in BLOCKS:
            die(f"unknown case {c!r} (cases: {', '.join(BLOCKS)})")
    check_tools(args)
    # SIGTERM unwinds like an error, so the namespaces and processes are cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("relay.py: terminated"))

    if args.binary:
        binary = pathlib.Path(args.binary)
    else:
        os.environ.setdefault("CARGO_TARGET_DIR", str(pathlib.Path.home() / ".cache" / "peerfold-target"))
        print(f"building in {os.environ['CARGO_TARGET_DIR']} (waits if another build holds the lock)", flush=True)
        binary = build("--locked", "-p", "peerfold")
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = out / "data"
    make_data(data)
    expected = manifest(data)
    size = sum(s for s, _ in expected.values())
    print(f"data set: {len(expected)} files, {size / 1e6:.1f} MB", flush=True)

    # Each group's cases take turns, run by run, so that a change in the machine's load falls
    # on all of them alike.
    groups = [([("peerfold", c, None) for c in cases], args.runs)]
    if args.syncthing and "relay" in cases:
        groups[0][0].append(("syncthing", "relay", None))
    if args.shaped:
        shaped = [("peerfold", c, args.shaped) for c in shaped_cases]
        if args.syncthing and "relay" in shaped_cases:
            shaped.append(("syncthing", "relay", args.shaped))
        groups.append((shaped, args.shaped_runs))
    results = {item: [] for group, _ in groups for item in group}
    print(f"load before: {fmt_load(os.getloadavg())}", flush=True)
    net = Internet()
    try:
        net.create()
        relay_url, relay_uri = start_relay(net, out / f"relay-keys-{os.getpid()}")
        print(f"relay: {relay_url} (no rate limit)", flush=True)
        for group, runs in groups:
            for r in range(runs):
                for item in group:
                    prog, case, shaped = item
                    net.set_case(case)
                    net.shape(shaped)
                    work = pathlib.Path(tempfile.mkdtemp(dir=out, prefix="run-"))
                    try:
                        if prog == "peerfold":
                            secs, seen, load, connect = peerfold_run(binary, net, work, relay_url, case, data,
                                                                     expected)
                        else:
                            secs, seen, load, connect = syncthing_run(net, work, relay_uri, data, expected)
                    finally:
                        shutil.rmtree(work, ignore_errors=True)
                    results[item].append((secs, seen, load, connect))
                    print(f"  {prog:9} {label(item):24} run {r + 1}: {secs:7.2f} s  {size / 1e6 / secs:7.1f} MB/s  "
                          f"via {'+'.join(seen)}  connected after {connect:.1f} s  load before {fmt_load(load)}",
                          flush=True)
        net.shape(None)
    finally:
        net.close()
        if not args.keep_data:
            shutil.rmtree(data, ignore_errors=True)
            data.with_name(data.name + ".complete").unlink(missing_ok=True)
        for p in out.glob("relay-keys-*"):
            shutil.rmtree(p, ignore_errors=True)
        try:
            out.rmdir()
        except OSError:
            pass
    print(f"load after: {fmt_load(os.getloadavg())}\n")
    # Markdown, as BENCHMARKS.md has it.
    print("| program | case | transport | MB | median s | MB/s | runs (s) | connected after (s) "
          "| load before each run (1 min) |")
    print("|---|---|---|---:|---:|---:|---|---|---|")
    for item, runs in results.items():
        if not runs:
            continue
        med = statistics.median(r[0] for r in runs)
        transports = sorted({"+".join(r[1]) for r in runs})
        print(f"| {item[0]} | {label(item)} | {', '.join(transports)} | {size / 1e6:.1f} | {med:.2f} | "
              f"{size / 1e6 / med:.1f} | {', '.join(f'{r[0]:.2f}' for r in runs)} | "
              f"{', '.join(f'{r[3]:.1f}' for r in runs)} | {', '.join(f'{r[2][0]:.2f}' for r in runs)} |")


def label(item):
    _, case, shaped = item
    return case + (f", {shaped} Mbit/s links" if shaped else "")


if __name__ == "__main__":
    main()
