//! RTMP publishing over our own socket, driven by rml_rtmp's sans-IO session.
//!
//! Why our own socket: surviving bad networks needs control that a library's
//! I/O loop hides: TCP_NODELAY, TCP_USER_TIMEOUT (a dead peer fails writes
//! instead of hanging), a capped SO_SNDBUF (so backpressure shows up in our
//! queue, not in megabytes of kernel buffer), the kernel's unsent byte count
//! (SIOCOUTQ) and the time since the last ACK (TCP_INFO). rml_rtmp only turns
//! bytes into events and messages into bytes; every wait here is bounded.
//!
//! Session shape (what OBS/ffmpeg send, what nginx-rtmp/YouTube/Twitch expect):
//! handshake, `connect(app, tcUrl)`, window ack size + chunk size 4096,
//! `releaseStream(key)` + `FCPublish(key)`, `createStream`, `publish(key, "live")`,
//! wait for `NetStream.Publish.Start`, then `@setDataFrame onMetaData` and the
//! AVC/AAC sequence headers at timestamp 0. rml_rtmp has no releaseStream /
//! FCPublish / FCUnpublish, so those are written as raw AMF0 command messages
//! on a chunk stream of their own (always with full type-0 headers, so they do
//! not disturb the header compression of the session's chunk streams), with
//! transaction ids far above the session's so replies cannot be mistaken for
//! its own.
//!
//! Interface contract `output/send.rs` and `output/reconnect.rs` rely on:
//! `RtmpPublisher::{connect, queue_media, pending_bytes, pump, kernel_unsent_bytes,
//! ms_since_last_ack, close}` and `RtmpError` with `is_rejection()`.
//!
//! The stream key is never logged or put in an error: only `RtmpUrl`'s
//! redacted form and host:port are. Server events are logged by name only,
//! because servers echo the key in status descriptions.
//!
//! Server behaviour this code was checked against (tests in `rtmp/tests.rs`):
//! - nginx-rtmp refuses a key through `on_publish` (HTTP 4xx) by closing the
//!   connection right after `publish`, with no status: that close is
//!   reported as [`RtmpError::Rejected`] with code `NetConnection.Closed`.
//! - nginx-rtmp answers a second publisher on a busy name with
//!   `onStatus NetStream.Publish.BadName`, also a rejection.
//! - ffmpeg's `-listen 1` server answers `FCPublish` with a bare
//!   `onFCPublish` string, on which rml_rtmp 0.8 panics; see `input_filter`.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionError, ClientSessionEvent,
    ClientSessionResult, PublishRequestType, StreamMetadata,
};
use rml_rtmp::time::RtmpTimestamp;
use socket2::{Domain, Protocol, SockAddr, Socket, TcpKeepalive, Type};

use self::input_filter::InputFilter;
use super::url::{RtmpUrl, Scheme};
use crate::flv;
use crate::packet::{MediaKind, StreamHeaders};

/// Default TCP connect timeout (also bounds name resolution).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default bound on handshake + connect + publish acceptance.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default bound on one blocking write during the setup phase.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default TCP_USER_TIMEOUT: unacknowledged data older than this kills the connection.
pub const DEFAULT_USER_TIMEOUT: Duration = Duration::from_secs(5);
/// Outgoing RTMP chunk size (what OBS and ffmpeg use; fewer chunk headers).
pub const CHUNK_SIZE: u32 = 4096;
/// Window acknowledgement size we announce: the server ACKs every this many bytes.
pub const WINDOW_ACK_SIZE: u32 = 2_500_000;
/// flashVer sent in connect: FMLE-like, which every ingest accepts.
pub const FLASH_VERSION: &str = "FMLE/3.0 (compatible; onair)";
/// TCP keepalive idle time and probe interval (keeps NATs open while idle).
pub const KEEPALIVE_TIME: Duration = Duration::from_secs(10);
/// Chunk stream id of our raw AMF0 commands/data (rml_rtmp uses 2..=6).
const RAW_CSID: u8 = 8;
/// RTMP message type of AMF0 data (`@setDataFrame`).
const MSG_AMF0_DATA: u8 = 18;
/// RTMP message type of an AMF0 command.
const MSG_AMF0_COMMAND: u8 = 20;
/// First transaction id of our raw commands (rml_rtmp counts from 1).
const RAW_TRANSACTION_BASE: f64 = 1000.0;
/// Read buffer size.
const READ_BUF: usize = 16 * 1024;
/// Upper bound on extra time `close` spends sending FCUnpublish/deleteStream.
const CLOSE_COMMAND_WAIT: Duration = Duration::from_millis(200);

