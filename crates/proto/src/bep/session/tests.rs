//! Two sessions talking through memory, and a session fed what a real Syncthing sent.

use super::*;
use crate::bep::{BlockInfo, EMPTY_BLOCK_HASH, FileType, Vector};
use crate::identity::ShortId;

macro_rules! vector {
    ($file:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/vectors/bep/", $file))
    };
}

fn hello(name: &str) -> wire::Hello {
    wire::Hello {
        device_name: name.into(),
        client_name: "peerfold".into(),
        client_version: "test".into(),
        ..Default::default()
    }
}

fn session(name: &str, now: Instant) -> Session {
    Session::new(SessionConfig::new(hello(name)), now)
}

/// Moves everything `from` has to send into `to`.
fn pump(from: &mut Session, to: &mut Session, now: Instant) {
    let bytes = from.take_transmit();
    to.receive(&bytes, now);
}

fn events(s: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn cc(folder: &str) -> wire::ClusterConfig {
    wire::ClusterConfig {
        folders: vec![wire::Folder { id: folder.into(), label: folder.into(), ..Default::default() }],
        ..Default::default()
    }
}

fn empty_file(name: &str, sequence: i64) -> FileInfo {
    FileInfo {
        name: name.into(),
        file_type: FileType::File,
        size: 0,
        permissions: 0o644,
        no_permissions: false,
        modified_s: 1,
        modified_ns: 0,
        modified_by: ShortId(1),
        deleted: false,
        invalid: false,
        version: Vector::new().updated(ShortId(1), 1),
        sequence,
        block_size: 131072,
        blocks: vec![BlockInfo { offset: 0, size: 0, hash: EMPTY_BLOCK_HASH }],
        symlink_target: String::new(),
    }
}

/// Two sessions past Hello and ClusterConfig.
fn connected(now: Instant) -> (Session, Session) {
    let (mut a, mut b) = (session("a", now), session("b", now));
    a.send_cluster_config(cc("f"), now).unwrap();
    b.send_cluster_config(cc("f"), now).unwrap();
    pump(&mut a, &mut b, now);
    pump(&mut b, &mut a, now);
    assert_eq!(events(&mut a), vec![Event::Hello(hello("b")), Event::ClusterConfig(cc("f"))]);
    assert_eq!(events(&mut b), vec![Event::Hello(hello("a")), Event::ClusterConfig(cc("f"))]);
    (a, b)
}

#[test]
fn hello_then_cluster_config_then_indexes_flow() {
    let now = Instant::now();
    let (mut a, mut b) = connected(now);
    let files: Vec<FileInfo> = (1..=3).map(|i| empty_file(&format!("dir/f{i}"), i)).collect();
    a.send_index("f", &files, true, now).unwrap();
    a.send_index("f", &files[..1], false, now).unwrap();
    pump(&mut a, &mut b, now);
    assert_eq!(
        events(&mut b),
        vec![
            Event::Index { folder: "f".into(), files: files.clone(), replace: true },
            Event::Index { folder: "f".into(), files: files[..1].to_vec(), replace: false },
        ]
    );
}

#[test]
fn the_session_accepts_bytes_in_any_pieces() {
    let now = Instant::now();
    let (mut a, mut b) = (session("a", now), session("b", now));
    a.send_cluster_config(cc("f"), now).unwrap();
    a.send_index("f", &[empty_file("x", 1)], true, now).unwrap();
    for byte in a.take_transmit() {
        b.receive(&[byte], now);
    }
    let got = events(&mut b);
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(matches!(&got[2], Event::Index { files, .. } if files[0].name == "x"));
}

#[test]
fn responses_are_matched_to_requests_out_of_order() {
    let now = Instant::now();
    let (mut a, mut b) = connected(now);
    let req =
        |name: &str| wire::Request { folder: "f".into(), name: name.into(), size: 3, ..Default::default() };
    let id1 = a.request(req("one"), now).unwrap();
    let id2 = a.request(req("two"), now).unwrap();
    assert_ne!(id1, id2);
    pump(&mut a, &mut b, now);
    let got = events(&mut b);
    let ids: Vec<i32> = got.iter().map(|e| if let Event::Request(r) = e { r.id } else { -1 }).collect();
    assert_eq!(ids, vec![id1, id2]);
    b.respond(id2, Ok(b"two".to_vec()), now).unwrap();
    b.respond(id1, Err(ErrorCode::NoSuchFile), now).unwrap();
    // An answer to nothing outstanding is dropped.
    b.respond(999, Ok(b"stray".to_vec()), now).unwrap();
    pump(&mut b, &mut a, now);
    assert_eq!(
        events(&mut a),
        vec![
            Event::Response { id: id2, result: Ok(b"two".to_vec().into()) },
            Event::Response { id: id1, result: Err(ErrorCode::NoSuchFile) },
        ]
    );
}

/// Moves everything `from` has to send into `to`'s receive buffer, `piece` bytes per read.
fn pump_chunks(from: &mut Session, to: &mut Session, piece: usize, now: Instant) {
    let bytes: Vec<u8> = from.take_transmit_chunks().concat();
    for read in bytes.chunks(piece) {
        to.receive_buffer(piece).extend_from_slice(read);
        to.received(now);
    }
}

#[test]
fn block_data_is_sent_as_its_own_chunk_and_received_whole() {
    let now = Instant::now();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    for piece in [1, 1000, 65_536, 1 << 20] {
        let (mut a, mut b) = (session("a", now), session("b", now));
        a.send_cluster_config(cc("f"), now).unwrap();
        b.send_cluster_config(cc("f"), now).unwrap();
        // The Hello and the ClusterConfig through the receive buffer too.
        pump_chunks(&mut a, &mut b, piece, now);
        pump_chunks(&mut b, &mut a, piece, now);
        assert_eq!(events(&mut b), vec![Event::Hello(hello("a")), Event::ClusterConfig(cc("f"))]);
        assert_eq!(events(&mut a), vec![Event::Hello(hello("b")), Event::ClusterConfig(cc("f"))]);
        let req = |size| wire::Request { folder: "f".into(), name: "x".into(), size, ..Default::default() };
        let (big, small) = (a.request(req(200_000), now).unwrap(), a.request(req(5), now).unwrap());
        pump_chunks(&mut a, &mut b, piece, now);
        assert_eq!(events(&mut b).len(), 2);
        let sent = data.clone();
        let at = sent.as_ptr();
        b.respond(big, Ok(sent), now).unwrap();
        b.respond(small, Ok(b"small".to_vec()), now).unwrap();
        let pending = b.pending_transmit();
        let chunks = b.take_transmit_chunks();
        assert_eq!((b.pending_transmit(), chunks.iter().map(Bytes::len).sum()), (0, pending));
        // The head, the data as it was handed over (not copied), then the small response.
        assert_eq!(chunks.len(), 3, "{:?}", chunks.iter().map(Bytes::len).collect::<Vec<_>>());
        assert_eq!(chunks[1].as_ptr(), at);
        for read in chunks.concat().chunks(piece) {
            a.receive_buffer(piece).extend_from_slice(read);
            a.received(now);
        }
        assert_eq!(
            events(&mut a),
            vec![
                Event::Response { id: big, result: Ok(data.clone().into()) },
                Event::Response { id: small, result: Ok(Bytes::from_static(b"small")) },
            ],
            "reads of {piece}"
        );
    }
}

#[test]
fn anything_before_the_cluster_config_closes_with_syncthings_reason() {
    let now = Instant::now();
    let (mut a, mut b) = (session("a", now), session("b", now));
    // Skip the rule on the sending side by encoding by hand.
    let mut bytes = a.take_transmit();
    encode_message(
        &Message::Index(wire::Index { folder: "test-folder".into(), ..Default::default() }),
        Compression::Never,
        &mut bytes,
    )
    .unwrap();
    b.receive(&bytes, now);
    let reason = "protocol error on index for test-folder: invalid state 0";
    assert_eq!(
        events(&mut b),
        vec![Event::Hello(hello("a")), Event::Closed { reason: reason.into(), by_peer: false }]
    );
    assert!(b.is_closed());
    // The peer is told why.
    b.take_transmit(); // b's own Hello comes first
    let mut a2 = session("a", now);
    let mut b2 = session("b", now);
    b2.close(reason);
    pump(&mut b2, &mut a2, now);
    assert_eq!(
        events(&mut a2),
        vec![Event::Hello(hello("b")), Event::Closed { reason: reason.into(), by_peer: true }]
    );
}

#[test]
fn a_bad_index_entry_closes_the_session() {
    let now = Instant::now();
    let (mut a, mut b) = connected(now);
    let mut bad = wire::FileInfo::from(&empty_file("x", 1));
    bad.name = "../escape".into();
    let mut bytes = Vec::new();
    encode_message(
        &Message::IndexUpdate(wire::IndexUpdate {
            folder: "f".into(),
            files: vec![bad],
            ..Default::default()
        }),
        Compression::Never,
        &mut bytes,
    )
    .unwrap();
    b.receive(&bytes, now);
    let got = events(&mut b);
    assert!(
        matches!(&got[..], [Event::Closed { reason, by_peer: false }] if reason.contains("\"../escape\": filename is invalid")),
        "{got:?}"
    );
    // Whatever arrives after is ignored, and nothing can be sent.
    b.receive(&bytes, now);
    assert!(events(&mut b).is_empty());
    assert_eq!(b.send_index("f", &[], false, now), Err(SessionError::Closed));
    let _ = a.take_transmit();
}

#[test]
fn garbage_instead_of_hello_closes() {
    let now = Instant::now();
    let mut b = session("b", now);
    b.receive(b"GET / HTTP/1.1\r\n\r\n", now);
    assert!(matches!(&events(&mut b)[..], [Event::Closed { by_peer: false, .. }]));
}

#[test]
fn requests_with_bad_names_close() {
    let now = Instant::now();
    let (_a, mut b) = connected(now);
    let mut bytes = Vec::new();
    let req = wire::Request { folder: "f".into(), name: "a//b".into(), size: 1, ..Default::default() };
    encode_message(&Message::Request(req), Compression::Never, &mut bytes).unwrap();
    b.receive(&bytes, now);
    assert!(matches!(&events(&mut b)[..], [Event::Closed { reason, .. }] if reason.contains("canonical")));
}

#[test]
fn nothing_is_sent_before_our_cluster_config() {
    let now = Instant::now();
    let mut a = session("a", now);
    assert_eq!(a.send_index("f", &[], true, now), Err(SessionError::NoClusterConfig("an index")));
    assert!(a.request(wire::Request::default(), now).is_err());
}

#[test]
fn idle_sessions_ping_and_silent_peers_time_out() {
    let t0 = Instant::now();
    let (mut a, mut b) = connected(t0);
    assert_eq!(a.poll_timeout(), Some(t0 + PING_INTERVAL));
    let t1 = t0 + PING_INTERVAL;
    a.handle_timeout(t1);
    let ping = a.take_transmit();
    assert!(!ping.is_empty(), "a ping goes out after {PING_INTERVAL:?} of silence");
    b.receive(&ping, t1);
    assert!(events(&mut b).is_empty(), "pings are not events");
    // b heard from a at t1; a heard nothing from b since t0.
    assert_eq!(a.poll_timeout(), Some((t1 + PING_INTERVAL).min(t0 + RECEIVE_TIMEOUT)));
    a.handle_timeout(t0 + RECEIVE_TIMEOUT);
    assert_eq!(events(&mut a), vec![Event::Closed { reason: "read timeout".into(), by_peer: false }]);
    assert_eq!(a.poll_timeout(), None);
}

#[test]
fn a_peer_that_never_says_hello_is_dropped_after_the_hello_timeout() {
    let t0 = Instant::now();
    let mut a = session("a", t0);
    let mut b = session("b", t0);
    // b hears a's Hello; a hears nothing from b, even though bytes trickle in (half a Hello).
    let ours = a.take_transmit();
    b.receive(&ours, t0);
    let theirs = b.take_transmit();
    assert_eq!(a.poll_timeout(), Some(t0 + HELLO_TIMEOUT));
    a.receive(&theirs[..theirs.len() / 2], t0 + HELLO_TIMEOUT / 2);
    a.handle_timeout(t0 + HELLO_TIMEOUT - Duration::from_millis(1));
    assert!(events(&mut a).is_empty(), "not yet overdue");
    assert_eq!(a.poll_timeout(), Some(t0 + HELLO_TIMEOUT));
    a.handle_timeout(t0 + HELLO_TIMEOUT);
    assert_eq!(
        events(&mut a),
        vec![Event::Closed { reason: "exchanging hello: deadline exceeded".into(), by_peer: false }]
    );
    // b, which got its Hello, does not wait for one any more.
    assert_eq!(events(&mut b).len(), 1);
    assert_eq!(b.poll_timeout(), Some(t0 + PING_INTERVAL));
}

#[test]
fn a_real_syncthing_hello_and_cluster_config_are_understood() {
    let now = Instant::now();
    let mut s = session("peerfold", now);
    let mut bytes = vector!("hello_from_syncthing_1.19.2.bin").to_vec();
    bytes.extend_from_slice(vector!("clusterconfig_frame.bin"));
    bytes.extend_from_slice(vector!("index_lz4_frame.bin"));
    s.receive(&bytes, now);
    let got = events(&mut s);
    assert!(matches!(&got[0], Event::Hello(h) if h.client_name == "syncthing"), "{got:?}");
    assert!(matches!(&got[1], Event::ClusterConfig(cc) if !cc.folders.is_empty()), "{got:?}");
    assert!(matches!(&got[2], Event::Index { replace: true, files, .. } if !files.is_empty()), "{got:?}");
    assert!(!s.is_closed());
}

#[test]
fn download_progress_round_trips_between_sessions() {
    let now = Instant::now();
    let (mut a, mut b) = connected(now);
    let version = Vector::new().updated(ShortId(7), 1_795_268_583);
    let progress = wire::DownloadProgress {
        folder: "f".into(),
        updates: vec![
            wire::FileDownloadProgressUpdate {
                update_type: wire::FileDownloadProgressUpdateType::Append as i32,
                name: "dir/big.bin".into(),
                version: Some((&version).into()),
                block_indexes: vec![0, 3, 2, 9],
                block_size: 131072,
            },
            wire::FileDownloadProgressUpdate {
                update_type: wire::FileDownloadProgressUpdateType::Forget as i32,
                name: "done.bin".into(),
                version: Some((&version).into()),
                ..Default::default()
            },
        ],
    };
    a.send_download_progress(progress.clone(), now).unwrap();
    pump(&mut a, &mut b, now);
    assert_eq!(events(&mut b), vec![Event::DownloadProgress(progress)]);
    assert!(!b.is_closed());
}

#[test]
fn download_progress_waits_for_the_cluster_config() {
    let now = Instant::now();
    let mut a = session("a", now);
    let p = wire::DownloadProgress { folder: "f".into(), updates: Vec::new() };
    assert_eq!(a.send_download_progress(p, now), Err(SessionError::NoClusterConfig("download progress")));
}

#[test]
fn decoded_messages_waiting_to_be_polled_are_bounded() {
    let now = Instant::now();
    let (mut a, mut b) = connected(now);
    // Batches of 20,000 files, received in one piece: each batch decodes to several MiB.
    let files: Vec<FileInfo> = (1..=20_000).map(|i| empty_file(&format!("d/{i:05}"), i)).collect();
    for _ in 0..20 {
        a.send_index("f", &files, false, now).unwrap();
    }
    b.receive(&a.take_transmit(), now);
    // Not all of them were decoded at once...
    assert!(b.events.len() < 20, "{} batches decoded before any was polled", b.events.len());
    assert!(b.decoder.buffered() > 0);
    // ...but every one arrives as the caller polls.
    let batches = events(&mut b);
    assert_eq!(batches.len(), 20);
    assert!(batches.iter().all(|e| matches!(e, Event::Index { files, .. } if files.len() == 20_000)));
    assert!(!b.is_closed());
}
