//! A userspace TCP fault proxy on 127.0.0.1.
//!
//! Why: the network faults onair must survive (a peer that stops reading, a slow uplink,
//! a dead link, a reset, a refused reconnect, latency) have to be switched on and off in
//! the middle of a live stream, deterministically, without root. The proxy sits between
//! onair and the real server and applies them with plain atomics:
//!
//! - [`FaultProxy::pause`]: stop reading and forwarding both ways, sockets stay open.
//!   Nothing is lost: [`FaultProxy::resume`] delivers everything held (a stalled peer).
//! - [`FaultProxy::throttle`]: token bucket on client -> server, shared by all connections.
//!   The proxy reads only what the bucket allows, so the client sees real backpressure.
//! - [`FaultProxy::blackhole`]: a dead link. Current connections stop being read or
//!   forwarded *for good* (data is lost, so they never recover, even after `resume`); new
//!   connections are accepted but never connected upstream until `resume`. The client's
//!   writes stall once the kernel buffers fill, with no error: it must notice by itself.
//! - [`FaultProxy::reset_all`]: RST every current connection (SO_LINGER 0, then close).
//! - [`FaultProxy::refuse`]: new connections are reset right after accept.
//! - [`FaultProxy::delay`]: each chunk is forwarded `ms` after it was read.
//!
//! Kernel-level faults (packets dropped without any ACK, tbf shaping) are in [`crate::netns`].

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, TrySendError};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often blocked proxy threads look at the controls.
const TICK: Duration = Duration::from_millis(10);

/// Options for [`FaultProxy::start_with`].
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// SO_RCVBUF of accepted client sockets. Small values make a paused/blackholed proxy
    /// stall the client's writes sooner (Linux otherwise autotunes it to megabytes).
    /// Default 128 KiB.
    pub recv_buffer: Option<usize>,
    /// Timeout for connecting upstream. Default 2 s.
    pub connect_timeout: Duration,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            recv_buffer: Some(128 * 1024),
            connect_timeout: Duration::from_secs(2),
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    opts: ProxyOptions,
    stop: AtomicBool,
    paused: AtomicBool,
    blackhole: AtomicBool,
    refuse: AtomicBool,
    delay_ms: AtomicU64,
    rate: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    accepted: AtomicU64,
    conns: Mutex<Vec<Weak<Conn>>>,
    held: Mutex<Vec<TcpStream>>,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Conn {
    client: TcpStream,
    upstream: TcpStream,
    killed: AtomicBool,
    dead: AtomicBool,
}

impl Conn {
    fn reset(&self) {
        set_linger_zero(&self.client);
        set_linger_zero(&self.upstream);
        self.killed.store(true, Ordering::SeqCst);
    }
}

