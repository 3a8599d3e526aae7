//! Chunk writer: queued messages in, chunk bytes out, with audio able to
//! overtake a large video message at any chunk boundary.
//!
//! Why queues by kind ("lanes") instead of one byte queue: a message is
//! chunked on its own chunk stream, and chunks of different chunk streams may
//! alternate on the wire (RTMP spec 5.3.1). So each lane has its chunk
//! stream id and a FIFO of ready-made chunks, and [`ChunkWriter::front`]
//! stages the next chunk from the highest-priority lane that has one
//! (control, command, data, audio, video). An audio message queued while a
//! 200 KB keyframe is half-written goes out after the chunk being written,
//! not after the keyframe. Only about one chunk is staged ahead
//! ([`STAGE_TARGET`]), so the decision is made as late as possible.
//!
//! Chunks are built when a message is queued (header compression only
//! depends on the previous message of the same lane, which is FIFO), so the
//! exact wire size of every message is known at once: [`ChunkWriter::queue`]
//! returns it, and [`ChunkWriter::pending_bytes`] is exact. Each message gets
//! a [`MessageId`]; when the last byte of a tracked message is staged, its
//! end offset in the output byte stream (0 = first byte this writer
//! produced) is reported by [`ChunkWriter::take_sent`]: with interleaving,
//! queue order is not wire order, and that is what a caller measuring "media
//! still on its way" needs.
//!
//! Header compression per chunk stream: fmt 0 for the first message, a
//! different message stream or a timestamp going backwards; fmt 1 when only
//! the stream matches; fmt 2 when length and type match too; fmt 3 when the
//! delta also equals the previous fmt 1/2 delta (never after fmt 0, whose
//! "delta" peers read differently). Timestamps (or deltas) from 0xFFFFFF up
//! use the extended field, repeated in every continuation chunk of that
//! message (as FFmpeg and nginx-rtmp read it); such a message always starts
//! with fmt 0.
//!
//! Where later work plugs in: TLS wraps the socket, not this writer (the
//! pump hands [`front`](ChunkWriter::front) to a rustls stream instead of
//! the TcpStream, and counts rustls' buffered bytes next to
//! `pending_bytes`); Enhanced RTMP changes only the FLV tag bodies queued on
//! the audio/video lanes.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

use super::{RawMessage, EXTENDED_TIMESTAMP, MAX_CSID, MAX_HEADER_LEN};

/// Bytes staged ahead of the socket: one outgoing chunk. Anything beyond
/// stays in the lanes where a later, more urgent message can overtake it.
pub const STAGE_TARGET: usize = 4096;
/// Sent-message reports kept for [`ChunkWriter::take_sent`]; the caller is
/// expected to take them at every pump. Past this the oldest are forgotten
/// (a caller that never looks does not make the writer grow).
pub const MAX_SENT_REPORTS: usize = 1 << 16;

/// Identifies one queued message (increasing in queue order).
pub type MessageId = u64;

/// The queues, in priority order; each has its own chunk stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// Protocol control and user control (chunk stream 2, as the spec says).
    Control,
    /// AMF0 commands (chunk stream 3).
    Command,
    /// `@setDataFrame` and other data messages (chunk stream 5).
    Data,
    /// Audio (chunk stream 4): never waits behind video.
    Audio,
    /// Video (chunk stream 6).
    Video,
}

impl Lane {
    /// Every lane, most urgent first.
    pub const ALL: [Lane; 5] = [
        Lane::Control,
        Lane::Command,
        Lane::Data,
        Lane::Audio,
        Lane::Video,
    ];

    /// The chunk stream id this lane writes on.
    pub fn csid(self) -> u32 {
        match self {
            Lane::Control => 2,
            Lane::Command => 3,
            Lane::Audio => 4,
            Lane::Data => 5,
            Lane::Video => 6,
        }
    }

    fn index(self) -> usize {
        match self {
            Lane::Control => 0,
            Lane::Command => 1,
            Lane::Data => 2,
            Lane::Audio => 3,
            Lane::Video => 4,
        }
    }
}

