//! Invitations: pairing two devices, and sharing folders between them, in one step.
//!
//! This module owns the invitation link (`peerfold://invite/…`: the inviter's device ID, name,
//! addresses, the folders offered, a handle and a secret), the proof a joiner sends, and both
//! ends of the exchange: [`serve`] on the inviter (a running daemon), [`join`] on the joiner.
//!
//! The exchange runs over the inviter's BEP listeners with ALPN `peerfold-invite/1`, so it is
//! mutual TLS 1.3 with both devices' own certificates: the joiner pins the inviter's device ID
//! from the link, and the inviter reads the joiner's device ID from the handshake. The joiner
//! sends `HMAC-SHA256(secret, "peerfold-invite/1" ‖ handle ‖ joiner ID ‖ inviter ID)`; the
//! inviter recomputes it with the ID the TLS handshake proved, so a proof is worth nothing to
//! any other certificate, is never in the clear, and spends one of the invitation's uses (see
//! SECURITY.md, "Invitations").
//!
//! Everything in a link and in an answer is hostile input: sizes are bounded, IDs and addresses
//! parsed, and a folder label only ever becomes one sanitized path component.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use data_encoding::{BASE64URL_NOPAD, HEXLOWER};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::sync::{mpsc, watch};

use crate::config::{Edit, FolderId};
use crate::db::{DbError, StoredInvite};
use crate::engine::Engine;
use crate::identity::{DeviceId, Identity};
use crate::net::{Address, Connection, Net, NetError, TlsIdentity};

/// How every link starts.
pub const LINK_PREFIX: &str = "peerfold://invite/";
/// The longest link accepted (it also has to fit in a QR code).
const MAX_LINK: usize = 4096;
/// Addresses a link may carry, and that a link is made with.
const MAX_ADDRESSES: usize = 16;
/// Folders one invitation may offer.
pub const MAX_FOLDERS: usize = 64;
/// The longest request line the inviter reads.
const MAX_REQUEST: u64 = 4096;
/// The longest answer line the joiner reads.
const MAX_ANSWER: u64 = 64 * 1024;
/// How long one exchange may take, either side.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Exchanges the inviter runs at once; more are dropped (a flood must not pile up tasks).
const MAX_EXCHANGES: usize = 4;
/// Bytes of the handle and of the secret.
const ID_LEN: usize = 16;
const SECRET_LEN: usize = 32;
/// Domain separation for the proof.
const PROOF_CONTEXT: &[u8] = b"peerfold-invite/1";
/// The longest device name or folder label taken from the other side.
const MAX_NAME: usize = 64;

/// What can go wrong making, reading or using an invitation.
#[derive(Debug, thiserror::Error)]
pub enum InviteError {
    /// The text is not an invitation link this version reads.
    #[error("not a valid invitation link: {0}")]
    BadLink(String),
    /// The inviter refused, saying why.
    #[error("the inviting device refused: {0}")]
    Refused(String),
    /// None of the link's addresses answered.
    #[error("cannot reach the inviting device at any of its addresses (last error: {0})")]
    Unreachable(String),
    /// The inviter answered something that is not an answer.
    #[error("the inviting device answered something unexpected: {0}")]
    Protocol(String),
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A folder an invitation offers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OfferedFolder {
    pub id: String,
    pub label: String,
}

/// The content of a `peerfold://invite/…` link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// Format version: 1.
    pub v: u8,
    /// The inviter's device ID.
    pub device: String,
    /// The inviter's name.
    pub name: String,
    /// `tcp://…`/`quic://…` addresses the inviter listens on.
    pub addresses: Vec<String>,
    pub folders: Vec<OfferedFolder>,
    /// The invitation's handle, hex.
    pub id: String,
    /// The secret, hex.
    pub secret: String,
}

impl Link {
    /// The link as text: the prefix and the JSON in unpadded URL-safe base64.
    pub fn encode(&self) -> String {
        // Serializing plain strings and numbers cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        format!("{LINK_PREFIX}{}", BASE64URL_NOPAD.encode(&json))
    }

