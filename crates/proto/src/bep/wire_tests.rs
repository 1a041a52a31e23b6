//! The codec against bytes captured from a real Syncthing 1.19.2 (`tests/vectors/bep`, whose
//! README gives their decoded meaning), and round trips of generated messages.

use proptest::prelude::*;
use prost::Message as _;

use super::wire::{self, Compression};
use super::*;
use crate::identity::{DeviceId, ShortId};

macro_rules! vector {
    ($file:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/vectors/bep/", $file))
    };
}

const HELLO: &[u8] = vector!("hello_from_syncthing_1.19.2.bin");
const CLUSTER_CONFIG: &[u8] = vector!("clusterconfig_frame.bin");
const INDEX_FRAME: &[u8] = vector!("index_lz4_frame.bin");
const INDEX_PLAIN: &[u8] = vector!("index_plain.pb");

/// st1, the Syncthing instance.
const M: &str = "M4OZKWP-JW5L7WR-VKC4Y3Q-7AOVC5M-NZNR5GE-K6UINM2-FYHD55N-3NOEVQZ";
const M_SHORT: u64 = 7_430_259_173_636_921_339;
/// The peer it talked to.
const O: &str = "OM3WNIV-PFCX3O5-PKDHWWZ-RLDF7EU-CAZXKB6-VTNVLAJ-OQP3MZ6-KNJTZAV";
const O_SHORT: u64 = 8_302_217_286_990_213_047;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn decode_stream(d: &mut FrameDecoder) -> Vec<Message> {
    let mut out = Vec::new();
    while let Some(m) = d.next_message().unwrap() {
        out.push(m);
    }
    out
}

fn one_message(bytes: &[u8]) -> Message {
    let mut d = FrameDecoder::new();
    d.push(bytes);
    let mut all = decode_stream(&mut d);
    assert_eq!(all.len(), 1);
    assert_eq!(d.buffered(), 0);
    all.remove(0)
}

fn encode(msg: &Message, compression: Compression) -> Vec<u8> {
    let mut out = Vec::new();
    encode_message(msg, compression, &mut out).unwrap();
    out
}

fn index() -> wire::Index {
    wire::Index::decode(INDEX_PLAIN).unwrap()
}

fn file<'a>(idx: &'a wire::Index, name: &str) -> &'a wire::FileInfo {
    idx.files.iter().find(|f| f.name == name).unwrap()
}

#[test]
fn hello_decodes_and_reencodes_byte_identically() {
    assert_eq!(HELLO.len(), 35);
    let (hello, used) = decode_hello(HELLO).unwrap().unwrap();
    assert_eq!(used, 35);
    assert_eq!(
        hello,
        wire::Hello {
            device_name: "st1".into(),
            client_name: "syncthing".into(),
            client_version: "v1.19.2-ds1".into(),
            num_connections: 0,
            timestamp: 0,
        }
    );
    let mut out = Vec::new();
    encode_hello(&hello, &mut out).unwrap();
    assert_eq!(out, HELLO);
    for cut in 0..HELLO.len() {
        assert!(decode_hello(&HELLO[..cut]).unwrap().is_none(), "cut at {cut}");
    }
}

