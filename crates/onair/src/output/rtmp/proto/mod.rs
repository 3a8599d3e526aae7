//! onair's own RTMP client protocol layer, sans-IO: bytes in, bytes out,
//! events. No sockets, no clocks (time is passed in), no global state.
//!
//! Why our own (issue 10): rml_rtmp serialised a whole message at once, so
//! audio waited behind a large keyframe; its client could not send
//! releaseStream/FCPublish or extra `connect` properties; and its parser
//! trusts the server (it can panic on interleaved chunk streams and recurse
//! without limit on nested AMF0). Everything a server sends is parsed here,
//! with bounds, and is fuzzed by `tests` below.
//!
//! One concern per file:
//! - [`handshake`]: C0/C1/C2 and the server's S0/S1/S2.
//! - [`chunk::writer`]: messages to chunks: header compression, chunk size,
//!   extended timestamps, lanes so audio overtakes video between chunks.
//! - [`chunk::reader`]: chunks to messages, every size bounded.
//! - [`amf0`]: AMF0 values with depth and size limits.
//! - [`message`]: message types, parsing, control messages.
//! - [`client`]: the publishing command flow, rejection vs fault,
//!   acknowledgements, pings.

pub use crate::amf0;
pub mod chunk;
pub mod client;
pub mod handshake;
pub mod message;

#[cfg(test)]
mod fuzz;
