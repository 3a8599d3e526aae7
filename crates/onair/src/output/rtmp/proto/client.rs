//! The publishing client session: commands, status, acknowledgements and
//! pings, over the chunk writer and reader. Sans-IO: bytes in through
//! [`ClientSession::handle_input`], bytes out through
//! [`ClientSession::front`] / [`ClientSession::advance`], and [`Event`]s.
//!
//! Why here and not in the socket code: whether a server *refused* us (bad
//! key, busy name, unauthorized: retrying is pointless) or *failed* (the
//! network, a server error: retry) is a decision on message contents, and it
//! must be testable without a server. The flow is what OBS and FFmpeg send
//! and every ingest expects:
//!
//! 1. `connect(app, type, flashVer, tcUrl, + extra properties)` — room for
//!    Enhanced RTMP's `fourCcList` through [`ClientConfig::extra_connect`].
//! 2. On its `_result`: Window Acknowledgement Size, Set Chunk Size (4096),
//!    `releaseStream(key)`, `FCPublish(key)`, `createStream`.
//! 3. On createStream's `_result` (the message stream id): `publish(key, "live")`.
//! 4. `onStatus NetStream.Publish.Start`: live ([`Event::Publishing`]).
//! 5. At close: `FCUnpublish(key)`, `deleteStream(id)`.
//!
//! Rejections ([`SessionError::Rejected`]): `_error` to connect, createStream
//! or publish; an onStatus whose code says so (`.BadName`, `.Rejected`,
//! `.Unauthorized`, `Publish.Denied`), or any error status before going
//! live; and a close right after `publish` ([`ClientSession::closed_by_peer`]:
//! nginx-rtmp's `on_publish` refuses a key that way). An error status once
//! live is a [`SessionError::Fault`]. Replies we do not need (`_error` to
//! releaseStream/FCPublish, which several servers send, a bare
//! `onFCPublish` string as FFmpeg's listener sends, `onBWDone`, unknown
//! commands) are ignored.
//!
//! Acknowledgements both ways: we announce [`ClientConfig::window_ack_size`]
//! and remember what the server acknowledged; when the server announces its
//! window, we acknowledge each time that many bytes have arrived (at most one
//! Acknowledgement per input call, so a tiny window cannot make us flood).
//! Pings are answered on the control lane, but not beyond
//! [`MAX_CONTROL_BACKLOG`] unsent control bytes: a server that floods pings
//! and reads nothing cannot grow our queue.
//!
//! `onStatus NetConnection.Connect.ReconnectRequest` (Enhanced RTMP v2) is
//! reported as [`Event::ReconnectRequest`], never as an error, whatever the
//! state: the server wants us elsewhere, and the old connection keeps
//! working until we leave it.
//!
//! The stream key is in commands we send, never in what we report: server
//! text (codes, descriptions) is passed through [`ClientSession::redact`].

use bytes::Bytes;

use super::amf0::Value;
use super::chunk::reader::{ChunkError, ChunkReader};
use super::chunk::writer::{ChunkWriter, Lane, MessageId, OutMessage, WriteError};
use super::chunk::RawMessage;
use super::message::{self, Message, MessageError, UC_PING_REQUEST};

/// Unsent control bytes beyond which ping answers are dropped.
pub const MAX_CONTROL_BACKLOG: usize = 4096;
/// What replaces the key in server text.
pub const REDACTED: &str = "****";

const TXN_CONNECT: f64 = 1.0;
const TXN_RELEASE_STREAM: f64 = 2.0;
const TXN_FC_PUBLISH: f64 = 3.0;
const TXN_CREATE_STREAM: f64 = 4.0;
const TXN_PUBLISH: f64 = 5.0;
const TXN_FC_UNPUBLISH: f64 = 6.0;
const TXN_DELETE_STREAM: f64 = 7.0;

