//! RTMP publishing over our own socket, driven by rml_rtmp's sans-IO session.
//! TODO(helper-rtmp): implement. Interface contract the lead's send/reconnect
//! threads rely on (signatures may gain arguments, not lose them):
//!
//! ```ignore
//! pub struct ConnectOptions { pub connect_timeout: Duration, pub handshake_timeout: Duration,
//!     pub write_timeout: Duration, pub user_timeout: Duration, pub send_buffer_bytes: Option<usize> }
//! pub struct RtmpPublisher { .. }
//! impl RtmpPublisher {
//!     /// TCP connect (socket2: TCP_NODELAY, TCP_USER_TIMEOUT, SO_SNDBUF cap, keepalive), handshake,
//!     /// connect(app, tcUrl), releaseStream + FCPublish, createStream, publish(key, "live"),
//!     /// waits for NetStream.Publish.Start (or rejection), sets chunk size 4096, then queues
//!     /// @setDataFrame onMetaData and the AVC/AAC sequence headers at timestamp 0.
//!     pub fn connect(url: &RtmpUrl, opts: &ConnectOptions, headers: &StreamHeaders) -> Result<Self, RtmpError>;
//!     /// Serializes one FLV tag body (built by crate::flv) as an RTMP audio/video message into the
//!     /// pending output. Never blocks.
//!     pub fn queue_media(&mut self, kind: MediaKind, timestamp_ms: u32, body: Bytes) -> Result<(), RtmpError>;
//!     /// Bytes serialized but not yet accepted by the kernel.
//!     pub fn pending_bytes(&self) -> usize;
//!     /// Writes pending bytes for at most `max_wait`; returns bytes the kernel accepted (0 = no progress).
//!     /// Also reads whatever the server sent (acks, pings, onStatus) without blocking and answers it.
//!     /// Err on write error, EOF, or a server-side close/error status.
//!     pub fn pump(&mut self, max_wait: Duration) -> Result<usize, RtmpError>;
//!     /// Bytes accepted by the kernel but not yet sent/acked (SIOCOUTQ), for latency accounting.
//!     pub fn kernel_unsent_bytes(&self) -> usize;
//!     /// Milliseconds since the peer last ACKed anything (TCP_INFO tcpi_last_ack_recv), if known.
//!     pub fn ms_since_last_ack(&self) -> Option<u32>;
//!     /// Graceful stop: drain pending for up to `drain`, FCUnpublish + deleteStream, shutdown.
//!     pub fn close(self, drain: Duration);
//! }
//! #[derive(Debug, thiserror::Error)]
//! pub enum RtmpError { Resolve{..}, Connect{..}, Timeout{stage}, Io{stage, source}, Closed{stage},
//!     Rejected{code, description}, Protocol(String) }
//! impl RtmpError { pub fn is_rejection(&self) -> bool; }
//! ```

/// Placeholder until the rtmp helper lands.
#[derive(Debug, thiserror::Error)]
#[error("rtmp")]
pub struct RtmpError;