#[test]
fn cluster_config_decodes_to_the_documented_values() {
    assert_eq!(CLUSTER_CONFIG.len(), 170);
    assert_eq!(CLUSTER_CONFIG[..6], [0x00, 0x00, 0x00, 0x00, 0x00, 0xa4], "empty header, 164 bytes");
    let msg = one_message(CLUSTER_CONFIG);
    let Message::ClusterConfig(cc) = &msg else { panic!("not a cluster config: {msg:?}") };
    assert!(!cc.secondary);
    let [folder] = cc.folders.as_slice() else { panic!("{} folders", cc.folders.len()) };
    assert_eq!((folder.id.as_str(), folder.label.as_str()), ("test-folder", "Test Folder"));
    assert!(!folder.read_only && !folder.ignore_permissions && !folder.ignore_delete);
    assert!(!folder.disable_temp_indexes && !folder.paused);

    let [st1, peer] = folder.devices.as_slice() else { panic!("{} devices", folder.devices.len()) };
    assert_eq!(st1.device_id().unwrap(), M.parse::<DeviceId>().unwrap());
    assert_eq!(hex(&st1.id), "671d9559e9b757fb5542e6370f81d5175b96c7a622bd443585c1c7deb76d712b");
    assert_eq!(st1.name, "st1");
    assert_eq!(st1.addresses, ["dynamic"]);
    assert_eq!(st1.max_sequence, 13);
    assert_eq!(st1.index_id, 0x8024_C24E_1CEA_BF5A);
    assert_eq!(peer.device_id().unwrap(), O.parse::<DeviceId>().unwrap());
    assert_eq!(peer.name, "pypeer");
    assert_eq!(peer.addresses, ["tcp://127.0.0.1:22999"]);
    assert_eq!(peer.max_sequence, 0);
    assert_eq!(peer.index_id, 0x1111);
    for d in [st1, peer] {
        assert_eq!(d.compression(), Compression::Metadata);
        assert!(d.cert_name.is_empty() && !d.introducer && !d.skip_introduction_removals);
        assert!(d.encryption_password_token.is_empty());
    }
    // max_sequence is the highest sequence in st1's index.
    assert_eq!(index().files.iter().map(|f| f.sequence).max(), Some(13));

    // Syncthing sent it uncompressed under its default `metadata` setting (LZ4 did not save
    // 1/32 of it), and so do we: every policy gives the captured bytes.
    for compression in [Compression::Metadata, Compression::Never, Compression::Always] {
        assert_eq!(encode(&msg, compression), CLUSTER_CONFIG, "{compression:?}");
    }
}

#[test]
fn index_frame_decompresses_to_index_plain() {
    assert_eq!(INDEX_FRAME.len(), 1964);
    assert_eq!(INDEX_FRAME[..10], [0x00, 0x04, 0x08, 0x01, 0x10, 0x01, 0x00, 0x00, 0x07, 0xa2]);
    assert_eq!(INDEX_FRAME[10..14], 2950u32.to_be_bytes());
    let plain = frame::decompress(&INDEX_FRAME[10..], MAX_UNCOMPRESSED_LEN).unwrap();
    assert_eq!(plain.len(), 2950);
    assert!(plain == INDEX_PLAIN, "decompressed bytes differ from index_plain.pb");

    let msg = one_message(INDEX_FRAME);
    assert_eq!(msg, Message::Index(index()));
    // prost writes fields in tag order and omits defaults, as Syncthing did.
    assert!(index().encode_to_vec() == INDEX_PLAIN, "re-encoding differs from index_plain.pb");
    // Re-encoded as a frame, it is compressed again and decodes to the same message.
    let again = encode(&msg, Compression::Metadata);
    assert_eq!(again[..6], INDEX_FRAME[..6]);
    assert_eq!(one_message(&again), msg);
}

