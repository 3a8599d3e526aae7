//! RTMP message types: what each type id means, parsing of what a server
//! sends, and the control messages we send.
//!
//! Why a typed layer between chunks and the session: the session decides on
//! meanings (a ping, a status, a window size), never on byte offsets, and
//! everything a server can put in a message body is checked here once.
//! Unknown type ids are kept as [`Message::Other`], not refused: servers send
//! things we do not need (aggregate messages, shared objects).

use bytes::{BufMut, Bytes, BytesMut};

use super::amf0::{self, Amf0Error, Value};
use super::chunk::writer::OutMessage;
use super::chunk::RawMessage;

/// Set Chunk Size (protocol control).
pub const SET_CHUNK_SIZE: u8 = 1;
/// Abort Message (protocol control).
pub const ABORT: u8 = 2;
/// Acknowledgement (protocol control).
pub const ACKNOWLEDGEMENT: u8 = 3;
/// User Control Message.
pub const USER_CONTROL: u8 = 4;
/// Window Acknowledgement Size (protocol control).
pub const WINDOW_ACK_SIZE: u8 = 5;
/// Set Peer Bandwidth (protocol control).
pub const SET_PEER_BANDWIDTH: u8 = 6;
/// Audio data (an FLV audio tag body).
pub const AUDIO: u8 = 8;
/// Video data (an FLV video tag body).
pub const VIDEO: u8 = 9;
/// AMF3 data message (an AMF0 body behind a format byte).
pub const DATA_AMF3: u8 = 15;
/// AMF3 command (an AMF0 body behind a format byte).
pub const COMMAND_AMF3: u8 = 17;
/// AMF0 data message (`@setDataFrame`, `onMetaData`).
pub const DATA_AMF0: u8 = 18;
/// AMF0 command (`connect`, `_result`, `onStatus`, ...).
pub const COMMAND_AMF0: u8 = 20;

/// User control event: a stream began.
pub const UC_STREAM_BEGIN: u16 = 0;
/// User control event: the server pings us (we answer with a PingResponse).
pub const UC_PING_REQUEST: u16 = 6;
/// User control event: an answer to a ping.
pub const UC_PING_RESPONSE: u16 = 7;

/// A message from the server, decoded.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// The server's outgoing chunk size (already applied by the reader).
    SetChunkSize(u32),
    /// The server abandoned a partial message on a chunk stream.
    Abort(u32),
    /// The server has received this many of our bytes (sequence number).
    Acknowledgement(u32),
    /// The server wants an acknowledgement every this many bytes.
    WindowAckSize(u32),
    /// The server limits our output (size, limit type).
    SetPeerBandwidth(u32, u8),
    /// A user control event: type and raw event data.
    UserControl(u16, Bytes),
    /// A command: name, transaction id, and the other values (command
    /// object first, usually). A bare name (FFmpeg's `onFCPublish`) has
    /// transaction id 0 and no values.
    Command {
        /// Command name.
        name: String,
        /// Transaction id (0 when absent).
        transaction: f64,
        /// The rest: command object, then arguments.
        args: Vec<Value>,
    },
    /// Data message values (`onMetaData`, `|RtmpSampleAccess`...).
    Data(Vec<Value>),
    /// Audio/video from the server: not expected by a publisher, ignored.
    Media(u8),
    /// A type id we do not interpret.
    Other(u8),
}

/// Why a server message body is malformed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// A control message shorter than its fixed layout.
    #[error("message type {0}: body too short")]
    Short(u8),
    /// A command whose first value is not a string.
    #[error("command without a name")]
    NoName,
    /// An AMF0 body that does not decode.
    #[error(transparent)]
    Amf0(#[from] Amf0Error),
}

impl Message {
    /// Decodes a reassembled message.
    pub fn parse(raw: &RawMessage) -> Result<Message, MessageError> {
        let p = &raw.payload[..];
        let t = raw.type_id;
        let u32_at = |at: usize| -> Result<u32, MessageError> {
            p.get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_be_bytes)
                .ok_or(MessageError::Short(t))
        };
        Ok(match t {
            SET_CHUNK_SIZE => Message::SetChunkSize(u32_at(0)?),
            ABORT => Message::Abort(u32_at(0)?),
            ACKNOWLEDGEMENT => Message::Acknowledgement(u32_at(0)?),
            WINDOW_ACK_SIZE => Message::WindowAckSize(u32_at(0)?),
            SET_PEER_BANDWIDTH => {
                Message::SetPeerBandwidth(u32_at(0)?, *p.get(4).ok_or(MessageError::Short(t))?)
            }
            USER_CONTROL => {
                let event = p.get(..2).ok_or(MessageError::Short(t))?;
                Message::UserControl(
                    u16::from_be_bytes([event[0], event[1]]),
                    raw.payload.slice(2..),
                )
            }
            COMMAND_AMF0 | COMMAND_AMF3 => {
                let body = if t == COMMAND_AMF3 {
                    p.get(1..).unwrap_or(&[])
                } else {
                    p
                };
                let mut values = amf0::decode_all(body)?.into_iter();
                let Some(Value::String(name)) = values.next() else {
                    return Err(MessageError::NoName);
                };
                let transaction = match values.next() {
                    Some(Value::Number(n)) => n,
                    Some(other) => {
                        // Not a transaction id: keep it as an argument.
                        let mut args = vec![other];
                        args.extend(values);
                        return Ok(Message::Command {
                            name,
                            transaction: 0.0,
                            args,
                        });
                    }
                    None => 0.0,
                };
                Message::Command {
                    name,
                    transaction,
                    args: values.collect(),
                }
            }
            DATA_AMF0 | DATA_AMF3 => {
                // Data is never needed by a publisher: a body we cannot
                // decode (real AMF3) is set aside, not a reason to hang up.
                let body = if t == DATA_AMF3 {
                    p.get(1..).unwrap_or(&[])
                } else {
                    p
                };
                amf0::decode_all(body).map_or(Message::Other(t), Message::Data)
            }
            AUDIO | VIDEO => Message::Media(t),
            other => Message::Other(other),
        })
    }
}

