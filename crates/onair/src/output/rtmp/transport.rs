//! What an RTMP session's bytes travel over: the TCP socket itself
//! (`rtmp://`) or TLS over it (`rtmps://`, [`super::tls`]).
//!
//! Why one type: the publisher reads, writes and polls the same way over
//! both; only TLS holds bytes of its own ([`Transport::backlog_bytes`]),
//! which the publisher adds to what the kernel holds. The socket (options,
//! SIOCOUTQ, TCP_INFO, poll) is always the TCP one ([`Transport::tcp`]).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::tls::TlsStream;

/// A connected transport.
pub(super) enum Transport {
    /// `rtmp://`: the socket.
    Plain(TcpStream),
    /// `rtmps://`: TLS over the socket (boxed: rustls's state is large).
    Tls(Box<TlsStream>),
}

impl Transport {
    /// The TCP socket under the transport.
    pub(super) fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(t) => t.tcp(),
        }
    }

    /// Bytes the transport holds that the kernel has not accepted yet
    /// (TLS records; always 0 for plain TCP).
    pub(super) fn backlog_bytes(&self) -> usize {
        match self {
            Transport::Plain(_) => 0,
            Transport::Tls(t) => t.backlog_bytes(),
        }
    }

    /// Blocking writes give up after `timeout` (setup only).
    pub(super) fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp().set_write_timeout(timeout)
    }

    /// Blocking reads give up after `timeout` (setup only).
    pub(super) fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp().set_read_timeout(timeout)
    }

    /// Nonblocking mode, for the send thread's pump.
    pub(super) fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.tcp().set_nonblocking(nonblocking)
    }

    /// Half-closes or closes the socket; TLS says close_notify first.
    pub(super) fn shutdown(&mut self, how: std::net::Shutdown) -> io::Result<()> {
        if let Transport::Tls(t) = self {
            t.send_close_notify();
        }
        self.tcp().shutdown(how)
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            Transport::Tls(t) => t.write(buf),
        }
    }

    /// Writes out what TLS holds (nothing to do for plain TCP).
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(_) => Ok(()),
            Transport::Tls(t) => t.flush(),
        }
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(t) => t.read(buf),
        }
    }
}
