//! BEP's framing: the Hello each side sends first, then length-prefixed messages, optionally
//! LZ4-compressed.
//!
//! ```text
//! Hello:    u32 BE magic 0x2EA7D90B | u16 BE length (≤ 32767) | Hello
//! messages: u16 BE header length (may be 0) | Header | u32 BE body length | body
//! LZ4 body: u32 BE uncompressed length | one raw LZ4 block (no frame format, no checksum)
//! ```
//!
//! Everything here is sans-IO: [`decode_hello`] looks at bytes the caller has buffered,
//! [`FrameDecoder`] takes bytes as they arrive and hands out whole messages, and
//! [`encode_hello`] and [`encode_message`] append to a caller's buffer.
//!
//! Block data is the bulk of what crosses a connection, so its path avoids copies: the
//! decoder's buffer is one the caller can read the transport into
//! ([`FrameDecoder::read_buffer`]), and an uncompressed Response's data is handed out as a view
//! of it; [`encode_response_head`] encodes a Response but its data, which the caller then
//! sends as it is.

use bytes::{Buf as _, Bytes, BytesMut};
use lz4_flex::block as lz4;
use prost::Message as _;

use super::WireError;
use super::wire::{self, Compression, Header, Hello, MessageCompression, MessageType};

/// The first four bytes of a BEP v1 Hello.
pub const HELLO_MAGIC: u32 = 0x2EA7_D90B;
/// Magics of protocol versions before BEP v1 as Syncthing ≥ 0.14 speaks it (the first word of an
/// old ClusterConfig, and the v0.13 Hello magic): reported as [`WireError::HelloTooOld`].
pub const OLD_HELLO_MAGICS: [u32; 3] = [0x0001_0000, 0x0001_0001, 0x9F79_BC40];
/// The longest Hello protobuf Syncthing reads.
pub const MAX_HELLO_LEN: usize = 32767;
/// The longest message body on the wire (Syncthing's `MaxMessageLen`).
pub const MAX_MESSAGE_LEN: usize = 500_000_000;
/// The longest body [`FrameDecoder`] accepts by default, on the wire and after decompression,
/// and the most its decoded message may cost in memory ([`Limits`]). Syncthing accepts bodies
/// up to [`MAX_MESSAGE_LEN`] and sets no other limit, but what it sends is far smaller: index
/// batches of at most 1000 files or about 250 KiB, cluster configs of a few KiB, and Responses
/// of at most one 16 MiB block. 32 MiB leaves twice the largest of those, and a single file of
/// up to about 7 TiB (450,000 blocks of 16 MiB) still fits one Index entry, while a hostile
/// peer can make one connection hold at most a few times 32 MiB.
pub const MAX_RECEIVE_LEN: usize = 32 << 20;
/// The longest decompressed body [`FrameDecoder`] accepts by default (see [`MAX_RECEIVE_LEN`]).
pub const MAX_UNCOMPRESSED_LEN: usize = MAX_RECEIVE_LEN;
/// Messages shorter than this (uncompressed protobuf bytes) are never compressed.
pub const COMPRESSION_THRESHOLD: usize = 128;
/// The protobuf key of a Response's `data` (field 2, length-delimited).
const RESPONSE_DATA_KEY: u8 = 2 << 3 | 2;
/// LZ4 expands at most 255-fold (each extra match-length byte adds up to 255 bytes), so a block
/// announcing more is rejected before anything is allocated for it.
const LZ4_MAX_EXPANSION: usize = 255;

/// A message after the Hello: the decoder's output and the encoder's input.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    ClusterConfig(wire::ClusterConfig),
    Index(wire::Index),
    IndexUpdate(wire::IndexUpdate),
    Request(wire::Request),
    Response(wire::Response),
    DownloadProgress(wire::DownloadProgress),
    Ping,
    Close(wire::Close),
}

impl Message {
    /// The type announced in the message's header.
    pub fn message_type(&self) -> MessageType {
        match self {
            Self::ClusterConfig(_) => MessageType::ClusterConfig,
            Self::Index(_) => MessageType::Index,
            Self::IndexUpdate(_) => MessageType::IndexUpdate,
            Self::Request(_) => MessageType::Request,
            Self::Response(_) => MessageType::Response,
            Self::DownloadProgress(_) => MessageType::DownloadProgress,
            Self::Ping => MessageType::Ping,
            Self::Close(_) => MessageType::Close,
        }
    }

    /// The length of the uncompressed protobuf body.
    pub fn encoded_len(&self) -> usize {
        match self {
            Self::ClusterConfig(m) => m.encoded_len(),
            Self::Index(m) => m.encoded_len(),
            Self::IndexUpdate(m) => m.encoded_len(),
            Self::Request(m) => m.encoded_len(),
            Self::Response(m) => m.encoded_len(),
            Self::DownloadProgress(m) => m.encoded_len(),
            Self::Ping => 0,
            Self::Close(m) => m.encoded_len(),
        }
    }

    fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        match self {
            Self::ClusterConfig(m) => put(m, out),
            Self::Index(m) => put(m, out),
            Self::IndexUpdate(m) => put(m, out),
            Self::Request(m) => put(m, out),
            Self::Response(m) => put(m, out),
            Self::DownloadProgress(m) => put(m, out),
            Self::Ping => Ok(()),
            Self::Close(m) => put(m, out),
        }
    }

    /// Decodes a body held in [`Bytes`], so that a Response's data is a view of it, not a copy.
    fn decode(t: MessageType, body: Bytes) -> Result<Self, WireError> {
        let err = |source| WireError::Message { kind: type_name(t), source };
        Ok(match t {
            MessageType::ClusterConfig => {
                Self::ClusterConfig(wire::ClusterConfig::decode(body).map_err(err)?)
            }
            MessageType::Index => Self::Index(wire::Index::decode(body).map_err(err)?),
            MessageType::IndexUpdate => Self::IndexUpdate(wire::IndexUpdate::decode(body).map_err(err)?),
            MessageType::Request => Self::Request(wire::Request::decode(body).map_err(err)?),
            MessageType::Response => Self::Response(wire::Response::decode(body).map_err(err)?),
            MessageType::DownloadProgress => {
                Self::DownloadProgress(wire::DownloadProgress::decode(body).map_err(err)?)
            }
            MessageType::Ping => {
                wire::Ping::decode(body).map_err(err)?;
                Self::Ping
            }
            MessageType::Close => Self::Close(wire::Close::decode(body).map_err(err)?),
        })
    }
}

/// The name Syncthing's logs and Close reasons use for a message type.
fn type_name(t: MessageType) -> &'static str {
    match t {
        MessageType::ClusterConfig => "cluster-config",
        MessageType::Index => "index",
        MessageType::IndexUpdate => "index-update",
        MessageType::Request => "request",
        MessageType::Response => "response",
        MessageType::DownloadProgress => "download-progress",
        MessageType::Ping => "ping",
        MessageType::Close => "close",
    }
}

