//! A minimal hostile peer for the attacks on names, memory and strangers: a configured (or
//! unknown) device that speaks BEP through the crate's own `Session` for the Hello and
//! ClusterConfig and can then send anything, including raw bytes no honest peer would send.
//! (The `hostile` harness of the symlink attacks is the fuller version; this one stays small.)

use std::collections::HashMap;
use std::time::{Duration, Instant};

use peerfold::bep::session::{Event, Session, SessionConfig};
use peerfold::bep::{BlockInfo, FileInfo, FileType, Vector, wire};
use peerfold::identity::{DeviceId, Identity};
use peerfold::net::{Address, Net, TlsIdentity};
use sha2::Digest as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::util::TestDir;

/// A device identity with a bound (unused) listener, for dialling.
pub struct RogueDevice {
    pub _t: TestDir,
    pub id: DeviceId,
    pub net: Net,
}

impl RogueDevice {
    pub async fn new(transport: &str) -> Self {
        let t = TestDir::new();
        let identity = Identity::load_or_generate(&t.home()).unwrap();
        let listen: Address = format!("{transport}://127.0.0.1:0").parse().unwrap();
        let net = Net::bind(TlsIdentity::new(&identity).unwrap(), &[listen]).await.unwrap();
        Self { id: identity.device_id(), _t: t, net }
    }

    /// Dials `addr` (the device `to`), sends a Hello named `name` and a ClusterConfig sharing
    /// `folder` between both.
    pub async fn connect(&self, addr: &Address, to: DeviceId, folder: &str, name: &str) -> Rogue {
        let conn = self.net.dial(addr, to).await.unwrap();
        let now = Instant::now();
        let hello =
            wire::Hello { device_name: name.into(), client_name: "rogue".into(), ..Default::default() };
        let mut s = Session::new(SessionConfig::new(hello), now);
        let device = |id: DeviceId| wire::Device { id: id.as_bytes().to_vec(), ..Default::default() };
        let f = wire::Folder {
            id: folder.into(),
            devices: vec![device(self.id), device(to)],
            ..Default::default()
        };
        s.send_cluster_config(wire::ClusterConfig { folders: vec![f], ..Default::default() }, now).unwrap();
        let mut r =
            Rogue { s, stream: conn.stream, buf: vec![0u8; 1 << 20], data: HashMap::new(), closed: None };
        r.flush().await;
        r
    }
}

/// One connection of the hostile peer.
pub struct Rogue {
    pub s: Session,
    pub stream: Box<dyn peerfold::net::ByteStream>,
    buf: Vec<u8>,
    /// Block data served by hash.
    data: HashMap<[u8; 32], Vec<u8>>,
    /// The reason, once the daemon closed the session.
    pub closed: Option<String>,
}

impl Rogue {
    /// Announces `files` as the whole index of `folder`.
    pub async fn announce(&mut self, folder: &str, files: &[FileInfo]) {
        self.s.send_index(folder, files, true, Instant::now()).unwrap();
        self.flush().await;
    }

    /// Serves `data` to requests for its hash.
    pub fn serve(&mut self, data: &[u8]) {
        self.data.insert(sha2::Sha256::digest(data).into(), data.to_vec());
    }

    /// Writes bytes as they are, bypassing the session (after its Hello and ClusterConfig).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    pub async fn flush(&mut self) {
        let bytes = self.s.take_transmit();
        if !bytes.is_empty() {
            // The daemon may have hung up already; what it said is read in `step`.
            let _ = self.stream.write_all(&bytes).await;
            let _ = self.stream.flush().await;
        }
    }

    /// Reads what arrives within a moment and answers requests; records a Close.
    pub async fn step(&mut self) {
        self.flush().await;
        if self.closed.is_some() {
            return;
        }
        match tokio::time::timeout(Duration::from_millis(50), self.stream.read(&mut self.buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                self.closed.get_or_insert_with(|| String::from("connection closed"));
            }
            Ok(Ok(n)) => self.s.receive(&self.buf[..n], Instant::now()),
            Err(_) => {}
        }
        while let Some(e) = self.s.poll_event() {
            match e {
                Event::Request(r) => {
                    let hash: Option<[u8; 32]> = r.hash.as_slice().try_into().ok();
                    let answer = hash.and_then(|h| self.data.get(&h).cloned());
                    let result = answer.ok_or(wire::ErrorCode::NoSuchFile);
                    let _ = self.s.respond(r.id, result, Instant::now());
                }
                Event::Closed { reason, .. } => self.closed = Some(reason),
                _ => {}
            }
        }
        self.flush().await;
    }
}

/// A one-block file named `name` holding `data`, version by `by`.
pub fn file(name: &str, data: &[u8], by: DeviceId) -> FileInfo {
    FileInfo {
        name: name.into(),
        file_type: FileType::File,
        size: data.len() as u64,
        permissions: 0o644,
        no_permissions: false,
        modified_s: 1_795_268_583,
        modified_ns: 0,
        modified_by: by.short(),
        deleted: false,
        invalid: false,
        version: Vector::new().updated(by.short(), 1_795_268_583),
        sequence: 1,
        block_size: 128 << 10,
        blocks: vec![BlockInfo {
            offset: 0,
            size: data.len() as u32,
            hash: sha2::Sha256::digest(data).into(),
        }],
        symlink_target: String::new(),
    }
}