/// A message to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutMessage {
    /// Timestamp (ms).
    pub timestamp: u32,
    /// Message type id.
    pub type_id: u8,
    /// Message stream id.
    pub stream_id: u32,
    /// Body (at most 2^24-1 bytes: the length field is 24 bits).
    pub payload: Bytes,
}

/// Why a message could not be queued.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The body does not fit RTMP's 24-bit length field.
    #[error("message of {0} bytes exceeds RTMP's 16 MiB limit")]
    TooLong(usize),
    /// Chunk size outside 1..=2^31-1.
    #[error("chunk size {0} outside 1..=2147483647")]
    BadChunkSize(u32),
}

/// What the last message header on a chunk stream said.
#[derive(Clone, Copy, Debug)]
struct LastHeader {
    timestamp: u32,
    /// The delta of the last fmt 1/2 header; None after fmt 0.
    delta: Option<u32>,
    len: u32,
    type_id: u8,
    stream_id: u32,
}

#[derive(Debug)]
struct Chunk {
    header: [u8; MAX_HEADER_LEN],
    header_len: u8,
    payload: Bytes,
    /// First chunk of a message: the message's whole wire size.
    starts: Option<usize>,
    /// Last chunk of a message: its id, if tracked.
    ends: Option<(MessageId, bool)>,
}

impl Chunk {
    fn len(&self) -> usize {
        usize::from(self.header_len) + self.payload.len()
    }
}

#[derive(Debug, Default)]
struct LaneQueue {
    chunks: VecDeque<Chunk>,
    bytes: usize,
    last: Option<LastHeader>,
    /// Unstaged bytes of the message whose first chunk is already staged.
    in_progress: usize,
}

/// Serializes messages into chunks; see the module doc.
#[derive(Debug)]
pub struct ChunkWriter {
    chunk_size: u32,
    lanes: [LaneQueue; 5],
    out: BytesMut,
    /// Output bytes handed to the caller so far ([`advance`](Self::advance)).
    consumed: u64,
    next_id: MessageId,
    sent: VecDeque<(MessageId, u64)>,
}

impl Default for ChunkWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkWriter {
    /// A writer at the default chunk size (128).
    pub fn new() -> Self {
        Self {
            chunk_size: super::DEFAULT_CHUNK_SIZE,
            lanes: Default::default(),
            out: BytesMut::with_capacity(2 * STAGE_TARGET),
            consumed: 0,
            next_id: 0,
            sent: VecDeque::new(),
        }
    }

    /// The outgoing chunk size in force.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Queues `msg` on `lane`; returns its id and exact wire size. `track`:
    /// report it through [`take_sent`](Self::take_sent) once staged.
    pub fn queue(
        &mut self,
        lane: Lane,
        msg: OutMessage,
        track: bool,
    ) -> Result<(MessageId, usize), WriteError> {
        let len = u32::try_from(msg.payload.len())
            .ok()
            .filter(|l| *l <= 0x00FF_FFFF)
            .ok_or(WriteError::TooLong(msg.payload.len()))?;
        let id = self.next_id;
        self.next_id += 1;
        let chunk_size = self.chunk_size as usize;
        let q = &mut self.lanes[lane.index()];
        let csid = lane.csid();
        let (first, extended) = first_header(csid, q.last, &msg, len);
        q.last = Some(LastHeader {
            timestamp: msg.timestamp,
            delta: first.delta,
            len,
            type_id: msg.type_id,
            stream_id: msg.stream_id,
        });
        let mut chunks = Vec::with_capacity(msg.payload.len() / chunk_size + 1);
        let mut offset = 0;
        loop {
            let end = (offset + chunk_size).min(msg.payload.len());
            let (header, header_len) = if offset == 0 {
                (first.bytes, first.len)
            } else {
                continuation_header(csid, extended)
            };
            chunks.push(Chunk {
                header,
                header_len,
                payload: msg.payload.slice(offset..end),
                starts: None,
                ends: None,
            });
            offset = end;
            if offset >= msg.payload.len() {
                break;
            }
        }
        let total: usize = chunks.iter().map(Chunk::len).sum();
        if let Some(c) = chunks.first_mut() {
            c.starts = Some(total);
        }
        if let Some(c) = chunks.last_mut() {
            c.ends = Some((id, track));
        }
        q.chunks.extend(chunks);
        q.bytes += total;
        Ok((id, total))
    }