/// Appends a protobuf message to `out`. Encoding into a `Vec` only fails when the message would
/// not fit in memory at all.
fn put(m: &impl prost::Message, out: &mut Vec<u8>) -> Result<(), WireError> {
    m.encode(out).map_err(|e| WireError::MessageTooLong { len: e.required_capacity(), max: e.remaining() })
}

fn be_u16(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..)?.first_chunk::<2>().map(|c| u16::from_be_bytes(*c))
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..)?.first_chunk::<4>().map(|c| u32::from_be_bytes(*c))
}

// ---------------------------------------------------------------------------------------------
// Hello
// ---------------------------------------------------------------------------------------------

/// Appends `hello` with its magic and length to `out`.
pub fn encode_hello(hello: &Hello, out: &mut Vec<u8>) -> Result<(), WireError> {
    let len = hello.encoded_len();
    let Ok(len16) = u16::try_from(len) else {
        return Err(WireError::HelloTooBig { len, max: MAX_HELLO_LEN });
    };
    if len > MAX_HELLO_LEN {
        return Err(WireError::HelloTooBig { len, max: MAX_HELLO_LEN });
    }
    out.reserve(6 + len);
    out.extend_from_slice(&HELLO_MAGIC.to_be_bytes());
    out.extend_from_slice(&len16.to_be_bytes());
    put(hello, out)
}

/// Decodes the Hello at the start of `buf`, the bytes received so far.
///
/// Returns `Ok(None)` while the Hello is incomplete, and `Ok(Some((hello, n)))` once it is
/// there, `n` being its length with magic and length prefix: the bytes after it are the first
/// frames, for a [`FrameDecoder`]. A wrong magic is reported as soon as four bytes are there.
pub fn decode_hello(buf: &[u8]) -> Result<Option<(Hello, usize)>, WireError> {
    let Some(magic) = be_u32(buf, 0) else { return Ok(None) };
    if magic != HELLO_MAGIC {
        return Err(if OLD_HELLO_MAGICS.contains(&magic) {
            WireError::HelloTooOld { magic }
        } else {
            WireError::HelloUnknownMagic { magic }
        });
    }
    let Some(len) = be_u16(buf, 4) else { return Ok(None) };
    let len = usize::from(len);
    if len > MAX_HELLO_LEN {
        return Err(WireError::HelloTooBig { len, max: MAX_HELLO_LEN });
    }
    let Some(body) = buf.get(6..6 + len) else { return Ok(None) };
    let hello = Hello::decode(body).map_err(WireError::Hello)?;
    Ok(Some((hello, 6 + len)))
}

// ---------------------------------------------------------------------------------------------
// Encoding messages
// ---------------------------------------------------------------------------------------------

/// Appends `msg` as one frame to `out`, compressed or not by Syncthing's sender policy for the
/// peer's `compression` setting:
///
/// * [`Compression::Metadata`] (the default) compresses every type except Response,
///   [`Compression::Always`] every type, [`Compression::Never`] none;
/// * only messages of at least [`COMPRESSION_THRESHOLD`] bytes are compressed, and the LZ4 body
///   (with its length prefix) is used only if it is at most `n - n/32` bytes for an `n`-byte
///   message (a saving of at least 1/32), else the message goes uncompressed;
/// * messages longer than [`MAX_UNCOMPRESSED_LEN`] go uncompressed, so that every frame this
///   writes is one [`FrameDecoder`] accepts.
///
/// On error nothing is appended.
pub fn encode_message(msg: &Message, compression: Compression, out: &mut Vec<u8>) -> Result<(), WireError> {
    let t = msg.message_type();
    let len = msg.encoded_len();
    if compresses(t, len, compression) {
        let mut plain = Vec::with_capacity(len);
        msg.encode_body(&mut plain)?;
        let block = lz4::compress(&plain);
        let body_len = 4 + block.len();
        if let Ok(len32) = u32::try_from(plain.len())
            && body_len <= plain.len() - plain.len() / 32
        {
            put_head(out, t, MessageCompression::Lz4, body_len)?;
            out.reserve(body_len);
            out.extend_from_slice(&len32.to_be_bytes());
            out.extend_from_slice(&block);
        } else {
            put_head(out, t, MessageCompression::None, plain.len())?;
            out.extend_from_slice(&plain);
        }
        return Ok(());
    }
    put_head(out, t, MessageCompression::None, len)?;
    out.reserve(len);
    msg.encode_body(out)
}

/// Whether [`encode_message`] tries LZ4 on a message of type `t` that is `len` bytes
/// uncompressed (see there).
fn compresses(t: MessageType, len: usize, compression: Compression) -> bool {
    (COMPRESSION_THRESHOLD..=MAX_UNCOMPRESSED_LEN).contains(&len)
        && match compression {
            Compression::Never => false,
            Compression::Always => true,
            Compression::Metadata => t != MessageType::Response,
        }
}

/// Appends the frame [`encode_message`] writes for a successful Response with `data`, except
/// the data itself: the caller sends `data` right after the bytes appended, as it is, instead
/// of copying it into `out`. The data's field is the body's last (the code, after it, is 0 and
/// so not encoded), which makes this possible.
///
/// Returns `Ok(false)`, appending nothing, when `compression` would have the message
/// compressed: it must then go through [`encode_message`].
pub fn encode_response_head(
    id: i32,
    data: &[u8],
    compression: Compression,
    out: &mut Vec<u8>,
) -> Result<bool, WireError> {
    let response = wire::Response { id, data: Bytes::new(), code: wire::ErrorCode::NoError as i32 };
    let data_field =
        if data.is_empty() { 0 } else { 1 + prost::length_delimiter_len(data.len()) + data.len() };
    let len = response.encoded_len() + data_field;
    if compresses(MessageType::Response, len, compression) {
        return Ok(false);
    }
    put_head(out, MessageType::Response, MessageCompression::None, len)?;
    // The id alone (the data left out, the code 0): prost encodes fields in number order.
    put(&response, out)?;
    if !data.is_empty() {
        out.push(RESPONSE_DATA_KEY);
        prost::encode_length_delimiter(data.len(), out)
            .map_err(|e| WireError::MessageTooLong { len: e.required_capacity(), max: e.remaining() })?;
    }
    Ok(true)
}

