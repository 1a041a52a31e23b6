//! What can be wrong with BEP bytes: the wire codec's one error type.

use crate::identity::DeviceIdError;

/// Why bytes from a peer are not valid BEP.
///
/// Every decoding error means the peer broke the protocol: the connection cannot continue, and
/// the error's text is what a connection task sends as the Close reason. The texts follow
/// Syncthing 1.19's where it has one (`"a//b": filename not in canonical format`), so both sides
/// log the same words. The
/// underlying cause, where there is one, is in [`std::error::Error::source`], not repeated in
/// the text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    // --- FileInfo checks (Syncthing's, plus what the domain types need) -----------------------
    /// `path.Clean(name) != name` in Go's terms: `a//b`, `./a`, `a/`, `a/../b`, or empty.
    #[error("{name:?}: filename not in canonical format")]
    FileNameNotCanonical { name: String },
    /// `.`, `..`, an absolute name, one starting with `../`, or one containing NUL.
    #[error("{name:?}: filename is invalid")]
    FileNameInvalid { name: String },
    /// A deleted entry that lists blocks.
    #[error("{name:?}: deleted file with non-empty block list")]
    DeletedWithBlocks { name: String },
    /// A directory that lists blocks.
    #[error("{name:?}: directory with non-empty block list")]
    DirectoryWithBlocks { name: String },
    /// A symlink that lists blocks (Syncthing v2 rejects this too).
    #[error("{name:?}: symlink with non-empty block list")]
    SymlinkWithBlocks { name: String },
    /// A file that is neither deleted nor invalid and has no blocks (an empty file has one
    /// zero-size block).
    #[error("{name:?}: file with empty block list")]
    FileWithoutBlocks { name: String },
    /// A `type` that is not FILE, DIRECTORY or one of the SYMLINK kinds.
    #[error("{name:?}: unknown file type {file_type}")]
    UnknownFileType { name: String, file_type: i32 },
    /// A negative file size.
    #[error("{name:?}: negative size {size}")]
    NegativeSize { name: String, size: i64 },
    /// A negative `block_size`.
    #[error("{name:?}: negative block size {block_size}")]
    NegativeBlockSize { name: String, block_size: i32 },
    /// A block with a negative offset.
    #[error("{name:?}: block {index} has negative offset {offset}")]
    NegativeBlockOffset { name: String, index: usize, offset: i64 },
    /// A block with a negative size.
    #[error("{name:?}: block {index} has negative size {size}")]
    NegativeBlockLength { name: String, index: usize, size: i32 },
    /// A block hash that is not a 32-byte SHA-256.
    #[error("{name:?}: block {index} has a hash of {len} bytes, not 32")]
    BlockHashLength { name: String, index: usize, len: usize },
    /// A symlink target that is not UTF-8.
    #[error("{name:?}: symlink target is not UTF-8")]
    SymlinkTargetNotUtf8 { name: String },

    // --- ClusterConfig ------------------------------------------------------------------------
    /// A `Device.id` that is not a raw 32-byte device ID.
    #[error("invalid device ID in cluster config")]
    DeviceId(#[source] DeviceIdError),
}
