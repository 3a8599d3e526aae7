//! RTMP publishing over our own socket, driven by our own sans-IO protocol
//! layer ([`proto`]).
//!
//! Why our own socket: surviving bad networks needs control that a library's
//! I/O loop hides: TCP_NODELAY, TCP_USER_TIMEOUT (a dead peer fails writes
//! instead of hanging), a capped SO_SNDBUF (so backpressure shows up in our
//! queue, not in megabytes of kernel buffer), the kernel's unsent byte count
//! (SIOCOUTQ) and the time since the last ACK (TCP_INFO); see [`socket`].
//! Why our own protocol layer: see [`proto`]; this file only moves bytes
//! between it and the socket, and every wait here is bounded.
//!
//! Session shape (what OBS/ffmpeg send, what nginx-rtmp/YouTube/Twitch expect):
//! handshake, `connect(app, type, flashVer, tcUrl)`, window ack size + chunk
//! size 4096, `releaseStream(key)` + `FCPublish(key)`, `createStream`,
//! `publish(key, "live")`, wait for `NetStream.Publish.Start`, then
//! `@setDataFrame onMetaData` and the AVC/AAC sequence headers at timestamp
//! 0; at close, FCUnpublish + deleteStream (`proto::client`).
//!
//! Interface contract `output/send.rs` and `output/reconnect.rs` rely on:
//! `RtmpPublisher::{connect, queue_media, pending_bytes, pending_bytes_not_started,
//! pump, take_sent, acked_offset, kernel_unsent_bytes, ms_since_last_ack,
//! bytes_acked, close}` and `RtmpError` with `is_rejection()`.
//! `queue_media` returns the message's [`MediaId`]; [`RtmpPublisher::take_sent`]
//! reports where each media message ended in the output byte stream, since
//! audio may overtake video there (queue order is not wire order).
//!
//! The stream key is never logged or put in an error: only `RtmpUrl`'s
//! redacted form and host:port are. Server text (status codes and
//! descriptions) is redacted by the session, because servers echo the key.
//!
//! Server behaviour this code was checked against (tests in `rtmp/tests.rs`):
//! - nginx-rtmp refuses a key through `on_publish` (HTTP 4xx) by closing the
//!   connection right after `publish`, with no status: that close is
//!   reported as [`RtmpError::Rejected`] with code `NetConnection.Closed`.
//! - nginx-rtmp answers a second publisher on a busy name with
//!   `onStatus NetStream.Publish.BadName`, also a rejection.
//! - ffmpeg's `-listen 1` server answers `FCPublish` with a bare
//!   `onFCPublish` string, which the session ignores.
//! - hostile servers (`rtmp/hostile.rs`): silent after the handshake,
//!   byte-by-byte answers, garbage after publish, closes at each handshake
//!   step, ping floods: each ends in a timeout or an error that says where.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::RngCore;

use self::proto::chunk::writer::MessageId;
use self::proto::client::{ClientConfig, ClientSession, Event, SessionError, State};
use self::proto::handshake::{ClientHandshake, HandshakeStep, RANDOM_LEN};
use self::socket::{connect_tcp, kernel_outq, poll_fd, resolve, tcp_info};
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
/// Read buffer size.
const READ_BUF: usize = 16 * 1024;
/// Most bytes one [`RtmpPublisher::pump`] reads from the server: a server
/// that floods us (pings, garbage) cannot keep the send thread from writing.
pub const MAX_READ_PER_PUMP: usize = 256 * 1024;
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

/// Maps a session error: rejections stay rejections, the rest says where.
fn session_error(stage: Stage, e: SessionError) -> RtmpError {
    match e {
        SessionError::Rejected { code, description } => RtmpError::Rejected { code, description },
        SessionError::Fault { code } => {
            RtmpError::Protocol(format!("{stage}: server status {code}"))
        }
        other => protocol(stage, other),
    }
}