/// Socket and timing options of one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Bound on name resolution and on the TCP connect.
    pub connect_timeout: Duration,
    /// Bound on handshake, connect command and publish acceptance together.
    pub handshake_timeout: Duration,
    /// Bound on one blocking write during setup.
    pub write_timeout: Duration,
    /// TCP_USER_TIMEOUT: how long sent data may stay unacknowledged.
    pub user_timeout: Duration,
    /// SO_SNDBUF cap, if any (the kernel doubles it for bookkeeping).
    pub send_buffer_bytes: Option<usize>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            user_timeout: DEFAULT_USER_TIMEOUT,
            send_buffer_bytes: None,
        }
    }
}

/// Where in a connection's life something happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Name resolution.
    Resolve,
    /// TCP connect.
    Connect,
    /// RTMP handshake (C0/C1/C2).
    Handshake,
    /// `connect` command and its `_result`.
    ConnectCommand,
    /// createStream / publish until `NetStream.Publish.Start`.
    Publish,
    /// Sending media.
    Send,
    /// Graceful close.
    Close,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Resolve => "resolve",
            Stage::Connect => "connect",
            Stage::Handshake => "handshake",
            Stage::ConnectCommand => "connect-command",
            Stage::Publish => "publish",
            Stage::Send => "send",
            Stage::Close => "close",
        })
    }
}

