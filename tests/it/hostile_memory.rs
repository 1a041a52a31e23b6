//! Attacks on memory: a configured peer sends single messages that decode to gigabytes (many
//! empty FileInfos, plain or LZ4-expanded) and a 500 MB frame, to a real `peerfold serve`
//! whose RSS is sampled from `/proc` throughout. It must stay under 300 MB, close each such
//! connection, and go on syncing with a peer afterwards.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use peerfold::identity::DeviceId;
use peerfold::net::Address;

use crate::hostile::{Hostile, HostileDevice, file};
use crate::util::{Daemon, TestDir, free_port, ok};

const LIMIT: Duration = Duration::from_secs(120);
/// The daemon's resident memory must stay below this during every attack.
const MAX_RSS: u64 = 300 << 20;

/// A `/proc/PID/status` field in bytes (`VmRSS`, `VmHWM`).
fn proc_status(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb << 10)
}

/// Samples the daemon's RSS every few milliseconds; kills it once past [`MAX_RSS`] (so an
/// attack that works fails the test instead of exhausting the machine).
struct RssWatch {
    max: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssWatch {
    fn start(pid: u32) -> Self {
        let (max, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        let (m, s) = (Arc::clone(&max), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !s.load(Relaxed) {
                let Some(rss) = proc_status(pid, "VmRSS:") else { return };
                m.fetch_max(rss, Relaxed);
                if rss > MAX_RSS {
                    let _ = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status();
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Self { max, stop, thread: Some(thread) }
    }

    fn max(&self) -> u64 {
        self.max.load(Relaxed)
    }
}

impl Drop for RssWatch {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One frame: header (type, compression) and body as given.
fn frame(msg_type: u8, lz4: bool, body_len: u32, body: &[u8]) -> Vec<u8> {
    let header: &[u8] = if lz4 { &[0x08, msg_type, 0x10, 0x01] } else { &[0x08, msg_type] };
    let mut f = (header.len() as u16).to_be_bytes().to_vec();
    f.extend_from_slice(header);
    f.extend_from_slice(&body_len.to_be_bytes());
    f.extend_from_slice(body);
    f
}

/// An Index body of `n` empty FileInfos (2 bytes each on the wire).
fn empty_files(n: usize) -> Vec<u8> {
    [0x12, 0x00].repeat(n)
}

/// The attacks, each as the bytes of one frame (or, for the huge frame, its head and how many
/// bytes of body follow).
fn attacks() -> Vec<(&'static str, Vec<u8>, usize)> {
    let plain = empty_files(4 << 20);
    let expanding = empty_files(32 << 20); // 64 MiB once decompressed
    let lz4 = |plain: &[u8]| {
        let mut body = (plain.len() as u32).to_be_bytes().to_vec();
        body.extend(lz4_flex::block::compress(plain));
        frame(1, true, body.len() as u32, &body)
    };
    vec![
        ("4M empty FileInfos in an 8 MiB Index", frame(1, false, plain.len() as u32, &plain), 0),
        ("16M empty FileInfos LZ4-compressed", lz4(&expanding[..32 << 20]), 0),
        ("32M empty FileInfos LZ4-compressed", lz4(&expanding), 0),
        ("a 500 MB frame", frame(4, false, 500_000_000, &[]), 500_000_000),
    ]
}

/// Sends one attack and reads until the daemon hangs up (or the bound passes).
async fn attack(r: &mut Hostile, head: &[u8], tail: usize) {
    r.send_raw(head).await;
    let chunk = vec![0u8; 1 << 20];
    let mut sent = 0;
    while sent < tail && r.closed.is_none() {
        let n = chunk.len().min(tail - sent);
        r.send_raw(&chunk[..n]).await;
        if r.closed.is_some() {
            break;
        }
        sent += n;
        if sent % (32 << 20) == 0 {
            r.step().await;
        }
    }
    let deadline = tokio::time::Instant::now() + LIMIT;
    while r.closed.is_none() && tokio::time::Instant::now() < deadline {
        r.step().await;
    }
}

async fn bounded_memory(transport: &str) {
    crate::util::init_logging();
    let (attacker, honest) = (HostileDevice::new(transport).await, HostileDevice::new(transport).await);
    let t = TestDir::new();
    let id: DeviceId = ok(&t.peerfold(&["id"])).trim().parse().unwrap();
    for (dev, name) in [(&attacker, "attacker"), (&honest, "honest")] {
        ok(&t.peerfold(&["device", "add", &dev.id.to_string(), "--name", name]));
    }
    let (a, h) = (attacker.id.to_string(), honest.id.to_string());
    let folder = t.path("f");
    ok(&t.peerfold(&["folder", "add", folder.to_str().unwrap(), "--id", "f", "--share", &a, "--share", &h]));
    let listen = format!("{transport}://127.0.0.1:{}", free_port());
    let daemon = Daemon::start(&t, &listen);
    let addr: Address = listen.parse().unwrap();
    let pid = daemon.pid();
    let baseline = proc_status(pid, "VmRSS:").unwrap();
    let watch = RssWatch::start(pid);

    for (what, head, tail) in attacks() {
        let mut r = attacker.connect(&addr, id, "attacker").await;
        attack(&mut r, &head, tail).await;
        let rss = watch.max();
        eprintln!("{transport}: {what}: closed with {:?}; max VmRSS {} MiB", r.closed, rss >> 20);
        assert!(rss < MAX_RSS, "{what}: the daemon reached {} MiB", rss >> 20);
        assert!(proc_status(pid, "VmRSS:").is_some(), "{what}: the daemon is gone");
        assert!(r.closed.is_some(), "{what}: the connection was not closed");
    }
    let hwm = proc_status(pid, "VmHWM:").unwrap();
    eprintln!("{transport}: baseline VmRSS {} MiB, peak VmHWM {} MiB", baseline >> 20, hwm >> 20);
    assert!(hwm < MAX_RSS, "peak {} MiB", hwm >> 20);

    // The daemon still syncs with a peer.
    let mut h = honest.connect(&addr, id, "honest").await;
    let data = b"still syncing";
    h.serve(data);
    h.send_index(&[file("ok.txt", data, honest.id)]).await;
    let path = t.path("f/ok.txt");
    let deadline = tokio::time::Instant::now() + LIMIT;
    while std::fs::read(&path).ok().as_deref() != Some(&data[..]) {
        assert!(tokio::time::Instant::now() < deadline, "the honest peer's file did not arrive");
        assert!(h.closed.is_none(), "the honest peer was closed: {:?}", h.closed);
        h.step().await;
    }
    drop(watch);
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_decoding_to_gigabytes_close_the_connection_not_the_daemon_over_quic() {
    bounded_memory("quic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_decoding_to_gigabytes_close_the_connection_not_the_daemon_over_tcp() {
    bounded_memory("tcp").await;
}
