//! What went wrong on an RTMP connection, and in which stage of its life.
//!
//! Why a module of its own: the reconnect policy decides on these errors
//! (a rejection or a refused certificate ends the output, the rest is
//! retried), so what each one means is kept apart from the byte moving.

use super::proto::client::SessionError;
use std::fmt;
use std::io;

/// Where in a connection's life something happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Name resolution.
    Resolve,
    /// TCP connect.
    Connect,
    /// TLS handshake (`rtmps://`).
    TlsHandshake,
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
            Stage::TlsHandshake => "TLS handshake",
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
    /// The server's TLS certificate failed verification (unknown issuer,
    /// wrong name, expired...). Not a network fault: retrying will not help.
    #[error("TLS certificate of {target} refused: {reason}")]
    Certificate {
        /// `host:port`.
        target: String,
        /// Which check failed.
        reason: String,
    },
    /// The TLS handshake failed for another reason (alert from the server,
    /// no common protocol version, not a TLS server).
    #[error("TLS with {target}: {reason}")]
    Tls {
        /// `host:port`.
        target: String,
        /// rustls's account.
        reason: String,
    },
}

impl RtmpError {
    /// True when the server refused us (retrying with the same settings is pointless).
    pub fn is_rejection(&self) -> bool {
        matches!(self, RtmpError::Rejected { .. })
    }

    /// True when the server's certificate failed verification: the output
    /// stops at once instead of retrying (a retry would see the same
    /// certificate, and a man in the middle must not be tried again).
    pub fn is_certificate_failure(&self) -> bool {
        matches!(self, RtmpError::Certificate { .. })
    }
}

pub(super) fn protocol(stage: Stage, e: impl fmt::Display) -> RtmpError {
    RtmpError::Protocol(format!("{stage}: {e}"))
}

/// Maps a session error: rejections stay rejections, the rest says where.
pub(super) fn session_error(stage: Stage, e: SessionError) -> RtmpError {
    match e {
        SessionError::Rejected { code, description } => RtmpError::Rejected { code, description },
        SessionError::Fault { code } => {
            RtmpError::Protocol(format!("{stage}: server status {code}"))
        }
        other => protocol(stage, other),
    }
}