/// Appends header length, header and body length, after checking the body length. Room for
/// the body is the caller's to reserve: it may not go into `out` at all.
fn put_head(
    out: &mut Vec<u8>,
    t: MessageType,
    compression: MessageCompression,
    body_len: usize,
) -> Result<(), WireError> {
    let too_long = WireError::MessageTooLong { len: body_len, max: MAX_MESSAGE_LEN };
    if body_len > MAX_MESSAGE_LEN {
        return Err(too_long);
    }
    let Ok(body_len32) = u32::try_from(body_len) else { return Err(too_long) };
    let header = Header { r#type: t as i32, compression: compression as i32 };
    let header_len = header.encoded_len(); // at most 4 bytes
    let Ok(header_len16) = u16::try_from(header_len) else { return Err(too_long) };
    out.reserve(2 + header_len + 4);
    out.extend_from_slice(&header_len16.to_be_bytes());
    put(&header, out)?;
    out.extend_from_slice(&body_len32.to_be_bytes());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Decoding messages
// ---------------------------------------------------------------------------------------------

/// What a [`FrameDecoder`] accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The longest body on the wire, compressed or not. Default: [`MAX_RECEIVE_LEN`]
    /// (Syncthing's own limit, [`MAX_MESSAGE_LEN`], would let one frame hold 500 MB).
    pub max_message_len: usize,
    /// The longest body after LZ4 decompression. Default: [`MAX_UNCOMPRESSED_LEN`].
    pub max_uncompressed_len: usize,
    /// The most memory the decoded message may take, as [`decoded_cost`] estimates it before
    /// decoding. Default: [`MAX_RECEIVE_LEN`]. Protobuf's repeated fields make this necessary:
    /// an empty `FileInfo` is 2 bytes on the wire and hundreds once decoded.
    pub max_decoded: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_len: MAX_RECEIVE_LEN,
            max_uncompressed_len: MAX_UNCOMPRESSED_LEN,
            max_decoded: MAX_RECEIVE_LEN,
        }
    }
}

/// Turns the bytes after the Hello, as they arrive in any pieces, into [`Message`]s.
///
/// [`push`](Self::push) what was received (or read it straight into
/// [`read_buffer`](Self::read_buffer)), then call [`next_message`](Self::next_message) until it
/// returns `Ok(None)` (more bytes needed). Messages of unknown types are skipped, as Syncthing
/// does. An error means the stream is broken: the connection must be closed, with the error as
/// the reason; the decoder answers [`WireError::DecoderFailed`] from then on.
///
/// Memory: the decoder holds the bytes received and not yet decoded, and nothing is allocated
/// for a length the peer announces before the bytes arrive. An LZ4 body is decompressed into a
/// buffer of its announced size once the whole body is there, after checking that size against
/// [`Limits::max_uncompressed_len`] and against what the block can hold (255 times its length).
/// The data of an uncompressed Response is a view of the buffer the frame arrived in, not a
/// copy: while it is held, it keeps that buffer's allocation (at most about what was received
/// into it, plus the room [`read_buffer`](Self::read_buffer) was asked for) from being reused.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    /// The bytes received and not yet decoded: what is decoded is split off its front.
    buf: BytesMut,
    state: State,
    limits: Limits,
    /// The [`decoded_cost`] of the message `next_message` returned last.
    last_cost: usize,
}

#[derive(Clone, Copy, Debug, Default)]
enum State {
    /// Waiting for the header length and the header.
    #[default]
    Header,
    /// Header decoded; waiting for the body length.
    Length {
        msg_type: i32,
        compression: MessageCompression,
    },
    /// Waiting for the body of `len` bytes.
    Body {
        msg_type: i32,
        compression: MessageCompression,
        len: usize,
    },
    Failed,
}

/// [`FrameDecoder::read_buffer`] makes room for this many reads at once.
const ROOM_READS: usize = 4;
/// An empty buffer keeps at most this much capacity, so that one large message does not pin its
/// size for the rest of the connection.
const KEEP_CAPACITY: usize = 1 << 20;

impl FrameDecoder {
    /// A decoder with the default [`Limits`].
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_limits(limits: Limits) -> Self {
        Self { limits, ..Self::default() }
    }

    /// Adds received bytes (a copy: [`read_buffer`](Self::read_buffer) saves it).
    pub fn push(&mut self, bytes: &[u8]) {
        if matches!(self.state, State::Failed) {
            return;
        }
        self.reserve(bytes.len());
        self.buf.extend_from_slice(bytes);
    }

    /// The buffer of received bytes, with room for at least `min` more, for the caller to read
    /// the transport into directly (as tokio's `read_buf` does, into the spare capacity): what
    /// it appends is decoded by the next [`next_message`](Self::next_message), as if pushed.
    /// The caller must only append to it.
    ///
    /// Room is made, whatever length a frame announced, only when less than `min` is left, and
    /// then for four times `min` (`ROOM_READS`): making room moves the bytes of the frame being
    /// received (to the front, or to a new allocation while what was decoded before is held),
    /// which must not happen on every read. Space before the buffered bytes is reused once
    /// nothing decoded from it is held any more. After a failure, what is appended is dropped.
    pub fn read_buffer(&mut self, min: usize) -> &mut BytesMut {
        if matches!(self.state, State::Failed) {
            self.buf.clear();
        }
        let room = min.saturating_mul(ROOM_READS);
        if self.buf.capacity() - self.buf.len() < min
            || (self.buf.is_empty() && self.buf.capacity() > KEEP_CAPACITY.max(room))
        {
            self.reserve(room);
        }
        &mut self.buf
    }

    /// The bytes buffered and not yet decoded: a Session looks for the Hello in them.
    pub(super) fn unread(&self) -> &[u8] {
        &self.buf
    }

    /// Drops the first `n` buffered bytes (at most those there): the Hello, once decoded from
    /// [`unread`](Self::unread), before any frame was.
    pub(super) fn skip(&mut self, n: usize) {
        self.buf.advance(n.min(self.buf.len()));
    }

    /// Makes room for `min` more bytes, letting go of a large allocation once it holds nothing
    /// more to decode: reserving reclaims all of it when nothing decoded from it is held.
    fn reserve(&mut self, min: usize) {
        self.buf.reserve(min);
        if self.buf.is_empty() && self.buf.capacity() > KEEP_CAPACITY.max(min) {
            self.buf = BytesMut::with_capacity(min);
        }
    }

    /// The estimated memory ([`decoded_cost`]) of the message [`next_message`](Self::next_message)
    /// returned last: what a caller holding decoded messages counts against its own bound.
    pub fn last_cost(&self) -> usize {
        self.last_cost
    }

    /// How many received bytes are not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next whole message, `Ok(None)` if more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Message>, WireError> {
        match self.advance() {
            Ok(m) => Ok(m),
            Err(e) => {
                self.state = State::Failed;
                // The rest of the stream is meaningless; drop it.
                self.buf = BytesMut::new();
                Err(e)
            }
        }
    }

    fn advance(&mut self) -> Result<Option<Message>, WireError> {
        loop {
            match self.state {
                State::Failed => return Err(WireError::DecoderFailed),
                State::Header => {
                    let Some(raw) = be_u16(&self.buf, 0) else { return Ok(None) };
                    // Syncthing reads the length as an int16.
                    let Ok(header_len) = usize::try_from(raw as i16) else {
                        return Err(WireError::NegativeHeaderLength { len: raw as i16 });
                    };
                    let Some(header) = self.buf.get(2..2 + header_len) else { return Ok(None) };
                    let header = Header::decode(header).map_err(WireError::Header)?;
                    self.buf.advance(2 + header_len);
                    self.state = State::Length {
                        msg_type: header.r#type,
                        compression: MessageCompression::try_from(header.compression)
                            .map_err(|_| WireError::UnknownCompression { compression: header.compression })?,
                    };
                }
                State::Length { msg_type, compression } => {
                    let Some(raw) = be_u32(&self.buf, 0) else { return Ok(None) };
                    // Syncthing reads the length as an int32.
                    let Ok(len) = usize::try_from(raw as i32) else {
                        return Err(WireError::NegativeMessageLength { len: raw as i32 });
                    };
                    if len > self.limits.max_message_len {
                        return Err(WireError::MessageTooLong { len, max: self.limits.max_message_len });
                    }
                    self.buf.advance(4);
                    self.state = State::Body { msg_type, compression, len };
                }
                State::Body { msg_type, compression, len } => {
                    if self.buf.len() < len {
                        return Ok(None);
                    }
                    let body = self.buf.split_to(len).freeze();
                    self.state = State::Header;
                    if let Some((message, cost)) = decode_body(msg_type, compression, body, &self.limits)? {
                        self.last_cost = cost;
                        return Ok(Some(message));
                    }
                    // An unknown type: skipped, on to the next frame.
                }
            }
        }
    }
}