/// What went wrong on one RTMP connection. Never contains the stream key.
#[derive(Debug, thiserror::Error)]
pub enum RtmpError {
    /// The host name could not be resolved (or not in time).
    #[error("resolve {target}: {reason}")]
    Resolve {
        /// `host:port`.
        target: String,
        /// Why.
        reason: String,
    },
    /// The TCP connection could not be established.
    #[error("connect to {target}: {source}")]
    Connect {
        /// `host:port` (or the address tried last).
        target: String,
        /// The OS error.
        source: io::Error,
    },
    /// A stage did not complete in time.
    #[error("timed out during {stage}")]
    Timeout {
        /// Which stage.
        stage: Stage,
    },
    /// A read or write failed.
    #[error("{stage}: {source}")]
    Io {
        /// Which stage.
        stage: Stage,
        /// The OS error.
        source: io::Error,
    },
    /// The server closed the connection.
    #[error("connection closed by the server during {stage}")]
    Closed {
        /// Which stage.
        stage: Stage,
    },
    /// The server refused the connection or the publish (bad key, app, auth).
    /// Not a network fault: retrying will not help.
    #[error("server rejected the stream: {code}{}", if description.is_empty() { String::new() } else { format!(" ({description})") })]
    Rejected {
        /// Status code, e.g. `NetStream.Publish.BadName`.
        code: String,
        /// Server's description, if any.
        description: String,
    },
    /// The peer spoke something we could not follow.
    #[error("RTMP protocol error: {0}")]
    Protocol(String),
    /// A feature onair does not support yet (rtmps://).
    #[error("{0} is not supported yet")]
    Unsupported(&'static str),
}

impl RtmpError {
    /// True when the server refused us (retrying with the same settings is pointless).
    pub fn is_rejection(&self) -> bool {
        matches!(self, RtmpError::Rejected { .. })
    }
}

fn protocol(stage: Stage, e: impl fmt::Display) -> RtmpError {
    RtmpError::Protocol(format!("{stage}: {e}"))
}

/// Status codes that mean "the server refuses this stream".
fn is_rejection_code(code: &str) -> bool {
    code.ends_with(".BadName")
        || code.ends_with(".Rejected")
        || code.ends_with(".Unauthorized")
        || code.ends_with("Publish.Denied")
}

/// Status codes that end the publishing session.
fn is_fatal_code(code: &str) -> bool {
    is_rejection_code(code)
        || code.ends_with(".Failed")
        || code.ends_with(".Error")
        || code.ends_with(".Closed")
        || code == "NetStream.Unpublish.Success"
}

/// One publishing connection: our socket plus rml_rtmp's client session.
pub struct RtmpPublisher {
    stream: TcpStream,
    session: ClientSession,
    /// Guards the session against peer messages it would panic on.
    filter: InputFilter,
    /// Serialized bytes the kernel has not accepted yet.
    pending: BytesMut,
    /// Key for FCUnpublish at close (never printed).
    stream_key: String,
    /// Redacted URL, for logs.
    redacted: String,
    /// Our own `@setDataFrame` was sent (not rml_rtmp's fallback).
    own_metadata: bool,
    read_buf: Vec<u8>,
}

impl fmt::Debug for RtmpPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RtmpPublisher")
            .field("url", &self.redacted)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl RtmpPublisher {
    /// TCP connect, handshake, connect(app, tcUrl), releaseStream + FCPublish,
    /// createStream, publish(key, "live"); waits for `NetStream.Publish.Start`
    /// (or a rejection), then queues `@setDataFrame onMetaData` and the
    /// AVC/AAC sequence headers at timestamp 0. On return the socket is
    /// nonblocking and the queued headers wait for [`pump`](Self::pump).
    pub fn connect(
        url: &RtmpUrl,
        opts: &ConnectOptions,
        headers: &StreamHeaders,
    ) -> Result<Self, RtmpError> {
        if url.scheme == Scheme::Rtmps {
            return Err(RtmpError::Unsupported("rtmps:// (RTMP over TLS)"));
        }
        let addrs = resolve(&url.host, url.port, opts.connect_timeout)?;
        let stream = connect_tcp(
            &addrs,
            opts,
            &format!("{}:{}", url.host_for_url(), url.port),
        )?;
        tracing::debug!(url = %url, "tcp connected");

        let deadline = Instant::now() + opts.handshake_timeout;
        let mut setup = Setup {
            stream: &stream,
            deadline,
            write_timeout: opts.write_timeout,
            buf: vec![0; READ_BUF],
        };
        let leftover = setup.handshake()?;
        tracing::debug!(url = %url, "handshake done");

        let mut config = ClientSessionConfig::new();
        config.flash_version = FLASH_VERSION.to_string();
        config.chunk_size = CHUNK_SIZE;
        config.window_ack_size = WINDOW_ACK_SIZE;
        config.tc_url = Some(url.tc_url());
        let (mut session, initial) =
            ClientSession::new(config).map_err(|e| protocol(Stage::ConnectCommand, e))?;
        let mut out = Vec::new();
        let mut events = Vec::new();
        split_results(initial, &mut out, &mut events);
        let connect = session
            .request_connection(url.app.clone())
            .map_err(|e| protocol(Stage::ConnectCommand, e))?;
        split_results(vec![connect], &mut out, &mut events);
        setup.write(&out, Stage::ConnectCommand)?;
        out.clear();

        let mut stage = Stage::ConnectCommand;
        let mut filter = InputFilter::new();
        let mut input = leftover;
        let mut accepted = false;
        while !accepted {
            if !input.is_empty() {
                let safe = filter.filter(&input).map_err(|e| protocol(stage, e))?;
                let results = session
                    .handle_input(&safe)
                    .map_err(|e| setup_error(stage, e))?;
                split_results(results, &mut out, &mut events);
            }
            // Session packets first: after connect is accepted they include
            // the SetChunkSize our raw commands rely on.
            setup.write(&out, stage)?;
            out.clear();
            for event in events.drain(..) {
                match event {
                    ClientSessionEvent::ConnectionRequestAccepted => {
                        tracing::debug!(url = %url, "connect accepted; publishing");
                        stage = Stage::Publish;
                        let key = url.stream_key.as_str();
                        let mut raw = Vec::new();
                        raw.push(raw_command("releaseStream", RAW_TRANSACTION_BASE, &[key]));
                        raw.push(raw_command("FCPublish", RAW_TRANSACTION_BASE + 1.0, &[key]));
                        let publish = session
                            .request_publishing(key.to_string(), PublishRequestType::Live)
                            .map_err(|e| protocol(Stage::Publish, e))?;
                        if let ClientSessionResult::OutboundResponse(p) = publish {
                            raw.push(p.bytes);
                        }
                        setup.write(&raw, stage)?;
                    }
                    ClientSessionEvent::ConnectionRequestRejected { description } => {
                        return Err(RtmpError::Rejected {
                            code: "NetConnection.Connect.Rejected".into(),
                            description: redact(&description, &url.stream_key),
                        });
                    }
                    ClientSessionEvent::PublishRequestAccepted => accepted = true,
                    ClientSessionEvent::UnhandleableOnStatusCode { code } => {
                        if is_rejection_code(&code) || is_fatal_code(&code) {
                            return Err(RtmpError::Rejected {
                                code,
                                description: String::new(),
                            });
                        }
                        tracing::debug!(%code, "onStatus during setup");
                    }
                    other => tracing::trace!(event = event_name(&other), "setup event"),
                }
            }
            if accepted {
                break;
            }
            input = match setup.read(stage) {
                Ok(bytes) => bytes,
                // nginx-rtmp refuses a key (on_publish answering 4xx) by
                // closing the connection right after `publish`.
                Err(RtmpError::Closed {
                    stage: Stage::Publish,
                }) => {
                    return Err(RtmpError::Rejected {
                        code: "NetConnection.Closed".into(),
                        description: "the server closed the connection in answer to publish; \
                                      nginx-rtmp does this when on_publish refuses the key"
                            .into(),
                    })
                }
                Err(e) => return Err(e),
            };
        }
        tracing::info!(url = %url, "publishing");
        let read_buf = setup.buf;
        stream
            .set_nonblocking(true)
            .map_err(|source| RtmpError::Io {
                stage: Stage::Publish,
                source,
            })?;
        let mut publisher = Self {
            stream,
            session,
            filter,
            pending: BytesMut::with_capacity(64 * 1024),
            stream_key: url.stream_key.clone(),
            redacted: url.redacted(),
            own_metadata: false,
            read_buf,
        };
        publisher.queue_headers(headers)?;
        Ok(publisher)
    }

    fn queue_headers(&mut self, headers: &StreamHeaders) -> Result<(), RtmpError> {
        let mut meta = StreamMetadata::new();
        if let Some(v) = &headers.video {
            meta.video_width = Some(v.width);
            meta.video_height = Some(v.height);
            meta.video_codec_id = Some(u32::from(flv::VIDEO_CODEC_AVC));
            meta.video_frame_rate = Some(v.fps as f32);
            meta.video_bitrate_kbps = Some(v.bitrate_bps / 1000);
        }
        if let Some(a) = &headers.audio {
            meta.audio_codec_id = Some(u32::from(flv::AUDIO_CODEC_AAC));
            meta.audio_bitrate_kbps = Some(a.bitrate_bps / 1000);
            meta.audio_sample_rate = Some(a.sample_rate);
            meta.audio_channels = Some(a.channels);
            meta.audio_is_stereo = Some(a.channels >= 2);
        }
        meta.encoder = Some(headers.encoder_name.clone());
        let probe = self
            .session
            .publish_metadata(&meta)
            .map_err(|e| protocol(Stage::Publish, e))?;
        // rml_rtmp does not expose the publishing stream id, and its
        // StreamMetadata cannot say `audiosamplesize` or keep an order. Its
        // metadata packet is the first message on its data chunk stream, so
        // it has a full type-0 header carrying the stream id: take the id
        // and send our own `@setDataFrame` on our chunk stream instead. The
        // session never uses that chunk stream again, so skipping its packet
        // is safe. If the header is not what we expect, send its packet.
        match message_stream_id(&probe) {
            Some(stream_id) => {
                let body = flv::set_data_frame_body(headers);
                let raw = chunk_message(MSG_AMF0_DATA, stream_id, &body, CHUNK_SIZE as usize);
                self.pending.extend_from_slice(&raw);
                self.own_metadata = true;
            }
            None => self.push_result(probe),
        }
        if let Some(v) = &headers.video {
            self.queue_media(MediaKind::Video, 0, flv::avc_sequence_header(v))?;
        }
        if let Some(a) = &headers.audio {
            self.queue_media(MediaKind::Audio, 0, flv::aac_sequence_header(a))?;
        }
        Ok(())
    }

    fn push_result(&mut self, result: ClientSessionResult) {
        if let ClientSessionResult::OutboundResponse(p) = result {
            self.pending.extend_from_slice(&p.bytes);
        }
    }

    /// Serializes one FLV tag body (built by `crate::flv`) as an RTMP
    /// audio/video message into the pending output. Never blocks.
    pub fn queue_media(
        &mut self,
        kind: MediaKind,
        timestamp_ms: u32,
        body: Bytes,
    ) -> Result<(), RtmpError> {
        let ts = RtmpTimestamp::new(timestamp_ms);
        let result = match kind {
            MediaKind::Video => self.session.publish_video_data(body, ts, false),
            MediaKind::Audio => self.session.publish_audio_data(body, ts, false),
        }
        .map_err(|e| protocol(Stage::Send, e))?;
        self.push_result(result);
        Ok(())
    }

    /// Bytes serialized but not yet accepted by the kernel.
    pub fn pending_bytes(&self) -> usize {
        self.pending.len()
    }

    /// Writes pending bytes for at most `max_wait`; returns the bytes the
    /// kernel accepted (0 = no progress). Also reads whatever the server sent
    /// (acks, pings, onStatus) without blocking and answers it. Err on write
    /// error, EOF, or a server-side close/error status.
    pub fn pump(&mut self, max_wait: Duration) -> Result<usize, RtmpError> {
        self.read_incoming(Stage::Send)?;
        let deadline = Instant::now() + max_wait;
        let mut written = 0;
        while !self.pending.is_empty() {
            match self.stream.write(&self.pending) {
                Ok(0) => return Err(RtmpError::Closed { stage: Stage::Send }),
                Ok(n) => {
                    self.pending.advance(n);
                    written += n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    poll_fd(&self.stream, libc::POLLOUT, deadline - now).map_err(|source| {
                        RtmpError::Io {
                            stage: Stage::Send,
                            source,
                        }
                    })?;
                }
                Err(source) => {
                    return Err(RtmpError::Io {
                        stage: Stage::Send,
                        source,
                    })
                }
            }
        }
        Ok(written)
    }

    /// Reads and handles everything the server sent, without blocking.
    fn read_incoming(&mut self, stage: Stage) -> Result<(), RtmpError> {
        loop {
            let n = match self.stream.read(&mut self.read_buf) {
                Ok(0) => return Err(RtmpError::Closed { stage }),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(RtmpError::Io { stage, source }),
            };
            let safe = self
                .filter
                .filter(&self.read_buf[..n])
                .map_err(|e| protocol(stage, e))?;
            let results = self
                .session
                .handle_input(&safe)
                .map_err(|e| protocol(stage, e))?;
            for result in results {
                match result {
                    ClientSessionResult::OutboundResponse(p) => {
                        // Answers (acks, pong) go after what is already queued:
                        // the chunk stream must stay in serialization order.
                        self.pending.extend_from_slice(&p.bytes);
                    }
                    ClientSessionResult::RaisedEvent(event) => self.handle_event(event)?,
                    ClientSessionResult::UnhandleableMessageReceived(_) => {}
                }
            }
        }
    }

    fn handle_event(&mut self, event: ClientSessionEvent) -> Result<(), RtmpError> {
        match event {
            ClientSessionEvent::UnhandleableOnStatusCode { code } => {
                if is_rejection_code(&code) {
                    return Err(RtmpError::Rejected {
                        code,
                        description: String::new(),
                    });
                }
                if is_fatal_code(&code) {
                    return Err(RtmpError::Protocol(format!("server status {code}")));
                }
                tracing::debug!(url = %self.redacted, %code, "onStatus");
            }
            other => tracing::trace!(event = event_name(&other), "server event"),
        }
        Ok(())
    }

    /// Bytes accepted by the kernel but not yet acknowledged by the peer
    /// (SIOCOUTQ), for latency accounting. 0 where unsupported.
    pub fn kernel_unsent_bytes(&self) -> usize {
        kernel_outq(&self.stream).unwrap_or(0)
    }

    /// Milliseconds since the peer last ACKed anything (TCP_INFO
    /// `tcpi_last_ack_recv`), if known. It also grows while we send nothing,
    /// so it only means "stalled" while [`kernel_unsent_bytes`](Self::kernel_unsent_bytes) > 0.
    pub fn ms_since_last_ack(&self) -> Option<u32> {
        tcp_info(&self.stream).map(|i| i.tcpi_last_ack_recv)
    }

    /// Bytes of this connection the peer has acknowledged (TCP_INFO
    /// `tcpi_bytes_acked`): what the link really carried, for the
    /// congestion controller. `None` where unsupported.
    pub fn bytes_acked(&self) -> Option<u64> {
        tcp_info(&self.stream).map(|i| i.tcpi_bytes_acked)
    }

    /// Graceful stop: drain pending for up to `drain`, FCUnpublish +
    /// deleteStream, shutdown.
    pub fn close(mut self, drain: Duration) {
        let deadline = Instant::now() + drain;
        while !self.pending.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if self.pump(deadline - now).is_err() {
                let _ = self.stream.shutdown(Shutdown::Both);
                return;
            }
        }
        if self.pending.is_empty() {
            // Unsent media cannot be cut mid-message; only say goodbye after
            // a full drain, otherwise the commands would land inside a chunk.
            let fc = raw_command(
                "FCUnpublish",
                RAW_TRANSACTION_BASE + 2.0,
                &[&self.stream_key],
            );
            self.pending.extend_from_slice(&fc);
            if let Ok(results) = self.session.stop_publishing() {
                for r in results {
                    self.push_result(r);
                }
            }
            let _ = self.pump(CLOSE_COMMAND_WAIT.min(drain.max(Duration::from_millis(50))));
        }
        let _ = self.stream.shutdown(Shutdown::Write);
        tracing::debug!(url = %self.redacted, unsent = self.pending.len(), "closed");
    }
}