/// What the session sends in `connect` and `publish`. Its `Debug` leaves
/// the stream key out.
#[derive(Clone)]
pub struct ClientConfig {
    /// Application (`connect`'s `app`).
    pub app: String,
    /// `tcUrl`: `rtmp://host:port/app`.
    pub tc_url: String,
    /// `flashVer`.
    pub flash_ver: String,
    /// Publishing name, possibly with `?query` (a secret).
    pub stream_key: String,
    /// Outgoing chunk size announced after connect.
    pub chunk_size: u32,
    /// Window acknowledgement size we announce.
    pub window_ack_size: u32,
    /// More `connect` properties (Enhanced RTMP: `fourCcList`, `capsEx`...).
    pub extra_connect: Vec<(String, Value)>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("app", &self.app)
            .field("tc_url", &self.tc_url)
            .field("stream_key", &REDACTED)
            .field("chunk_size", &self.chunk_size)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ClientSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSession")
            .field("state", &self.state)
            .field("pending", &self.writer.pending_bytes())
            .finish_non_exhaustive()
    }
}

/// Where the session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Not started.
    Idle,
    /// `connect` sent.
    Connecting,
    /// `createStream` sent.
    CreatingStream,
    /// `publish` sent, waiting for `NetStream.Publish.Start`.
    AwaitingPublishStart,
    /// Publishing.
    Live,
    /// FCUnpublish/deleteStream sent.
    Closed,
}

/// Something the caller may want to know or log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// `connect` accepted.
    Connected,
    /// `NetStream.Publish.Start`: media may flow on `stream_id`.
    Publishing {
        /// The message stream id.
        stream_id: u32,
    },
    /// A status that changes nothing (redacted code), for logs.
    Status(String),
    /// A command we ignore (name only, redacted), for logs.
    Ignored(String),
    /// Enhanced RTMP v2 `NetConnection.Connect.ReconnectRequest`: the server
    /// asks us to move to `tc_url` (absolute or relative to ours; `None` =
    /// the same server). Not an error: the old connection stays usable until
    /// we leave it (what to do is the send thread's decision).
    ReconnectRequest {
        /// The `tcUrl` property, if present and at most [`MAX_TC_URL_LEN`] bytes.
        tc_url: Option<String>,
    },
}

/// Status code of Enhanced RTMP's reconnect request.
pub const RECONNECT_REQUEST: &str = "NetConnection.Connect.ReconnectRequest";
/// Longest `tcUrl` a reconnect request may carry; a longer one is ignored
/// (the request then means "the same server").
pub const MAX_TC_URL_LEN: usize = 2048;

