//! RTMPS: TLS (rustls, `ring` provider) over the connection's `TcpStream`.
//!
//! Why here and not in the protocol layer: TLS only changes how bytes reach
//! the socket; the RTMP session (`proto`) and the socket options
//! (`socket.rs`: TCP_USER_TIMEOUT, capped SO_SNDBUF, SIOCOUTQ, TCP_INFO)
//! stay the same. [`TlsStream`] keeps the TLS records it has made but the
//! kernel has not accepted yet in its own buffer, so the send path can count
//! them ([`TlsStream::backlog_bytes`]) and never block on them: rustls
//! encrypts plaintext as soon as it is handed over (after the handshake), so
//! that buffer is all TLS holds.
//!
//! Trust: the system store as `rustls-native-certs` finds it (which honours
//! `SSL_CERT_FILE` / `SSL_CERT_DIR`), plus the authorities of a CA file
//! (`--ca-file`, Node `caFile`). SNI is the URL's host name; an IP address
//! is checked against the certificate's IP SANs (webpki). A certificate that
//! fails verification is [`RtmpError::Certificate`], which the reconnect
//! policy does not retry (`RtmpError::is_certificate_failure`).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{CertificateError, ClientConfig, ClientConnection, RootCertStore};

use super::{RtmpError, Stage};
use crate::Error;

/// Most plaintext whose TLS records [`TlsStream`] holds for the socket (the
/// records themselves are at most [`MAX_RECORD_OVERHEAD`] larger per write):
/// four full records, so a stalled link backs up into the session's queue
/// (where it is counted and dropped by policy), not here.
pub const MAX_TLS_BACKLOG: usize = 64 * 1024;
/// Bytes a TLS record adds to its plaintext, at most (header, tag, nonce, type).
pub const MAX_RECORD_OVERHEAD: usize = 64;
/// Most plaintext taken per `write`: one TLS record's worth.
const MAX_PLAINTEXT_PER_WRITE: usize = 16 * 1024;

/// The TLS settings of an output: trusted authorities and protocol versions,
/// built once per output (loading the system store parses every certificate
/// in it) and shared by all its connections.
#[derive(Clone)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
    /// How many trust anchors were loaded, for errors and logs.
    roots: usize,
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClient")
            .field("roots", &self.roots)
            .finish_non_exhaustive()
    }
}

/// Two settings are equal when they are the same loaded configuration.
impl PartialEq for TlsClient {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.config, &other.config)
    }
}

impl Eq for TlsClient {}

impl TlsClient {
    /// Trusts the system store (`SSL_CERT_FILE` / `SSL_CERT_DIR` honoured)
    /// plus every certificate in the PEM file `ca_file`. A CA file that
    /// cannot be read or holds no certificate is an error
    /// (`Error::InvalidConfig` for `ca-file`); an unreadable system store
    /// is only logged, since a CA file may be all that is needed.
    pub fn new(ca_file: Option<&Path>) -> Result<Self, Error> {
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::warn!(error = %e, "loading the system's trusted certificates");
        }
        let (added, ignored) = roots.add_parsable_certificates(native.certs);
        if ignored > 0 {
            tracing::debug!(ignored, "system certificates rustls cannot use");
        }
        tracing::debug!(added, "system trust anchors");
        if let Some(path) = ca_file {
            let invalid = |reason: String| Error::InvalidConfig {
                option: "ca-file",
                reason: format!("{}: {reason}", path.display()),
            };
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
                .map_err(|e| invalid(e.to_string()))?;
            if certs.is_empty() {
                return Err(invalid("no PEM certificate in the file".into()));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| invalid(format!("not a usable CA certificate: {e}")))?;
            }
        }
        let count = roots.len();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::InvalidConfig {
                option: "ca-file",
                reason: format!("TLS setup: {e}"),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            config: Arc::new(config),
            roots: count,
        })
    }
}

/// A TLS session over a connected `TcpStream`, usable blocking (setup, with
/// the socket's timeouts) and nonblocking (the send thread's pump).
pub struct TlsStream {
    tcp: TcpStream,
    conn: ClientConnection,
    /// TLS records made but not yet accepted by the kernel: `out[out_at..]`.
    out: Vec<u8>,
    out_at: usize,
}