/// Name of a session event for logs. Events are never logged with their
/// contents: servers echo the stream key in status descriptions.
fn event_name(event: &ClientSessionEvent) -> &'static str {
    match event {
        ClientSessionEvent::ConnectionRequestAccepted => "ConnectionRequestAccepted",
        ClientSessionEvent::ConnectionRequestRejected { .. } => "ConnectionRequestRejected",
        ClientSessionEvent::PlaybackRequestAccepted => "PlaybackRequestAccepted",
        ClientSessionEvent::PublishRequestAccepted => "PublishRequestAccepted",
        ClientSessionEvent::StreamMetadataReceived { .. } => "StreamMetadataReceived",
        ClientSessionEvent::VideoDataReceived { .. } => "VideoDataReceived",
        ClientSessionEvent::AudioDataReceived { .. } => "AudioDataReceived",
        ClientSessionEvent::UnhandleableAmf0Command { .. } => "UnhandleableAmf0Command",
        ClientSessionEvent::UnknownTransactionResultReceived { .. } => {
            "UnknownTransactionResultReceived"
        }
        ClientSessionEvent::UnhandleableOnStatusCode { .. } => "UnhandleableOnStatusCode",
        ClientSessionEvent::AcknowledgementReceived { .. } => "AcknowledgementReceived",
        ClientSessionEvent::PingResponseReceived { .. } => "PingResponseReceived",
    }
}