/// Why the session cannot go on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The server refused the connection or the publish: not a network fault.
    #[error("server rejected the stream: {code}{}", if description.is_empty() { String::new() } else { format!(" ({description})") })]
    Rejected {
        /// Status code (redacted).
        code: String,
        /// Description (redacted), possibly empty.
        description: String,
    },
    /// The server ended a live session with an error status.
    #[error("server status {code}")]
    Fault {
        /// Status code (redacted).
        code: String,
    },
    /// Unreadable chunks.
    #[error(transparent)]
    Chunk(#[from] ChunkError),
    /// A malformed message.
    #[error(transparent)]
    Message(#[from] MessageError),
    /// A message we could not queue.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The server broke the command flow (e.g. no usable stream id).
    #[error("unexpected server reply: {0}")]
    Unexpected(&'static str),
    /// Media queued before the server accepted the publish.
    #[error("not publishing yet")]
    NotPublishing,
}

impl SessionError {
    /// True for a refusal by the server (retrying will not help).
    pub fn is_rejection(&self) -> bool {
        matches!(self, SessionError::Rejected { .. })
    }
}

/// Codes that mean "the server refuses this stream".
pub fn is_rejection_code(code: &str) -> bool {
    code.ends_with(".BadName")
        || code.ends_with(".Rejected")
        || code.ends_with(".Unauthorized")
        || code.ends_with("Publish.Denied")
}

/// Codes that end a publishing session.
pub fn is_fatal_code(code: &str) -> bool {
    is_rejection_code(code)
        || code.ends_with(".Failed")
        || code.ends_with(".Error")
        || code.ends_with(".Closed")
        || code == "NetStream.Unpublish.Success"
}

/// The publishing session; see the module doc.
pub struct ClientSession {
    config: ClientConfig,
    writer: ChunkWriter,
    reader: ChunkReader,
    state: State,
    stream_id: Option<u32>,
    /// The server's window: acknowledge every this many bytes (0 = never).
    peer_window: u32,
    acked_at: u64,
    /// Last sequence number the server acknowledged.
    peer_acked: Option<u32>,
    pings_dropped: u64,
    inbox: Vec<RawMessage>,
}

impl ClientSession {
    /// A session that has sent nothing yet.
    pub fn new(config: ClientConfig) -> Self {
        Self {
            config,
            writer: ChunkWriter::new(),
            reader: ChunkReader::new(),
            state: State::Idle,
            stream_id: None,
            peer_window: 0,
            acked_at: 0,
            peer_acked: None,
            pings_dropped: 0,
            inbox: Vec::new(),
        }
    }

    /// Queues `connect`.
    pub fn start(&mut self) -> Result<(), SessionError> {
        let mut props = vec![
            ("app".to_string(), Value::String(self.config.app.clone())),
            ("type".to_string(), Value::String("nonprivate".into())),
            (
                "flashVer".to_string(),
                Value::String(self.config.flash_ver.clone()),
            ),
            (
                "tcUrl".to_string(),
                Value::String(self.config.tc_url.clone()),
            ),
        ];
        props.extend(self.config.extra_connect.iter().cloned());
        self.command(0, "connect", TXN_CONNECT, vec![Value::Object(props)])?;
        self.state = State::Connecting;
        Ok(())
    }

    /// Where the session is.
    pub fn state(&self) -> State {
        self.state
    }

    /// Message stream id once createStream answered.
    pub fn stream_id(&self) -> Option<u32> {
        self.stream_id
    }

    /// Last byte count the server acknowledged (its sequence number).
    pub fn peer_acked(&self) -> Option<u32> {
        self.peer_acked
    }

    /// Bytes received from the server since the handshake.
    pub fn bytes_received(&self) -> u64 {
        self.reader.bytes_received()
    }

    /// Ping answers dropped because control bytes were not leaving.
    pub fn pings_dropped(&self) -> u64 {
        self.pings_dropped
    }

    /// The server's window acknowledgement size, once announced.
    pub fn peer_window(&self) -> u32 {
        self.peer_window
    }

    /// Removes the stream key (whole, and its name before `?`) from server text.
    pub fn redact(&self, text: &str) -> String {
        let key = self.config.stream_key.as_str();
        let mut out = text.to_string();
        if !key.is_empty() {
            out = out.replace(key, REDACTED);
        }
        if let Some((name, _)) = key.split_once('?') {
            if !name.is_empty() {
                out = out.replace(name, REDACTED);
            }
        }
        out
    }

    /// What a close by the server means now: a rejection right after
    /// `publish` (nginx-rtmp's `on_publish` refusing a key); otherwise None
    /// (a fault the caller reports as a closed connection).
    pub fn closed_by_peer(&self) -> Option<SessionError> {
        (self.state == State::AwaitingPublishStart).then(|| SessionError::Rejected {
            code: "NetConnection.Closed".into(),
            description: "the server closed the connection in answer to publish; \
                          nginx-rtmp does this when on_publish refuses the key"
                .into(),
        })
    }

    /// Feeds bytes from the server; events for the caller go to `events`.
    pub fn handle_input(
        &mut self,
        input: &[u8],
        events: &mut Vec<Event>,
    ) -> Result<(), SessionError> {
        let mut inbox = std::mem::take(&mut self.inbox);
        inbox.clear();
        let fed = self.reader.feed(input, &mut inbox);
        // Messages completed before an error are still handled: a status
        // that explains the garbage after it is worth more than the garbage.
        let handled = inbox
            .iter()
            .try_for_each(|raw| self.handle_message(raw, events));
        self.inbox = inbox;
        handled?;
        fed?;
        self.acknowledge()?;
        Ok(())
    }

    fn acknowledge(&mut self) -> Result<(), SessionError> {
        let received = self.reader.bytes_received();
        // Acknowledgements are cumulative: one skipped while control bytes
        // are not leaving is carried by the next.
        if self.peer_window > 0
            && received - self.acked_at >= u64::from(self.peer_window)
            && self.writer.lane_bytes(Lane::Control) < MAX_CONTROL_BACKLOG
        {
            self.acked_at = received;
            // The sequence number wraps at 2^32, as every peer expects.
            let seq = (received & 0xFFFF_FFFF) as u32;
            self.writer
                .queue(Lane::Control, message::acknowledgement(seq), false)?;
        }
        Ok(())
    }

    fn handle_message(
        &mut self,
        raw: &RawMessage,
        events: &mut Vec<Event>,
    ) -> Result<(), SessionError> {
        match Message::parse(raw)? {
            Message::WindowAckSize(n) => self.peer_window = n,
            Message::Acknowledgement(n) => self.peer_acked = Some(n),
            Message::UserControl(UC_PING_REQUEST, data) => {
                if self.writer.lane_bytes(Lane::Control) < MAX_CONTROL_BACKLOG {
                    self.writer
                        .queue(Lane::Control, message::ping_response(&data), false)?;
                } else {
                    self.pings_dropped += 1;
                }
            }
            Message::Command {
                name,
                transaction,
                args,
            } => self.handle_command(&name, transaction, &args, events)?,
            // Chunk size and abort were applied by the reader; peer
            // bandwidth limits what a server wants from a player; user
            // control events, data and media do not concern a publisher.
            Message::SetChunkSize(_)
            | Message::Abort(_)
            | Message::SetPeerBandwidth(..)
            | Message::UserControl(..)
            | Message::Data(_)
            | Message::Media(_)
            | Message::Other(_) => {}
        }
        Ok(())
    }

    fn handle_command(
        &mut self,
        name: &str,
        txn: f64,
        args: &[Value],
        events: &mut Vec<Event>,
    ) -> Result<(), SessionError> {
        let info = args.iter().find(|v| v.get_str("code").is_some());
        // Decisions read the code as the server sent it; only what leaves as
        // text (errors, events) is redacted: a key that happens to be part of
        // a code ("a" in "NetStream.Publish.Start") must not hide it.
        let raw_code = info.and_then(|i| i.get_str("code"));
        let code = raw_code.map(|c| self.redact(c));
        let description = info
            .and_then(|i| i.get_str("description"))
            .map(|d| self.redact(d))
            .unwrap_or_default();
        match name {
            "_result" if txn == TXN_CONNECT && self.state == State::Connecting => {
                self.on_connected()?;
                events.push(Event::Connected);
            }
            "_result" if txn == TXN_CREATE_STREAM && self.state == State::CreatingStream => {
                let id = args
                    .iter()
                    .find_map(Value::as_number)
                    .filter(|n| n.is_finite() && *n >= 0.0 && *n <= f64::from(u32::MAX))
                    .ok_or(SessionError::Unexpected(
                        "createStream result without a stream id",
                    ))?;
                let id = id as u32;
                self.stream_id = Some(id);
                let key = self.config.stream_key.clone();
                self.command(
                    id,
                    "publish",
                    TXN_PUBLISH,
                    vec![
                        Value::Null,
                        Value::String(key),
                        Value::String("live".into()),
                    ],
                )?;
                self.state = State::AwaitingPublishStart;
            }
            "_error" if matches!(txn, TXN_CONNECT | TXN_CREATE_STREAM | TXN_PUBLISH) => {
                let what = match txn {
                    TXN_CONNECT => "NetConnection.Connect.Rejected",
                    TXN_CREATE_STREAM => "createStream._error",
                    _ => "publish._error",
                };
                return Err(SessionError::Rejected {
                    code: code.unwrap_or_else(|| what.into()),
                    description,
                });
            }
            "onStatus" if raw_code == Some(RECONNECT_REQUEST) => {
                let tc_url = info
                    .and_then(|i| i.get_str("tcUrl"))
                    .filter(|u| !u.is_empty() && u.len() <= MAX_TC_URL_LEN)
                    .map(str::to_string);
                events.push(Event::ReconnectRequest { tc_url });
            }
            "onStatus" => {
                let raw = raw_code.unwrap_or_default();
                if raw == "NetStream.Publish.Start" && self.state == State::AwaitingPublishStart {
                    self.state = State::Live;
                    events.push(Event::Publishing {
                        stream_id: self.stream_id.unwrap_or(0),
                    });
                    return Ok(());
                }
                let level_error = info.and_then(|i| i.get_str("level")) == Some("error");
                let code = code.unwrap_or_default();
                if is_rejection_code(raw)
                    || (self.state != State::Live && (is_fatal_code(raw) || level_error))
                {
                    return Err(SessionError::Rejected { code, description });
                }
                if is_fatal_code(raw) || level_error {
                    return Err(SessionError::Fault { code });
                }
                events.push(Event::Status(code));
            }
            _ => {
                events.push(Event::Ignored(self.redact(name)));
            }
        }
        Ok(())
    }

    fn on_connected(&mut self) -> Result<(), SessionError> {
        self.writer.queue(
            Lane::Control,
            message::window_ack_size(self.config.window_ack_size),
            false,
        )?;
        self.writer.set_chunk_size(self.config.chunk_size)?;
        let key = Value::String(self.config.stream_key.clone());
        self.command(
            0,
            "releaseStream",
            TXN_RELEASE_STREAM,
            vec![Value::Null, key.clone()],
        )?;
        self.command(0, "FCPublish", TXN_FC_PUBLISH, vec![Value::Null, key])?;
        self.command(0, "createStream", TXN_CREATE_STREAM, vec![Value::Null])?;
        self.state = State::CreatingStream;
        Ok(())
    }

    fn command(
        &mut self,
        stream_id: u32,
        name: &str,
        txn: f64,
        rest: Vec<Value>,
    ) -> Result<(), SessionError> {
        let mut values = vec![Value::String(name.into()), Value::Number(txn)];
        values.extend(rest);
        self.writer
            .queue(Lane::Command, message::command(stream_id, &values), false)?;
        Ok(())
    }

    fn live_stream_id(&self) -> Result<u32, SessionError> {
        match (self.state, self.stream_id) {
            (State::Live, Some(id)) => Ok(id),
            _ => Err(SessionError::NotPublishing),
        }
    }

    /// Queues an FLV audio or video tag body; returns its id and wire size.
    /// Audio goes on the audio lane, which overtakes video between chunks.
    pub fn queue_media(
        &mut self,
        video: bool,
        timestamp: u32,
        body: Bytes,
    ) -> Result<(MessageId, usize), SessionError> {
        let stream_id = self.live_stream_id()?;
        let (lane, type_id) = if video {
            (Lane::Video, message::VIDEO)
        } else {
            (Lane::Audio, message::AUDIO)
        };
        let msg = OutMessage {
            timestamp,
            type_id,
            stream_id,
            payload: body,
        };
        Ok(self.writer.queue(lane, msg, true)?)
    }

    /// Queues an AMF0 data message body (`@setDataFrame onMetaData ...`).
    pub fn queue_data(&mut self, body: Bytes) -> Result<(), SessionError> {
        let stream_id = self.live_stream_id()?;
        let msg = OutMessage {
            timestamp: 0,
            type_id: message::DATA_AMF0,
            stream_id,
            payload: body,
        };
        self.writer.queue(Lane::Data, msg, false)?;
        Ok(())
    }

    /// Queues FCUnpublish + deleteStream (once, and only if publishing).
    pub fn close(&mut self) -> Result<(), SessionError> {
        if let (State::Live, Some(id)) = (self.state, self.stream_id) {
            let key = Value::String(self.config.stream_key.clone());
            self.command(0, "FCUnpublish", TXN_FC_UNPUBLISH, vec![Value::Null, key])?;
            self.command(
                0,
                "deleteStream",
                TXN_DELETE_STREAM,
                vec![Value::Null, Value::Number(f64::from(id))],
            )?;
        }
        self.state = State::Closed;
        Ok(())
    }

    /// Exact wire bytes queued and not yet taken.
    pub fn pending_bytes(&self) -> usize {
        self.writer.pending_bytes()
    }

    /// Pending bytes not counting what remains of messages already started
    /// on the wire (see `ChunkWriter::pending_bytes_not_started`).
    pub fn pending_bytes_not_started(&self) -> usize {
        self.writer.pending_bytes_not_started()
    }

    /// The next bytes to send.
    pub fn front(&mut self) -> &[u8] {
        self.writer.front()
    }

    /// Marks `n` bytes of [`front`](Self::front) as sent.
    pub fn advance(&mut self, n: usize) {
        self.writer.advance(n);
    }

    /// Takes up to `max` bytes to send (tests, in-memory peers).
    pub fn take(&mut self, max: usize) -> Bytes {
        self.writer.take(max)
    }

    /// Output bytes taken so far (the wire offset of the next byte).
    pub fn consumed(&self) -> u64 {
        self.writer.consumed()
    }

    /// (id, wire end offset) of media messages whose last byte was staged.
    pub fn take_sent(&mut self) -> impl Iterator<Item = (MessageId, u64)> + '_ {
        self.writer.take_sent()
    }
}

#[cfg(test)]
mod tests;
