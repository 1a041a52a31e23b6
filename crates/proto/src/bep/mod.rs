//! The Block Exchange Protocol's data model and wire codec, as Syncthing's BEP v1 defines them.
//!
//! This module owns the protocol's vocabulary — files, blocks, version vectors — and the rules
//! that are part of the protocol rather than of any one stage: the block-size rule and the
//! canonical form of names. It performs no I/O, reads no clock and spawns no tasks: the current
//! time is always an argument, and bytes go in and out through buffers.
//!
//! The wire codec, byte-compatible with Syncthing 1.19.2:
//!
//! * [`wire`]: the protobuf messages (generated from `proto/bep.proto`) and their conversion to
//!   and from the domain types, with Syncthing's validation of received index entries;
//! * framing: [`decode_hello`] and [`encode_hello`] for the Hello, [`FrameDecoder`] and
//!   [`encode_message`] for the [`Message`]s after it, with LZ4 and Syncthing's compression
//!   policy;
//! * [`WireError`]: what can be wrong with received bytes, worded as Syncthing's Close reasons.

mod error;
mod frame;
pub mod global;
pub mod session;
mod vector;
pub mod wire;
#[cfg(test)]
mod wire_tests;

pub use error::WireError;
pub use frame::{
    COMPRESSION_THRESHOLD, FrameDecoder, HELLO_MAGIC, Limits, MAX_HELLO_LEN, MAX_MESSAGE_LEN,
    MAX_RECEIVE_LEN, MAX_UNCOMPRESSED_LEN, Message, OLD_HELLO_MAGICS, decode_hello, decoded_cost,
    encode_hello, encode_message,
};
pub use vector::{Counter, Ordering as VectorOrdering, Vector};

use crate::identity::ShortId;

/// The smallest block size BEP allows (128 KiB).
pub const MIN_BLOCK_SIZE: u32 = 128 << 10;
/// The largest block size BEP allows (16 MiB).
pub const MAX_BLOCK_SIZE: u32 = 16 << 20;
/// Syncthing picks the smallest block size giving fewer than this many blocks.
const DESIRED_BLOCKS_PER_FILE: u64 = 2000;

/// A SHA-256 digest of one block's data.
pub type BlockHash = [u8; 32];

/// SHA-256 of no bytes: the hash of the single zero-size block of an empty file.
pub const EMPTY_BLOCK_HASH: BlockHash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27,
    0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// The block size Syncthing uses for a file of `size` bytes: the smallest power of two from
/// 128 KiB to 16 MiB that gives fewer than 2000 blocks, else 16 MiB.
pub fn block_size_for(size: u64) -> u32 {
    let mut bs = MIN_BLOCK_SIZE;
    while bs < MAX_BLOCK_SIZE && size >= DESIRED_BLOCKS_PER_FILE * u64::from(bs) {
        bs *= 2;
    }
    bs
}

/// The block size to use when rescanning a file that was last hashed with `previous`.
///
/// Syncthing keeps the old block size while the ideal one is within a factor of two of it, so a
/// file growing across a boundary is not rehashed into a completely different block list.
pub fn block_size_with_hysteresis(size: u64, previous: u32) -> u32 {
    let ideal = block_size_for(size);
    let valid = previous.is_power_of_two() && (MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&previous);
    if valid && (ideal == previous || ideal == previous * 2 || ideal * 2 == previous) {
        previous
    } else {
        ideal
    }
}

/// What kind of entry a [`FileInfo`] describes. The numbers are BEP's wire values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileType {
    File = 0,
    Directory = 1,
    Symlink = 4,
}

impl FileType {
    /// Maps BEP's wire value; the deprecated symlink kinds (2, 3) read as [`FileType::Symlink`].
    pub fn from_wire(v: i32) -> Option<Self> {
        match v {
            0 => Some(Self::File),
            1 => Some(Self::Directory),
            2..=4 => Some(Self::Symlink),
            _ => None,
        }
    }

    pub fn to_wire(self) -> i32 {
        self as i32
    }
}

/// One block of a file: where it lies and the SHA-256 of its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    pub offset: u64,
    pub size: u32,
    pub hash: BlockHash,
}

/// One entry of a folder's index, local or remote: BEP's `FileInfo` without the wire details.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    /// Folder-relative, NFC, `/`-separated, canonical (see [`is_canonical_name`]).
    pub name: String,
    pub file_type: FileType,
    /// Bytes; 0 for directories, symlinks and deleted entries.
    pub size: u64,
    /// Unix mode bits `& 0o777`.
    pub permissions: u32,
    pub no_permissions: bool,
    pub modified_s: i64,
    pub modified_ns: i32,
    pub modified_by: ShortId,
    pub deleted: bool,
    /// The entry must not be pulled (ignored, unreadable, or a receive-only local change).
    pub invalid: bool,
    pub version: Vector,
    /// The announcing device's per-folder sequence number for this entry; 0 until recorded.
    pub sequence: i64,
    pub block_size: u32,
    pub blocks: Vec<BlockInfo>,
    pub symlink_target: String,
}

