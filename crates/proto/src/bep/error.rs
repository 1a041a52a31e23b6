//! What can be wrong with BEP bytes: the wire codec's one error type.

use crate::identity::DeviceIdError;

/// Why bytes from a peer are not valid BEP (or, for the two encoding variants, why a message
/// cannot be sent).
///
/// Every decoding error means the peer broke the protocol: the connection cannot continue, and
/// the error's text is what a connection task sends as the Close reason. The texts follow
/// Syncthing 1.19's where it has one (`"a//b": filename not in canonical format`, `message
/// length 600000000 exceeds maximum 500000000`), so both sides log the same words. The
/// underlying cause, where there is one, is in [`std::error::Error::source`], not repeated in
/// the text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    // --- Hello --------------------------------------------------------------------------------
    /// The first four bytes are the magic of a protocol version before BEP v1 as Syncthing
    /// ≥ 0.14 speaks it.
    #[error(
        "the remote device speaks an older version of the protocol not compatible with this version \
         (magic {magic:#010x})"
    )]
    HelloTooOld { magic: u32 },
    /// The first four bytes are no magic we know.
    #[error("the remote device speaks an unknown (newer?) version of the protocol (magic {magic:#010x})")]
    HelloUnknownMagic { magic: u32 },
    /// A Hello longer than 32767 bytes, received or to be sent.
    #[error("hello message too big: {len} bytes, at most {max}")]
    HelloTooBig { len: usize, max: usize },
    /// The Hello's protobuf does not decode.
    #[error("unmarshalling hello")]
    Hello(#[source] prost::DecodeError),

    // --- Framing ------------------------------------------------------------------------------
    /// The header length, read as a signed 16-bit number (as Syncthing does), is negative.
    #[error("negative header length {len}")]
    NegativeHeaderLength { len: i16 },
    /// The header's protobuf does not decode.
    #[error("unmarshalling header")]
    Header(#[source] prost::DecodeError),
    /// The message length, read as a signed 32-bit number (as Syncthing does), is negative.
    #[error("negative message length {len}")]
    NegativeMessageLength { len: i32 },
    /// A message body longer than the limit (Syncthing's `MaxMessageLen`, 500,000,000 bytes),
    /// received or to be sent.
    #[error("message length {len} exceeds maximum {max}")]
    MessageTooLong { len: usize, max: usize },
    /// The header names a compression other than none (0) or LZ4 (1).
    #[error("unknown message compression {compression}")]
    UnknownCompression { compression: i32 },
    /// An LZ4 body shorter than its 4-byte uncompressed-length prefix.
    #[error("decompressing message: {len} bytes are too short for the uncompressed length")]
    Lz4MissingLength { len: usize },
    /// An LZ4 body announcing more uncompressed bytes than the decoder accepts.
    #[error("decompressing message: uncompressed length {len} exceeds maximum {max}")]
    Lz4TooLong { len: usize, max: usize },
    /// An LZ4 body announcing more uncompressed bytes than its block can possibly hold (LZ4 expands
    /// at most 255-fold).
    #[error("decompressing message: a block of {block_len} bytes cannot decompress to {len} bytes")]
    Lz4ImpossibleLength { len: usize, block_len: usize },
    /// The LZ4 block is corrupt or decompresses to more than its announced length.
    #[error("decompressing message")]
    Lz4(#[source] lz4_flex::block::DecompressError),
    /// A message that would take more memory once decoded than the decoder accepts
    /// ([`Limits::max_decoded`](super::Limits::max_decoded)): many small repeated entries, or
    /// protobuf groups (which BEP never uses).
    #[error("{kind} message would take more than {max} bytes decoded")]
    DecodedTooLarge { kind: &'static str, max: usize },
    /// A message body of a known type does not decode.
    #[error("unmarshalling {kind} message")]
    Message {
        kind: &'static str,
        #[source]
        source: prost::DecodeError,
    },
    /// [`FrameDecoder::next_message`](super::FrameDecoder::next_message) was called again after
    /// it had returned an error: the stream cannot be resynchronised.
    #[error("the frame decoder failed earlier and cannot continue")]
    DecoderFailed,

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
