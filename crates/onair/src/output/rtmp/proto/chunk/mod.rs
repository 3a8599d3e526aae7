//! RTMP chunking: messages to chunks ([`writer`]) and chunks to messages
//! ([`reader`]).
//!
//! Why split in two: what we write is shaped by our own needs (interleaving,
//! exact byte accounting), what we read must survive anything a server sends
//! (every size bounded). They share only the header layout below.

pub mod reader;
pub mod writer;

#[cfg(test)]
mod tests;

use bytes::Bytes;

/// Chunk size both sides start with (RTMP spec 5.4.1).
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// Largest chunk size the spec allows (31 bits).
pub const MAX_CHUNK_SIZE: u32 = 0x7FFF_FFFF;
/// A 24-bit timestamp field holding this means "see the extended timestamp".
pub const EXTENDED_TIMESTAMP: u32 = 0x00FF_FFFF;
/// Largest chunk header: 3-byte basic header, 11-byte message header, 4-byte
/// extended timestamp.
pub const MAX_HEADER_LEN: usize = 18;
/// Largest chunk stream id a basic header can carry (3-byte form).
pub const MAX_CSID: u32 = 65599;

/// One whole RTMP message, as written or as reassembled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawMessage {
    /// Chunk stream it travelled on.
    pub csid: u32,
    /// Timestamp (ms, wraps at 2^32).
    pub timestamp: u32,
    /// Message type id (see `message`).
    pub type_id: u8,
    /// Message stream id (0 = the connection).
    pub stream_id: u32,
    /// Body.
    pub payload: Bytes,
}