impl FileInfo {
    pub fn is_directory(&self) -> bool {
        self.file_type == FileType::Directory
    }

    pub fn is_symlink(&self) -> bool {
        self.file_type == FileType::Symlink
    }

    /// The name of the directory holding this entry; `""` at the folder root.
    pub fn parent(&self) -> &str {
        parent_of(&self.name)
    }
}

/// The parent part of a canonical name: `"a/b"` for `"a/b/c"`, `""` for `"c"`.
pub fn parent_of(name: &str) -> &str {
    name.rfind('/').map_or("", |i| &name[..i])
}

/// True when `name` is `dir` or lies below it; every name is within `""`, the folder root.
pub fn is_within(name: &str, dir: &str) -> bool {
    dir.is_empty() || name.strip_prefix(dir).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The hash identifying a block list: SHA-256 over the blocks' hashes in order (the form
/// Syncthing v2 sends as `blocks_hash`; equal block lists have equal hashes). What Peerfold sends
/// to Syncthing 1.19 is [`wire::blocks_hash`].
pub fn blocklist_hash(blocks: &[BlockInfo]) -> BlockHash {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    for b in blocks {
        h.update(b.hash);
    }
    h.finalize().into()
}

/// True when `name` is a clean folder-relative path the way BEP requires: non-empty, no leading
/// or trailing `/`, no empty, `.` or `..` components, no NUL.
pub fn is_canonical_name(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('\0')
        && name.split('/').all(|part| !part.is_empty() && part != "." && part != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    const GIB: u64 = 1024 * MIB;

    #[test]
    fn block_size_follows_syncthing_table() {
        // Syncthing's spec table: 0–250 MiB → 128 KiB, 250–500 MiB → 256 KiB, … ≥16 GiB → 16 MiB.
        let cases = [
            (0, 128 * KIB),
            (1, 128 * KIB),
            (250 * MIB - 1, 128 * KIB),
            (250 * MIB, 256 * KIB),
            (500 * MIB - 1, 256 * KIB),
            (500 * MIB, 512 * KIB),
            (1000 * MIB, MIB),
            (2 * GIB, 2 * MIB),
            (4 * GIB, 4 * MIB),
            (8 * GIB, 8 * MIB),
            (16 * GIB, 16 * MIB),
            (31 * GIB + 1, 16 * MIB),
            (u64::MAX, 16 * MIB),
        ];
        for (size, want) in cases {
            assert_eq!(u64::from(block_size_for(size)), want, "size {size}");
        }
    }

    #[test]
    fn block_size_is_smallest_with_size_below_2000_blocks() {
        // Syncthing's rule: the smallest B with size < 2000 × B (so at most 2000 blocks).
        for size in [1, 250 * MIB - 1, 250 * MIB, 777 * MIB + 3, 15 * GIB] {
            let bs = u64::from(block_size_for(size));
            assert!(size < 2000 * bs, "size {size}: block size {bs} is too small");
            assert!(size.div_ceil(bs) <= 2000, "size {size} gives too many blocks of {bs}");
            if bs > 128 * KIB {
                assert!(size >= 2000 * (bs / 2), "size {size}: {bs} is not the smallest");
            }
        }
    }

    #[test]
    fn block_size_hysteresis_keeps_old_size_within_factor_two() {
        // 260 MiB ideally uses 256 KiB, but a file hashed at 128 KiB keeps it.
        assert_eq!(block_size_with_hysteresis(260 * MIB, 128 << 10), 128 << 10);
        // 1100 MiB wants 1 MiB: 128 KiB is more than a factor of two off, so it changes.
        assert_eq!(block_size_with_hysteresis(1100 * MIB, 128 << 10), 1 << 20);
        // An invalid previous size is never kept.
        assert_eq!(block_size_with_hysteresis(10, 1000), 128 << 10);
    }

    #[test]
    fn canonical_names() {
        for ok in ["a", "a/b", "ä/ö.txt", ".hidden", "a/.b"] {
            assert!(is_canonical_name(ok), "{ok}");
        }
        for bad in ["", "/a", "a/", "a//b", "./a", "a/./b", "..", "a/../b", "../a", "a\0b"] {
            assert!(!is_canonical_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn empty_block_hash_is_sha256_of_nothing() {
        use sha2::Digest as _;
        let h: BlockHash = sha2::Sha256::digest([]).into();
        assert_eq!(h, EMPTY_BLOCK_HASH);
    }

    #[test]
    fn within_a_directory() {
        assert!(is_within("a", "a") && is_within("a/b/c", "a") && is_within("x", ""));
        assert!(!is_within("a-b", "a") && !is_within("ab", "a") && !is_within("a", "a/b"));
    }

    #[test]
    fn parent_of_names() {
        assert_eq!(parent_of("a"), "");
        assert_eq!(parent_of("a/b"), "a");
        assert_eq!(parent_of("a/b/c.txt"), "a/b");
    }
}
