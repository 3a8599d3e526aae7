//! RTMP publishing over our own socket, driven by our own sans-IO protocol
//! layer ([`proto`]).
//!
//! Why our own socket: surviving bad networks needs control that a library's
//! I/O loop hides: TCP_NODELAY, TCP_USER_TIMEOUT (a dead peer fails writes
//! instead of hanging), a capped SO_SNDBUF (so backpressure shows up in our
//! queue, not in megabytes of kernel buffer), the kernel's unsent byte count
//! (SIOCOUTQ) and the time since the last ACK (TCP_INFO); see [`socket`].
//! `rtmps://` puts TLS ([`tls`]) between the session and that same socket;
//! the bytes TLS holds count as pending (see [`transport`]).
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
use std::net::Shutdown;
use std::time::{Duration, Instant};

use bytes::Bytes;

pub use self::enhanced::{
    enhanced_rtmp_connect_properties, resolve_tc_url, CAPS_EX_RECONNECT, FOURCC_CAN_ENCODE,
};
use self::error::session_error;
pub use self::error::{RtmpError, Stage};
use self::proto::chunk::writer::MessageId;
use self::proto::client::{ClientConfig, ClientSession, Event, State};
use self::setup::Setup;
use self::socket::{connect_tcp, kernel_outq, poll_fd, resolve, tcp_info};
use self::tls::{TlsClient, TlsStream};
use self::transport::Transport;
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
    /// Trusted authorities for `rtmps://`; `None` = the system store,
    /// loaded at each connect (an output loads it once: `StreamOutput`).
    pub tls: Option<TlsClient>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            user_timeout: DEFAULT_USER_TIMEOUT,
            send_buffer_bytes: None,
            tls: None,
        }
    }
}

/// Identifies a queued media message (see [`RtmpPublisher::take_sent`]).
pub type MediaId = MessageId;

/// One publishing connection: our socket plus our protocol session.
pub struct RtmpPublisher {
    stream: Transport,
    session: ClientSession,
    /// Redacted URL, for logs.
    redacted: String,
    read_buf: Vec<u8>,
    events: Vec<Event>,
    /// Sent at close after the media (Enhanced RTMP codecs: SequenceEnd).
    sequence_end: Option<Bytes>,
    /// Timestamp of the last video message, for the sequence end.
    last_video_ts: u32,
    /// Where this connection publishes (for resolving a reconnect request).
    url: RtmpUrl,
    /// A `NetConnection.Connect.ReconnectRequest` not yet taken: its `tcUrl`.
    reconnect_request: Option<Option<String>>,
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
        let addrs = resolve(&url.host, url.port, opts.connect_timeout)?;
        let target = format!("{}:{}", url.host_for_url(), url.port);
        let tcp = connect_tcp(&addrs, opts, &target)?;
        tracing::debug!(url = %url, "tcp connected");
        let deadline = Instant::now() + opts.handshake_timeout;
        let mut stream = match url.scheme {
            Scheme::Rtmp => Transport::Plain(tcp),
            Scheme::Rtmps => {
                let client = match &opts.tls {
                    Some(client) => client.clone(),
                    None => TlsClient::new(None).map_err(|e| RtmpError::Tls {
                        target: target.clone(),
                        reason: e.to_string(),
                    })?,
                };
                let tls = TlsStream::handshake(
                    tcp,
                    &client,
                    &url.host,
                    deadline,
                    opts.write_timeout,
                    &target,
                )?;
                tracing::debug!(url = %url, "TLS handshake done");
                Transport::Tls(Box::new(tls))
            }
        };

        let mut setup = Setup {
            stream: &mut stream,
            started: Instant::now(),
            deadline,
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
                    // Not live yet: the reconnect thread's retry is the answer
                    // if the server then closes; nothing to switch from.
                    Event::ReconnectRequest { .. } => {
                        tracing::info!(url = %url, "reconnect request during setup (ignored)")
                    }
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
            url: url.clone(),
            reconnect_request: None,
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

    /// The server's `NetConnection.Connect.ReconnectRequest`, once: where to
    /// go, resolved against this connection's URL (same key), or an error
    /// saying why its `tcUrl` is unusable. Read by [`pump`](Self::pump).
    pub fn take_reconnect_request(&mut self) -> Option<Result<RtmpUrl, String>> {
        let tc_url = self.reconnect_request.take()?;
        Some(resolve_tc_url(&self.url, tc_url.as_deref()))
    }

    /// Serialized bytes (exact, chunk headers included) not yet accepted by
    /// the kernel, plus the TLS records made of bytes already taken from the
    /// session but not yet accepted by the kernel (`rtmps://`).
    pub fn pending_bytes(&self) -> usize {
        self.session.pending_bytes() + self.stream.backlog_bytes()
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
    /// acknowledged: bytes taken from the session minus those the kernel
    /// and TLS still hold. Under TLS those two count encrypted bytes (a TLS
    /// record adds 22 to 29 bytes), so the offset errs on the early side:
    /// the backlog it implies is a little larger than the true one.
    pub fn acked_offset(&self) -> u64 {
        self.session
            .consumed()
            .saturating_sub((self.kernel_unsent_bytes() + self.stream.backlog_bytes()) as u64)
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
                if !front.is_empty() {
                    self.stream.write(front).map(Some)
                } else if self.stream.backlog_bytes() > 0 {
                    // Only TLS records are left to go out.
                    self.stream.flush().map(|()| None)
                } else {
                    break;
                }
            };
            match result {
                Ok(None) => {}
                Ok(Some(0)) => return Err(RtmpError::Closed { stage: Stage::Send }),
                Ok(Some(n)) => {
                    self.session.advance(n);
                    written += n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    poll_fd(self.stream.tcp(), libc::POLLOUT, deadline - now).map_err(
                        |source| RtmpError::Io {
                            stage: Stage::Send,
                            source,
                        },
                    )?;
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
            let n = match self.stream.read(&mut self.read_buf) {
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
                    Event::ReconnectRequest { tc_url } => {
                        tracing::info!(url = %self.redacted, "server asks to reconnect");
                        self.reconnect_request = Some(tc_url);
                    }
                    Event::Connected | Event::Publishing { .. } => {}
                }
            }
        }
        Ok(())
    }

    /// Bytes accepted by the kernel but not yet acknowledged by the peer
    /// (SIOCOUTQ), for latency accounting. 0 where unsupported.
    pub fn kernel_unsent_bytes(&self) -> usize {
        kernel_outq(self.stream.tcp()).unwrap_or(0)
    }

    /// Milliseconds since the peer last ACKed anything (TCP_INFO
    /// `tcpi_last_ack_recv`), if known. It also grows while we send nothing,
    /// so it only means "stalled" while [`kernel_unsent_bytes`](Self::kernel_unsent_bytes) > 0.
    pub fn ms_since_last_ack(&self) -> Option<u32> {
        tcp_info(self.stream.tcp()).map(|i| i.tcpi_last_ack_recv)
    }

    /// Bytes of this connection the peer has acknowledged (TCP_INFO
    /// `tcpi_bytes_acked`): what the link really carried, for the
    /// congestion controller. `None` where unsupported.
    pub fn bytes_acked(&self) -> Option<u64> {
        tcp_info(self.stream.tcp()).map(|i| i.tcpi_bytes_acked)
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
        while self.pending_bytes() > 0 {
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

mod enhanced;
mod error;
#[cfg(test)]
mod hostile;
pub mod proto;
mod setup;
mod socket;
#[cfg(test)]
pub(crate) mod tests;
pub mod tls;
#[cfg(test)]
mod tls_tests;
mod transport;
