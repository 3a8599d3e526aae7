//! X11 plumbing shared by the screen and window sources: a connection whose
//! every wait is bounded, and MIT-SHM segments.
//!
//! Why bounded: the sources run on the grab thread (`video/grab.rs`), which
//! the CaptureThread never waits for; but a grabber that hangs forever on a
//! dead remote display would never reconnect either. So every request waits
//! at most [`X_IO_TIMEOUT`] ([`TimeoutStream`]), and a TCP display is resolved
//! and connected within [`X_CONNECT_TIMEOUT`].

use std::io;
use std::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};
use x11rb::connection::Connection;
use x11rb::protocol::{shm, xproto};
use x11rb::rust_connection::{DefaultStream, PollMode, RustConnection, Stream};
use x11rb::utils::RawFdContainer;
use x11rb_protocol::parse_display::ConnectAddress;
use x11rb_protocol::xauth::Family;

/// Longest wait for the X socket to become readable or writable before the
/// server is declared stalled. It bounds the grab thread, not the
/// CaptureThread (which the pipeline's `GrabThread` shields from any wait):
/// long enough for a remote display across a real network (every reply
/// costs a round trip), short enough that a stalled server is noticed and
/// retried within a second or two. A healthy local server answers a 1080p SHM
/// grab in a few ms.
pub const X_IO_TIMEOUT: Duration = Duration::from_secs(1);
/// Bound on reaching a TCP display (name lookup + connect); the X11
/// handshake after it is bounded by [`X_IO_TIMEOUT`] per read.
pub const X_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A connection to an X server over a [`TimeoutStream`].
pub(crate) type XConn = RustConnection<TimeoutStream>;

/// Checks that the screen's pixels are 32-bit little-endian BGRX (what the
/// converter takes) for windows and screens of `depth`.
pub(crate) fn check_pixel_format(conn: &XConn, depth: u8) -> Result<(), String> {
    let bpp = conn
        .setup()
        .pixmap_formats
        .iter()
        .find(|f| f.depth == depth)
        .map(|f| f.bits_per_pixel);
    if bpp != Some(32) || conn.setup().image_byte_order != xproto::ImageOrder::LSB_FIRST {
        return Err(format!(
            "unsupported X pixel format (depth {depth}, {bpp:?} bits per pixel): \
             only 24/32-bit little-endian screens are supported"
        ));
    }
    Ok(())
}

/// Connects like `RustConnection::connect`, but over a [`TimeoutStream`].
pub(crate) fn connect(display: Option<&str>) -> Result<(XConn, usize), String> {
    let parsed = x11rb_protocol::parse_display::parse_display(display)
        .map_err(|e| format!("bad display name: {e}"))?;
    let screen = usize::from(parsed.screen);
    let mut last = String::from("no address to connect to");
    for addr in parsed.connect_instruction() {
        match connect_bounded(&addr) {
            Ok((stream, (family, address))) => {
                let (auth_name, auth_data) =
                    x11rb_protocol::xauth::get_auth(family, &address, parsed.display)
                        .ok()
                        .flatten()
                        .unwrap_or_default();
                let stream = TimeoutStream {
                    inner: stream,
                    timeout: X_IO_TIMEOUT,
                };
                let conn = RustConnection::connect_to_stream_with_auth_info(
                    stream, screen, auth_name, auth_data,
                )
                .map_err(|e| format!("X11 handshake: {e}"))?;
                return Ok((conn, screen));
            }
            Err(e) => last = format!("cannot connect to X display: {e}"),
        }
    }
    Err(last)
}

/// Opens one X transport. A TCP display (`host:0`) is resolved and
/// connected within [`X_CONNECT_TIMEOUT`]: the kernel's own connect timeout
/// is minutes, and a name lookup has none. A local socket answers at once.
fn connect_bounded(addr: &ConnectAddress<'_>) -> io::Result<(DefaultStream, (Family, Vec<u8>))> {
    match addr {
        ConnectAddress::Hostname(host, port) => {
            let deadline = Instant::now() + X_CONNECT_TIMEOUT;
            let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
            for sa in crate::net::resolve(host, *port, X_CONNECT_TIMEOUT)? {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "connecting to {host}:{port} took longer than {X_CONNECT_TIMEOUT:?}"
                        ),
                    ));
                }
                match TcpStream::connect_timeout(&sa, left) {
                    Ok(tcp) => return DefaultStream::from_tcp_stream(tcp),
                    Err(e) => last = e,
                }
            }
            Err(last)
        }
        _ => DefaultStream::connect(addr),
    }
}

