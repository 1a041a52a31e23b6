"""What the benchmarks share: building the binary, the small-file data set, free ports."""
import os, pathlib, shutil, socket, subprocess

ROOT = pathlib.Path(__file__).resolve().parent.parent


def build(*extra):
    """Builds the release binary (`extra`: more arguments for cargo) and returns its path."""
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    subprocess.run(["cargo", "build", "--release", "--quiet", *extra], cwd=ROOT, check=True)
    return target / "release" / "peerfold"


def make_small(d, n, size_of):
    """n files in directories of 1000, sizes from size_of(i)."""
    done = d.with_name(d.name + ".complete")
    if done.exists():
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
    done.touch()


def free_port():
    """A port free for both TCP and UDP a moment ago (each program is told it explicitly)."""
    while True:
        with socket.socket(type=socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            try:
                with socket.socket(type=socket.SOCK_DGRAM) as u:
                    u.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


# Syncthing's <options> for a benchmark: listening on `listen` (loopback) and nothing that
# reaches beyond it — discovery, relays, NAT traversal, STUN, usage and crash reporting,
# upgrades all off.
ST_OPTIONS = """  <options>
    <listenAddress>{listen}</listenAddress>
    <globalAnnounceEnabled>false</globalAnnounceEnabled>
    <localAnnounceEnabled>false</localAnnounceEnabled>
    <relaysEnabled>false</relaysEnabled>
    <natEnabled>false</natEnabled>
    <startBrowser>false</startBrowser>
    <urAccepted>-1</urAccepted>
    <autoUpgradeIntervalH>0</autoUpgradeIntervalH>
    <crashReportingEnabled>false</crashReportingEnabled>
    <stunKeepaliveStartS>0</stunKeepaliveStartS>
    <announceLANAddresses>false</announceLANAddresses>
  </options>
"""


def st_options(listen):
    """ST_OPTIONS for a Syncthing listening on `listen` (e.g. tcp://127.0.0.1:22001)."""
    return ST_OPTIONS.format(listen=listen)