/// Enhanced RTMP capabilities announced in `connect`, whatever the stream's
/// codec (servers that do not know them ignore unknown properties, as
/// nginx-rtmp and FFmpeg's listener do):
/// - v1 `fourCcList`: the FourCCs we can publish (`hvc1`, `av01`; `avc1`
///   also, though H.264 goes out as legacy FLV);
/// - v2 `videoFourCcInfoMap`: the same codecs, each `CanEncode`;
/// - v2 `capsEx`: `Reconnect`, because we act on
///   `NetConnection.Connect.ReconnectRequest` (`output/send.rs`).
pub fn enhanced_rtmp_connect_properties() -> Vec<(String, proto::amf0::Value)> {
    use crate::packet::VideoCodec;
    use proto::amf0::Value;
    let codecs = [VideoCodec::Hevc, VideoCodec::Av1, VideoCodec::H264];
    let fourcc = |c: VideoCodec| String::from_utf8_lossy(&c.fourcc()).into_owned();
    vec![
        (
            "fourCcList".to_string(),
            Value::StrictArray(codecs.iter().map(|&c| Value::String(fourcc(c))).collect()),
        ),
        (
            "videoFourCcInfoMap".to_string(),
            Value::Object(
                codecs
                    .iter()
                    .map(|&c| (fourcc(c), Value::Number(FOURCC_CAN_ENCODE)))
                    .collect(),
            ),
        ),
        ("capsEx".to_string(), Value::Number(CAPS_EX_RECONNECT)),
    ]
}

/// Enhanced RTMP v2 `FourCcInfoMask.CanEncode`.
pub const FOURCC_CAN_ENCODE: f64 = 2.0;
/// Enhanced RTMP v2 `CapsExMask.Reconnect`.
pub const CAPS_EX_RECONNECT: f64 = 1.0;

/// Identifies a queued media message (see [`RtmpPublisher::take_sent`]).
pub type MediaId = MessageId;

/// One publishing connection: our socket plus our protocol session.
pub struct RtmpPublisher {
    stream: TcpStream,
    session: ClientSession,
    /// Redacted URL, for logs.
    redacted: String,
    read_buf: Vec<u8>,
    events: Vec<Event>,
    /// Sent at close after the media (Enhanced RTMP codecs: SequenceEnd).
    sequence_end: Option<Bytes>,
    /// Timestamp of the last video message, for the sequence end.
    last_video_ts: u32,
}

impl fmt::Debug for RtmpPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RtmpPublisher")
            .field("url", &self.redacted)
            .field("pending", &self.session.pending_bytes())
            .finish_non_exhaustive()
    }
}