/// A row of the README's table: sequence, name, type, size, permissions, modified_s, modified_ns,
/// (vector device, counter), modified_by, number of blocks.
type Row = (i64, &'static str, i32, i64, u32, i64, i32, (u64, u64), u64, usize);

const FILES: [Row; 11] = [
    (1, "subdir", 1, 0, 0o755, 1_795_268_468, 934_617_710, (M_SHORT, 1_795_268_472), M_SHORT, 0),
    (2, "link-to-hello", 4, 0, 0, 0, 0, (M_SHORT, 1_795_268_472), M_SHORT, 0),
    (3, "empty.txt", 0, 0, 0o644, 1_795_268_468, 930_617_710, (M_SHORT, 1_795_268_472), M_SHORT, 1),
    (
        5,
        "subdir/random.bin",
        0,
        300_000,
        0o644,
        1_795_268_468,
        939_854_605,
        (M_SHORT, 1_795_268_472),
        M_SHORT,
        3,
    ),
    (7, "from-peer.txt", 0, 0, 0o644, 1_600_000_100, 0, (O_SHORT, 2), O_SHORT, 0),
    (8, "newfile.txt", 0, 4, 0o644, 1_795_268_564, 528_966_150, (M_SHORT, 1_795_268_564), M_SHORT, 1),
    (9, "hello.txt", 0, 27, 0o644, 1_795_268_588, 0, (O_SHORT, 5), O_SHORT, 1),
    (
        10,
        "hello.sync-conflict-20261121-134303-OM3WNIV.txt",
        0,
        12,
        0o640,
        1_577_934_245,
        123_456_789,
        (M_SHORT, 1_795_268_583),
        M_SHORT,
        1,
    ),
    (11, "big.bin", 0, 1_572_864, 0o600, 1_600_000_000, 5, (O_SHORT, 1), O_SHORT, 12),
    (12, "big2.bin", 0, 1_572_864, 0o600, 1_600_000_000, 5, (O_SHORT, 1), O_SHORT, 12),
    (13, "big3.bin", 0, 1_572_864, 0o600, 1_600_000_000, 5, (O_SHORT, 1), O_SHORT, 12),
];

#[test]
fn index_holds_the_eleven_files_of_the_readme() {
    let idx = index();
    assert_eq!(idx.folder, "test-folder");
    assert_eq!(idx.last_sequence, 0, "field 3 arrived in 1.28");
    assert_eq!(idx.files.len(), FILES.len());
    for (f, &(seq, name, typ, size, perms, ms, ns, (vid, vval), by, blocks)) in idx.files.iter().zip(&FILES) {
        assert_eq!((f.sequence, f.name.as_str(), f.r#type), (seq, name, typ));
        assert_eq!((f.size, f.permissions, f.modified_s, f.modified_ns), (size, perms, ms, ns), "{name}");
        let counters = &f.version.as_ref().unwrap().counters;
        assert_eq!(counters, &[wire::Counter { id: vid, value: vval }], "{name}");
        assert_eq!((f.modified_by, f.blocks.len()), (by, blocks), "{name}");
        let expected_block_size = if matches!(name, "subdir" | "link-to-hello") { 0 } else { 131_072 };
        assert_eq!(f.block_size, expected_block_size, "{name}");
    }
    // Both short IDs are the devices' IDs.
    assert_eq!(M.parse::<DeviceId>().unwrap().short(), ShortId(M_SHORT));
    assert_eq!(O.parse::<DeviceId>().unwrap().short(), ShortId(O_SHORT));

    let tomb = file(&idx, "from-peer.txt");
    assert!(tomb.deleted && tomb.blocks.is_empty() && tomb.blocks_hash.is_empty());
    let link = file(&idx, "link-to-hello");
    assert_eq!(link.symlink_target, b"hello.txt");
    assert!(link.no_permissions);
    let empty = file(&idx, "empty.txt");
    assert_eq!(
        empty.blocks,
        [wire::BlockInfo { offset: 0, size: 0, hash: EMPTY_BLOCK_HASH.to_vec(), weak_hash: 0 }]
    );

    let random = &file(&idx, "subdir/random.bin").blocks;
    let expected = [
        (0, 131_072, "c1b17599d5885e247640f044df32acf3745f0491fce65a20f2418cd22d1eb641", 3_988_240_430),
        (131_072, 131_072, "90b705025b6cd90a83c06b30da13c9be3fddfa42e3423db634be8969c44f40e0", 2_406_659_312),
        (262_144, 37_856, "37ef926cbb289a35300d722f7a2e81823aae8a84f84c3efae302cbb6b4addbe4", 2_210_683_530),
    ];
    for (b, (offset, size, hash, weak)) in random.iter().zip(expected) {
        assert_eq!((b.offset, b.size, hex(&b.hash), b.weak_hash), (offset, size, hash.to_owned(), weak));
    }
    let one_block = |name, hash: &str, weak| {
        let f = file(&idx, name);
        let b = &f.blocks[0];
        assert_eq!(
            (b.offset, i64::from(b.size), hex(&b.hash), b.weak_hash),
            (0, f.size, hash.to_owned(), weak)
        );
    };
    one_block("newfile.txt", "7aa7a5359173d05b63cfd682e3c38487f3cb4f7f1d60659fe59fab1505977d4c", 65_208_661);
    one_block("hello.txt", "31f86a6461ad856b1d44f0522fa6aa03538c79e035d1a440a850e7e1e461d8a0", 0);
    one_block(
        "hello.sync-conflict-20261121-134303-OM3WNIV.txt",
        "a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447",
        510_788_711,
    );

    let first_last = |name| {
        let blocks = &file(&idx, name).blocks;
        let (first, last) = (&blocks[0], &blocks[blocks.len() - 1]);
        assert_eq!(last.offset, 1_441_792, "{name}");
        assert!(blocks.iter().all(|b| b.size == 131_072), "{name}");
        (hex(&first.hash), hex(&last.hash))
    };
    assert_eq!(
        first_last("big.bin"),
        (
            "fca584971effd9715d294d3b1692531bf630fb302e5ce2e42bdde23c1ed84447".to_owned(),
            "d10d03814768349a565e4737ca37bdad827b55ff1be7e26de93bbb06eb1c3b49".to_owned()
        )
    );
    assert_eq!(file(&idx, "big2.bin").blocks, file(&idx, "big.bin").blocks);
    assert_eq!(
        first_last("big3.bin"),
        (
            "5e09856039ee850118c5d96604ca0fc96e709e4d86b08c10639fc81097a293cd".to_owned(),
            "e8ff22857f3f5916710fd88571d6caabe22ad6e3ccfc9d72db3e25fa9d39aed9".to_owned()
        )
    );
}

#[test]
fn blocks_hash_is_the_1_19_form() {
    let idx = index();
    for f in idx.files.iter().filter(|f| !f.blocks.is_empty()) {
        assert_eq!(wire::blocks_hash(&f.blocks).to_vec(), f.blocks_hash, "{}", f.name);
    }
    let expected = [
        ("empty.txt", "d3bfe98e8f1ce891614854569a20f5f4508d6ab4025b872b7b3a8282ef75b12a"),
        ("subdir/random.bin", "a0bdf6eeeeb715d43b8f57868f450c1f81f7fb6cd08b168040e897de5a297786"),
        (
            "hello.sync-conflict-20261121-134303-OM3WNIV.txt",
            "3f239ad116d5263377587b05e995ce95142f530fd76a1e33681bc9b2e34f582b",
        ),
        ("big.bin", "6f1630e939712a3a109a4067a47652be894fdef395c7997694272f596c8286ea"),
        ("big3.bin", "802ab469c631dc67ffb6df45e326d9a90c97c88fa6ebfe3ab6b0e0e713571522"),
    ];
    for (name, hash) in expected {
        assert_eq!(hex(&wire::blocks_hash(&file(&idx, name).blocks)), hash, "{name}");
    }
    // Syncthing v2's form (hashes only) is a different value.
    let random = file(&idx, "subdir/random.bin");
    let domain_blocks = FileInfo::try_from(random.clone()).unwrap().blocks;
    assert_ne!(blocklist_hash(&domain_blocks).to_vec(), random.blocks_hash);
}

#[test]
fn index_files_convert_to_domain_and_back() {
    let idx = index();
    for (w, &(seq, name, _, size, perms, ms, ns, (vid, vval), by, blocks)) in idx.files.iter().zip(&FILES) {
        let f = FileInfo::try_from(w.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((f.sequence, f.name.as_str(), f.size, f.permissions), (seq, name, size as u64, perms));
        assert_eq!((f.modified_s, f.modified_ns, f.modified_by), (ms, ns, ShortId(by)));
        assert_eq!(f.version.counters(), [Counter { id: ShortId(vid), value: vval }]);
        assert_eq!(f.blocks.len(), blocks);
        for (d, b) in f.blocks.iter().zip(&w.blocks) {
            assert_eq!(
                (d.offset as i64, d.size as i32, d.hash.as_slice()),
                (b.offset, b.size, b.hash.as_slice())
            );
        }

        // Back to the wire: what Syncthing sent, except that Peerfold sends no weak hashes, so
        // blocks_hash is the 1.19 form with weak hash 0.
        let back = wire::FileInfo::from(&f);
        let mut expected = w.clone();
        let had_weak_hashes = expected.blocks.iter().any(|b| b.weak_hash != 0);
        for b in &mut expected.blocks {
            b.weak_hash = 0;
        }
        if had_weak_hashes {
            expected.blocks_hash = wire::blocks_hash(&expected.blocks).to_vec();
            assert_ne!(expected.blocks_hash, w.blocks_hash, "{name}");
        }
        assert_eq!(back, expected, "{name}");
    }
    let kinds: Vec<FileType> =
        idx.files.iter().map(|w| FileInfo::try_from(w.clone()).unwrap().file_type).collect();
    assert_eq!(kinds[..3], [FileType::Directory, FileType::Symlink, FileType::File]);
    let link = FileInfo::try_from(file(&idx, "link-to-hello").clone()).unwrap();
    assert_eq!(link.symlink_target, "hello.txt");
    assert!(link.no_permissions);
    let tomb = FileInfo::try_from(file(&idx, "from-peer.txt").clone()).unwrap();
    assert!(tomb.deleted && tomb.blocks.is_empty());
}

#[test]
fn byte_at_a_time_equals_one_shot() {
    let mut stream = CLUSTER_CONFIG.to_vec();
    stream.extend_from_slice(INDEX_FRAME);
    stream.extend(encode(&Message::Ping, Compression::Metadata));
    stream.extend(encode(&Message::Close(wire::Close { reason: "bye".into() }), Compression::Metadata));

    let mut one_shot = FrameDecoder::new();
    one_shot.push(&stream);
    let expected = decode_stream(&mut one_shot);
    assert_eq!(expected.len(), 4);

    let mut trickle = FrameDecoder::new();
    let mut got = Vec::new();
    for b in &stream {
        trickle.push(std::slice::from_ref(b));
        got.extend(decode_stream(&mut trickle));
    }
    assert_eq!(got, expected);
    assert_eq!(trickle.buffered(), 0);
}

#[test]
fn hello_then_frames_in_one_buffer() {
    let mut stream = HELLO.to_vec();
    stream.extend_from_slice(CLUSTER_CONFIG);
    let (hello, used) = decode_hello(&stream).unwrap().unwrap();
    assert_eq!(hello.device_name, "st1");
    let mut d = FrameDecoder::new();
    d.push(&stream[used..]);
    assert!(matches!(decode_stream(&mut d).as_slice(), [Message::ClusterConfig(_)]));
}

#[test]
fn download_progress_block_indexes_are_not_packed() {
    let update = wire::FileDownloadProgressUpdate {
        update_type: wire::FileDownloadProgressUpdateType::Append as i32,
        name: "big3.bin".into(),
        version: None,
        block_indexes: vec![0, 3, 2, 9],
        block_size: 131_072,
    };
    // As seen from Syncthing 1.19.2: one tag-0x20 varint per index.
    let bytes = update.encode_to_vec();
    let tail = [0x20, 0x00, 0x20, 0x03, 0x20, 0x02, 0x20, 0x09, 0x28, 0x80, 0x80, 0x08];
    assert!(bytes.ends_with(&tail), "{}", hex(&bytes));
    // A packed encoding is accepted too, as protobuf requires.
    let mut packed = bytes[..bytes.len() - tail.len()].to_vec();
    packed.extend_from_slice(&[0x22, 0x04, 0x00, 0x03, 0x02, 0x09, 0x28, 0x80, 0x80, 0x08]);
    assert_eq!(wire::FileDownloadProgressUpdate::decode(packed.as_slice()).unwrap(), update);
}

// ---------------------------------------------------------------------------------------------
// Round trips of generated messages
// ---------------------------------------------------------------------------------------------

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ._/-]{0,12}|\\PC{0,4}"
}

fn data(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..max),
        // Compressible data, so that LZ4 bodies are exercised too.
        (any::<u8>(), 0..max * 8).prop_map(|(b, n)| vec![b; n]),
    ]
}