fn control(type_id: u8, payload: Bytes) -> OutMessage {
    OutMessage {
        timestamp: 0,
        type_id,
        stream_id: 0,
        payload,
    }
}

/// Acknowledgement of `sequence` bytes received.
pub fn acknowledgement(sequence: u32) -> OutMessage {
    control(
        ACKNOWLEDGEMENT,
        Bytes::copy_from_slice(&sequence.to_be_bytes()),
    )
}

/// Window Acknowledgement Size: the peer should ACK every `size` bytes.
pub fn window_ack_size(size: u32) -> OutMessage {
    control(WINDOW_ACK_SIZE, Bytes::copy_from_slice(&size.to_be_bytes()))
}

/// PingResponse echoing the request's event data.
pub fn ping_response(data: &[u8]) -> OutMessage {
    let mut b = BytesMut::with_capacity(6);
    b.put_u16(UC_PING_RESPONSE);
    b.put_slice(&data[..data.len().min(4)]);
    control(USER_CONTROL, b.freeze())
}

/// An AMF0 command on message stream `stream_id`.
pub fn command(stream_id: u32, values: &[Value]) -> OutMessage {
    OutMessage {
        timestamp: 0,
        type_id: COMMAND_AMF0,
        stream_id,
        payload: amf0::encode_all(values).freeze(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(type_id: u8, payload: &[u8]) -> RawMessage {
        RawMessage {
            csid: 2,
            timestamp: 0,
            type_id,
            stream_id: 0,
            payload: Bytes::copy_from_slice(payload),
        }
    }

    #[test]
    fn control_messages_parse_and_short_ones_fail() {
        assert_eq!(
            Message::parse(&raw(WINDOW_ACK_SIZE, &[0, 0x4C, 0x4B, 0x40])),
            Ok(Message::WindowAckSize(5_000_000))
        );
        assert_eq!(
            Message::parse(&raw(SET_PEER_BANDWIDTH, &[0, 0x4C, 0x4B, 0x40, 2])),
            Ok(Message::SetPeerBandwidth(5_000_000, 2))
        );
        assert_eq!(
            Message::parse(&raw(ACKNOWLEDGEMENT, &[0, 0])),
            Err(MessageError::Short(ACKNOWLEDGEMENT))
        );
        assert_eq!(
            Message::parse(&raw(USER_CONTROL, &[0, 6, 0, 0, 0, 9])),
            Ok(Message::UserControl(6, Bytes::from_static(&[0, 0, 0, 9])))
        );
        assert_eq!(Message::parse(&raw(99, &[1, 2])), Ok(Message::Other(99)));
    }

    #[test]
    fn bare_command_name_is_a_command() {
        // FFmpeg's listener answers FCPublish with just "onFCPublish".
        let body = amf0::encode_all(&[Value::String("onFCPublish".into())]);
        assert_eq!(
            Message::parse(&raw(COMMAND_AMF0, &body)),
            Ok(Message::Command {
                name: "onFCPublish".into(),
                transaction: 0.0,
                args: vec![]
            })
        );
        let nameless = amf0::encode_all(&[Value::Number(1.0)]);
        assert_eq!(
            Message::parse(&raw(COMMAND_AMF0, &nameless)),
            Err(MessageError::NoName)
        );
        // AMF3 command: a format byte, then AMF0.
        let mut amf3 = vec![0];
        amf3.extend_from_slice(&body);
        assert!(matches!(
            Message::parse(&raw(COMMAND_AMF3, &amf3)),
            Ok(Message::Command { .. })
        ));
    }

    #[test]
    fn ping_response_echoes() {
        let m = ping_response(&[1, 2, 3, 4]);
        assert_eq!(&m.payload[..], &[0, 7, 1, 2, 3, 4]);
        assert_eq!(m.type_id, USER_CONTROL);
    }
}