    /// Announces a new outgoing chunk size: everything already queued is
    /// staged first (it was chunked at the old size), then the Set Chunk Size
    /// message, and later messages are chunked at `size`. Meant for the start
    /// of a session, when little is queued.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), WriteError> {
        if size == 0 || size > super::MAX_CHUNK_SIZE {
            return Err(WriteError::BadChunkSize(size));
        }
        while self.stage_one() {}
        let msg = OutMessage {
            timestamp: 0,
            type_id: super::super::message::SET_CHUNK_SIZE,
            stream_id: 0,
            payload: Bytes::copy_from_slice(&size.to_be_bytes()),
        };
        self.queue(Lane::Control, msg, false)?;
        while self.stage_one() {}
        self.chunk_size = size;
        Ok(())
    }

    /// Bytes queued or staged but not yet taken by the caller: exact wire bytes.
    pub fn pending_bytes(&self) -> usize {
        self.out.len() + self.lanes.iter().map(|l| l.bytes).sum::<usize>()
    }

    /// [`pending_bytes`](Self::pending_bytes) minus what remains of messages
    /// already started on the wire: what a message queued now on the video
    /// lane would wait behind, at most, besides its own lane's started message.
    pub fn pending_bytes_not_started(&self) -> usize {
        self.pending_bytes()
            .saturating_sub(self.out.len())
            .saturating_sub(self.lanes.iter().map(|l| l.in_progress).sum::<usize>())
    }

    /// Bytes waiting in one lane (not yet staged).
    pub fn lane_bytes(&self, lane: Lane) -> usize {
        self.lanes[lane.index()].bytes
    }

    /// Output bytes taken so far: the offset of the next byte [`front`](Self::front) returns.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// The next bytes to write (empty when nothing is pending). Stages
    /// chunks by lane priority until about [`STAGE_TARGET`] bytes are ready.
    pub fn front(&mut self) -> &[u8] {
        while self.out.len() < STAGE_TARGET && self.stage_one() {}
        &self.out
    }

    /// Marks `n` bytes of [`front`](Self::front) as written.
    pub fn advance(&mut self, n: usize) {
        let n = n.min(self.out.len());
        self.out.advance(n);
        self.consumed += n as u64;
    }

    /// Takes up to `max` bytes of output (for tests and in-memory peers).
    pub fn take(&mut self, max: usize) -> Bytes {
        let mut got = BytesMut::new();
        while got.len() < max {
            let front = self.front();
            if front.is_empty() {
                break;
            }
            let n = front.len().min(max - got.len());
            got.extend_from_slice(&front[..n]);
            self.advance(n);
        }
        got.freeze()
    }

    /// (id, end offset) of tracked messages whose last byte was staged since
    /// the last call, in staging order. The end offset counts output bytes
    /// from the writer's first: the message is on the wire once
    /// [`consumed`](Self::consumed) reaches it.
    pub fn take_sent(&mut self) -> impl Iterator<Item = (MessageId, u64)> + '_ {
        self.sent.drain(..)
    }

    /// Moves one chunk, from the most urgent lane that has one, to the output.
    fn stage_one(&mut self) -> bool {
        let Some(q) = self.lanes.iter_mut().find(|l| !l.chunks.is_empty()) else {
            return false;
        };
        let Some(chunk) = q.chunks.pop_front() else {
            return false;
        };
        let len = chunk.len();
        q.bytes -= len;
        match chunk.starts {
            Some(total) => q.in_progress = total - len,
            None => q.in_progress = q.in_progress.saturating_sub(len),
        }
        self.out
            .extend_from_slice(&chunk.header[..usize::from(chunk.header_len)]);
        self.out.extend_from_slice(&chunk.payload);
        if let Some((id, true)) = chunk.ends {
            if self.sent.len() >= MAX_SENT_REPORTS {
                self.sent.pop_front();
            }
            let end = self.consumed + self.out.len() as u64;
            self.sent.push_back((id, end));
        }
        true
    }
}

