//! Hashing one file into blocks, detecting a file that changes while it is read.

use std::fs::File;
use std::io;
use std::path::Path;

use rayon::prelude::*;
use sha2::{Digest as _, Sha256};

use super::disk::Stat;
use crate::bep::{BlockInfo, EMPTY_BLOCK_HASH};
use crate::positional_io::read_exact_at;

/// Files with more blocks than this are hashed with several threads at once, each reading its
/// own range, so one large file still uses every core.
const PARALLEL_MIN_BLOCKS: u64 = 8;
/// Blocks one parallel task hashes in a row (a 16 MiB read at 128 KiB blocks).
const BLOCKS_PER_TASK: u64 = 128;

/// Why a file could not be hashed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HashError {
    #[error("{0}")]
    Io(#[from] io::Error),
    /// Size, modification time or inode change time moved while the file was read: the blocks
    /// may mix old and new data, so they must not be recorded.
    #[error("it changed while it was being read")]
    Changed,
}

/// Called after each block is hashed with the block's index; tests use it to change the file
/// mid-read or to fail the read. Production passes a no-op.
pub(crate) type BlockHook<'a> = &'a (dyn Fn(u64) -> io::Result<()> + Sync);

/// Hashes the file at `path`, which the walk saw as `expected`, into blocks of `block_size`.
///
/// After reading, the open file's metadata must still be exactly what the walk saw — size,
/// modification time, inode and inode change time — else the result is
/// [`HashError::Changed`]: the path was replaced, or the file was written after the walk
/// looked at it (a write moves the change time even when the writer restores the mtime).
pub(crate) fn hash_file(
    path: &Path,
    expected: &Stat,
    block_size: u32,
    hook: BlockHook<'_>,
) -> Result<Vec<BlockInfo>, HashError> {
    let file = File::open(path)?;
    let blocks = hash_open(&file, expected.size, block_size, hook)?;
    if !Stat::of_open(&file)?.untouched_since(expected) {
        return Err(HashError::Changed);
    }
    Ok(blocks)
}

fn hash_open(
    file: &File,
    size: u64,
    block_size: u32,
    hook: BlockHook<'_>,
) -> Result<Vec<BlockInfo>, HashError> {
    if size == 0 {
        // BEP: an empty file is one zero-size block.
        return Ok(vec![BlockInfo { offset: 0, size: 0, hash: EMPTY_BLOCK_HASH }]);
    }
    let bs = u64::from(block_size);
    let count = size.div_ceil(bs);
    if count <= PARALLEL_MIN_BLOCKS {
        return hash_range(file, size, bs, 0..count, hook);
    }
    let tasks: Vec<_> = (0..count.div_ceil(BLOCKS_PER_TASK))
        .map(|t| t * BLOCKS_PER_TASK..((t + 1) * BLOCKS_PER_TASK).min(count))
        .collect();
    let parts: Vec<Vec<BlockInfo>> =
        tasks.into_par_iter().map(|r| hash_range(file, size, bs, r, hook)).collect::<Result<_, _>>()?;
    Ok(parts.concat())
}

/// Hashes blocks `range` of a file of `size` bytes.
fn hash_range(
    file: &File,
    size: u64,
    bs: u64,
    range: std::ops::Range<u64>,
    hook: BlockHook<'_>,
) -> Result<Vec<BlockInfo>, HashError> {
    let mut buf = vec![0u8; bs.min(size) as usize];
    let mut out = Vec::with_capacity((range.end - range.start) as usize);
    for i in range {
        let offset = i * bs;
        let len = bs.min(size - offset) as usize;
        let chunk = &mut buf[..len];
        read_exact_at(file, chunk, offset).map_err(|e| {
            // A short read means the file shrank under us.
            if e.kind() == io::ErrorKind::UnexpectedEof { HashError::Changed } else { HashError::Io(e) }
        })?;
        out.push(BlockInfo { offset, size: len as u32, hash: Sha256::digest(&*chunk).into() });
        hook(i)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn no_hook(_: u64) -> io::Result<()> {
        Ok(())
    }

    /// Writes `data` with an mtime an hour back, so a later write is visible in the mtime even
    /// though the kernel's timestamps are only as fine as its clock tick.
    fn write(path: &Path, data: &[u8]) -> Stat {
        std::fs::write(path, data).unwrap();
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options().write(true).open(path).unwrap().set_modified(hour_ago).unwrap();
        Stat::of_path(path).unwrap()
    }

    #[test]
    fn blocks_cover_the_file_with_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let st = write(&p, &data);
        let blocks = hash_file(&p, &st, 131072, &no_hook).unwrap();
        let want: Vec<_> = data
            .chunks(131072)
            .enumerate()
            .map(|(i, c)| BlockInfo {
                offset: i as u64 * 131072,
                size: c.len() as u32,
                hash: Sha256::digest(c).into(),
            })
            .collect();
        assert_eq!(blocks, want);
    }

    #[test]
    fn parallel_hashing_matches_sequential_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        // 300 blocks of 128 KiB plus a tail: more than one parallel task.
        let data: Vec<u8> =
            (0..(300 * 131072 + 7)).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let st = write(&p, &data);
        let blocks = hash_file(&p, &st, 131072, &no_hook).unwrap();
        assert_eq!(blocks.len(), 301);
        for (i, (b, c)) in blocks.iter().zip(data.chunks(131072)).enumerate() {
            assert_eq!(b.offset, i as u64 * 131072);
            assert_eq!(b.hash, <[u8; 32]>::from(Sha256::digest(c)), "block {i}");
        }
    }

    #[test]
    fn empty_file_is_one_empty_block() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e");
        let st = write(&p, b"");
        assert_eq!(
            hash_file(&p, &st, 131072, &no_hook).unwrap(),
            [BlockInfo { offset: 0, size: 0, hash: EMPTY_BLOCK_HASH }]
        );
    }

    #[test]
    fn file_modified_during_hashing_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let st = write(&p, &vec![1u8; 4 * 131072]);
        // After the first block, another writer changes the file in place (same size).
        let hook = |i: u64| {
            if i == 0 {
                let mut f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
                f.write_all(&[2u8; 131072 * 2]).unwrap();
                f.sync_all().unwrap();
            }
            Ok(())
        };
        assert!(matches!(hash_file(&p, &st, 131072, &hook), Err(HashError::Changed)));
    }

    #[test]
    fn file_truncated_during_hashing_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let st = write(&p, &vec![1u8; 4 * 131072]);
        let hook = |i: u64| {
            if i == 0 {
                std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(131072).unwrap();
            }
            Ok(())
        };
        assert!(matches!(hash_file(&p, &st, 131072, &hook), Err(HashError::Changed)));
    }

    #[test]
    fn file_different_from_the_walk_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let st = write(&p, b"old");
        std::fs::write(&p, b"newer").unwrap();
        assert!(matches!(hash_file(&p, &st, 131072, &no_hook), Err(HashError::Changed)));
    }
}