    /// Reads a link (surrounding white space ignored), checking every field.
    pub fn parse(text: &str) -> Result<Self, InviteError> {
        let bad = |s: &str| InviteError::BadLink(s.to_owned());
        let text = text.trim();
        if text.len() > MAX_LINK {
            return Err(bad("it is too long"));
        }
        let Some(body) = text.strip_prefix(LINK_PREFIX) else {
            return Err(bad(&format!("it does not start with {LINK_PREFIX}")));
        };
        let json = BASE64URL_NOPAD.decode(body.as_bytes()).map_err(|_| bad("it is cut or altered"))?;
        let link: Link = serde_json::from_slice(&json).map_err(|_| bad("it is cut or altered"))?;
        if link.v != 1 {
            return Err(bad("it was made by a newer version of Peerfold"));
        }
        link.inviter()?;
        link.handle()?;
        link.secret_bytes()?;
        if link.addresses.is_empty() || link.addresses.len() > MAX_ADDRESSES {
            return Err(bad("it has no usable addresses"));
        }
        if link.folders.len() > MAX_FOLDERS {
            return Err(bad("it offers too many folders"));
        }
        for f in &link.folders {
            f.id.parse::<FolderId>().map_err(|e| bad(&format!("folder {:?}: {e}", f.id)))?;
        }
        Ok(link)
    }

    /// The inviter's device ID.
    pub fn inviter(&self) -> Result<DeviceId, InviteError> {
        self.device.parse().map_err(|_| InviteError::BadLink("its device ID is malformed".into()))
    }

    fn handle(&self) -> Result<Vec<u8>, InviteError> {
        hex_of_len(&self.id, ID_LEN)
    }

    fn secret_bytes(&self) -> Result<Vec<u8>, InviteError> {
        hex_of_len(&self.secret, SECRET_LEN)
    }
}

fn hex_of_len(text: &str, len: usize) -> Result<Vec<u8>, InviteError> {
    HEXLOWER
        .decode(text.as_bytes())
        .ok()
        .filter(|b| b.len() == len)
        .ok_or_else(|| InviteError::BadLink("it is cut or altered".into()))
}

/// The proof that the holder of `secret` is `joiner` asking `inviter` to honour invitation `id`.
fn proof(secret: &[u8], id: &[u8], joiner: &DeviceId, inviter: &DeviceId) -> ring::hmac::Tag {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut ctx = ring::hmac::Context::with_key(&key);
    for part in [PROOF_CONTEXT, id, joiner.as_bytes().as_slice(), inviter.as_bytes().as_slice()] {
        ctx.update(part);
    }
    ctx.sign()
}

/// Whether `tag` proves the secret for this joiner and inviter (compared in constant time).
fn proof_holds(secret: &[u8], id: &[u8], joiner: &DeviceId, inviter: &DeviceId, tag: &[u8]) -> bool {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut msg = Vec::with_capacity(PROOF_CONTEXT.len() + id.len() + 64);
    for part in [PROOF_CONTEXT, id, joiner.as_bytes().as_slice(), inviter.as_bytes().as_slice()] {
        msg.extend_from_slice(part);
    }
    ring::hmac::verify(&key, &msg, tag).is_ok()
}

/// What a joiner sends: one JSON line.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinRequest {
    id: String,
    proof: String,
    name: String,
}

/// What the inviter answers: one JSON line.
#[derive(Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
enum JoinAnswer {
    Accepted { name: String, folders: Vec<OfferedFolder> },
    Refused { error: String },
}

/// Makes a new invitation: stores it and returns its link.
///
/// `addresses` are the inviter's listening addresses; unspecified hosts (`0.0.0.0`, `::`) are
/// replaced by this machine's interface addresses. `folders` must be configured (the caller
/// checks).
pub async fn create(
    index: &crate::db::Index,
    me: DeviceId,
    name: &str,
    addresses: &[Address],
    folders: Vec<OfferedFolder>,
    expires_s: u64,
    uses: u32,
) -> Result<(Link, i64), InviteError> {
    let id: [u8; ID_LEN] = rand::random();
    let secret: [u8; SECRET_LEN] = rand::random();
    let now = now_s();
    let expires_at = now.saturating_add(i64::try_from(expires_s).unwrap_or(i64::MAX));
    index
        .insert_invite(&StoredInvite {
            id: id.to_vec(),
            secret: secret.to_vec(),
            folders: folders.iter().map(|f| f.id.clone()).collect(),
            created_at: now,
            expires_at,
            uses_left: i64::from(uses),
        })
        .await?;
    let link = Link {
        v: 1,
        device: me.to_string(),
        name: name.to_owned(),
        addresses: link_addresses(addresses),
        folders,
        id: HEXLOWER.encode(&id),
        secret: HEXLOWER.encode(&secret),
    };
    Ok((link, expires_at))
}