/// Decompresses and decodes one body; `None` for a message type this side does not know.
/// With the message, its [`decoded_cost`].
fn decode_body(
    msg_type: i32,
    compression: MessageCompression,
    body: Bytes,
    limits: &Limits,
) -> Result<Option<(Message, usize)>, WireError> {
    let plain = match compression {
        MessageCompression::None => body,
        // Like Syncthing, decompress even a message of an unknown type: a corrupt one is an
        // error either way.
        MessageCompression::Lz4 => Bytes::from(decompress(&body, limits.max_uncompressed_len)?),
    };
    match MessageType::try_from(msg_type) {
        Ok(t) => {
            let cost = decoded_cost(t, &plain, limits.max_decoded);
            if cost > limits.max_decoded {
                return Err(WireError::DecodedTooLarge { kind: type_name(t), max: limits.max_decoded });
            }
            Message::decode(t, plain).map(|m| Some((m, cost)))
        }
        Err(_) => Ok(None),
    }
}

/// The shapes of BEP messages that hold other messages: what [`decoded_cost`] walks into.
#[derive(Clone, Copy, Debug)]
enum Shape {
    ClusterConfig,
    Folder,
    Device,
    Index,
    FileInfo,
    BlockInfo,
    Vector,
    Counter,
    DownloadProgress,
    ProgressUpdate,
    /// Request, Response, Close, Ping: strings and bytes only.
    Flat,
}

impl Shape {
    fn of(t: MessageType) -> Self {
        match t {
            MessageType::ClusterConfig => Self::ClusterConfig,
            MessageType::Index | MessageType::IndexUpdate => Self::Index,
            MessageType::DownloadProgress => Self::DownloadProgress,
            MessageType::Request | MessageType::Response | MessageType::Ping | MessageType::Close => {
                Self::Flat
            }
        }
    }

    /// The message a length-delimited field holds, by field number (`proto/bep.proto`).
    fn child(self, field: u64) -> Option<Self> {
        Some(match (self, field) {
            (Self::ClusterConfig, 1) => Self::Folder,
            (Self::Folder, 16) => Self::Device,
            (Self::Index, 2) => Self::FileInfo,
            (Self::FileInfo, 9) | (Self::ProgressUpdate, 3) => Self::Vector,
            (Self::FileInfo, 16) => Self::BlockInfo,
            (Self::Vector, 1) => Self::Counter,
            (Self::DownloadProgress, 2) => Self::ProgressUpdate,
            _ => return None,
        })
    }

    /// What one decoded value of this shape takes beside what it points to.
    fn size(self) -> usize {
        use std::mem::size_of;
        match self {
            Self::ClusterConfig => size_of::<wire::ClusterConfig>(),
            Self::Folder => size_of::<wire::Folder>(),
            Self::Device => size_of::<wire::Device>(),
            Self::Index => size_of::<wire::IndexUpdate>(),
            Self::FileInfo => size_of::<wire::FileInfo>(),
            Self::BlockInfo => size_of::<wire::BlockInfo>(),
            Self::Vector => size_of::<wire::Vector>(),
            Self::Counter => size_of::<wire::Counter>(),
            Self::DownloadProgress => size_of::<wire::DownloadProgress>(),
            Self::ProgressUpdate => size_of::<wire::FileDownloadProgressUpdate>(),
            Self::Flat => size_of::<wire::Response>(),
        }
    }
}

/// Estimates, without decoding or allocating, the memory a message body of type `t` takes once
/// decoded: every nested message's struct, every string's and byte field's length, every
/// repeated number's slot. Stops counting once past `max` (the result is then above `max`).
///
/// The protobuf is walked by its tags alone; a body that is not well-formed stops the walk,
/// and decoding then reports it. Groups (wire types 3 and 4, unused by BEP) count as malformed.
pub fn decoded_cost(t: MessageType, body: &[u8], max: usize) -> usize {
    let shape = Shape::of(t);
    let mut cost = shape.size();
    walk(shape, body, &mut cost, max);
    cost
}

fn walk(shape: Shape, mut b: &[u8], cost: &mut usize, max: usize) {
    while !b.is_empty() && *cost <= max {
        let Some(key) = varint(&mut b) else { return };
        let field = key >> 3;
        match key & 7 {
            0 => {
                if varint(&mut b).is_none() {
                    return;
                }
                // The one repeated number BEP sends unpacked: DownloadProgress block indexes.
                if matches!(shape, Shape::ProgressUpdate) && field == 4 {
                    *cost += 4;
                }
            }
            1 => match b.get(8..) {
                Some(rest) => b = rest,
                None => return,
            },
            5 => match b.get(4..) {
                Some(rest) => b = rest,
                None => return,
            },
            2 => {
                let Some(len) = varint(&mut b).and_then(|l| usize::try_from(l).ok()) else { return };
                let (Some(inner), Some(rest)) = (b.get(..len), b.get(len..)) else { return };
                b = rest;
                match shape.child(field) {
                    Some(child) => {
                        *cost += child.size();
                        walk(child, inner, cost, max);
                    }
                    // A string or bytes (their length), or packed block indexes (an i32 for
                    // each byte on the wire at most: a varint is at least one byte).
                    None if matches!(shape, Shape::ProgressUpdate) && field == 4 => *cost += len * 4,
                    None => *cost += len,
                }
            }
            _ => {
                *cost = cost.saturating_add(max).saturating_add(1);
                return;
            }
        }
    }
}

/// A protobuf varint from the front of `b`, advancing it; `None` if cut short or too long.
fn varint(b: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *b = &b[i + 1..];
            return Some(v);
        }
    }
    None
}