fn set_linger_zero(s: &TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: valid fd owned by `s`, option value of the right type and size.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

fn set_rcvbuf(fd: i32, size: usize) {
    let v = size.min(i32::MAX as usize) as libc::c_int;
    // SAFETY: valid fd, option value of the right type and size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// A running fault proxy. Dropping it stops accepting and closes every connection.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Listens on a free 127.0.0.1 port and forwards to `upstream`, with default options.
    pub fn start(upstream: SocketAddr) -> io::Result<FaultProxy> {
        Self::start_with(upstream, ProxyOptions::default())
    }

    /// Like [`FaultProxy::start`] with explicit options.
    pub fn start_with(upstream: SocketAddr, opts: ProxyOptions) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        if let Some(sz) = opts.recv_buffer {
            // Inherited by accepted sockets; set before any SYN so the window scale fits.
            set_rcvbuf(listener.as_raw_fd(), sz);
        }
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            opts,
            stop: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            blackhole: AtomicBool::new(false),
            refuse: AtomicBool::new(false),
            delay_ms: AtomicU64::new(0),
            rate: AtomicU64::new(0),
            bytes_up: AtomicU64::new(0),
            bytes_down: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            conns: Mutex::new(Vec::new()),
            held: Mutex::new(Vec::new()),
            bucket: Mutex::new(Bucket {
                tokens: 0.0,
                last: Instant::now(),
            }),
        });
        let sh = shared.clone();
        let accept = std::thread::Builder::new()
            .name("proxy-accept".into())
            .spawn(move || accept_loop(listener, sh))?;
        Ok(FaultProxy {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `rtmp://127.0.0.1:PORT/live/KEY` through the proxy.
    pub fn rtmp_url(&self, key: &str) -> String {
        format!("rtmp://{}/live/{key}", self.addr)
    }

    /// Stops reading and forwarding in both directions; sockets stay open, data is held.
    pub fn pause(&self) {
        self.shared.paused.store(true, Ordering::SeqCst);
    }

    /// Ends [`FaultProxy::pause`] and [`FaultProxy::blackhole`] (blackholed connections stay dead).
    pub fn resume(&self) {
        self.shared.paused.store(false, Ordering::SeqCst);
        self.shared.blackhole.store(false, Ordering::SeqCst);
    }

    /// Limits client -> server to `bytes_per_sec` (`None`: unlimited).
    pub fn throttle(&self, bytes_per_sec: Option<u64>) {
        if let Ok(mut b) = self.shared.bucket.lock() {
            b.tokens = 0.0;
            b.last = Instant::now();
        }
        self.shared
            .rate
            .store(bytes_per_sec.unwrap_or(0), Ordering::SeqCst);
    }

    /// A dead link: current connections are never read or forwarded again; new ones are
    /// held without an upstream until [`FaultProxy::resume`].
    pub fn blackhole(&self) {
        self.shared.blackhole.store(true, Ordering::SeqCst);
        for c in self.live_conns() {
            c.dead.store(true, Ordering::SeqCst);
        }
    }

    /// Resets (RST) every current connection, client and upstream side.
    pub fn reset_all(&self) {
        for c in self.live_conns() {
            c.reset();
        }
        if let Ok(mut h) = self.shared.held.lock() {
            for s in h.drain(..) {
                set_linger_zero(&s);
            }
        }
    }

    /// While true, new connections are reset right after accept.
    pub fn refuse(&self, on: bool) {
        self.shared.refuse.store(on, Ordering::SeqCst);
    }

    /// Forwards every chunk `ms` milliseconds after reading it (0: no delay).
    pub fn delay(&self, ms: u64) {
        self.shared.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Bytes written to the server so far.
    pub fn bytes_up(&self) -> u64 {
        self.shared.bytes_up.load(Ordering::SeqCst)
    }

    /// Bytes written to the client so far.
    pub fn bytes_down(&self) -> u64 {
        self.shared.bytes_down.load(Ordering::SeqCst)
    }

    /// Connections accepted so far (including refused and blackholed ones).
    pub fn connections(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections currently being forwarded.
    pub fn active_connections(&self) -> usize {
        self.live_conns()
            .iter()
            .filter(|c| !c.killed.load(Ordering::SeqCst))
            .count()
    }

    fn live_conns(&self) -> Vec<Arc<Conn>> {
        match self.shared.conns.lock() {
            Ok(mut v) => {
                v.retain(|w| w.strong_count() > 0);
                v.iter().filter_map(Weak::upgrade).collect()
            }
            Err(_) => Vec::new(),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for c in self.live_conns() {
            c.killed.store(true, Ordering::SeqCst);
        }
        if let Ok(mut h) = self.shared.held.lock() {
            h.clear();
        }
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, sh: Arc<Shared>) {
    while !sh.stop.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(TICK);
                continue;
            }
            Err(_) => {
                std::thread::sleep(TICK);
                continue;
            }
        };
        sh.accepted.fetch_add(1, Ordering::SeqCst);
        if sh.refuse.load(Ordering::SeqCst) {
            set_linger_zero(&client);
            continue;
        }
        if sh.blackhole.load(Ordering::SeqCst) {
            if let Ok(mut h) = sh.held.lock() {
                h.push(client);
            }
            continue;
        }
        if let Err(client) = connect(client, &sh) {
            set_linger_zero(&client);
        }
    }
}

/// Connects upstream and starts the pumps; gives the client back on failure.
fn connect(client: TcpStream, sh: &Arc<Shared>) -> Result<(), TcpStream> {
    let Ok(upstream) = TcpStream::connect_timeout(&sh.upstream, sh.opts.connect_timeout) else {
        return Err(client);
    };
    let setup = |s: &TcpStream| -> io::Result<()> {
        s.set_nonblocking(false)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(TICK))?;
        s.set_write_timeout(Some(TICK))
    };
    if setup(&client).is_err() || setup(&upstream).is_err() {
        return Err(client);
    }
    let conn = Arc::new(Conn {
        client,
        upstream,
        killed: AtomicBool::new(false),
        dead: AtomicBool::new(false),
    });
    if let Ok(mut v) = sh.conns.lock() {
        v.push(Arc::downgrade(&conn));
    }
    for up in [true, false] {
        let (tx, rx) = mpsc::sync_channel::<(Instant, Vec<u8>)>(64);
        let (c1, s1) = (conn.clone(), sh.clone());
        let (c2, s2) = (conn.clone(), sh.clone());
        let r = std::thread::Builder::new()
            .name("proxy-read".into())
            .spawn(move || reader(c1, s1, up, tx));
        let w = std::thread::Builder::new()
            .name("proxy-write".into())
            .spawn(move || writer(c2, s2, up, rx));
        if r.is_err() || w.is_err() {
            conn.reset();
        }
    }
    Ok(())
}

fn halted(c: &Conn, sh: &Shared) -> bool {
    c.killed.load(Ordering::SeqCst) || sh.stop.load(Ordering::SeqCst)
}

fn held(c: &Conn, sh: &Shared) -> bool {
    sh.paused.load(Ordering::SeqCst) || c.dead.load(Ordering::SeqCst)
}

/// Bytes the reader may read now in the throttled direction (0: wait), or `max`.
fn allowance(sh: &Shared, max: usize) -> usize {
    let rate = sh.rate.load(Ordering::SeqCst);
    if rate == 0 {
        return max;
    }
    let Ok(mut b) = sh.bucket.lock() else {
        return max;
    };
    let now = Instant::now();
    let cap = (rate as f64 / 10.0).max(1024.0);
    b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * rate as f64).min(cap);
    b.last = now;
    if b.tokens <= 0.0 {
        return 0;
    }
    // Read at most ~20 ms worth at a time so the rate stays smooth; the debt (tokens may go
    // negative after a read) is repaid before the next read.
    let chunk = ((rate / 50) as usize).clamp(256, max);
    b.tokens -= chunk as f64;
    chunk
}