/// The addresses a link carries: listening addresses, with an unspecified host replaced by
/// each non-loopback interface address of its family (loopback too when nothing else is up).
pub fn link_addresses(listening: &[Address]) -> Vec<String> {
    let interfaces: Vec<std::net::IpAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip())
        .filter(|ip| match ip {
            std::net::IpAddr::V4(v4) => !v4.is_link_local(),
            std::net::IpAddr::V6(v6) => !v6.is_unicast_link_local(),
        })
        .collect();
    let mut out = Vec::new();
    for addr in listening {
        match addr.ip() {
            Some(ip) if ip.is_unspecified() => {
                let family = |c: &std::net::IpAddr| addr.family.admits(*c) && (ip.is_ipv6() || c.is_ipv4());
                let mut own: Vec<_> = interfaces.iter().filter(|c| family(c) && !c.is_loopback()).collect();
                if own.is_empty() {
                    own = interfaces.iter().filter(|c| family(c)).collect();
                }
                for candidate in own {
                    let mut a = addr.clone();
                    a.host = candidate.to_string();
                    out.push(a.to_string());
                }
            }
            _ => out.push(addr.to_string()),
        }
    }
    out.dedup();
    out.truncate(MAX_ADDRESSES);
    out
}

/// What a successful join brought back.
#[derive(Clone, Debug)]
pub struct Joined {
    pub inviter: DeviceId,
    /// The inviter's name (sanitized).
    pub name: String,
    /// The addresses to add the inviter with.
    pub addresses: Vec<String>,
    /// The folders the inviter shared with this device (IDs valid, labels sanitized).
    pub folders: Vec<OfferedFolder>,
}

/// The joiner's side: reaches the inviter at the link's addresses with this device's identity,
/// proves the secret, and returns what the inviter shared. Changes nothing locally.
pub async fn join(identity: &Identity, link: &Link, my_name: &str) -> Result<Joined, InviteError> {
    join_proving(identity, link, my_name, identity.device_id()).await
}

/// [`join`] with a `Net` already running (the daemon's): the same certificate, no new socket.
pub async fn join_over(net: &Net, link: &Link, my_name: &str) -> Result<Joined, InviteError> {
    exchange_over(net, link, my_name, net.device_id()).await
}

/// [`join`], but with the proof made for device `prove_as` while connecting with `identity`:
/// what an attacker holding a proof captured from another device would send. Only the attack
/// test calls it with another device than `identity`'s; the inviter must refuse it.
#[doc(hidden)]
pub async fn join_proving(
    identity: &Identity,
    link: &Link,
    my_name: &str,
    prove_as: DeviceId,
) -> Result<Joined, InviteError> {
    let net = Net::bind(TlsIdentity::new(identity)?, &[]).await?;
    let joined = exchange_over(&net, link, my_name, prove_as).await;
    net.shutdown().await;
    joined
}