fn split_results(
    results: Vec<ClientSessionResult>,
    out: &mut Vec<Vec<u8>>,
    events: &mut Vec<ClientSessionEvent>,
) {
    for r in results {
        match r {
            ClientSessionResult::OutboundResponse(p) => out.push(p.bytes),
            ClientSessionResult::RaisedEvent(e) => events.push(e),
            ClientSessionResult::UnhandleableMessageReceived(_) => {}
        }
    }
}

fn setup_error(stage: Stage, e: ClientSessionError) -> RtmpError {
    match e {
        // `_error` to createStream: the server refuses to give us a stream.
        ClientSessionError::CreateStreamFailed => RtmpError::Rejected {
            code: "createStream._error".into(),
            description: String::new(),
        },
        other => protocol(stage, other),
    }
}

/// Removes the key from server-provided text (servers sometimes echo it).
fn redact(text: &str, key: &str) -> String {
    if key.is_empty() {
        text.to_string()
    } else {
        text.replace(key, super::url::REDACTED_KEY)
    }
}

/// Message stream id of a packet that starts with a type-0 chunk header and
/// a one-byte basic header.
fn message_stream_id(result: &ClientSessionResult) -> Option<u32> {
    let ClientSessionResult::OutboundResponse(p) = result else {
        return None;
    };
    let b = &p.bytes;
    let fmt = b.first()? >> 6;
    let csid = b.first()? & 0x3F;
    if fmt != 0 || csid < 2 || b.len() < 12 {
        return None;
    }
    Some(u32::from_le_bytes([b[8], b[9], b[10], b[11]]))
}

