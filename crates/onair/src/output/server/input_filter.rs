//! Shields the local receiver's rml_rtmp server session from one malformed
//! message shape.
//!
//! Why: rml_rtmp 0.8 panics (`Vec::drain(..3)` out of range) on an AMF0
//! command with fewer than three values, and a client may send one (the
//! publishing client no longer uses rml_rtmp; see `output/rtmp/proto`). A
//! panic on a peer's bytes is not
//! acceptable, so incoming bytes are dechunked here first, such commands are
//! dropped (they carry nothing rml_rtmp could use), and the other messages
//! are re-chunked with full type-0 headers for the session, switching chunk
//! size exactly where the peer did.
//!
//! Side effect: the session counts re-chunked bytes for its window
//! acknowledgements; the difference (header sizes) is irrelevant on a
//! connection where the peer sends us only a few control messages.

use std::io::Cursor;

use rml_rtmp::chunk_io::{ChunkDeserializer, ChunkSerializer};
use rml_rtmp::messages::MessagePayload;
use rml_rtmp::rml_amf0::{self, Amf0Value};
use rml_rtmp::time::RtmpTimestamp;

/// RTMP message type of SetChunkSize.
const MSG_SET_CHUNK_SIZE: u8 = 1;
/// RTMP message type of an AMF0 command.
const MSG_AMF0_COMMAND: u8 = 20;

/// Dechunks peer bytes, drops messages rml_rtmp would panic on, re-chunks the rest.
pub(crate) struct InputFilter {
    de: ChunkDeserializer,
    ser: ChunkSerializer,
    dropped: u64,
}

impl InputFilter {
    /// A filter for a new connection (default chunk size 128 both ways).
    pub(crate) fn new() -> Self {
        Self {
            de: ChunkDeserializer::new(),
            ser: ChunkSerializer::new(),
            dropped: 0,
        }
    }

    /// Messages dropped so far.
    #[cfg(test)]
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Wire bytes in; bytes safe to pass to a rml_rtmp session out.
    pub(crate) fn filter(&mut self, input: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let mut bytes = input;
        loop {
            let payload = match self.de.get_next_message(bytes) {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => return Err(format!("dechunking: {e}")),
            };
            bytes = &[];
            if is_malformed_command(&payload) {
                self.dropped += 1;
                tracing::debug!("dropped a malformed AMF0 command from the peer");
                continue;
            }
            let packet = self
                .ser
                .serialize(&payload, true, false)
                .map_err(|e| format!("re-chunking: {e}"))?;
            out.extend_from_slice(&packet.bytes);
            if payload.type_id == MSG_SET_CHUNK_SIZE && payload.data.len() >= 4 {
                let size = u32::from_be_bytes([
                    payload.data[0],
                    payload.data[1],
                    payload.data[2],
                    payload.data[3],
                ]) & 0x7FFF_FFFF;
                self.de
                    .set_max_chunk_size(size as usize)
                    .map_err(|e| format!("chunk size: {e}"))?;
                // The returned SetChunkSize packet is ours to discard: the
                // session sees the peer's own message, re-chunked above.
                self.ser
                    .set_max_chunk_size(size, RtmpTimestamp::new(0))
                    .map_err(|e| format!("chunk size: {e}"))?;
            }
        }
        Ok(out)
    }
}

/// An AMF0 command rml_rtmp cannot take: not AMF0, or fewer than
/// (name string, transaction number, command object).
fn is_malformed_command(payload: &MessagePayload) -> bool {
    if payload.type_id != MSG_AMF0_COMMAND {
        return false;
    }
    match rml_amf0::deserialize(&mut Cursor::new(&payload.data[..])) {
        Ok(values) => {
            values.len() < 3
                || !matches!(values[0], Amf0Value::Utf8String(_))
                || !matches!(values[1], Amf0Value::Number(_))
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn command(values: Vec<Amf0Value>) -> MessagePayload {
        MessagePayload {
            timestamp: RtmpTimestamp::new(0),
            type_id: MSG_AMF0_COMMAND,
            message_stream_id: 0,
            data: Bytes::from(rml_amf0::serialize(&values).unwrap()),
        }
    }

    #[test]
    fn drops_short_commands_and_keeps_the_rest() {
        let mut ser = ChunkSerializer::new();
        let mut wire = Vec::new();
        let short = command(vec![Amf0Value::Utf8String("onFCPublish".into())]);
        wire.extend(ser.serialize(&short, false, false).unwrap().bytes);
        // A chunk size change, then a long message that needs it.
        wire.extend(
            ser.set_max_chunk_size(4096, RtmpTimestamp::new(0))
                .unwrap()
                .bytes,
        );
        let long = command(vec![
            Amf0Value::Utf8String("_result".into()),
            Amf0Value::Number(1.0),
            Amf0Value::Null,
            Amf0Value::Utf8String("x".repeat(1000)),
        ]);
        wire.extend(ser.serialize(&long, false, false).unwrap().bytes);

        let mut filter = InputFilter::new();
        // Fed in small pieces, as TCP may deliver it.
        let mut out = Vec::new();
        for piece in wire.chunks(7) {
            out.extend(filter.filter(piece).unwrap());
        }
        assert_eq!(filter.dropped(), 1);
        let mut de = ChunkDeserializer::new();
        let first = de.get_next_message(&out).unwrap().unwrap();
        assert_eq!(first.type_id, MSG_SET_CHUNK_SIZE);
        de.set_max_chunk_size(4096).unwrap();
        let second = de.get_next_message(&[]).unwrap().unwrap();
        assert_eq!(second.data, long.data);
        assert!(de.get_next_message(&[]).unwrap().is_none());
    }
}
