//! Chunk reader: bytes from the server in, whole messages out, every size
//! bounded.
//!
//! Why so defensive: this parses what any server (or anything that answers
//! on its port) sends, on the send thread. So: the chunk size may be
//! anything the spec allows (1..=2^31-1) without costing memory, because
//! payload bytes are copied as they arrive, never a chunk at a time; one
//! message is at most [`MAX_MESSAGE_LEN`] bytes, all partial messages
//! together at most [`MAX_BUFFERED`], and at most [`MAX_CHUNK_STREAMS`]
//! chunk streams are remembered; the parser is a loop over a state machine
//! (no recursion), and every malformed input is a [`ChunkError`], never a
//! panic. Header bytes are gathered in a fixed 18-byte buffer, so input can
//! arrive one byte at a time.
//!
//! Set Chunk Size and Abort are applied here, where they take effect (the
//! next chunk), and still returned to the caller like any other message.

use std::collections::HashMap;

use bytes::BytesMut;

use super::super::message::{ABORT, SET_CHUNK_SIZE};
use super::{RawMessage, DEFAULT_CHUNK_SIZE, EXTENDED_TIMESTAMP, MAX_CHUNK_SIZE, MAX_HEADER_LEN};

/// Largest message a server may send us. A publisher receives commands and
/// control messages of a few hundred bytes; 1 MiB is generous.
pub const MAX_MESSAGE_LEN: u32 = 1024 * 1024;
/// Most bytes held in partial messages over all chunk streams.
pub const MAX_BUFFERED: usize = 2 * 1024 * 1024;
/// Most chunk streams remembered (servers use 2 to 8).
pub const MAX_CHUNK_STREAMS: usize = 64;
/// Largest initial reservation for a partial message: the rest grows as
/// bytes really arrive, so a claimed length costs nothing by itself.
const INITIAL_RESERVE: usize = 4096;

/// Why the server's bytes cannot be read. Carries no payload bytes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// fmt 1/2/3 on a chunk stream that never had a fmt 0 header.
    #[error("chunk stream {0}: compressed header without a previous message")]
    NoPreviousHeader(u32),
    /// A new fmt 0/1/2 header while a message was still incomplete.
    #[error("chunk stream {0}: new message header inside an unfinished message")]
    HeaderMidMessage(u32),
    /// A message longer than [`MAX_MESSAGE_LEN`].
    #[error("message of {0} bytes exceeds the {MAX_MESSAGE_LEN}-byte limit")]
    MessageTooLong(u32),
    /// Partial messages would hold more than [`MAX_BUFFERED`].
    #[error("partial messages exceed {MAX_BUFFERED} bytes")]
    TooMuchBuffered,
    /// More than [`MAX_CHUNK_STREAMS`] chunk streams.
    #[error("more than {MAX_CHUNK_STREAMS} chunk streams")]
    TooManyChunkStreams,
    /// Set Chunk Size outside 1..=2^31-1 or malformed.
    #[error("invalid Set Chunk Size")]
    BadChunkSize,
}

/// What the last fmt 0/1/2 header of a chunk stream said.
#[derive(Clone, Copy, Debug)]
struct StreamState {
    timestamp: u32,
    /// The timestamp field of the last fmt 0/1/2 header (absolute for fmt 0,
    /// a delta otherwise): what a fmt 3 new message adds, as FFmpeg reads it.
    field: u32,
    extended: bool,
    len: u32,
    type_id: u8,
    stream_id: u32,
}

#[derive(Debug)]
struct Partial {
    payload: BytesMut,
    len: usize,
}

#[derive(Debug, Default)]
struct ChunkStream {
    last: Option<StreamState>,
    partial: Option<Partial>,
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Header,
    /// Inside a chunk's payload: chunk stream and bytes left in this chunk.
    Payload {
        csid: u32,
        left: usize,
    },
}

/// Reassembles messages from chunks; see the module doc.
#[derive(Debug)]
pub struct ChunkReader {
    chunk_size: u32,
    streams: HashMap<u32, ChunkStream>,
    buffered: usize,
    header: [u8; MAX_HEADER_LEN],
    header_len: usize,
    step: Step,
    received: u64,
}