async fn exchange_over(
    net: &Net,
    link: &Link,
    my_name: &str,
    prove_as: DeviceId,
) -> Result<Joined, InviteError> {
    let inviter = link.inviter()?;
    let id = link.handle()?;
    let secret = link.secret_bytes()?;
    let tag = proof(&secret, &id, &prove_as, &inviter);
    let request =
        JoinRequest { id: link.id.clone(), proof: HEXLOWER.encode(tag.as_ref()), name: my_name.to_owned() };
    let mut last = String::from("no address to try");
    let mut answer = None;
    for text in &link.addresses {
        let addr: Address = match text.parse() {
            Ok(a) => a,
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        match net.dial_invite(&addr, inviter).await {
            Ok(conn) => {
                let exchanged = tokio::time::timeout(EXCHANGE_TIMEOUT, exchange(conn, &request)).await;
                answer = Some(
                    exchanged
                        .unwrap_or_else(|_| Err(InviteError::Protocol("it did not answer in time".into()))),
                );
                break;
            }
            Err(e @ NetError::WrongDevice { .. }) => last = e.to_string(),
            Err(e) => last = crate::engine::error_chain(&e),
        }
    }
    let Some(answer) = answer else { return Err(InviteError::Unreachable(last)) };
    match answer? {
        JoinAnswer::Refused { error } => Err(InviteError::Refused(clean_text(&error, 300))),
        JoinAnswer::Accepted { name, folders } => {
            if folders.len() > MAX_FOLDERS {
                return Err(InviteError::Protocol("too many folders".into()));
            }
            let mut checked = Vec::new();
            for f in folders {
                let id: FolderId =
                    f.id.parse().map_err(|e| InviteError::Protocol(format!("folder {:?}: {e}", f.id)))?;
                checked.push(OfferedFolder { id: id.to_string(), label: clean_text(&f.label, MAX_NAME) });
            }
            Ok(Joined {
                inviter,
                name: clean_text(&name, MAX_NAME),
                addresses: link.addresses.clone(),
                folders: checked,
            })
        }
    }
}

async fn exchange(conn: Connection, request: &JoinRequest) -> Result<JoinAnswer, InviteError> {
    let mut stream = conn.stream;
    let mut line = serde_json::to_vec(request).map_err(|e| InviteError::Protocol(e.to_string()))?;
    line.push(b'\n');
    let io = |e: std::io::Error| InviteError::Protocol(e.to_string());
    stream.write_all(&line).await.map_err(io)?;
    stream.flush().await.map_err(io)?;
    let answer = read_line(&mut stream, MAX_ANSWER).await.map_err(io)?;
    let _ = stream.shutdown().await;
    serde_json::from_slice(&answer).map_err(|_| InviteError::Protocol("not an answer".into()))
}

/// One `\n`-terminated line of at most `max` bytes (without the newline).
async fn read_line(stream: &mut (impl AsyncRead + Unpin), max: u64) -> std::io::Result<Vec<u8>> {
    let mut reader = BufReader::new(stream.take(max + 1));
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).await?;
    if line.pop() != Some(b'\n') {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "line too long or cut"));
    }
    Ok(line)
}

/// The inviter's side: answers invitation connections until `stop` turns true.
pub async fn serve(
    engine: Arc<Engine>,
    me: DeviceId,
    mut incoming: mpsc::Receiver<Connection>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            conn = incoming.recv() => {
                let Some(conn) = conn else { break };
                if tasks.len() >= MAX_EXCHANGES {
                    tracing::debug!(remote = %conn.remote, "too many invitation exchanges; dropping one");
                    continue;
                }
                let engine = Arc::clone(&engine);
                tasks.spawn(async move {
                    let remote = conn.remote;
                    if tokio::time::timeout(EXCHANGE_TIMEOUT, answer(&engine, me, conn)).await.is_err() {
                        tracing::debug!(%remote, "an invitation exchange timed out");
                    }
                });
            }
        }
    }
    tasks.abort_all();
}

async fn answer(engine: &Engine, me: DeviceId, conn: Connection) {
    let (joiner, remote) = (conn.device, conn.remote);
    let mut stream = conn.stream;
    let request = match read_line(&mut stream, MAX_REQUEST).await {
        Ok(line) => serde_json::from_slice::<JoinRequest>(&line).ok(),
        Err(_) => None,
    };
    let answer = match request {
        None => JoinAnswer::Refused { error: "the request is malformed".into() },
        Some(request) => match admit(engine, me, joiner, &request).await {
            Ok(answer) => {
                tracing::info!(device = %joiner, %remote, "a device joined with an invitation");
                answer
            }
            Err(error) => {
                tracing::warn!(device = %joiner, %remote, "refused an invitation: {error}");
                JoinAnswer::Refused { error }
            }
        },
    };
    if let Ok(mut line) = serde_json::to_vec(&answer) {
        line.push(b'\n');
        let _ = stream.write_all(&line).await;
        let _ = stream.shutdown().await;
    }
}