struct FirstHeader {
    bytes: [u8; MAX_HEADER_LEN],
    len: u8,
    delta: Option<u32>,
}

fn put_basic(h: &mut Vec<u8>, fmt: u8, csid: u32) {
    let csid = csid.clamp(2, MAX_CSID);
    if csid < 64 {
        h.push((fmt << 6) | csid as u8);
    } else if csid < 320 {
        h.push(fmt << 6);
        h.push((csid - 64) as u8);
    } else {
        let v = csid - 64;
        h.push((fmt << 6) | 1);
        h.push((v & 0xFF) as u8);
        h.push((v >> 8) as u8);
    }
}

fn put_u24(h: &mut Vec<u8>, v: u32) {
    h.extend_from_slice(&v.min(EXTENDED_TIMESTAMP).to_be_bytes()[1..]);
}

fn to_array(h: &[u8]) -> ([u8; MAX_HEADER_LEN], u8) {
    let mut a = [0u8; MAX_HEADER_LEN];
    let n = h.len().min(MAX_HEADER_LEN);
    a[..n].copy_from_slice(&h[..n]);
    (a, n as u8)
}

/// The first chunk's header of `msg`, and whether it uses the extended
/// timestamp (then every continuation chunk repeats it).
fn first_header(
    csid: u32,
    last: Option<LastHeader>,
    msg: &OutMessage,
    len: u32,
) -> (FirstHeader, Option<u32>) {
    let mut h = Vec::with_capacity(MAX_HEADER_LEN);
    let delta = last
        .filter(|l| l.stream_id == msg.stream_id && msg.timestamp >= l.timestamp)
        .map(|l| (l, msg.timestamp - l.timestamp))
        .filter(|(_, d)| *d < EXTENDED_TIMESTAMP);
    let Some((last, delta)) = delta else {
        put_basic(&mut h, 0, csid);
        put_u24(&mut h, msg.timestamp);
        put_u24(&mut h, len);
        h.push(msg.type_id);
        h.extend_from_slice(&msg.stream_id.to_le_bytes());
        let extended = (msg.timestamp >= EXTENDED_TIMESTAMP).then_some(msg.timestamp);
        if let Some(ts) = extended {
            h.extend_from_slice(&ts.to_be_bytes());
        }
        let (bytes, len) = to_array(&h);
        return (
            FirstHeader {
                bytes,
                len,
                delta: None,
            },
            extended,
        );
    };
    let same_shape = last.len == len && last.type_id == msg.type_id;
    if same_shape && last.delta == Some(delta) {
        put_basic(&mut h, 3, csid);
    } else if same_shape {
        put_basic(&mut h, 2, csid);
        put_u24(&mut h, delta);
    } else {
        put_basic(&mut h, 1, csid);
        put_u24(&mut h, delta);
        put_u24(&mut h, len);
        h.push(msg.type_id);
    }
    let (bytes, len) = to_array(&h);
    (
        FirstHeader {
            bytes,
            len,
            delta: Some(delta),
        },
        None,
    )
}

fn continuation_header(csid: u32, extended: Option<u32>) -> ([u8; MAX_HEADER_LEN], u8) {
    let mut h = Vec::with_capacity(7);
    put_basic(&mut h, 3, csid);
    if let Some(ts) = extended {
        h.extend_from_slice(&ts.to_be_bytes());
    }
    to_array(&h)
}

impl From<&RawMessage> for OutMessage {
    fn from(m: &RawMessage) -> Self {
        OutMessage {
            timestamp: m.timestamp,
            type_id: m.type_id,
            stream_id: m.stream_id,
            payload: m.payload.clone(),
        }
    }
}
