//! The socket under an RTMP connection: name resolution and TCP connect
//! with deadlines, the options that make a dead link visible, and the
//! kernel's view of the connection (unsent bytes, ACK times).
//!
//! Why apart from the protocol: these are the only calls here that touch the
//! operating system (and the only `unsafe`, at the FFI edge); the protocol
//! layer (`proto`) never sees a socket. For `rtmps://` the TLS stream
//! (`tls.rs`) wraps the `TcpStream` these functions make, and leaves them
//! unchanged: the kernel's counters are read from that same socket.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, TcpKeepalive, Type};

use super::{ConnectOptions, RtmpError, Stage, KEEPALIVE_TIME};

/// Resolves `host:port` within `timeout` (`crate::net::resolve`), as an
/// [`RtmpError::Resolve`].
pub(super) fn resolve(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, RtmpError> {
    crate::net::resolve(host, port, timeout).map_err(|e| RtmpError::Resolve {
        target: format!("{host}:{port}"),
        reason: if e.kind() == std::io::ErrorKind::TimedOut {
            format!("timed out after {} ms", timeout.as_millis())
        } else {
            e.to_string()
        },
    })
}

pub(super) fn connect_tcp(
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
/// Waits until `fd` is ready for `events` or `timeout` passes.
pub(super) fn poll_fd(
    stream: &TcpStream,
    events: libc::c_short,
    timeout: Duration,
) -> io::Result<bool> {
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
pub(super) fn kernel_outq(stream: &TcpStream) -> Option<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: the fd is an open socket owned by `stream`, borrowed for the
    // call; TIOCOUTQ (== SIOCOUTQ) writes one c_int through the pointer,
    // which points to a live local.
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    (rc == 0).then(|| usize::try_from(n).unwrap_or(0))
}

#[cfg(not(target_os = "linux"))]
pub(super) fn kernel_outq(_stream: &TcpStream) -> Option<usize> {
    None
}

/// TCP_INFO of the connection (last ACK time, bytes acknowledged).
#[cfg(target_os = "linux")]
pub(super) fn tcp_info(stream: &TcpStream) -> Option<libc::tcp_info> {
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
pub(super) fn tcp_info(_stream: &TcpStream) -> Option<TcpInfoUnsupported> {
    None
}

/// Stand-in on systems without TCP_INFO (never constructed).
#[cfg(not(target_os = "linux"))]
pub(super) struct TcpInfoUnsupported {
    tcpi_last_ack_recv: u32,
    tcpi_bytes_acked: u64,
}