/// Checks a join request from `joiner` (the TLS-proven device) and, when it holds, spends a
/// use, adds the device and shares the invitation's folders with it. The error is the sentence
/// both sides show.
async fn admit(
    engine: &Engine,
    me: DeviceId,
    joiner: DeviceId,
    request: &JoinRequest,
) -> Result<JoinAnswer, String> {
    let unknown = || "this invitation is not known here (it may have been made on another device)".to_owned();
    let id = HEXLOWER.decode(request.id.as_bytes()).map_err(|_| unknown())?;
    let tag = HEXLOWER.decode(request.proof.as_bytes()).map_err(|_| "the proof is malformed".to_owned())?;
    let invite =
        engine.index().invite(&id).await.map_err(|e| crate::engine::error_chain(&e))?.ok_or_else(unknown)?;
    if !proof_holds(&invite.secret, &id, &joiner, &me, &tag) {
        return Err("the proof does not match this invitation and the joining device's certificate".into());
    }
    let now = now_s();
    if invite.expires_at <= now {
        return Err("this invitation has expired; ask for a new one".into());
    }
    let used = || "this invitation was already used; ask for a new one".to_owned();
    if invite.uses_left <= 0 {
        return Err(used());
    }
    if !engine.index().spend_invite(&id, now).await.map_err(|e| crate::engine::error_chain(&e))? {
        return Err(used());
    }
    let edit_error = |e: crate::engine::EngineError| crate::engine::error_chain(&e);
    if engine.config().device(&joiner).is_none() {
        let name = Some(clean_text(&request.name, MAX_NAME)).filter(|n| !n.is_empty());
        engine
            .edit_config(Edit::AddDevice { id: joiner, name, addresses: None })
            .await
            .map_err(edit_error)?;
    }
    let mut folders = Vec::new();
    for folder in &invite.folders {
        let Ok(id) = folder.parse::<FolderId>() else { continue };
        let Some(label) = engine.config().folder(&id).map(|f| f.label.clone()) else { continue };
        engine.edit_config(Edit::Share { folder: id, device: joiner }).await.map_err(edit_error)?;
        folders.push(OfferedFolder { id: folder.clone(), label });
    }
    Ok(JoinAnswer::Accepted { name: engine.config().name.clone(), folders })
}

/// Text from the other side, made safe to show and store: control characters dropped, at most
/// `max` characters.
fn clean_text(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect::<String>().trim().to_owned()
}

/// Where an offered folder goes when the joiner gives no path: [`default_folder_path`], or
/// `NAME 2`, `NAME 3`, … beside it, the first that does not exist at all (a symlink counts as
/// existing): a link naming a directory the user has ("Documents") must not make it shared.
pub fn free_folder_path(base: &Path, folder: &OfferedFolder) -> Option<PathBuf> {
    let first = default_folder_path(base, folder);
    let taken = |p: &Path| std::fs::symlink_metadata(p).is_ok();
    if !taken(&first) {
        return Some(first);
    }
    let name = first.file_name()?.to_string_lossy().into_owned();
    (2..100).map(|n| base.join(format!("{name} {n}"))).find(|p| !taken(p))
}

