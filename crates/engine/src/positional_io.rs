//! Reading and writing a file at an offset without moving its cursor (`pread`/`pwrite`), so
//! several threads can use one open file: the scanner's hashing and the puller; reading only
//! what the page cache holds, without waiting for the disk; and starting the write-back of what
//! was written.
//!
//! It is the one module allowed `unsafe` (the crate denies it elsewhere): `preadv2` with
//! `RWF_NOWAIT` and `sync_file_range` have no safe wrapper in std, so each is a single libc
//! call in a function of its own, allowed there alone, with its `SAFETY` argument beside it.
//! `preadv2` reads into a buffer's uninitialised capacity: zeroing a block first, only to
//! overwrite it, was a twentieth of a sender's time (std's `read_buf` is not stable).

use std::fs::File;
use std::io;

/// Fills `buf` from `offset`; a file that ends first is [`io::ErrorKind::UnexpectedEof`].
#[cfg(unix)]
pub(crate) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

/// Fills `buf` from `offset`; a file that ends first is [`io::ErrorKind::UnexpectedEof`].
#[cfg(windows)]
pub(crate) fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt as _;
    while !buf.is_empty() {
        match file.seek_read(buf, offset) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads `size` bytes at `offset` of an open file (a block, for serving or copying it).
pub(crate) fn read_block_at(file: &File, offset: u64, size: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; size];
    read_exact_at(file, &mut buf, offset)?;
    Ok(buf)
}

/// Writes all of `data` at `offset`.
#[cfg(unix)]
pub(crate) fn write_all_at(file: &File, data: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, data, offset)
}

/// Writes all of `data` at `offset`.
#[cfg(windows)]
pub(crate) fn write_all_at(file: &File, mut data: &[u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt as _;
    while !data.is_empty() {
        match file.seek_write(data, offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                data = &data[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Starts writing the file's dirty pages to disk without waiting for it, so that the fsync
/// before the rename finds little left to write. Without it nothing of a large download reached
/// the disk before that fsync (the kernel's background write-back starts at a tenth of memory):
/// a 160 MiB file then took most of a second to sync, while the network sat idle. The whole
/// file, since blocks land out of order; pages already under write-back are skipped. Only a
/// hint; where there is no such call it does nothing.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub(crate) fn start_writeback(file: &File) {
    use std::os::fd::AsRawFd as _;
    // SAFETY: the descriptor is open for as long as `file` is borrowed; the call only reads
    // its arguments (offset 0 and length 0: to the end of the file).
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn start_writeback(_file: &File) {}

/// Whether any byte of `offset..offset + len` was ever written, as far as the file system
/// tells: a temporary file is sized before its blocks land, and the rest of it is a hole. A
/// download that starts again checks each block left in its temporary file by reading and
/// hashing it; for a block in a hole that was a read of zeros and a SHA-256 for nothing (the
/// whole of a large file, after a connection closed mid-way). `true` where it cannot tell.
#[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
pub(crate) fn has_data(file: &File, offset: u64, len: u64) -> bool {
    // The file's cursor moves, which nothing here uses: every read and write is positional.
    match rustix::fs::seek(file, rustix::fs::SeekFrom::Data(offset)) {
        Ok(next) => next < offset.saturating_add(len),
        // Nothing but a hole from `offset` to the end.
        Err(rustix::io::Errno::NXIO) => false,
        Err(_) => true,
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "freebsd")))]
pub(crate) fn has_data(_file: &File, _offset: u64, _len: u64) -> bool {
    true
}

/// Reads `size` bytes at `offset` if the page cache holds all of them, without waiting for the
/// disk; `None` when it does not (or the file ends first, or there is no such call here), and
/// the caller reads on a blocking thread instead. Serving a block is nearly always a read of
/// cached data (the file was just scanned, or its previous block read ahead), and handing each
/// such read to a blocking thread and back cost more in thread wake-ups than the read itself.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub(crate) fn read_cached(file: &File, offset: u64, size: usize) -> Option<Vec<u8>> {
    use std::os::fd::AsRawFd as _;
    let mut buf = Vec::with_capacity(size);
    while buf.len() < size {
        let (done, left) = (buf.len(), size - buf.len());
        let at = i64::try_from(offset + done as u64).ok()?;
        let rest = &mut buf.spare_capacity_mut()[..left];
        let iov = libc::iovec { iov_base: rest.as_mut_ptr().cast(), iov_len: left };
        // SAFETY: `iov` points into `buf`'s spare capacity, which outlives the call and is not
        // otherwise borrowed during it (the kernel only writes to it); the descriptor is open
        // for as long as `file` is borrowed.
        let n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, at, libc::RWF_NOWAIT) };
        // EAGAIN (not cached), end of file, or no RWF_NOWAIT on this kernel or file system.
        let Ok(n @ 1..) = usize::try_from(n) else { return None };
        // SAFETY: the kernel wrote `n` bytes (at most `left`) at the start of the spare
        // capacity, so the first `done + n` bytes are initialised and within the capacity.
        unsafe { buf.set_len(done + n.min(left)) };
    }
    Some(buf)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn read_cached(_file: &File, _offset: u64, _size: usize) -> Option<Vec<u8>> {
    None
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn holes_of_a_sized_file_have_no_data_and_written_blocks_have() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("t"))
            .unwrap();
        const BLOCK: u64 = 128 << 10;
        file.set_len(16 * BLOCK).unwrap();
        write_all_at(&file, &[1u8; BLOCK as usize], 5 * BLOCK).unwrap();
        // Written, not yet on disk (ext4's delayed allocation) and once synced: both are data.
        assert!(has_data(&file, 5 * BLOCK, BLOCK));
        file.sync_all().unwrap();
        assert!(has_data(&file, 5 * BLOCK, BLOCK));
        assert!(!has_data(&file, 0, BLOCK), "before the written block");
        assert!(!has_data(&file, 9 * BLOCK, BLOCK), "after it, to the end");
        assert!(has_data(&file, 4 * BLOCK, 2 * BLOCK), "a range that reaches into it");
    }

    #[test]
    fn cached_data_is_read_and_a_range_past_the_end_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        // Just written, so in the page cache (dirty pages are not dropped).
        let file = File::open(&path).unwrap();
        assert_eq!(read_cached(&file, 131_072, 131_072).as_deref(), Some(&data[131_072..262_144]));
        assert_eq!(read_cached(&file, 262_144, 300_000 - 262_144).as_deref(), Some(&data[262_144..]));
        assert_eq!(read_cached(&file, 262_144, 131_072), None, "the file ends first");
    }
}