impl TlsStream {
    /// The TLS handshake on `tcp`, bounded by `deadline` (the connection's
    /// handshake deadline) and by `write_timeout` per write. `host` gives
    /// SNI and the name (or IP address) the certificate must match.
    pub(super) fn handshake(
        tcp: TcpStream,
        client: &TlsClient,
        host: &str,
        deadline: Instant,
        write_timeout: Duration,
        target: &str,
    ) -> Result<Self, RtmpError> {
        let stage = Stage::TlsHandshake;
        let name = ServerName::try_from(host.to_string()).map_err(|e| RtmpError::Tls {
            target: target.to_string(),
            reason: format!("{host:?} is not a valid TLS server name: {e}"),
        })?;
        let conn =
            ClientConnection::new(client.config.clone(), name).map_err(|e| RtmpError::Tls {
                target: target.to_string(),
                reason: e.to_string(),
            })?;
        let mut tls = Self {
            tcp,
            conn,
            out: Vec::new(),
            out_at: 0,
        };
        let io = |source: io::Error| -> RtmpError {
            match source.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => RtmpError::Timeout { stage },
                io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::BrokenPipe => RtmpError::Closed { stage },
                _ => RtmpError::Io { stage, source },
            }
        };
        while tls.conn.is_handshaking() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RtmpError::Timeout { stage });
            }
            if tls.conn.wants_write() || tls.backlog_bytes() > 0 {
                tls.tcp
                    .set_write_timeout(Some(left.min(write_timeout)))
                    .map_err(io)?;
                tls.flush_records().map_err(io)?;
                continue;
            }
            tls.tcp.set_read_timeout(Some(left)).map_err(io)?;
            let n = match tls.conn.read_tls(&mut tls.tcp) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io(e)),
            };
            if n == 0 {
                return Err(RtmpError::Closed { stage });
            }
            if let Err(e) = tls.conn.process_new_packets() {
                // Tell the server why (best effort), then say which check failed.
                let _ = tls.flush_records();
                return Err(handshake_error(e, host, target, client.roots));
            }
        }
        // Anything rustls still has to say (the client Finished) goes out
        // with the first RTMP bytes.
        Ok(tls)
    }

    /// The TCP connection under the TLS session (socket options, SIOCOUTQ,
    /// TCP_INFO, poll, shutdown).
    pub(super) fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// TLS bytes made but not yet accepted by the kernel (ciphertext of
    /// plaintext the session already counts as sent, plus TLS's own records).
    pub(super) fn backlog_bytes(&self) -> usize {
        self.out.len() - self.out_at
    }

    /// Moves rustls's pending records into our buffer and writes the buffer
    /// to the socket until it is empty or the socket refuses more.
    fn flush_records(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            self.conn.write_tls(&mut self.out)?;
        }
        while self.out_at < self.out.len() {
            match (&self.tcp).write(&self.out[self.out_at..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.out_at += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if self.out_at > 0 {
                        self.out.drain(..self.out_at);
                        self.out_at = 0;
                    }
                    return Err(e);
                }
            }
        }
        self.out.clear();
        self.out_at = 0;
        Ok(())
    }

    /// Ends the TLS session (close_notify), best effort, without blocking.
    pub(super) fn send_close_notify(&mut self) {
        self.conn.send_close_notify();
        let _ = self.flush_records();
    }
}

fn is_wait(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Takes plaintext only while the records waiting for the socket stay under
/// [`MAX_TLS_BACKLOG`]; otherwise reports `WouldBlock` (the socket's, or its
/// write timeout when blocking), so the caller waits for the socket as it
/// does without TLS. Plaintext taken is encrypted at once; a failure to
/// write the records is reported by the next `write` or `flush`.
impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self.flush_records() {
            Ok(()) => {}
            Err(e) if is_wait(&e) && self.backlog_bytes() < MAX_TLS_BACKLOG => {}
            Err(e) => return Err(e),
        }
        let room = MAX_TLS_BACKLOG.saturating_sub(self.backlog_bytes());
        if room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let take = buf.len().min(MAX_PLAINTEXT_PER_WRITE).min(room);
        let n = self.conn.writer().write(&buf[..take])?;
        match self.flush_records() {
            Err(e) if !is_wait(&e) => Err(e),
            _ => Ok(n),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_records()
    }
}

/// Plaintext from the server. `Ok(0)` when the TCP connection ended (with
/// or without close_notify); `WouldBlock`/`TimedOut` as the socket gives them.
impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if self.conn.read_tls(&mut self.tcp)? == 0 {
                return Ok(0);
            }
            self.conn
                .process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {e}")))?;
            if self.conn.wants_write() {
                // Key updates and alerts; the records wait in our buffer if
                // the socket is full, and go out with the next write.
                match self.flush_records() {
                    Err(e) if !is_wait(&e) => return Err(e),
                    _ => {}
                }
            }
        }
    }
}

/// Says which check failed: a certificate refused is [`RtmpError::Certificate`],
/// anything else in the handshake is [`RtmpError::Tls`].
fn handshake_error(e: rustls::Error, host: &str, target: &str, roots: usize) -> RtmpError {
    let rustls::Error::InvalidCertificate(cert) = e else {
        return RtmpError::Tls {
            target: target.to_string(),
            reason: e.to_string(),
        };
    };
    let reason = match cert {
        CertificateError::UnknownIssuer => format!(
            "unknown issuer: not signed by a trusted certificate authority ({roots} trusted; \
             add the server's CA with a CA file)"
        ),
        CertificateError::NotValidForName => format!("wrong name: not valid for {host}"),
        CertificateError::NotValidForNameContext { presented, .. } => format!(
            "wrong name: not valid for {host} (it is for {})",
            if presented.is_empty() {
                "no name".to_string()
            } else {
                presented.join(", ")
            }
        ),
        CertificateError::Expired => "expired".to_string(),
        CertificateError::ExpiredContext { time, not_after } => format!(
            "expired {} s ago",
            time.as_secs().saturating_sub(not_after.as_secs())
        ),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "not valid yet (check the clock)".to_string()
        }
        CertificateError::Revoked => "revoked".to_string(),
        CertificateError::BadSignature => "bad signature".to_string(),
        // webpki's own errors, e.g. `openssl req -x509`'s usual self-signed
        // certificate, which says it is a CA.
        CertificateError::Other(e) if e.to_string().contains("CaUsedAsEndEntity") => {
            "a CA certificate used as the server's own (self-signed?)".to_string()
        }
        CertificateError::Other(e) => format!("refused by the verifier: {e}"),
        other => other.to_string(),
    };
    RtmpError::Certificate {
        target: target.to_string(),
        reason,
    }
}
