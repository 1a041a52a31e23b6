//! One BEP connection's protocol state, without I/O: bytes in, events out; commands in, bytes
//! out. The caller (a thin async task per connection) reads the socket into
//! [`Session::receive_buffer`] (or hands what it read to [`Session::receive`]), writes
//! [`Session::take_transmit_chunks`] to it, and sleeps until [`Session::poll_timeout`].
//!
//! Block data is not copied on its way through: a received Response's data is a view of the
//! buffer the socket was read into, and the data of a Response sent is queued as the chunk it
//! came in, between the bytes encoded before and after it.
//!
//! The session enforces the protocol's order (Hello, then ClusterConfig first in each direction),
//! validates every received index entry and request name with Syncthing's rules, matches
//! Responses to outstanding Requests by ID, sends Pings when nothing was written for a while
//! and gives up when nothing was received for longer. Any violation ends the session with a
//! Close carrying the reason, as Syncthing words it; the caller then flushes and closes the
//! transport. It never touches other connections.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::frame::{FrameDecoder, Message, decode_hello, encode_hello, encode_message, encode_response_head};
use super::wire::{self, Compression, ErrorCode};
use super::{FileInfo, WireError};

/// Syncthing sends a Ping when it has written nothing for this long.
pub const PING_INTERVAL: Duration = Duration::from_secs(45);
/// Syncthing closes a connection on which nothing arrived for this long.
pub const RECEIVE_TIMEOUT: Duration = Duration::from_secs(300);
/// Syncthing gives up on a connection whose Hello has not arrived after this long. A connection
/// stuck before its Hello holds the device's slot (a new connection from the device is refused
/// while it lives), so it must not last the whole receive timeout.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(20);

/// Decoded messages waiting to be polled as events may take at most about this much memory
/// (as [`decoded_cost`](super::decoded_cost) estimates it) before the session stops decoding
/// what it received: with the frame decoder's own limits, what one connection holds is bounded
/// by a few times [`MAX_RECEIVE_LEN`](super::MAX_RECEIVE_LEN), whatever the peer sends.
pub const MAX_PENDING_DECODED: usize = super::MAX_RECEIVE_LEN;
/// Response data at least this long is queued as its own chunk rather than copied into the
/// transmit buffer; shorter data is cheaper to copy than to send as a chunk of its own.
const OWN_CHUNK_MIN: usize = 4 << 10;

/// How a session behaves; [`SessionConfig::new`] gives Syncthing's timings.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// What we tell the peer about ourselves.
    pub hello: wire::Hello,
    /// Which messages we compress.
    pub compression: Compression,
    pub ping_interval: Duration,
    pub receive_timeout: Duration,
    pub hello_timeout: Duration,
}

impl SessionConfig {
    pub fn new(hello: wire::Hello) -> Self {
        Self {
            hello,
            compression: Compression::Metadata,
            ping_interval: PING_INTERVAL,
            receive_timeout: RECEIVE_TIMEOUT,
            hello_timeout: HELLO_TIMEOUT,
        }
    }
}

/// Something the peer said, for the caller to act on.
#[derive(Debug, PartialEq)]
pub enum Event {
    /// The peer's Hello (always the first event).
    Hello(wire::Hello),
    /// A ClusterConfig (the first after the Hello; more may follow at any time).
    ClusterConfig(wire::ClusterConfig),
    /// Index entries, validated. `replace`: an Index (everything the peer has), not an update.
    Index {
        folder: String,
        files: Vec<FileInfo>,
        replace: bool,
    },
    /// A request for a block; the name was checked. Answer with [`Session::respond`].
    Request(wire::Request),
    /// The answer to one of our requests. The data may be a view of the buffer it was received
    /// in (see [`Session::receive_buffer`]).
    Response {
        id: i32,
        result: Result<Bytes, ErrorCode>,
    },
    DownloadProgress(wire::DownloadProgress),
    /// The session is over; nothing more will come. `by_peer`: the peer sent Close.
    Closed {
        reason: String,
        by_peer: bool,
    },
}