fn vector() -> impl Strategy<Value = wire::Vector> {
    prop::collection::vec((any::<u64>(), any::<u64>()), 0..4).prop_map(|c| wire::Vector {
        counters: c.into_iter().map(|(id, value)| wire::Counter { id, value }).collect(),
    })
}

fn block() -> impl Strategy<Value = wire::BlockInfo> {
    (any::<i64>(), any::<i32>(), data(40), any::<u32>())
        .prop_map(|(offset, size, hash, weak_hash)| wire::BlockInfo { offset, size, hash, weak_hash })
}

fn file_info() -> impl Strategy<Value = wire::FileInfo> {
    (
        (text(), 0..6i32, any::<i64>(), any::<u32>(), any::<i64>(), any::<[bool; 3]>()),
        (prop::option::of(vector()), any::<i64>(), any::<i32>(), any::<u64>(), any::<i32>()),
        (prop::collection::vec(block(), 0..4), data(16), data(40), data(8), any::<u32>(), data(8)),
    )
        .prop_map(
            |(
                (name, r#type, size, permissions, modified_s, [deleted, invalid, no_permissions]),
                (version, sequence, modified_ns, modified_by, block_size),
                (blocks, symlink_target, blocks_hash, encrypted, local_flags, version_hash),
            )| wire::FileInfo {
                name,
                r#type,
                size,
                permissions,
                modified_s,
                deleted,
                invalid,
                no_permissions,
                version,
                sequence,
                modified_ns,
                modified_by,
                block_size,
                blocks,
                symlink_target,
                blocks_hash,
                encrypted,
                local_flags,
                version_hash,
            },
        )
}

fn device() -> impl Strategy<Value = wire::Device> {
    (
        data(33),
        text(),
        prop::collection::vec(text(), 0..3),
        0..3i32,
        text(),
        any::<(i64, bool, u64, bool)>(),
        data(8),
    )
        .prop_map(
            |(
                id,
                name,
                addresses,
                compression,
                cert_name,
                (max_sequence, introducer, index_id, skip),
                token,
            )| {
                wire::Device {
                    id,
                    name,
                    addresses,
                    compression,
                    cert_name,
                    max_sequence,
                    introducer,
                    index_id,
                    skip_introduction_removals: skip,
                    encryption_password_token: token,
                }
            },
        )
}

fn folder() -> impl Strategy<Value = wire::Folder> {
    (text(), text(), any::<[bool; 5]>(), prop::collection::vec(device(), 0..3)).prop_map(
        |(
            id,
            label,
            [read_only, ignore_permissions, ignore_delete, disable_temp_indexes, paused],
            devices,
        )| {
            wire::Folder {
                id,
                label,
                read_only,
                ignore_permissions,
                ignore_delete,
                disable_temp_indexes,
                paused,
                devices,
            }
        },
    )
}

fn message() -> impl Strategy<Value = Message> {
    let files = || prop::collection::vec(file_info(), 0..4);
    prop_oneof![
        (prop::collection::vec(folder(), 0..3), any::<bool>()).prop_map(|(folders, secondary)| {
            Message::ClusterConfig(wire::ClusterConfig { folders, secondary })
        }),
        (text(), files(), any::<i64>()).prop_map(|(folder, files, last_sequence)| Message::Index(
            wire::Index { folder, files, last_sequence }
        )),
        (text(), files(), any::<(i64, i64)>()).prop_map(|(folder, files, (last_sequence, prev_sequence))| {
            Message::IndexUpdate(wire::IndexUpdate { folder, files, last_sequence, prev_sequence })
        }),
        (any::<(i32, i64, i32, bool, u32, i32)>(), text(), text(), data(40)).prop_map(
            |((id, offset, size, from_temporary, weak_hash, block_no), folder, name, hash)| {
                Message::Request(wire::Request {
                    id,
                    folder,
                    name,
                    offset,
                    size,
                    hash,
                    from_temporary,
                    weak_hash,
                    block_no,
                })
            }
        ),
        (any::<i32>(), data(600), 0..5i32).prop_map(|(id, data, code)| Message::Response(wire::Response {
            id,
            data: data.into(),
            code
        })),
        (
            text(),
            prop::collection::vec(
                (
                    0..3i32,
                    text(),
                    prop::option::of(vector()),
                    prop::collection::vec(any::<i32>(), 0..6),
                    any::<i32>()
                ),
                0..3
            )
        )
            .prop_map(|(folder, updates)| {
                Message::DownloadProgress(wire::DownloadProgress {
                    folder,
                    updates: updates
                        .into_iter()
                        .map(|(update_type, name, version, block_indexes, block_size)| {
                            wire::FileDownloadProgressUpdate {
                                update_type,
                                name,
                                version,
                                block_indexes,
                                block_size,
                            }
                        })
                        .collect(),
                })
            }),
        Just(Message::Ping),
        text().prop_map(|reason| Message::Close(wire::Close { reason })),
    ]
}

fn compression() -> impl Strategy<Value = Compression> {
    prop_oneof![Just(Compression::Metadata), Just(Compression::Never), Just(Compression::Always)]
}

/// A valid domain file: a canonical name, and blocks only where BEP allows them.
fn domain_file() -> impl Strategy<Value = FileInfo> {
    (
        prop::collection::vec("[a-z0-9._-]{1,6}", 1..4),
        0..3u8,
        (any::<bool>(), any::<bool>(), any::<bool>()),
        (0..u64::MAX >> 1, 0..0o1000u32, any::<i64>(), 0..1_000_000_000i32, any::<u64>(), any::<i64>()),
        prop::collection::vec((any::<u64>(), 1..u64::MAX), 0..3),
        prop::collection::vec((0..u64::MAX >> 1, any::<u32>(), any::<[u8; 32]>()), 1..4),
        "[a-z/.]{0,10}",
    )
        .prop_filter_map(
            "names made only of dots are not file names",
            |(
                parts,
                kind,
                (deleted, invalid, no_permissions),
                (size, permissions, ms, ns, by, seq),
                counters,
                blocks,
                target,
            )| {
                let name = parts.join("/");
                if !is_canonical_name(&name) {
                    return None;
                }
                let file_type = [FileType::File, FileType::Directory, FileType::Symlink][usize::from(kind)];
                let is_file = file_type == FileType::File;
                let symlink = file_type == FileType::Symlink;
                let has_blocks = is_file && !deleted;
                Some(FileInfo {
                    name,
                    file_type,
                    size: if has_blocks { size } else { 0 },
                    // What the encoder would change: no permission bits where it sends 0o666,
                    // and none claimed absent on a symlink.
                    permissions: if no_permissions && !symlink { permissions.max(1) } else { permissions },
                    no_permissions: no_permissions || symlink,
                    modified_s: ms,
                    modified_ns: ns,
                    modified_by: ShortId(by),
                    deleted,
                    invalid,
                    version: Vector::from_counters(
                        counters.into_iter().map(|(id, value)| Counter { id: ShortId(id), value }),
                    ),
                    sequence: seq,
                    block_size: if is_file { 131_072 } else { 0 },
                    blocks: if has_blocks {
                        blocks
                            .into_iter()
                            .map(|(offset, size, hash)| BlockInfo { offset, size: size >> 1, hash })
                            .collect()
                    } else {
                        Vec::new()
                    },
                    symlink_target: if symlink { target } else { String::new() },
                })
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn frames_round_trip(msg in message(), compression in compression(), cuts in prop::collection::vec(1usize..64, 0..16)) {
        let bytes = encode(&msg, compression);
        // Pushed whole.
        let mut d = FrameDecoder::new();
        d.push(&bytes);
        prop_assert_eq!(d.next_message().unwrap(), Some(msg.clone()));
        prop_assert_eq!(d.next_message().unwrap(), None);
        prop_assert_eq!(d.buffered(), 0);
        // Pushed in pieces.
        let mut d = FrameDecoder::new();
        let mut rest = bytes.as_slice();
        let mut got = Vec::new();
        for cut in cuts.into_iter().chain(std::iter::repeat(usize::MAX)) {
            if rest.is_empty() {
                break;
            }
            let (piece, tail) = rest.split_at(cut.min(rest.len()));
            d.push(piece);
            rest = tail;
            while let Some(m) = d.next_message().unwrap() {
                got.push(m);
            }
        }
        prop_assert_eq!(got, vec![msg]);
    }

    #[test]
    fn messages_round_trip_in_sequence(msgs in prop::collection::vec(message(), 1..5), compression in compression()) {
        let mut bytes = Vec::new();
        for m in &msgs {
            encode_message(m, compression, &mut bytes).unwrap();
        }
        let mut d = FrameDecoder::new();
        d.push(&bytes);
        prop_assert_eq!(decode_stream(&mut d), msgs);
    }

    #[test]
    fn hello_round_trips(device_name in text(), client_name in text(), client_version in text(), num_connections: i32, timestamp: i64) {
        let hello = wire::Hello { device_name, client_name, client_version, num_connections, timestamp };
        let mut bytes = Vec::new();
        encode_hello(&hello, &mut bytes).unwrap();
        prop_assert_eq!(decode_hello(&bytes).unwrap(), Some((hello, bytes.len())));
    }

    #[test]
    fn domain_files_round_trip(f in domain_file()) {
        let w = wire::FileInfo::from(&f);
        prop_assert_eq!(wire::blocks_hash(&w.blocks).to_vec() == w.blocks_hash, !w.blocks.is_empty());
        let back = FileInfo::try_from(w);
        prop_assert!(back.is_ok(), "{:?}", back);
        prop_assert_eq!(back.unwrap(), f);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), cut in 0usize..512) {
        let mut d = FrameDecoder::new();
        let (a, b) = bytes.split_at(cut.min(bytes.len()));
        for piece in [a, b] {
            d.push(piece);
            while let Ok(Some(m)) = d.next_message() {
                if let Message::Index(idx) = m {
                    for f in idx.files {
                        let _ = FileInfo::try_from(f);
                    }
                }
            }
        }
        let _ = decode_hello(&bytes);
    }
}