/// Decompresses an LZ4 body: a `u32` BE uncompressed length and one raw LZ4 block.
///
/// Like Syncthing, output shorter than the announced length is accepted; longer output is an
/// error.
pub(super) fn decompress(body: &[u8], max: usize) -> Result<Vec<u8>, WireError> {
    let Some((prefix, block)) = body.split_first_chunk::<4>() else {
        return Err(WireError::Lz4MissingLength { len: body.len() });
    };
    let len = usize::try_from(u32::from_be_bytes(*prefix)).unwrap_or(usize::MAX);
    if len > max {
        return Err(WireError::Lz4TooLong { len, max });
    }
    if len > block.len().saturating_mul(LZ4_MAX_EXPANSION) {
        return Err(WireError::Lz4ImpossibleLength { len, block_len: block.len() });
    }
    if block.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = vec![0; len];
    let n = lz4::decompress_into(block, &mut out).map_err(WireError::Lz4)?;
    out.truncate(n);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bep::wire::{Close, ClusterConfig, ErrorCode, Index, Request, Response};

    /// A whole frame with a raw header, for hand-made inputs.
    fn frame(header: &[u8], body: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&u16::try_from(header.len()).unwrap().to_be_bytes());
        f.extend_from_slice(header);
        f.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
        f.extend_from_slice(body);
        f
    }

    fn encode(msg: &Message, compression: Compression) -> Vec<u8> {
        let mut out = Vec::new();
        encode_message(msg, compression, &mut out).unwrap();
        out
    }

    /// Decodes a stream pushed in one piece: every message, then the error if one ends it.
    fn decode_all(bytes: &[u8]) -> (Vec<Message>, Option<WireError>) {
        let mut d = FrameDecoder::new();
        d.push(bytes);
        let mut out = Vec::new();
        loop {
            match d.next_message() {
                Ok(Some(m)) => out.push(m),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    fn decode_one(bytes: &[u8]) -> Result<Option<Message>, WireError> {
        let mut d = FrameDecoder::new();
        d.push(bytes);
        d.next_message()
    }

    /// An LZ4 body: the uncompressed length (as announced) and the block.
    fn lz4_body(announced: u32, block: &[u8]) -> Vec<u8> {
        let mut b = announced.to_be_bytes().to_vec();
        b.extend_from_slice(block);
        b
    }

    fn big_index(files: usize) -> Message {
        let file = |i: usize| wire::FileInfo {
            name: format!("dir/file-{i}.txt"),
            size: 1000,
            permissions: 0o644,
            modified_s: 1_795_268_468,
            sequence: i64::try_from(i).unwrap() + 1,
            block_size: 131_072,
            blocks: vec![wire::BlockInfo { offset: 0, size: 1000, hash: vec![7; 32], weak_hash: 0 }],
            ..Default::default()
        };
        Message::Index(Index { folder: "f".into(), files: (0..files).map(file).collect(), last_sequence: 0 })
    }

    fn compression_of(frame: &[u8]) -> i32 {
        let header_len = usize::from(u16::from_be_bytes([frame[0], frame[1]]));
        Header::decode(&frame[2..2 + header_len]).unwrap().compression
    }

    #[test]
    fn ping_frame_is_eight_bytes() {
        let bytes = [0x00, 0x02, 0x08, 0x06, 0x00, 0x00, 0x00, 0x00];
        assert_eq!(encode(&Message::Ping, Compression::Always), bytes);
        assert_eq!(decode_one(&bytes).unwrap(), Some(Message::Ping));
    }

    #[test]
    fn empty_cluster_config_is_six_zero_bytes() {
        let cc = Message::ClusterConfig(ClusterConfig::default());
        assert_eq!(encode(&cc, Compression::Metadata), [0; 6]);
        assert_eq!(decode_one(&[0; 6]).unwrap(), Some(cc));
    }

    #[test]
    fn unknown_message_types_are_skipped() {
        // Type 42 with a body that is no protobuf at all, then a Ping.
        let mut bytes = frame(&[0x08, 42], b"\xff\xff future message");
        // Type 42, LZ4-compressed: decompressed (as Syncthing does), then skipped.
        let plain = b"a future message, compressed".repeat(8);
        bytes.extend(frame(&[0x08, 42, 0x10, 0x01], &lz4_body(plain.len() as u32, &lz4::compress(&plain))));
        bytes.extend(encode(&Message::Ping, Compression::Never));
        let (messages, err) = decode_all(&bytes);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(messages, [Message::Ping]);
    }

    #[test]
    fn unknown_compression_is_rejected() {
        let bytes = frame(&[0x08, 0x06, 0x10, 0x02], &[]);
        assert!(matches!(decode_one(&bytes), Err(WireError::UnknownCompression { compression: 2 })));
        assert_eq!(
            decode_one(&bytes).unwrap_err().to_string(),
            "unknown message compression 2",
            "Syncthing's wording"
        );
    }

    #[test]
    fn negative_lengths_are_rejected() {
        assert!(matches!(decode_one(&[0x80, 0x00]), Err(WireError::NegativeHeaderLength { len: -32768 })));
        assert!(matches!(
            decode_one(&[0x00, 0x00, 0xff, 0xff, 0xff, 0xff]),
            Err(WireError::NegativeMessageLength { len: -1 })
        ));
    }

    /// Syncthing's limits: 500 MB on the wire, nothing else.
    fn syncthing_limits() -> Limits {
        Limits {
            max_message_len: MAX_MESSAGE_LEN,
            max_uncompressed_len: MAX_UNCOMPRESSED_LEN,
            max_decoded: usize::MAX,
        }
    }

    #[test]
    fn oversized_message_is_rejected_before_its_body_arrives() {
        let mut len = 500_000_001u32.to_be_bytes().to_vec();
        len.splice(0..0, [0, 0]);
        let mut d = FrameDecoder::with_limits(syncthing_limits());
        d.push(&len);
        let err = d.next_message().unwrap_err();
        assert!(matches!(err, WireError::MessageTooLong { len: 500_000_001, max: 500_000_000 }));
        assert_eq!(err.to_string(), "message length 500000001 exceeds maximum 500000000");
        // By default, a 500 MB frame is refused as soon as its length is there.
        let mut len = 500_000_000u32.to_be_bytes().to_vec();
        len.splice(0..0, [0, 0]);
        let err = decode_one(&len).unwrap_err();
        assert!(
            matches!(err, WireError::MessageTooLong { len: 500_000_000, max: MAX_RECEIVE_LEN }),
            "{err:?}"
        );
    }

    #[test]
    fn announced_length_allocates_nothing_until_the_bytes_arrive() {
        // A Request announced at 400 MB with its first 100 bytes: the decoder waits, holding
        // only what it was given.
        let mut d = FrameDecoder::with_limits(syncthing_limits());
        d.push(&[0x00, 0x02, 0x08, 0x03]);
        d.push(&400_000_000u32.to_be_bytes());
        d.push(&[0x0a; 100]);
        assert!(d.next_message().unwrap().is_none());
        assert_eq!(d.buffered(), 100);
        assert!(d.buf.capacity() < 4096, "capacity {}", d.buf.capacity());
        // The exact maximum is accepted (and waited for).
        let mut d = FrameDecoder::new();
        d.push(&[0x00, 0x00]);
        d.push(&u32::try_from(MAX_RECEIVE_LEN).unwrap().to_be_bytes());
        assert!(d.next_message().unwrap().is_none());
        assert!(d.buf.capacity() < 4096);
    }

    /// An Index body of `n` empty FileInfos: two bytes each on the wire.
    fn empty_files_body(n: usize) -> Vec<u8> {
        [0x12, 0x00].repeat(n)
    }

    #[test]
    fn many_empty_entries_are_refused_before_decoding() {
        // A million empty FileInfos: 2 MB on the wire, hundreds of MB decoded.
        let body = empty_files_body(1_000_000);
        let cost = decoded_cost(MessageType::Index, &body, usize::MAX);
        assert!(cost >= 1_000_000 * std::mem::size_of::<wire::FileInfo>(), "{cost}");
        let err = decode_one(&frame(&[0x08, 0x01], &body)).unwrap_err();
        assert!(matches!(err, WireError::DecodedTooLarge { kind: "index", max: MAX_RECEIVE_LEN }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("index message would take more than {MAX_RECEIVE_LEN} bytes decoded")
        );
        // The same through LZ4, which makes it 8 KiB on the wire.
        let body = empty_files_body(8 << 20);
        let compressed = lz4_body(u32::try_from(body.len()).unwrap(), &lz4::compress(&body));
        assert!(compressed.len() < 100 << 10, "{}", compressed.len());
        let err = decode_one(&frame(&[0x08, 0x02, 0x10, 0x01], &compressed)).unwrap_err();
        assert!(matches!(err, WireError::DecodedTooLarge { kind: "index-update", .. }), "{err:?}");
        // Empty blocks and empty version counters in one file, likewise.
        let mut file = vec![0x0a, 0x01, b'a'];
        file.extend([0x82, 0x01, 0x00].repeat(1 << 20)); // blocks, field 16
        let mut body = vec![0x12];
        let mut len = file.len();
        while len >= 0x80 {
            body.push((len as u8) | 0x80);
            len >>= 7;
        }
        body.push(len as u8);
        body.extend(&file);
        assert!(matches!(decode_one(&frame(&[0x08, 0x01], &body)), Err(WireError::DecodedTooLarge { .. })));
        // A protobuf group, which prost would skip without counting, is refused.
        assert!(matches!(
            decode_one(&frame(&[0x08, 0x01], &[0x1b, 0x1c])),
            Err(WireError::DecodedTooLarge { .. })
        ));
    }

    #[test]
    fn what_syncthing_sends_fits_the_limits() {
        // An index batch of 1000 files, as Syncthing sends at most.
        let index = big_index(1000);
        let bytes = encode(&index, Compression::Always);
        assert_eq!(decode_one(&bytes).unwrap(), Some(index));
        // A Response carrying one 16 MiB block, compressed or not.
        let data = vec![7u8; 16 << 20];
        let response = Message::Response(Response { id: 1, data: data.into(), code: 0 });
        for c in [Compression::Never, Compression::Always] {
            assert_eq!(decode_one(&encode(&response, c)).unwrap().as_ref(), Some(&response));
        }
        // A file of 400,000 blocks (6 TiB of 16 MiB blocks) in one entry.
        let file = wire::FileInfo {
            name: "huge.img".into(),
            size: 400_000 << 24,
            block_size: 16 << 20,
            blocks: (0..400_000)
                .map(|i| wire::BlockInfo { offset: i << 24, size: 16 << 20, hash: vec![1; 32], weak_hash: 0 })
                .collect(),
            ..Default::default()
        };
        let index = Message::Index(Index { folder: "f".into(), files: vec![file], last_sequence: 1 });
        assert!(decode_one(&encode(&index, Compression::Never)).unwrap().is_some());
    }

    #[test]
    fn the_estimate_is_not_below_what_decoding_takes() {
        // Strings and block hashes are counted with the structs that hold them.
        let Message::Index(index) = big_index(100) else { unreachable!() };
        let body = index.encode_to_vec();
        let heap: usize = index
            .files
            .iter()
            .map(|f| f.name.len() + f.blocks.len() * (32 + std::mem::size_of::<wire::BlockInfo>()))
            .sum();
        let structs = index.files.len() * std::mem::size_of::<wire::FileInfo>();
        assert!(decoded_cost(MessageType::Index, &body, usize::MAX) >= heap + structs);
    }

    #[test]
    fn limits_are_configurable() {
        let limits = Limits { max_message_len: 10, max_uncompressed_len: 20, max_decoded: 1 << 20 };
        let mut d = FrameDecoder::with_limits(limits);
        d.push(&frame(&[0x08, 0x07], &[0x0a; 11]));
        assert!(matches!(d.next_message(), Err(WireError::MessageTooLong { len: 11, max: 10 })));
        let mut d = FrameDecoder::with_limits(limits);
        d.push(&frame(&[0x08, 0x07, 0x10, 0x01], &lz4_body(21, &[0x10; 6])));
        assert!(matches!(d.next_message(), Err(WireError::Lz4TooLong { len: 21, max: 20 })));
    }

    #[test]
    fn truncated_input_waits_then_completes() {
        let msg = Message::Request(Request {
            id: 7,
            folder: "f".into(),
            name: "a/b.txt".into(),
            offset: 131_072,
            size: 4,
            hash: vec![1; 32],
            block_no: 1,
            ..Default::default()
        });
        let bytes = encode(&msg, Compression::Always);
        for cut in 0..bytes.len() {
            let mut d = FrameDecoder::new();
            d.push(&bytes[..cut]);
            assert!(d.next_message().unwrap().is_none(), "cut at {cut}");
            d.push(&bytes[cut..]);
            assert_eq!(d.next_message().unwrap().as_ref(), Some(&msg), "cut at {cut}");
            assert!(d.next_message().unwrap().is_none());
            assert_eq!(d.buffered(), 0);
        }
    }

    #[test]
    fn truncated_protobuf_inside_a_whole_frame_is_an_error() {
        // A Close whose reason claims 5 bytes but has 2.
        let err = decode_one(&frame(&[0x08, 0x07], &[0x0a, 0x05, b'h', b'i'])).unwrap_err();
        assert!(matches!(err, WireError::Message { kind: "close", .. }), "{err:?}");
        assert_eq!(err.to_string(), "unmarshalling close message");
        // A header that is no protobuf.
        assert!(matches!(decode_one(&frame(&[0x08], &[])), Err(WireError::Header(_))));
    }

    #[test]
    fn lz4_errors_are_precise() {
        let lz4_frame = |body: &[u8]| frame(&[0x08, 0x01, 0x10, 0x01], body);
        assert!(matches!(decode_one(&lz4_frame(&[0, 0, 1])), Err(WireError::Lz4MissingLength { len: 3 })));
        assert!(matches!(
            decode_one(&lz4_frame(&lz4_body(70 << 20, &[0; 1 << 20]))),
            Err(WireError::Lz4TooLong { len: 73_400_320, max: MAX_UNCOMPRESSED_LEN })
        ));
        assert!(matches!(
            decode_one(&lz4_frame(&lz4_body(2551, &[0; 10]))),
            Err(WireError::Lz4ImpossibleLength { len: 2551, block_len: 10 })
        ));
        // A block cut short.
        let plain = b"index entries, index entries, index entries, index entries".repeat(4);
        let block = lz4::compress(&plain);
        let announced = u32::try_from(plain.len()).unwrap();
        let cut = lz4_body(announced, &block[..block.len() - 3]);
        assert!(matches!(decode_one(&lz4_frame(&cut)), Err(WireError::Lz4(_))));
        // A block producing more than announced.
        let short = lz4_body(announced - 1, &block);
        assert!(matches!(decode_one(&lz4_frame(&short)), Err(WireError::Lz4(_))));
        // Announcing more than the block produces is accepted, as Syncthing does.
        let long = lz4_body(announced + 10, &block);
        assert!(matches!(decode_one(&lz4_frame(&long)), Ok(Some(Message::Index(_)))));
    }

    #[test]
    fn decoder_stays_failed_after_an_error() {
        let mut d = FrameDecoder::new();
        d.push(&frame(&[0x08, 0x06, 0x10, 0x09], &[]));
        assert!(d.next_message().is_err());
        d.push(&encode(&Message::Ping, Compression::Never));
        assert!(matches!(d.next_message(), Err(WireError::DecoderFailed)));
    }

    #[test]
    fn hello_magics() {
        for magic in OLD_HELLO_MAGICS {
            let err = decode_hello(&magic.to_be_bytes()).unwrap_err();
            assert!(matches!(err, WireError::HelloTooOld { magic: m } if m == magic), "{err:?}");
        }
        assert!(matches!(
            decode_hello(&[0x16, 0x03, 0x01, 0x02]),
            Err(WireError::HelloUnknownMagic { magic: 0x1603_0102 })
        ));
        // Fewer than four bytes: nothing to judge yet.
        assert!(decode_hello(&[0x2e, 0xa7, 0xd9]).unwrap().is_none());
    }

    #[test]
    fn hello_length_is_limited() {
        let mut bytes = HELLO_MAGIC.to_be_bytes().to_vec();
        bytes.extend_from_slice(&32768u16.to_be_bytes());
        assert!(matches!(decode_hello(&bytes), Err(WireError::HelloTooBig { len: 32768, max: 32767 })));
        let hello = Hello { device_name: "x".repeat(40_000), ..Default::default() };
        let mut out = Vec::new();
        assert!(matches!(encode_hello(&hello, &mut out), Err(WireError::HelloTooBig { .. })));
        assert!(out.is_empty());
        // A Hello whose protobuf is broken.
        let mut bytes = HELLO_MAGIC.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0x00, 0x02, 0x0a, 0x05]);
        assert!(matches!(decode_hello(&bytes), Err(WireError::Hello(_))));
    }

    #[test]
    fn hello_leaves_the_following_bytes() {
        let mut bytes = Vec::new();
        encode_hello(&Hello { device_name: "peer".into(), ..Default::default() }, &mut bytes).unwrap();
        let hello_len = bytes.len();
        bytes.extend(encode(&Message::Ping, Compression::Never));
        let (hello, used) = decode_hello(&bytes).unwrap().unwrap();
        assert_eq!((hello.device_name.as_str(), used), ("peer", hello_len));
        assert_eq!(decode_one(&bytes[used..]).unwrap(), Some(Message::Ping));
    }

    #[test]
    fn small_messages_are_never_compressed() {
        let close = |n: usize| Message::Close(Close { reason: "x".repeat(n) });
        // Field tag and length take 2 bytes: a reason of 125 gives 127 bytes, 126 gives 128.
        assert_eq!(close(125).encoded_len(), 127);
        assert_eq!(compression_of(&encode(&close(125), Compression::Always)), 0);
        assert_eq!(compression_of(&encode(&close(126), Compression::Always)), 1);
        assert_eq!(compression_of(&encode(&close(126), Compression::Metadata)), 1);
    }

    #[test]
    fn compressible_index_is_compressed_by_default() {
        let msg = big_index(200);
        let bytes = encode(&msg, Compression::Metadata);
        assert_eq!(bytes[..6], [0x00, 0x04, 0x08, 0x01, 0x10, 0x01]);
        assert!(bytes.len() < msg.encoded_len() / 2, "{} of {}", bytes.len(), msg.encoded_len());
        assert_eq!(decode_one(&bytes).unwrap(), Some(msg.clone()));
        // `never` sends it as it is.
        let plain = encode(&msg, Compression::Never);
        assert_eq!(plain[..4], [0x00, 0x02, 0x08, 0x01]);
        assert_eq!(plain.len(), 2 + 2 + 4 + msg.encoded_len());
        assert_eq!(decode_one(&plain).unwrap(), Some(msg));
    }

    #[test]
    fn responses_are_compressed_only_with_always() {
        let msg = Message::Response(Response { id: 3, data: vec![0x55; 100_000].into(), code: 0 });
        assert_eq!(compression_of(&encode(&msg, Compression::Metadata)), 0);
        assert_eq!(compression_of(&encode(&msg, Compression::Never)), 0);
        let always = encode(&msg, Compression::Always);
        assert_eq!(compression_of(&always), 1);
        assert!(always.len() < 2000);
        assert_eq!(decode_one(&always).unwrap(), Some(msg));
    }

    #[test]
    fn incompressible_messages_go_uncompressed() {
        // Pseudo-random bytes do not shrink by 1/32.
        let mut x = 0x1234_5678_u32;
        let data = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x.to_le_bytes()[0]
            })
            .collect();
        let msg = Message::Response(Response { id: 1, data, code: ErrorCode::NoError as i32 });
        let bytes = encode(&msg, Compression::Always);
        assert_eq!(compression_of(&bytes), 0);
        assert_eq!(decode_one(&bytes).unwrap(), Some(msg));
    }

    #[test]
    fn compression_needs_a_saving_of_one_in_32() {
        // Pseudo-random letters (which LZ4 cannot shrink) after a run of repeated ones (which it
        // can): as the run grows, the saving crosses the n/32 threshold.
        let mut x = 0x9e37_79b9_u32;
        let noise: String = (0..400)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                char::from(b'a' + u8::try_from(x % 26).unwrap())
            })
            .collect();
        let mut seen = [false, false];
        for run in 0..100 {
            let msg = Message::Close(Close { reason: format!("{}{noise}", "z".repeat(run)) });
            let mut plain = Vec::new();
            msg.encode_body(&mut plain).unwrap();
            let n = plain.len();
            let saves_enough = 4 + lz4::compress(&plain).len() <= n - n / 32;
            let bytes = encode(&msg, Compression::Metadata);
            assert_eq!(compression_of(&bytes), i32::from(saves_enough), "run {run}");
            assert_eq!(decode_one(&bytes).unwrap(), Some(msg));
            seen[usize::from(saves_enough)] = true;
        }
        assert_eq!(seen, [true, true], "both sides of the threshold were tried");
    }

    #[test]
    fn lz4_round_trip_of_a_large_message() {
        let msg = big_index(5000);
        assert!(msg.encoded_len() > 256 << 10);
        let bytes = encode(&msg, Compression::Always);
        assert_eq!(compression_of(&bytes), 1);
        let body = &bytes[2 + 4 + 4..];
        let mut plain = Vec::new();
        msg.encode_body(&mut plain).unwrap();
        assert_eq!(decompress(body, MAX_UNCOMPRESSED_LEN).unwrap(), plain);
        assert_eq!(decode_one(&bytes).unwrap(), Some(msg));
    }

    /// Appends `bytes` to a decoder as a transport read into its buffer would, `piece` bytes
    /// at a time, decoding after each read.
    fn read_in_pieces(d: &mut FrameDecoder, bytes: &[u8], piece: usize) -> Vec<Message> {
        let mut out = Vec::new();
        for chunk in bytes.chunks(piece) {
            d.read_buffer(chunk.len()).extend_from_slice(chunk);
            while let Some(m) = d.next_message().unwrap() {
                out.push(m);
            }
        }
        out
    }

    #[test]
    fn a_response_read_into_the_buffer_in_pieces_is_whole_and_not_copied() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let response = Message::Response(Response { id: 9, data: data.clone().into(), code: 0 });
        let mut bytes = encode(&Message::Ping, Compression::Never);
        bytes.extend(encode(&response, Compression::Never));
        bytes.extend(encode(&Message::Ping, Compression::Never));
        for piece in [1, 7, 4096, 65_536, bytes.len()] {
            let mut d = FrameDecoder::new();
            let got = read_in_pieces(&mut d, &bytes, piece);
            assert_eq!(got, [Message::Ping, response.clone(), Message::Ping], "pieces of {piece}");
            assert_eq!(d.buffered(), 0);
        }
        // Read at once into room made beforehand, the data is a view of that room.
        let mut d = FrameDecoder::new();
        let buf = d.read_buffer(bytes.len());
        let room = buf.spare_capacity_mut().as_ptr_range();
        buf.extend_from_slice(&bytes);
        assert_eq!(d.next_message().unwrap(), Some(Message::Ping));
        let Some(Message::Response(r)) = d.next_message().unwrap() else { panic!("not a response") };
        assert_eq!(r.data, data);
        assert!(room.contains(&r.data.as_ptr().cast()), "the data was copied");
        // Compressed, it is decompressed into a buffer of its own, and equal all the same.
        let mut d = FrameDecoder::new();
        let got = read_in_pieces(&mut d, &encode(&response, Compression::Always), 1000);
        assert_eq!(got, [response]);
    }

    #[test]
    fn the_read_buffer_keeps_the_limits() {
        // An announced length over the limit fails as soon as it is there, without room
        // having been made for it.
        let mut d = FrameDecoder::new();
        let mut head = vec![0x00, 0x02, 0x08, 0x05];
        head.extend_from_slice(&u32::try_from(MAX_RECEIVE_LEN + 1).unwrap().to_be_bytes());
        d.read_buffer(16).extend_from_slice(&head);
        assert!(matches!(
            d.next_message(),
            Err(WireError::MessageTooLong { len, max: MAX_RECEIVE_LEN }) if len == MAX_RECEIVE_LEN + 1
        ));
        assert!(d.buf.capacity() < 4096, "capacity {}", d.buf.capacity());
        // The decoder stays failed, and what is read after is dropped.
        d.read_buffer(16).extend_from_slice(&encode(&Message::Ping, Compression::Never));
        assert!(matches!(d.next_message(), Err(WireError::DecoderFailed)));
        assert!(d.read_buffer(16).is_empty());
        // The exact maximum is waited for, with no more room than was asked for.
        let mut d = FrameDecoder::new();
        d.read_buffer(6).extend_from_slice(&[0x00, 0x00]);
        d.read_buffer(6).extend_from_slice(&u32::try_from(MAX_RECEIVE_LEN).unwrap().to_be_bytes());
        assert!(d.next_message().unwrap().is_none());
        assert!(d.buf.capacity() < 4096, "capacity {}", d.buf.capacity());
        // An oversized Index fails read in pieces as when pushed.
        let err = read_all_in_pieces(&frame(&[0x08, 0x01], &empty_files_body(1_000_000)), 65_536);
        assert!(matches!(err, Some(WireError::DecodedTooLarge { kind: "index", .. })), "{err:?}");
        // And a large buffer is let go of once it is empty.
        let large = encode(&big_index(30_000), Compression::Never);
        let mut d = FrameDecoder::new();
        assert_eq!(read_in_pieces(&mut d, &large, large.len()).len(), 1);
        assert!(d.read_buffer(16).capacity() <= KEEP_CAPACITY);
    }

    /// The error reading `bytes` in pieces ends with, if any.
    fn read_all_in_pieces(bytes: &[u8], piece: usize) -> Option<WireError> {
        let mut d = FrameDecoder::new();
        for chunk in bytes.chunks(piece) {
            d.read_buffer(chunk.len()).extend_from_slice(chunk);
            loop {
                match d.next_message() {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => return Some(e),
                }
            }
        }
        None
    }

    #[test]
    fn a_response_head_and_its_data_are_the_frame_encode_message_writes() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
        for id in [0, 1, -1, 127, 128, i32::MAX, i32::MIN] {
            for len in [0, 1, 127, 128, 4096, 16_383, 16_384, 200_000] {
                let data = &data[..len];
                for compression in [Compression::Never, Compression::Metadata] {
                    let mut head = Vec::new();
                    assert!(encode_response_head(id, data, compression, &mut head).unwrap());
                    head.extend_from_slice(data);
                    let whole = Message::Response(Response { id, data: data.to_vec().into(), code: 0 });
                    assert_eq!(head, encode(&whole, compression), "id {id}, {len} bytes, {compression:?}");
                }
            }
        }
        // What would be compressed is left to encode_message; a message too short for that is not.
        let mut out = Vec::new();
        assert!(!encode_response_head(1, &data[..4096], Compression::Always, &mut out).unwrap());
        assert!(out.is_empty());
        assert!(encode_response_head(1, &data[..10], Compression::Always, &mut out).unwrap());
    }

    #[test]
    fn consumed_bytes_are_released() {
        let msg = big_index(3000);
        let bytes = encode(&msg, Compression::Never);
        let mut d = FrameDecoder::new();
        for _ in 0..3 {
            d.push(&bytes);
            assert!(d.next_message().unwrap().is_some());
        }
        // Pushing after everything was consumed starts the buffer afresh.
        d.push(&[0x00]);
        assert_eq!(d.buf.len(), 1);
        // And a large message's buffer is not kept.
        let large = encode(&big_index(30_000), Compression::Never);
        assert!(large.len() > 2 * KEEP_CAPACITY, "{} bytes", large.len());
        let mut d = FrameDecoder::new();
        d.push(&large);
        assert!(d.next_message().unwrap().is_some());
        d.push(&[0x00]);
        assert!(d.buf.capacity() <= KEEP_CAPACITY, "capacity {}", d.buf.capacity());
    }
}