/// Misuse of a session by its caller.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SessionError {
    #[error("the connection is closed")]
    Closed,
    #[error("a ClusterConfig must be sent before {0}")]
    NoClusterConfig(&'static str),
    #[error("message cannot be sent: {0}")]
    Encode(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    AwaitHello,
    AwaitClusterConfig,
    Ready,
    Closed,
}

/// The state of one BEP connection.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    phase: Phase,
    /// Received bytes: the Hello is decoded from the front of its buffer, then frames.
    decoder: FrameDecoder,
    /// What to send, before `transmit`: chunks queued whole (Response data) and what was encoded
    /// before each of them.
    chunks: VecDeque<Bytes>,
    /// Encoded bytes to send after `chunks`.
    transmit: Vec<u8>,
    /// The length of `chunks`, all together.
    chunks_len: usize,
    events: VecDeque<Event>,
    cluster_config_sent: bool,
    next_request_id: i32,
    outstanding: HashSet<i32>,
    last_sent: Instant,
    last_received: Instant,
    /// When the session began: the Hello is due [`SessionConfig::hello_timeout`] after it.
    started: Instant,
    /// Estimated memory of the messages decoded since the event queue was last empty.
    pending_decoded: usize,
}

impl Session {
    /// A session that has queued our Hello for sending.
    pub fn new(config: SessionConfig, now: Instant) -> Self {
        let mut s = Self {
            config,
            phase: Phase::AwaitHello,
            decoder: FrameDecoder::new(),
            chunks: VecDeque::new(),
            transmit: Vec::new(),
            chunks_len: 0,
            events: VecDeque::new(),
            cluster_config_sent: false,
            next_request_id: 0,
            outstanding: HashSet::new(),
            last_sent: now,
            last_received: now,
            started: now,
            pending_decoded: 0,
        };
        if let Err(e) = encode_hello(&s.config.hello, &mut s.transmit) {
            s.fail(format!("cannot send hello: {e}"));
        }
        s
    }

