"""What the benchmarks share: building the binary, the small-file data set, free ports, and a
fresh file system for the receivers."""
import contextlib, os, pathlib, shutil, socket, subprocess

ROOT = pathlib.Path(__file__).resolve().parent.parent


def build(*extra):
    """Builds the release binary (`extra`: more arguments for cargo) and returns its path."""
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    subprocess.run(["cargo", "build", "--release", "--quiet", *extra], cwd=ROOT, check=True)
    return target / "release" / "peerfold"


def small_size(i):
    """The size of file i of the small sets bench/sync.py transfers: (i * 7919) mod 8192 bytes,
    0–8 KiB, 4 KiB on average."""
    return (i * 7919) % 8192


def small_path(i):
    """File i's directory (one per 1,000 files) and name, relative to its set's root."""
    return f"d{i // 1000:04d}", f"f{i:07d}"


def small_bytes(i, size):
    """File i's `size` bytes: its number repeated, so that files of one size differ."""
    return (i.to_bytes(8, "little") * (size // 8 + 1))[:size]


def make_small(d, n, size_of):
    """n files in directories of 1000, sizes from size_of(i)."""
    done = d.with_name(d.name + ".complete")
    if done.exists():
        return
    shutil.rmtree(d, ignore_errors=True)
    for i in range(n):
        sub_name, name = small_path(i)
        sub = d / sub_name
        if i % 1000 == 0:
            sub.mkdir(parents=True)
        size = size_of(i)
        with open(sub / name, "wb") as f:
            if size:
                f.write(small_bytes(i, size))
    done.touch()


@contextlib.contextmanager
def fresh_fs(out, size="48G", inodes=3_000_000):
    """A new ext4 file system (mkfs's defaults: a journal, as on users' disks) in a sparse image
    in `out`, on a loop device with direct I/O (no second page cache) mounted with discard (so
    deleted files give their space back to `out`'s disk), for the benchmark's homes and
    receiving trees. Yields its mount point; unmounts it and deletes the image after.

    Why not `out` itself: this machine's root file system is ext4 without a journal, whose
    inode allocator looks up every free inode freed in the last 30 s it comes across, and it
    has aged: creating a file there cost 370 to 700 us (10,000 in a row, minutes after the
    last deletion) against about 100 us on a new journaled ext4 on the same disk, and the
    10k-file transfer took 4.6 to 12.1 s in runs of the same binary. Every run of
    every program gets the same kind of new disk instead."""
    image, mnt = out / "receivers.img", out / "receivers"
    for tool in ("mkfs.ext4", "losetup", "mount"):
        if not shutil.which(tool):
            raise SystemExit(f"--fs fresh needs {tool} (and root); or pass --fs out")
    image.unlink(missing_ok=True)
    subprocess.run(["truncate", "-s", size, str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-N", str(inodes), str(image)], check=True)
    dev = subprocess.run(["losetup", "--direct-io=on", "--find", "--show", str(image)],
                         capture_output=True, text=True, check=True).stdout.strip()
    try:
        mnt.mkdir(exist_ok=True)
        subprocess.run(["mount", "-o", "discard", dev, str(mnt)], check=True)
        try:
            yield mnt
        finally:
            subprocess.run(["umount", str(mnt)], check=True)
    finally:
        subprocess.run(["losetup", "--detach", dev], check=True)
        image.unlink(missing_ok=True)


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
