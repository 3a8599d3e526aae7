//! The setup phase of a connection (handshake, `connect`, publish): blocking
//! I/O on the transport with one deadline for the whole phase.
//!
//! Why apart from the publisher: once live, the publisher's socket is
//! nonblocking and every wait is bounded per pump; during setup the opposite
//! holds, and mixing the two in one place hides which rule applies.

use super::error::protocol;
use super::proto::client::ClientSession;
use super::proto::handshake::{ClientHandshake, HandshakeStep, RANDOM_LEN};
use super::transport::Transport;
use super::{RtmpError, Stage};
use rand::RngCore;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

/// Blocking I/O with one deadline, for handshake/connect/publish.
pub(super) struct Setup<'a> {
    pub(super) stream: &'a mut Transport,
    pub(super) started: Instant,
    pub(super) deadline: Instant,
    pub(super) write_timeout: Duration,
    pub(super) buf: Vec<u8>,
}

impl Setup<'_> {
    pub(super) fn remaining(&self, stage: Stage) -> Result<Duration, RtmpError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(RtmpError::Timeout { stage })
        } else {
            Ok(left)
        }
    }

    pub(super) fn write_all(&mut self, bytes: &[u8], stage: Stage) -> Result<(), RtmpError> {
        let mut bytes = bytes;
        while !bytes.is_empty() {
            let n = self.write_some(bytes, stage)?;
            bytes = &bytes[n..];
        }
        self.flush_transport(stage)
    }

    /// Writes out what the transport holds (TLS records), within the same
    /// bounds as a write.
    pub(super) fn flush_transport(&mut self, stage: Stage) -> Result<(), RtmpError> {
        if self.stream.backlog_bytes() == 0 {
            return Ok(());
        }
        let timeout = self.remaining(stage)?.min(self.write_timeout);
        self.stream
            .set_write_timeout(Some(timeout))
            .map_err(|source| RtmpError::Io { stage, source })?;
        self.stream.flush().map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => RtmpError::Timeout { stage },
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => {
                RtmpError::Closed { stage }
            }
            _ => RtmpError::Io { stage, source: e },
        })
    }

    pub(super) fn write_some(&mut self, bytes: &[u8], stage: Stage) -> Result<usize, RtmpError> {
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
    pub(super) fn flush(
        &mut self,
        session: &mut ClientSession,
        stage: Stage,
    ) -> Result<(), RtmpError> {
        loop {
            let front = session.front();
            if front.is_empty() {
                return self.flush_transport(stage);
            }
            let n = self.write_some(front, stage)?;
            session.advance(n);
        }
    }

    /// Reads at least one byte before the deadline.
    pub(super) fn read(&mut self, stage: Stage) -> Result<Vec<u8>, RtmpError> {
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
    pub(super) fn handshake(&mut self) -> Result<Vec<u8>, RtmpError> {
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