/// Serializes an AMF0 command `name(txn, null, args...)` on message stream 0
/// as RTMP chunks on our own chunk stream, with a type-0 header and
/// [`CHUNK_SIZE`] chunks (only used after the session announced that size).
fn raw_command(name: &str, transaction_id: f64, args: &[&str]) -> Vec<u8> {
    let mut payload = BytesMut::with_capacity(64);
    flv::amf0::put_string(&mut payload, name);
    flv::amf0::put_number(&mut payload, transaction_id);
    flv::amf0::put_null(&mut payload);
    for a in args {
        flv::amf0::put_string(&mut payload, a);
    }
    chunk_message(MSG_AMF0_COMMAND, 0, &payload, CHUNK_SIZE as usize)
}

/// One RTMP message as chunks: a type-0 header, then type-3 continuations.
fn chunk_message(type_id: u8, stream_id: u32, payload: &[u8], chunk_size: usize) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(payload.len() + 12 + payload.len() / chunk_size + 1);
    out.put_u8(RAW_CSID); // fmt 0
    out.put_slice(&[0, 0, 0]); // timestamp 0
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.put_slice(&len.to_be_bytes()[1..4]);
    out.put_u8(type_id);
    out.put_u32_le(stream_id);
    for (i, chunk) in payload.chunks(chunk_size.max(1)).enumerate() {
        if i > 0 {
            out.put_u8(0xC0 | RAW_CSID); // fmt 3
        }
        out.put_slice(chunk);
    }
    out.to_vec()
}