/// An offered folder's directory name under `base`: one component made from its label (or
/// ID), so that nothing from a link can name another place: no separators, no `..`, no
/// leading dot, no drive letters.
pub fn default_folder_path(base: &Path, folder: &OfferedFolder) -> PathBuf {
    let source = if folder.label.trim().is_empty() { &folder.id } else { &folder.label };
    let name: String = source
        .chars()
        .map(|c| if c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.') { c } else { '_' })
        .take(MAX_NAME)
        .collect();
    let name = name.trim().trim_start_matches('.').trim();
    let name = if name.is_empty() { "Shared folder" } else { name };
    base.join(name)
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A duration such as `90s`, `30m`, `24h` or `7d` (a bare number is seconds), in seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration such as 24h"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d")),
    };
    n.checked_mul(scale).filter(|s| *s > 0).ok_or_else(|| format!("{text:?} is not a usable duration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(n: u8) -> DeviceId {
        DeviceId::from_cert_der(&rustls_pki_types::CertificateDer::from(vec![n]))
    }

    fn link() -> Link {
        Link {
            v: 1,
            device: dev(1).to_string(),
            name: "a".into(),
            addresses: vec!["tcp://127.0.0.1:22000".into()],
            folders: vec![OfferedFolder { id: "f".into(), label: "Photos".into() }],
            id: HEXLOWER.encode(&[7; ID_LEN]),
            secret: HEXLOWER.encode(&[9; SECRET_LEN]),
        }
    }

    #[test]
    fn a_link_round_trips_and_a_damaged_one_is_refused() {
        let text = link().encode();
        assert!(text.starts_with(LINK_PREFIX));
        assert_eq!(Link::parse(&format!("  {text}\n")).unwrap(), link());
        assert!(matches!(Link::parse(&text[..text.len() - 3]), Err(InviteError::BadLink(_))));
        assert!(matches!(Link::parse("https://example.com"), Err(InviteError::BadLink(_))));
        let mut bad = link();
        bad.folders[0].id = "../x".repeat(100);
        assert!(matches!(Link::parse(&bad.encode()), Err(InviteError::BadLink(_))));
        assert!(Link::parse(&"x".repeat(MAX_LINK + 1)).is_err());
    }

    #[test]
    fn the_proof_is_bound_to_both_devices_and_the_handle() {
        let (s, id) = ([9; SECRET_LEN], [7; ID_LEN]);
        let tag = proof(&s, &id, &dev(2), &dev(1));
        assert!(proof_holds(&s, &id, &dev(2), &dev(1), tag.as_ref()));
        assert!(!proof_holds(&s, &id, &dev(3), &dev(1), tag.as_ref()), "another joiner's certificate");
        assert!(!proof_holds(&s, &id, &dev(2), &dev(3), tag.as_ref()), "another inviter");
        assert!(!proof_holds(&s, &[8; ID_LEN], &dev(2), &dev(1), tag.as_ref()), "another invitation");
        assert!(!proof_holds(&[1; SECRET_LEN], &id, &dev(2), &dev(1), tag.as_ref()), "another secret");
    }

    #[test]
    fn a_label_from_a_link_never_leaves_the_base() {
        let base = Path::new("/home/u");
        for label in ["../../etc", "/etc/passwd", "..", ".", "a/../../b", "C:\\x", "", "  ", ".hidden"] {
            let p = default_folder_path(base, &OfferedFolder { id: "f".into(), label: label.into() });
            assert_eq!(p.parent(), Some(base), "{label:?} gave {}", p.display());
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            assert!(!name.starts_with('.') && !name.contains('/') && !name.contains('\\'), "{name}");
        }
        let p = default_folder_path(base, &OfferedFolder { id: "f".into(), label: "Photos".into() });
        assert_eq!(p, base.join("Photos"));
    }

    #[test]
    fn an_existing_directory_or_symlink_is_never_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let photos = OfferedFolder { id: "f".into(), label: "Photos".into() };
        assert_eq!(free_folder_path(dir.path(), &photos), Some(dir.path().join("Photos")));
        std::fs::create_dir(dir.path().join("Photos")).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("/nonexistent", dir.path().join("Photos 2")).unwrap();
        #[cfg(unix)]
        assert_eq!(free_folder_path(dir.path(), &photos), Some(dir.path().join("Photos 3")));
    }

    #[test]
    fn link_addresses_keep_bound_hosts_and_expand_unspecified_ones() {
        let bound: Address = "tcp://127.0.0.1:1234".parse().unwrap();
        assert_eq!(link_addresses(std::slice::from_ref(&bound)), ["tcp://127.0.0.1:1234"]);
        let any: Address = "quic://0.0.0.0:22000".parse().unwrap();
        let expanded = link_addresses(&[any]);
        assert!(!expanded.is_empty() && expanded.len() <= MAX_ADDRESSES, "{expanded:?}");
        for a in &expanded {
            let a: Address = a.parse().unwrap();
            assert!(a.ip().is_some_and(|ip| ip.is_ipv4() && !ip.is_unspecified()), "{a}");
            assert_eq!(a.port, 22000);
        }
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("24h"), Ok(86_400));
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        assert!(
            parse_duration("0s").is_err() && parse_duration("1w").is_err() && parse_duration("h").is_err()
        );
    }
}