/// The stage a session state belongs to, for errors.
fn stage_of(state: State) -> Stage {
    match state {
        State::Idle | State::Connecting => Stage::ConnectCommand,
        State::CreatingStream | State::AwaitingPublishStart => Stage::Publish,
        State::Live => Stage::Send,
        State::Closed => Stage::Close,
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

        let mut setup = Setup {
            stream: &stream,
            started: Instant::now(),
            deadline: Instant::now() + opts.handshake_timeout,
            write_timeout: opts.write_timeout,
            buf: vec![0; READ_BUF],
        };
        let leftover = setup.handshake()?;
        tracing::debug!(url = %url, "handshake done");

        let mut session = ClientSession::new(ClientConfig {
            app: url.app.clone(),
            tc_url: url.tc_url(),
            flash_ver: FLASH_VERSION.to_string(),
            stream_key: url.stream_key.clone(),
            chunk_size: CHUNK_SIZE,
            window_ack_size: WINDOW_ACK_SIZE,
            extra_connect: enhanced_rtmp_connect_properties(),
        });
        session
            .start()
            .map_err(|e| session_error(Stage::ConnectCommand, e))?;
        let mut events = Vec::new();
        let mut input = leftover;
        loop {
            let stage = stage_of(session.state());
            if !input.is_empty() {
                session
                    .handle_input(&input, &mut events)
                    .map_err(|e| session_error(stage, e))?;
            }
            for event in events.drain(..) {
                match event {
                    Event::Connected => tracing::debug!(url = %url, "connect accepted; publishing"),
                    Event::Publishing { .. } => {}
                    Event::Status(code) => tracing::debug!(%code, "onStatus during setup"),
                    Event::Ignored(name) => tracing::trace!(%name, "ignored during setup"),
                }
            }
            let stage = stage_of(session.state());
            setup.flush(&mut session, stage)?;
            if session.state() == State::Live {
                break;
            }
            input = match setup.read(stage_of(session.state())) {
                Ok(bytes) => bytes,
                Err(RtmpError::Closed { stage }) => {
                    return Err(session
                        .closed_by_peer()
                        .map_or(RtmpError::Closed { stage }, |e| session_error(stage, e)))
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
            redacted: url.redacted(),
            read_buf,
            events,
            sequence_end: headers.video.as_ref().and_then(flv::video_sequence_end),
            last_video_ts: 0,
        };
        publisher.queue_headers(headers)?;
        Ok(publisher)
    }

    fn queue_headers(&mut self, headers: &StreamHeaders) -> Result<(), RtmpError> {
        self.session
            .queue_data(flv::set_data_frame_body(headers))
            .map_err(|e| session_error(Stage::Publish, e))?;
        if let Some(v) = &headers.video {
            self.queue_media(MediaKind::Video, 0, flv::video_sequence_header(v))?;
        }
        if let Some(a) = &headers.audio {
            self.queue_media(MediaKind::Audio, 0, flv::aac_sequence_header(a))?;
        }
        Ok(())
    }

    /// Queues one FLV tag body (built by `crate::flv`) as an RTMP audio or
    /// video message. Never blocks. Audio overtakes queued video at the next
    /// chunk boundary. Returns the message's id for [`take_sent`](Self::take_sent).
    pub fn queue_media(
        &mut self,
        kind: MediaKind,
        timestamp_ms: u32,
        body: Bytes,
    ) -> Result<MediaId, RtmpError> {
        let video = kind == MediaKind::Video;
        if video {
            self.last_video_ts = timestamp_ms;
        }
        let (id, _) = self
            .session
            .queue_media(video, timestamp_ms, body)
            .map_err(|e| session_error(Stage::Send, e))?;
        Ok(id)
    }

    /// Serialized bytes (exact, chunk headers included) not yet accepted by
    /// the kernel.
    pub fn pending_bytes(&self) -> usize {
        self.session.pending_bytes()
    }

    /// [`pending_bytes`](Self::pending_bytes) minus what remains of messages
    /// already started on the wire: what a newly queued message waits
    /// behind besides a large message already being written (which audio
    /// overtakes, and video would wait for anyway).
    pub fn pending_bytes_not_started(&self) -> usize {
        self.session.pending_bytes_not_started()
    }

    /// (id, end offset) of media messages whose last byte has been handed to
    /// the socket's path since the last call; offsets count this session's
    /// output bytes from the first after the handshake. Take them at every
    /// pump (the writer keeps at most `MAX_SENT_REPORTS`).
    pub fn take_sent(&mut self) -> impl Iterator<Item = (MediaId, u64)> + '_ {
        self.session.take_sent()
    }

    /// Offset in this session's output up to which the peer has
    /// acknowledged: bytes handed to the kernel minus those it still holds.
    pub fn acked_offset(&self) -> u64 {
        self.session
            .consumed()
            .saturating_sub(self.kernel_unsent_bytes() as u64)
    }

    /// Writes pending bytes for at most `max_wait`; returns the bytes the
    /// kernel accepted (0 = no progress). Also reads what the server sent
    /// (acks, pings, onStatus; at most [`MAX_READ_PER_PUMP`]) without
    /// blocking and answers it. Err on write error, EOF, or a server-side
    /// close/error status.
    pub fn pump(&mut self, max_wait: Duration) -> Result<usize, RtmpError> {
        self.read_incoming(Stage::Send)?;
        let deadline = Instant::now() + max_wait;
        let mut written = 0;
        loop {
            let result = {
                let front = self.session.front();
                if front.is_empty() {
                    break;
                }
                (&self.stream).write(front)
            };
            match result {
                Ok(0) => return Err(RtmpError::Closed { stage: Stage::Send }),
                Ok(n) => {
                    self.session.advance(n);
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

    /// Reads and handles what the server sent, without blocking, up to
    /// [`MAX_READ_PER_PUMP`] bytes.
    fn read_incoming(&mut self, stage: Stage) -> Result<(), RtmpError> {
        let mut total = 0;
        while total < MAX_READ_PER_PUMP {
            let n = match (&self.stream).read(&mut self.read_buf) {
                Ok(0) => return Err(RtmpError::Closed { stage }),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(RtmpError::Io { stage, source }),
            };
            total += n;
            self.session
                .handle_input(&self.read_buf[..n], &mut self.events)
                .map_err(|e| session_error(stage, e))?;
            for event in self.events.drain(..) {
                match event {
                    Event::Status(code) => tracing::debug!(url = %self.redacted, %code, "onStatus"),
                    Event::Ignored(name) => tracing::trace!(%name, "server command ignored"),
                    Event::Connected | Event::Publishing { .. } => {}
                }
            }
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

    /// Graceful stop: queue the video sequence end (Enhanced RTMP codecs),
    /// drain pending for up to `drain`, then FCUnpublish +
    /// deleteStream (sent even if the drain did not finish: they overtake the
    /// media left, which is being abandoned anyway), shutdown.
    pub fn close(mut self, drain: Duration) {
        let deadline = Instant::now() + drain;
        if let Some(end) = self.sequence_end.take() {
            // After every queued video message, so the receiver sees the
            // end of the sequence last.
            let _ = self.queue_media(MediaKind::Video, self.last_video_ts, end);
        }
        while self.session.pending_bytes() > 0 {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if self.pump(deadline - now).is_err() {
                let _ = self.stream.shutdown(Shutdown::Both);
                return;
            }
        }
        if self.session.close().is_ok() {
            let _ = self.pump(CLOSE_COMMAND_WAIT.min(drain.max(Duration::from_millis(50))));
        }
        let _ = self.stream.shutdown(Shutdown::Write);
        tracing::debug!(
            url = %self.redacted,
            unsent = self.session.pending_bytes(),
            "closed"
        );
    }
}

/// Blocking I/O with one deadline, for handshake/connect/publish.
struct Setup<'a> {
    stream: &'a TcpStream,
    started: Instant,
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

    fn write_all(&mut self, bytes: &[u8], stage: Stage) -> Result<(), RtmpError> {
        let mut bytes = bytes;
        while !bytes.is_empty() {
            let n = self.write_some(bytes, stage)?;
            bytes = &bytes[n..];
        }
        Ok(())
    }

    fn write_some(&mut self, bytes: &[u8], stage: Stage) -> Result<usize, RtmpError> {
        let timeout = self.remaining(stage)?.min(self.write_timeout);
        self.stream
            .set_write_timeout(Some(timeout))
            .map_err(|source| RtmpError::Io { stage, source })?;
        loop {
            return match self.stream.write(bytes) {
                Ok(0) => Err(RtmpError::Closed { stage }),
                Ok(n) => Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    Err(RtmpError::Timeout { stage })
                }
                Err(e)
                    if e.kind() == io::ErrorKind::BrokenPipe
                        || e.kind() == io::ErrorKind::ConnectionReset =>
                {
                    Err(RtmpError::Closed { stage })
                }
                Err(source) => Err(RtmpError::Io { stage, source }),
            };
        }
    }

    /// Writes everything the session has to send.
    fn flush(&mut self, session: &mut ClientSession, stage: Stage) -> Result<(), RtmpError> {
        loop {
            let front = session.front();
            if front.is_empty() {
                return Ok(());
            }
            let n = self.write_some(front, stage)?;
            session.advance(n);
        }
    }

    /// Reads at least one byte before the deadline.
    fn read(&mut self, stage: Stage) -> Result<Vec<u8>, RtmpError> {
        loop {
            let timeout = self.remaining(stage)?;
            self.stream
                .set_read_timeout(Some(timeout))
                .map_err(|source| RtmpError::Io { stage, source })?;
            match self.stream.read(&mut self.buf) {
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
        let mut random = vec![0u8; RANDOM_LEN];
        rand::rng().fill_bytes(&mut random);
        let (mut hs, c0c1) = ClientHandshake::start(0, &random);
        self.write_all(&c0c1, stage)?;
        loop {
            let input = self.read(stage)?;
            let now_ms = u32::try_from(self.started.elapsed().as_millis()).unwrap_or(u32::MAX);
            match hs.feed(&input, now_ms).map_err(|e| protocol(stage, e))? {
                HandshakeStep::InProgress { send } => self.write_all(&send, stage)?,
                HandshakeStep::Done {
                    send,
                    leftover,
                    echo_ok,
                } => {
                    if !echo_ok {
                        tracing::debug!("server's S2 does not echo our C1 (tolerated)");
                    }
                    self.write_all(&send, stage)?;
                    return Ok(leftover);
                }
            }
        }
    }
}

#[cfg(test)]
mod hostile;
pub mod proto;
mod socket;
#[cfg(test)]
pub(crate) mod tests;