/// Resolves `host:port` within `timeout`. getaddrinfo cannot be cancelled,
/// so it runs on a helper thread that is abandoned (and exits on its own)
/// when the timeout passes.
fn resolve(host: &str, port: u16, timeout: Duration) -> Result<Vec<SocketAddr>, RtmpError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let target = format!("{host}:{port}");
    let (tx, rx) = mpsc::channel();
    let name = host.to_string();
    std::thread::Builder::new()
        .name("onair-resolve".into())
        .spawn(move || {
            let _ = tx.send(
                (name.as_str(), port)
                    .to_socket_addrs()
                    .map(|a| a.collect::<Vec<_>>()),
            );
        })
        .map_err(|e| RtmpError::Resolve {
            target: target.clone(),
            reason: format!("cannot start resolver thread: {e}"),
        })?;
    match rx.recv_timeout(timeout) {
        Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
        Ok(Ok(_)) => Err(RtmpError::Resolve {
            target,
            reason: "no addresses".into(),
        }),
        Ok(Err(e)) => Err(RtmpError::Resolve {
            target,
            reason: e.to_string(),
        }),
        Err(_) => Err(RtmpError::Resolve {
            target,
            reason: format!("timed out after {} ms", timeout.as_millis()),
        }),
    }
}

fn connect_tcp(
    addrs: &[SocketAddr],
    opts: &ConnectOptions,
    target: &str,
) -> Result<TcpStream, RtmpError> {
    let deadline = Instant::now() + opts.connect_timeout;
    let mut last_err = io::Error::new(io::ErrorKind::NotFound, "no address to connect to");
    for addr in addrs {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(RtmpError::Timeout {
                stage: Stage::Connect,
            });
        }
        let sock = Socket::new(
            Domain::for_address(*addr),
            Type::STREAM,
            Some(Protocol::TCP),
        )
        .map_err(|source| RtmpError::Connect {
            target: target.to_string(),
            source,
        })?;
        configure_socket(&sock, opts).map_err(|source| RtmpError::Connect {
            target: target.to_string(),
            source,
        })?;
        match sock.connect_timeout(&SockAddr::from(*addr), remaining) {
            Ok(()) => return Ok(sock.into()),
            Err(e) => {
                tracing::debug!(%addr, error = %e, "connect failed");
                last_err = e;
            }
        }
    }
    if last_err.kind() == io::ErrorKind::TimedOut || last_err.kind() == io::ErrorKind::WouldBlock {
        return Err(RtmpError::Timeout {
            stage: Stage::Connect,
        });
    }
    Err(RtmpError::Connect {
        target: target.to_string(),
        source: last_err,
    })
}

fn configure_socket(sock: &Socket, opts: &ConnectOptions) -> io::Result<()> {
    sock.set_tcp_nodelay(true)?;
    sock.set_keepalive(true)?;
    sock.set_tcp_keepalive(
        &TcpKeepalive::new()
            .with_time(KEEPALIVE_TIME)
            .with_interval(KEEPALIVE_TIME),
    )?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    sock.set_tcp_user_timeout(Some(opts.user_timeout))?;
    if let Some(bytes) = opts.send_buffer_bytes {
        sock.set_send_buffer_size(bytes)?;
    }
    Ok(())
}

/// Blocking I/O with one deadline, for handshake/connect/publish.
struct Setup<'a> {
    stream: &'a TcpStream,
    deadline: Instant,
    write_timeout: Duration,
    buf: Vec<u8>,
}

