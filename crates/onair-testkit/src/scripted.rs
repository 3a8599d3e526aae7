//! A scripted TCP server: one connection, driven step by step by the test,
//! to play a hostile or broken RTMP server.
//!
//! Why: real servers (nginx-rtmp, FFmpeg) behave well; the publisher must
//! also survive servers that never answer, answer one byte at a time, close
//! halfway through the handshake, send garbage or flood pings. Those are
//! easiest to write as a plain script on a socket. The RTMP *messages* a
//! script sends are the test's business (onair's tests build them with its
//! own chunk writer); this module only does the socket, the timing, and the
//! plain RTMP handshake (S0/S1/S2), which every script needs.
//!
//! Every wait is bounded ([`SCRIPT_IO_TIMEOUT`]), and the script's thread
//! ends when the script returns, so a test never hangs on its server.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bound on any single read or write a script does, and on the accept.
pub const SCRIPT_IO_TIMEOUT: Duration = Duration::from_secs(10);
/// RTMP handshake packet size (C1/S1/C2/S2).
pub const HANDSHAKE_LEN: usize = 1536;

/// A server running a script on its first connection.
#[derive(Debug)]
pub struct ScriptedServer {
    addr: SocketAddr,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl ScriptedServer {
    /// Listens on an ephemeral loopback port; the first connection is given
    /// to `script` on a thread of its own. The connection closes when the
    /// script returns.
    pub fn start<F>(script: F) -> io::Result<ScriptedServer>
    where
        F: FnOnce(&mut ScriptConn) -> io::Result<()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let thread = std::thread::Builder::new()
            .name("scripted-server".into())
            .spawn(move || {
                listener.set_nonblocking(true)?;
                let deadline = Instant::now() + SCRIPT_IO_TIMEOUT;
                let stream = loop {
                    match listener.accept() {
                        Ok((s, _)) => break s,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            if Instant::now() >= deadline {
                                return Err(io::Error::new(io::ErrorKind::TimedOut, "no client"));
                            }
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(e) => return Err(e),
                    }
                };
                stream.set_nonblocking(false)?;
                stream.set_nodelay(true)?;
                let mut conn = ScriptConn { stream };
                script(&mut conn)
            })?;
        Ok(ScriptedServer {
            addr,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `rtmp://127.0.0.1:PORT/{path}`.
    pub fn rtmp_url(&self, path: &str) -> String {
        format!("rtmp://{}/{path}", self.addr)
    }

    /// Waits for the script to end; its result (a panic in it is an error).
    pub fn join(mut self) -> io::Result<()> {
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io::Error::other("script panicked")),
            None => Ok(()),
        }
    }
}

/// The script's side of the connection.
#[derive(Debug)]
pub struct ScriptConn {
    stream: TcpStream,
}

impl ScriptConn {
    /// The socket, for anything the helpers do not cover.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Reads exactly `n` bytes (bounded by [`SCRIPT_IO_TIMEOUT`]).
    pub fn read_exact(&mut self, n: usize) -> io::Result<Vec<u8>> {
        self.stream.set_read_timeout(Some(SCRIPT_IO_TIMEOUT))?;
        let mut buf = vec![0; n];
        self.stream.read_exact(&mut buf)?;
        Ok(buf)
    }

    /// Reads what arrives within `wait` (possibly nothing); `Ok(None)` at EOF.
    pub fn read_for(&mut self, wait: Duration) -> io::Result<Option<Vec<u8>>> {
        self.stream
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
        let mut buf = vec![0; 64 * 1024];
        match self.stream.read(&mut buf) {
            Ok(0) => Ok(None),
            Ok(n) => {
                buf.truncate(n);
                Ok(Some(buf))
            }
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                Ok(Some(Vec::new()))
            }
            Err(e) => Err(e),
        }
    }

    /// Writes all of `bytes` at once.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.set_write_timeout(Some(SCRIPT_IO_TIMEOUT))?;
        self.stream.write_all(bytes)
    }

    /// Writes `bytes` one at a time, `gap` apart (a server that trickles).
    pub fn write_slowly(&mut self, bytes: &[u8], gap: Duration) -> io::Result<()> {
        self.stream.set_write_timeout(Some(SCRIPT_IO_TIMEOUT))?;
        for b in bytes {
            self.stream.write_all(std::slice::from_ref(b))?;
            std::thread::sleep(gap);
        }
        Ok(())
    }

    /// Reads and discards whatever arrives for `d` (a server that listens
    /// but never answers). Returns the bytes read; stops early at EOF.
    pub fn swallow_for(&mut self, d: Duration) -> io::Result<usize> {
        let deadline = Instant::now() + d;
        let mut total = 0;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.read_for(left.min(Duration::from_millis(50)))? {
                None => break,
                Some(b) => total += b.len(),
            }
        }
        Ok(total)
    }

    /// Reads C0+C1 from the client.
    pub fn read_c0c1(&mut self) -> io::Result<Vec<u8>> {
        self.read_exact(1 + HANDSHAKE_LEN)
    }

    /// S0+S1+S2 answering `c0c1` (S2 echoes C1), as a server writes it.
    pub fn s0s1s2(c0c1: &[u8]) -> Vec<u8> {
        let mut out = vec![3u8];
        out.extend_from_slice(&[0; 8]);
        out.extend((0..HANDSHAKE_LEN - 8).map(|i| (i * 31 % 251) as u8));
        out.extend_from_slice(c0c1.get(1..).unwrap_or(&[]));
        out.resize(1 + 2 * HANDSHAKE_LEN, 0);
        out
    }

    /// The whole plain handshake, server side: C0C1 in, S0S1S2 out, C2 in.
    pub fn handshake(&mut self) -> io::Result<()> {
        let c0c1 = self.read_c0c1()?;
        self.write(&Self::s0s1s2(&c0c1))?;
        self.read_exact(HANDSHAKE_LEN)?;
        Ok(())
    }
}