impl Default for ChunkReader {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkReader {
    /// A reader at the default chunk size.
    pub fn new() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: HashMap::new(),
            buffered: 0,
            header: [0; MAX_HEADER_LEN],
            header_len: 0,
            step: Step::Header,
            received: 0,
        }
    }

    /// The incoming chunk size in force.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Bytes fed so far (for acknowledgements).
    pub fn bytes_received(&self) -> u64 {
        self.received
    }

    /// Chunk streams remembered.
    pub fn chunk_streams(&self) -> usize {
        self.streams.len()
    }

    /// Bytes held in partial messages.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Parses `input`, appending every completed message to `out`. After an
    /// error the reader is unusable (the connection must be dropped).
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<RawMessage>) -> Result<(), ChunkError> {
        self.received += input.len() as u64;
        while !input.is_empty() {
            match self.step {
                Step::Header => {
                    let need = self.header_need()?;
                    if self.header_len < need {
                        let n = (need - self.header_len).min(input.len());
                        self.header[self.header_len..self.header_len + n]
                            .copy_from_slice(&input[..n]);
                        self.header_len += n;
                        input = &input[n..];
                        // The need may grow once more bytes are known.
                        continue;
                    }
                    self.header_done(out)?;
                }
                Step::Payload { csid, left } => {
                    let n = left.min(input.len());
                    let (piece, rest) = input.split_at(n);
                    input = rest;
                    self.payload(csid, left, piece, out)?;
                }
            }
        }
        // A header whose need is already met (e.g. a fmt 3 basic header
        // alone) is processed without waiting for more input.
        if matches!(self.step, Step::Header) && self.header_len > 0 {
            let need = self.header_need()?;
            if self.header_len >= need {
                self.header_done(out)?;
            }
        }
        Ok(())
    }

    /// Header bytes needed given those gathered so far.
    fn header_need(&self) -> Result<usize, ChunkError> {
        let h = &self.header[..self.header_len];
        let Some(first) = h.first() else {
            return Ok(1);
        };
        let basic = match first & 0x3F {
            0 => 2,
            1 => 3,
            _ => 1,
        };
        if h.len() < basic {
            return Ok(basic);
        }
        let fmt = first >> 6;
        let msg_header = [11, 7, 3, 0][usize::from(fmt)];
        let base = basic + msg_header;
        if h.len() < base {
            return Ok(base);
        }
        let extended = if fmt < 3 {
            u24(&h[basic..basic + 3]) == EXTENDED_TIMESTAMP
        } else {
            let csid = basic_csid(h);
            self.streams
                .get(&csid)
                .and_then(|s| s.last)
                .is_some_and(|l| l.extended)
        };
        Ok(base + if extended { 4 } else { 0 })
    }

    /// A whole header is gathered: start or continue a message.
    fn header_done(&mut self, out: &mut Vec<RawMessage>) -> Result<(), ChunkError> {
        let h = self.header;
        let h = &h[..self.header_len];
        self.header_len = 0;
        let fmt = h[0] >> 6;
        let csid = basic_csid(h);
        let basic = match h[0] & 0x3F {
            0 => 2,
            1 => 3,
            _ => 1,
        };
        let m = &h[basic..];
        if !self.streams.contains_key(&csid) && self.streams.len() >= MAX_CHUNK_STREAMS {
            return Err(ChunkError::TooManyChunkStreams);
        }
        let chunk_size = self.chunk_size as usize;
        let stream = self.streams.entry(csid).or_default();
        if fmt == 3 {
            if let Some(p) = &stream.partial {
                // Continuation of the message in progress.
                let left = chunk_size.min(p.len - p.payload.len());
                self.step = Step::Payload { csid, left };
                return Ok(());
            }
        } else if stream.partial.is_some() {
            return Err(ChunkError::HeaderMidMessage(csid));
        }
        let last = stream.last;
        let ext = |at: usize| u32::from_be_bytes([m[at], m[at + 1], m[at + 2], m[at + 3]]);
        let state = match (fmt, last) {
            (0, _) => {
                let field = u24(&m[0..3]);
                let extended = field == EXTENDED_TIMESTAMP;
                StreamState {
                    timestamp: if extended { ext(11) } else { field },
                    field,
                    extended,
                    len: u24(&m[3..6]),
                    type_id: m[6],
                    stream_id: u32::from_le_bytes([m[7], m[8], m[9], m[10]]),
                }
            }
            (1 | 2, Some(l)) => {
                let field = u24(&m[0..3]);
                let extended = field == EXTENDED_TIMESTAMP;
                let (len, type_id, ext_at) = if fmt == 1 {
                    (u24(&m[3..6]), m[6], 7)
                } else {
                    (l.len, l.type_id, 3)
                };
                let delta = if extended { ext(ext_at) } else { field };
                StreamState {
                    timestamp: l.timestamp.wrapping_add(delta),
                    field,
                    extended,
                    len,
                    type_id,
                    stream_id: l.stream_id,
                }
            }
            (3, Some(l)) => {
                let delta = if l.extended { ext(0) } else { l.field };
                StreamState {
                    timestamp: l.timestamp.wrapping_add(delta),
                    ..l
                }
            }
            _ => return Err(ChunkError::NoPreviousHeader(csid)),
        };
        if state.len > MAX_MESSAGE_LEN {
            return Err(ChunkError::MessageTooLong(state.len));
        }
        stream.last = Some(state);
        let len = state.len as usize;
        if len == 0 {
            self.finish(csid, out)?;
            return Ok(());
        }
        if self.buffered + len > MAX_BUFFERED {
            return Err(ChunkError::TooMuchBuffered);
        }
        self.buffered += len;
        stream.partial = Some(Partial {
            payload: BytesMut::with_capacity(len.min(INITIAL_RESERVE)),
            len,
        });
        self.step = Step::Payload {
            csid,
            left: chunk_size.min(len),
        };
        Ok(())
    }

    fn payload(
        &mut self,
        csid: u32,
        left: usize,
        piece: &[u8],
        out: &mut Vec<RawMessage>,
    ) -> Result<(), ChunkError> {
        let left = left - piece.len();
        let complete = match self.streams.get_mut(&csid).and_then(|s| s.partial.as_mut()) {
            Some(p) => {
                p.payload.extend_from_slice(piece);
                p.payload.len() >= p.len
            }
            // Aborted while in the chunk: the rest of the chunk is skipped.
            None => false,
        };
        self.step = if left == 0 || complete {
            Step::Header
        } else {
            Step::Payload { csid, left }
        };
        if complete {
            self.finish(csid, out)?;
        }
        Ok(())
    }

    /// A message on `csid` is whole: apply it if it is chunk control, emit it.
    fn finish(&mut self, csid: u32, out: &mut Vec<RawMessage>) -> Result<(), ChunkError> {
        let Some(stream) = self.streams.get_mut(&csid) else {
            return Ok(());
        };
        let Some(state) = stream.last else {
            return Ok(());
        };
        let payload = match stream.partial.take() {
            Some(p) => {
                self.buffered = self.buffered.saturating_sub(p.len);
                p.payload.freeze()
            }
            None => bytes::Bytes::new(),
        };
        let msg = RawMessage {
            csid,
            timestamp: state.timestamp,
            type_id: state.type_id,
            stream_id: state.stream_id,
            payload,
        };
        match msg.type_id {
            SET_CHUNK_SIZE => {
                let size = be_u32(&msg.payload).ok_or(ChunkError::BadChunkSize)?;
                if size == 0 || size > MAX_CHUNK_SIZE {
                    return Err(ChunkError::BadChunkSize);
                }
                self.chunk_size = size;
            }
            ABORT => {
                if let Some(target) = be_u32(&msg.payload) {
                    if let Some(s) = self.streams.get_mut(&target) {
                        if let Some(p) = s.partial.take() {
                            self.buffered = self.buffered.saturating_sub(p.len);
                        }
                    }
                }
            }
            _ => {}
        }
        out.push(msg);
        Ok(())
    }
}

fn u24(b: &[u8]) -> u32 {
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}

fn be_u32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

fn basic_csid(h: &[u8]) -> u32 {
    match h[0] & 0x3F {
        0 => 64 + u32::from(h[1]),
        1 => 64 + u32::from(h[1]) + 256 * u32::from(h[2]),
        n => u32::from(n),
    }
}