impl Setup<'_> {
    fn remaining(&self, stage: Stage) -> Result<Duration, RtmpError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(RtmpError::Timeout { stage })
        } else {
            Ok(left)
        }
    }

    fn write(&mut self, packets: &[Vec<u8>], stage: Stage) -> Result<(), RtmpError> {
        for p in packets {
            let timeout = self.remaining(stage)?.min(self.write_timeout);
            self.stream
                .set_write_timeout(Some(timeout))
                .map_err(|source| RtmpError::Io { stage, source })?;
            let mut s = self.stream;
            s.write_all(p).map_err(|source| match source.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => RtmpError::Timeout { stage },
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => {
                    RtmpError::Closed { stage }
                }
                _ => RtmpError::Io { stage, source },
            })?;
        }
        Ok(())
    }

    /// Reads at least one byte before the deadline.
    fn read(&mut self, stage: Stage) -> Result<Vec<u8>, RtmpError> {
        loop {
            let timeout = self.remaining(stage)?;
            self.stream
                .set_read_timeout(Some(timeout))
                .map_err(|source| RtmpError::Io { stage, source })?;
            let mut s = self.stream;
            match s.read(&mut self.buf) {
                Ok(0) => return Err(RtmpError::Closed { stage }),
                Ok(n) => return Ok(self.buf[..n].to_vec()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Err(RtmpError::Closed { stage })
                }
                Err(source) => return Err(RtmpError::Io { stage, source }),
            }
        }
    }

    /// Client handshake; returns bytes received after it (start of the session).
    fn handshake(&mut self) -> Result<Vec<u8>, RtmpError> {
        let stage = Stage::Handshake;
        let mut hs = Handshake::new(PeerType::Client);
        let c0c1 = hs
            .generate_outbound_p0_and_p1()
            .map_err(|e| protocol(stage, format!("{e:?}")))?;
        self.write(&[c0c1], stage)?;
        loop {
            let input = self.read(stage)?;
            match hs
                .process_bytes(&input)
                .map_err(|e| protocol(stage, format!("{e:?}")))?
            {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    if !response_bytes.is_empty() {
                        self.write(&[response_bytes], stage)?;
                    }
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    if !response_bytes.is_empty() {
                        self.write(&[response_bytes], stage)?;
                    }
                    return Ok(remaining_bytes);
                }
            }
        }
    }
}

/// Waits until `fd` is ready for `events` or `timeout` passes.
fn poll_fd(stream: &TcpStream, events: libc::c_short, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: stream.as_raw_fd(),
        events,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
    // SAFETY: `pfd` is a valid, initialized pollfd living on our stack for the
    // whole call, and we pass a count of exactly 1.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(e);
    }
    Ok(rc > 0)
}

/// SIOCOUTQ: bytes in the socket's send queue not yet acknowledged.
#[cfg(target_os = "linux")]
fn kernel_outq(stream: &TcpStream) -> Option<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: the fd is an open socket owned by `stream`, borrowed for the
    // call; TIOCOUTQ (== SIOCOUTQ) writes one c_int through the pointer,
    // which points to a live local.
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    (rc == 0).then(|| usize::try_from(n).unwrap_or(0))
}

#[cfg(not(target_os = "linux"))]
fn kernel_outq(_stream: &TcpStream) -> Option<usize> {
    None
}

/// TCP_INFO of the connection (last ACK time, bytes acknowledged).
#[cfg(target_os = "linux")]
fn tcp_info(stream: &TcpStream) -> Option<libc::tcp_info> {
    let mut info = std::mem::MaybeUninit::<libc::tcp_info>::zeroed();
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::tcp_info>()).ok()?;
    // SAFETY: the fd is an open socket owned by `stream`; `info` is a zeroed
    // buffer of `len` bytes that getsockopt fills at most up to `len`.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    // SAFETY: tcp_info is plain integers, so the zeroed buffer is a valid
    // value even where the kernel filled fewer bytes.
    (rc == 0).then(|| unsafe { info.assume_init() })
}

#[cfg(not(target_os = "linux"))]
fn tcp_info(_stream: &TcpStream) -> Option<TcpInfoUnsupported> {
    None
}

/// Stand-in on systems without TCP_INFO (never constructed).
#[cfg(not(target_os = "linux"))]
struct TcpInfoUnsupported {
    tcpi_last_ack_recv: u32,
    tcpi_bytes_acked: u64,
}

pub(crate) mod input_filter;
pub mod proto;
#[cfg(test)]
pub(crate) mod tests;