/// The X socket with a bounded `poll`: x11rb waits for replies through
/// `Stream::poll`, so bounding it bounds every request.
pub(crate) struct TimeoutStream {
    inner: DefaultStream,
    timeout: Duration,
}

impl Stream for TimeoutStream {
    fn poll(&self, mode: PollMode) -> io::Result<()> {
        let mut events = 0;
        if mode.readable() {
            events |= libc::POLLIN;
        }
        if mode.writable() {
            events |= libc::POLLOUT;
        }
        let mut fd = libc::pollfd {
            fd: self.inner.as_raw_fd(),
            events,
            revents: 0,
        };
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
            // SAFETY: `fd` is a valid pollfd for the duration of the call and
            // we pass a count of exactly one.
            let r = unsafe { libc::poll(&mut fd, 1, ms) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if r == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("X server did not answer within {:?}", self.timeout),
                ));
            }
            return Ok(());
        }
    }

    fn read(&self, buf: &mut [u8], fd_storage: &mut Vec<RawFdContainer>) -> io::Result<usize> {
        self.inner.read(buf, fd_storage)
    }

    fn write(&self, buf: &[u8], fds: &mut Vec<RawFdContainer>) -> io::Result<usize> {
        self.inner.write(buf, fds)
    }

    fn write_vectored(
        &self,
        bufs: &[io::IoSlice<'_>],
        fds: &mut Vec<RawFdContainer>,
    ) -> io::Result<usize> {
        self.inner.write_vectored(bufs, fds)
    }
}

/// A memfd mapped here and attached to the X server (MIT-SHM 1.2), so
/// `ShmGetImage` writes pixels straight into our memory.
pub(crate) struct ShmSegment {
    pub(crate) seg: shm::Seg,
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is owned by this struct alone; moving it to another
// thread moves sole access with it.
unsafe impl Send for ShmSegment {}

impl ShmSegment {
    pub(crate) fn attach(conn: &XConn, len: usize) -> Result<Self, String> {
        let version = shm::query_version(conn)
            .map_err(|e| e.to_string())?
            .reply()
            .map_err(|e| format!("no MIT-SHM: {e}"))?;
        if (version.major_version, version.minor_version) < (1, 2) {
            return Err(format!(
                "MIT-SHM {}.{} has no fd passing",
                version.major_version, version.minor_version
            ));
        }
        // SAFETY: a NUL-terminated name and valid flags; the result is checked.
        let raw = unsafe { libc::memfd_create(c"onair-screen".as_ptr(), libc::MFD_CLOEXEC) };
        if raw < 0 {
            return Err(format!("memfd_create: {}", io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let size = libc::off_t::try_from(len).map_err(|e| e.to_string())?;
        // SAFETY: valid fd, non-negative size.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), size) } != 0 {
            return Err(format!("ftruncate: {}", io::Error::last_os_error()));
        }
        // SAFETY: mapping `len` bytes of a file that has exactly that size;
        // the result is checked against MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(format!("mmap: {}", io::Error::last_os_error()));
        }
        let mut this = Self {
            seg: 0,
            ptr: ptr.cast(),
            len,
        };
        this.seg = conn.generate_id().map_err(|e| e.to_string())?;
        // The fd is sent to the server (and closed here); the mapping stays.
        shm::attach_fd(conn, this.seg, fd, false)
            .map_err(|e| e.to_string())?
            .check()
            .map_err(|e| format!("ShmAttachFd: {e}"))?;
        Ok(this)
    }

    /// Bytes in the segment.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` maps `len` bytes for as long as `self` lives, and
        // `&mut self` guarantees no other slice of it exists. The server only
        // writes into it while we wait for a ShmGetImage reply.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for ShmSegment {
    fn drop(&mut self) {
        // The server detaches on its own when the connection closes.
        // SAFETY: unmapping exactly the mapping created in `attach`.
        unsafe {
            libc::munmap(self.ptr.cast(), self.len);
        }
    }
}