fn refund(sh: &Shared, n: usize) {
    if sh.rate.load(Ordering::SeqCst) != 0 {
        if let Ok(mut b) = sh.bucket.lock() {
            b.tokens += n as f64;
        }
    }
}

fn reader(c: Arc<Conn>, sh: Arc<Shared>, up: bool, tx: mpsc::SyncSender<(Instant, Vec<u8>)>) {
    let mut src = if up { &c.client } else { &c.upstream };
    let mut buf = vec![0u8; 64 * 1024];
    while !halted(&c, &sh) {
        if held(&c, &sh) {
            std::thread::sleep(TICK);
            continue;
        }
        let max = if up {
            allowance(&sh, buf.len())
        } else {
            buf.len()
        };
        if max == 0 {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        match src.read(&mut buf[..max]) {
            Ok(0) => {
                if up {
                    refund(&sh, max);
                }
                return; // EOF: dropping tx makes the writer shut down its side.
            }
            Ok(n) => {
                if up {
                    refund(&sh, max - n);
                }
                let mut item = (Instant::now(), buf[..n].to_vec());
                loop {
                    match tx.try_send(item) {
                        Ok(()) => break,
                        Err(TrySendError::Full(i)) => {
                            if halted(&c, &sh) {
                                return;
                            }
                            item = i;
                            std::thread::sleep(Duration::from_millis(2));
                        }
                        Err(TrySendError::Disconnected(_)) => return,
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                if up {
                    refund(&sh, max);
                }
            }
            Err(_) => {
                // The peer reset: pass it on as a reset.
                c.reset();
                return;
            }
        }
    }
}

fn writer(c: Arc<Conn>, sh: Arc<Shared>, up: bool, rx: mpsc::Receiver<(Instant, Vec<u8>)>) {
    let mut dst = if up { &c.upstream } else { &c.client };
    let counter = if up { &sh.bytes_up } else { &sh.bytes_down };
    loop {
        let (t, data) = match rx.recv_timeout(TICK) {
            Ok(item) => item,
            Err(RecvTimeoutError::Timeout) => {
                if halted(&c, &sh) {
                    return;
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => {
                if !halted(&c, &sh) {
                    let _ = dst.shutdown(Shutdown::Write);
                }
                return;
            }
        };
        loop {
            let due = t + Duration::from_millis(sh.delay_ms.load(Ordering::SeqCst));
            let now = Instant::now();
            if now >= due || halted(&c, &sh) {
                break;
            }
            std::thread::sleep((due - now).min(TICK));
        }
        let mut off = 0;
        while off < data.len() {
            if halted(&c, &sh) {
                return;
            }
            if held(&c, &sh) {
                std::thread::sleep(TICK);
                continue;
            }
            match dst.write(&data[off..]) {
                Ok(n) => {
                    off += n;
                    counter.fetch_add(n as u64, Ordering::SeqCst);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => {
                    c.reset();
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server that also counts the bytes it received.
    fn echo_server() -> (SocketAddr, Arc<AtomicU64>) {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind echo");
        let addr = l.local_addr().expect("addr");
        let got = Arc::new(AtomicU64::new(0));
        let g = got.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let g = g.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        g.fetch_add(n as u64, Ordering::SeqCst);
                    }
                });
            }
        });
        (addr, got)
    }

    fn client(p: &FaultProxy) -> TcpStream {
        let s = TcpStream::connect(p.addr()).expect("connect proxy");
        s.set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        s
    }

    #[test]
    fn forwards_and_counts() {
        let (up, _) = echo_server();
        let p = FaultProxy::start(up).expect("proxy");
        let mut s = client(&p);
        s.write_all(b"hello").expect("write");
        let mut b = [0u8; 5];
        s.read_exact(&mut b).expect("echo");
        assert_eq!(&b, b"hello");
        assert_eq!(p.connections(), 1);
        // The proxy counts a chunk after writing it on, so the client can
        // read the echo an instant before the count moves (seen on a busy
        // machine): wait for it, boundedly.
        let deadline = Instant::now() + Duration::from_secs(2);
        while (p.bytes_up(), p.bytes_down()) != (5, 5) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!((p.bytes_up(), p.bytes_down()), (5, 5));
        p.delay(200);
        let t = Instant::now();
        s.write_all(b"again").expect("write");
        s.read_exact(&mut b).expect("echo");
        assert!(
            t.elapsed() >= Duration::from_millis(400),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn throttle_is_accurate() {
        let (up, got) = echo_server();
        let p = FaultProxy::start(up).expect("proxy");
        let rate = 200_000u64;
        p.throttle(Some(rate));
        let mut s = client(&p);
        let mut r = s.try_clone().expect("clone");
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while matches!(r.read(&mut buf), Ok(n) if n > 0) {}
        });
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let w = std::thread::spawn(move || {
            let buf = [7u8; 8192];
            while !st.load(Ordering::SeqCst) {
                if s.write_all(&buf).is_err() {
                    break;
                }
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        let (b0, t0) = (got.load(Ordering::SeqCst), Instant::now());
        std::thread::sleep(Duration::from_secs(2));
        let measured = (got.load(Ordering::SeqCst) - b0) as f64 / t0.elapsed().as_secs_f64();
        stop.store(true, Ordering::SeqCst);
        p.throttle(None);
        let _ = w.join();
        let err = (measured - rate as f64).abs() / rate as f64;
        assert!(err < 0.2, "throttled to {measured:.0} B/s, wanted {rate}");
    }

    #[test]
    fn pause_holds_and_resume_delivers() {
        let (up, got) = echo_server();
        let p = FaultProxy::start(up).expect("proxy");
        let mut s = client(&p);
        s.write_all(b"one").expect("write");
        let mut b = [0u8; 3];
        s.read_exact(&mut b).expect("echo");
        p.pause();
        std::thread::sleep(Duration::from_millis(30));
        let before = p.bytes_up();
        s.write_all(b"two").expect("write");
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(p.bytes_up(), before);
        assert_eq!(got.load(Ordering::SeqCst), 3);
        p.resume();
        s.read_exact(&mut b).expect("echo after resume");
        assert_eq!(&b, b"two");
    }

    #[test]
    fn reset_gives_econnreset_quickly() {
        let (up, _) = echo_server();
        let p = FaultProxy::start(up).expect("proxy");
        let mut s = client(&p);
        s.write_all(b"x").expect("write");
        let mut b = [0u8; 1];
        s.read_exact(&mut b).expect("echo");
        let t = Instant::now();
        p.reset_all();
        let e = s.read(&mut b).expect_err("read after reset must fail");
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}");
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn refuse_and_blackhole() {
        let (up, got) = echo_server();
        let p = FaultProxy::start(up).expect("proxy");
        p.refuse(true);
        let mut s = client(&p);
        let mut b = [0u8; 1];
        let r = s.write_all(b"x").and_then(|_| s.read(&mut b));
        assert!(
            matches!(r, Err(_) | Ok(0)),
            "refused connection answered: {r:?}"
        );
        p.refuse(false);

        let s = client(&p);
        p.blackhole();
        s.set_nonblocking(true).expect("nonblocking");
        let buf = vec![1u8; 65536];
        let mut sent = 0usize;
        let mut stalled_since: Option<Instant> = None;
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            match (&s).write(&buf) {
                Ok(n) => {
                    sent += n;
                    stalled_since = None;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let since = *stalled_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > Duration::from_millis(200) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("write error under blackhole: {e}"),
            }
        }
        assert!(
            stalled_since.is_some(),
            "writes never stalled ({sent} bytes)"
        );
        assert_eq!(got.load(Ordering::SeqCst), 0);
        p.resume();
        // The blackholed connection stays dead; a new one works.
        let mut s2 = client(&p);
        s2.write_all(b"y").expect("write");
        s2.read_exact(&mut b).expect("echo on new connection");
        assert_eq!(&b, b"y");
    }
}