    /// True once the session has ended (after [`Event::Closed`] was queued).
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Feeds bytes read from the transport (a copy: [`receive_buffer`](Self::receive_buffer)
    /// saves it).
    pub fn receive(&mut self, bytes: &[u8], now: Instant) {
        if self.is_closed() || bytes.is_empty() {
            return;
        }
        self.decoder.push(bytes);
        self.received(now);
    }

    /// The buffer to read the transport into, with room for at least `min` more bytes. The
    /// caller appends what it read (tokio's `read_buf` does, without zeroing the room first)
    /// and then calls [`received`](Self::received); it must not change what is there. Frames
    /// are decoded from this buffer, and a Response's data is handed out as a view of it.
    pub fn receive_buffer(&mut self, min: usize) -> &mut BytesMut {
        self.decoder.read_buffer(min)
    }

    /// Processes the bytes appended to [`receive_buffer`](Self::receive_buffer): call it after
    /// every read that returned some.
    pub fn received(&mut self, now: Instant) {
        if self.is_closed() {
            return;
        }
        self.last_received = now;
        if self.phase == Phase::AwaitHello {
            match decode_hello(self.decoder.unread()) {
                Ok(None) => return,
                Ok(Some((hello, used))) => {
                    self.decoder.skip(used);
                    self.events.push_back(Event::Hello(hello));
                    self.phase = Phase::AwaitClusterConfig;
                }
                Err(e) => return self.fail(e.to_string()),
            }
        }
        self.decode();
    }

    /// Decodes whole messages into events until the decoder needs more bytes, or until the
    /// events waiting to be polled hold [`MAX_PENDING_DECODED`]: the rest then waits, undecoded,
    /// for [`poll_event`](Self::poll_event) to empty the queue.
    fn decode(&mut self) {
        while !self.is_closed() && self.pending_decoded <= MAX_PENDING_DECODED {
            match self.decoder.next_message() {
                Ok(Some(msg)) => {
                    self.pending_decoded += self.decoder.last_cost();
                    self.handle(msg);
                }
                Ok(None) => return,
                Err(e) => return self.fail(e.to_string()),
            }
        }
    }

    fn handle(&mut self, msg: Message) {
        if self.phase == Phase::AwaitClusterConfig
            && !matches!(msg, Message::ClusterConfig(_) | Message::Close(_))
        {
            // Syncthing's words for the same violation.
            let what = match &msg {
                Message::Index(m) => format!("protocol error on index for {}: invalid state 0", m.folder),
                Message::IndexUpdate(m) => {
                    format!("protocol error on index update for {}: invalid state 0", m.folder)
                }
                _ => String::from("protocol error: first message must be a cluster config"),
            };
            return self.fail(what);
        }
        match msg {
            Message::ClusterConfig(cc) => {
                self.phase = Phase::Ready;
                self.events.push_back(Event::ClusterConfig(cc));
            }
            Message::Index(m) => self.index(m.folder, m.files, true),
            Message::IndexUpdate(m) => self.index(m.folder, m.files, false),
            Message::Request(r) => match wire::check_name(&r.name) {
                Ok(()) if r.size >= 0 && r.offset >= 0 => self.events.push_back(Event::Request(r)),
                Ok(()) => {
                    self.fail(format!("protocol error on request for {}: negative size or offset", r.folder))
                }
                Err(e) => self.fail(format!("protocol error on request for {}: {e}", r.folder)),
            },
            Message::Response(r) => {
                // A response to nothing outstanding is dropped, as Syncthing does.
                if self.outstanding.remove(&r.id) {
                    let result = match ErrorCode::try_from(r.code) {
                        Ok(ErrorCode::NoError) => Ok(r.data),
                        Ok(code) => Err(code),
                        Err(_) => Err(ErrorCode::Generic),
                    };
                    self.events.push_back(Event::Response { id: r.id, result });
                }
            }
            Message::DownloadProgress(p) => self.events.push_back(Event::DownloadProgress(p)),
            Message::Ping => {}
            Message::Close(c) => {
                self.phase = Phase::Closed;
                self.outstanding.clear();
                self.events.push_back(Event::Closed { reason: c.reason, by_peer: true });
            }
        }
    }

    fn index(&mut self, folder: String, files: Vec<wire::FileInfo>, replace: bool) {
        let kind = if replace { "index" } else { "index update" };
        let mut out = Vec::with_capacity(files.len());
        for f in files {
            match FileInfo::try_from(f) {
                Ok(f) => out.push(f),
                Err(e) => return self.fail(format!("protocol error on {kind} for {folder}: {e}")),
            }
        }
        self.events.push_back(Event::Index { folder, files: out, replace });
    }

    /// The next event, if any. Received bytes left undecoded to bound memory are decoded once
    /// the queue is empty.
    pub fn poll_event(&mut self) -> Option<Event> {
        if self.events.is_empty() {
            self.pending_decoded = 0;
            self.decode();
        }
        self.events.pop_front()
    }

    /// Bytes to write to the transport, in order; empty when there is nothing to send. Block
    /// data queued as chunks is copied into it: [`take_transmit_chunks`](Self::take_transmit_chunks)
    /// does without.
    pub fn take_transmit(&mut self) -> Vec<u8> {
        if self.chunks.is_empty() {
            return std::mem::take(&mut self.transmit);
        }
        let mut out = Vec::with_capacity(self.pending_transmit());
        for chunk in self.take_transmit_chunks() {
            out.extend_from_slice(&chunk);
        }
        out
    }

    /// Bytes to write to the transport, in order, as the chunks they are queued in (block data
    /// is a chunk of its own, for a vectored write); empty when there is nothing to send.
    pub fn take_transmit_chunks(&mut self) -> Vec<Bytes> {
        self.end_chunk();
        self.chunks_len = 0;
        self.chunks.drain(..).collect()
    }

    /// Moves what was encoded into `transmit` to the end of `chunks`.
    fn end_chunk(&mut self) {
        if !self.transmit.is_empty() {
            let bytes = Bytes::from(std::mem::take(&mut self.transmit));
            self.chunks_len += bytes.len();
            self.chunks.push_back(bytes);
        }
    }

    /// How many bytes wait to be taken by [`take_transmit`](Self::take_transmit): the caller's
    /// measure for backpressure.
    pub fn pending_transmit(&self) -> usize {
        self.chunks_len + self.transmit.len()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_closed() {
            return None;
        }
        let next = (self.last_sent + self.config.ping_interval)
            .min(self.last_received + self.config.receive_timeout);
        Some(match self.phase {
            Phase::AwaitHello => next.min(self.started + self.config.hello_timeout),
            _ => next,
        })
    }

    /// Sends a Ping if nothing was written for the ping interval; ends the session if nothing
    /// was received for the receive timeout, or if the peer's Hello is overdue.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_closed() {
            return;
        }
        if self.phase == Phase::AwaitHello && now >= self.started + self.config.hello_timeout {
            // Syncthing's words when its Hello deadline passes.
            return self.fail(String::from("exchanging hello: deadline exceeded"));
        }
        if now >= self.last_received + self.config.receive_timeout {
            return self.fail(String::from("read timeout"));
        }
        if now >= self.last_sent + self.config.ping_interval && self.phase != Phase::AwaitHello {
            let _ = self.send(&Message::Ping, now);
        }
    }

    /// Announces our folders; must come before any index, request or response.
    pub fn send_cluster_config(&mut self, cc: wire::ClusterConfig, now: Instant) -> Result<(), SessionError> {
        self.send(&Message::ClusterConfig(cc), now)?;
        self.cluster_config_sent = true;
        Ok(())
    }

    /// Sends index entries: an Index (replacing all the peer holds of ours) or an IndexUpdate.
    pub fn send_index(
        &mut self,
        folder: &str,
        files: &[FileInfo],
        replace: bool,
        now: Instant,
    ) -> Result<(), SessionError> {
        self.require_cluster_config("an index")?;
        let wire_files: Vec<wire::FileInfo> = files.iter().map(wire::FileInfo::from).collect();
        let last_sequence = files.iter().map(|f| f.sequence).max().unwrap_or(0);
        let msg = if replace {
            Message::Index(wire::Index { folder: folder.to_owned(), files: wire_files, last_sequence })
        } else {
            let prev_sequence = files.iter().map(|f| f.sequence).min().map_or(0, |s| s - 1);
            Message::IndexUpdate(wire::IndexUpdate {
                folder: folder.to_owned(),
                files: wire_files,
                last_sequence,
                prev_sequence,
            })
        };
        self.send(&msg, now)
    }

    /// Asks the peer for a block; returns the request's ID, which the [`Event::Response`] will
    /// carry.
    pub fn request(&mut self, mut request: wire::Request, now: Instant) -> Result<i32, SessionError> {
        self.require_cluster_config("a request")?;
        let id = self.next_request_id;
        // IDs only need to be unique among outstanding requests.
        self.next_request_id = self.next_request_id.wrapping_add(1);
        request.id = id;
        self.send(&Message::Request(request), now)?;
        self.outstanding.insert(id);
        Ok(id)
    }

    /// Forgets an outstanding request whose answer is no longer wanted.
    pub fn cancel_request(&mut self, id: i32) {
        self.outstanding.remove(&id);
    }

    /// Answers the peer's request `id`.
    pub fn respond(
        &mut self,
        id: i32,
        result: Result<Vec<u8>, ErrorCode>,
        now: Instant,
    ) -> Result<(), SessionError> {
        self.require_cluster_config("a response")?;
        let response = match result {
            Ok(data) if data.len() >= OWN_CHUNK_MIN => return self.send_data(id, Bytes::from(data), now),
            Ok(data) => wire::Response { id, data: data.into(), code: ErrorCode::NoError as i32 },
            Err(code) => wire::Response { id, data: Bytes::new(), code: code as i32 },
        };
        self.send(&Message::Response(response), now)
    }

    /// Sends a successful Response with its data queued as a chunk of its own, unless our
    /// compression setting has it compressed.
    fn send_data(&mut self, id: i32, data: Bytes, now: Instant) -> Result<(), SessionError> {
        let encoded = encode_response_head(id, &data, self.config.compression, &mut self.transmit)
            .map_err(|e| SessionError::Encode(e.to_string()))?;
        if !encoded {
            let response = wire::Response { id, data, code: ErrorCode::NoError as i32 };
            return self.send(&Message::Response(response), now);
        }
        self.end_chunk();
        self.chunks_len += data.len();
        self.chunks.push_back(data);
        self.last_sent = now;
        Ok(())
    }

    pub fn send_download_progress(
        &mut self,
        progress: wire::DownloadProgress,
        now: Instant,
    ) -> Result<(), SessionError> {
        self.require_cluster_config("download progress")?;
        self.send(&Message::DownloadProgress(progress), now)
    }

    /// Ends the session, telling the peer why. The caller flushes the transmit buffer and
    /// closes the transport.
    pub fn close(&mut self, reason: &str) {
        self.fail(reason.to_owned());
    }

    fn require_cluster_config(&self, what: &'static str) -> Result<(), SessionError> {
        if self.is_closed() {
            Err(SessionError::Closed)
        } else if !self.cluster_config_sent {
            Err(SessionError::NoClusterConfig(what))
        } else {
            Ok(())
        }
    }

    fn send(&mut self, msg: &Message, now: Instant) -> Result<(), SessionError> {
        if self.is_closed() {
            return Err(SessionError::Closed);
        }
        encode_message(msg, self.config.compression, &mut self.transmit)
            .map_err(|e: WireError| SessionError::Encode(e.to_string()))?;
        self.last_sent = now;
        Ok(())
    }

    /// Ends the session: a Close with `reason` goes out (after the Hello, since a Close cannot
    /// precede it) and the caller learns of it as [`Event::Closed`].
    fn fail(&mut self, reason: String) {
        if self.is_closed() {
            return;
        }
        // Anything queued after a failure is meaningless to the peer, except what was queued
        // before: it is flushed first, then the Close.
        let close = Message::Close(wire::Close { reason: reason.clone() });
        let _ = encode_message(&close, Compression::Never, &mut self.transmit);
        self.phase = Phase::Closed;
        self.outstanding.clear();
        self.events.push_back(Event::Closed { reason, by_peer: false });
    }
}

#[cfg(test)]
mod tests;
