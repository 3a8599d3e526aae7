//! A private X server (Xvfb) per test, and painting its screen.
//!
//! Why: screen capture can only be proved against a real X server whose picture the test
//! controls. Each [`Xvfb`] takes a display number no one uses (no socket, no lock file),
//! waits until the server answers the X11 connection setup (not just until its socket
//! exists), and dies with the test. [`Xvfb::restart`] brings a server back on the same
//! display, for tests of a capture source that must reconnect after the server died.

use crate::procs::{find_tool, ChildGuard};
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a server may take to answer its first connection (a busy 2-core machine).
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Display numbers tried per process: tests run in parallel threads, and several test
/// binaries run at once, so each process starts at its own offset.
const DISPLAYS_PER_PROCESS: u32 = 20;
/// Lowest display number used (far above a developer's own :0 / :1).
const FIRST_DISPLAY: u32 = 100;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// X11 TCP displays listen on this port plus the display number.
pub const X_TCP_PORT_BASE: u16 = 6000;

/// A running Xvfb, killed (by pid) on drop.
#[derive(Debug)]
pub struct Xvfb {
    guard: ChildGuard,
    number: u32,
    size: (u32, u32),
    /// For a TCP display: the Xauthority file (in its own temporary
    /// directory) holding the one cookie the server accepts.
    auth: Option<XAuthority>,
}

/// An Xauthority file with one random MIT-MAGIC-COOKIE-1 for any display
/// (family `FamilyWild`, empty display number): the server started with
/// `-auth FILE` accepts that cookie only, and a client whose `XAUTHORITY`
/// names the file presents it whatever display number it dialled (a proxy
/// in front of the server has its own).
#[derive(Debug)]
struct XAuthority {
    dir: tempfile::TempDir,
}

impl XAuthority {
    const FILE: &'static str = "Xauthority";

    fn create() -> io::Result<Self> {
        let mut cookie = [0u8; 16];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut cookie)?;
        let mut entry = Vec::new();
        // family, then address, display number, auth name, auth data, each
        // a big-endian u16 length and its bytes.
        entry.extend_from_slice(&0xffffu16.to_be_bytes());
        for field in [&b""[..], b"", b"MIT-MAGIC-COOKIE-1", &cookie] {
            entry.extend_from_slice(&(field.len() as u16).to_be_bytes());
            entry.extend_from_slice(field);
        }
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join(Self::FILE), entry)?;
        Ok(Self { dir })
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join(Self::FILE)
    }
}

fn socket_path(n: u32) -> PathBuf {
    PathBuf::from(format!("/tmp/.X11-unix/X{n}"))
}

fn lock_path(n: u32) -> PathBuf {
    PathBuf::from(format!("/tmp/.X{n}-lock"))
}

/// True once the server at display `n` answers an X11 connection setup request with any
/// status (success, failure or authenticate): it is past its start-up and serving.
fn answers_setup(n: u32) -> bool {
    let Ok(mut s) = UnixStream::connect(socket_path(n)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    // 'l' = little endian, protocol 11.0, no authorization name/data.
    let setup = [b'l', 0, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let mut status = [0u8; 1];
    s.write_all(&setup).is_ok() && s.read_exact(&mut status).is_ok()
}

impl Xvfb {
    /// Starts an Xvfb with one `w`x`h`x24 screen on a free display number.
    pub fn start(w: u32, h: u32) -> io::Result<Xvfb> {
        let base = FIRST_DISPLAY + (std::process::id() % 40) * DISPLAYS_PER_PROCESS;
        let mut last_err = io::Error::other("no free display number");
        for _ in 0..DISPLAYS_PER_PROCESS {
            let n = base + NEXT.fetch_add(1, Ordering::Relaxed) % DISPLAYS_PER_PROCESS;
            if socket_path(n).exists() || lock_path(n).exists() {
                continue;
            }
            match Self::spawn_on(n, (w, h), None) {
                Ok(x) => return Ok(x),
                Err(e) => last_err = e,
            }
        }
        Err(last_err)
    }

    /// Like [`Xvfb::start`], and also listening on TCP
    /// ([`Xvfb::tcp_addr`]: a remote display, reached like `host:N`), with
    /// cookie authorization: clients need `XAUTHORITY` =
    /// [`Xvfb::xauthority`] (the server listens on every interface).
    pub fn start_tcp(w: u32, h: u32) -> io::Result<Xvfb> {
        let base = FIRST_DISPLAY + (std::process::id() % 40) * DISPLAYS_PER_PROCESS;
        let mut last_err = io::Error::other("no free display number");
        for _ in 0..DISPLAYS_PER_PROCESS {
            let n = base + NEXT.fetch_add(1, Ordering::Relaxed) % DISPLAYS_PER_PROCESS;
            let port = X_TCP_PORT_BASE + n as u16;
            if socket_path(n).exists() || lock_path(n).exists() || crate::procs::is_listening(port)
            {
                continue;
            }
            match Self::spawn_on(n, (w, h), Some(XAuthority::create()?)) {
                Ok(x) => return Ok(x),
                Err(e) => last_err = e,
            }
        }
        Err(last_err)
    }

    fn spawn_on(number: u32, size: (u32, u32), auth: Option<XAuthority>) -> io::Result<Xvfb> {
        let xvfb = find_tool("Xvfb")
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "Xvfb not found (apt: xvfb)"))?;
        let mut cmd = Command::new(xvfb);
        cmd.arg(format!(":{number}"))
            .args(["-screen", "0", &format!("{}x{}x24", size.0, size.1)])
            .arg("-noreset");
        match &auth {
            Some(a) => cmd.args(["-listen", "tcp", "-auth"]).arg(a.path()),
            None => cmd.args(["-nolisten", "tcp"]),
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut guard = ChildGuard::new("Xvfb", child);
        let deadline = Instant::now() + START_TIMEOUT;
        while !answers_setup(number) {
            if let Some(st) = guard.try_wait()? {
                return Err(io::Error::other(format!(
                    "Xvfb :{number} exited at start ({st})"
                )));
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("Xvfb :{number} did not answer within {START_TIMEOUT:?}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if auth.is_some() {
            crate::procs::wait_for_listen_pid(
                guard.pid().unwrap_or(0),
                X_TCP_PORT_BASE + number as u16,
                START_TIMEOUT,
            )?;
        }
        Ok(Xvfb {
            guard,
            number,
            size,
            auth,
        })
    }

    /// The display name, e.g. `:104`.
    pub fn display(&self) -> String {
        format!(":{}", self.number)
    }

    /// Where a server from [`Xvfb::start_tcp`] listens (127.0.0.1, port
    /// 6000 + display number); `None` for a local-only server.
    pub fn tcp_addr(&self) -> Option<std::net::SocketAddr> {
        self.auth.as_ref().map(|_| {
            std::net::SocketAddr::from(([127, 0, 0, 1], X_TCP_PORT_BASE + self.number as u16))
        })
    }

    /// The Xauthority file a client of a TCP server needs (`XAUTHORITY`).
    pub fn xauthority(&self) -> Option<PathBuf> {
        self.auth.as_ref().map(XAuthority::path)
    }

    /// Paints the whole root window one colour (`xsetroot -solid`), e.g. `#ff0000`.
    pub fn paint(&self, colour: &str) -> io::Result<()> {
        let xsetroot = find_tool("xsetroot").ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "xsetroot not found (apt: x11-xserver-utils)",
            )
        })?;
        let mut cmd = Command::new(xsetroot);
        cmd.args(["-display", &self.display(), "-solid", colour]);
        if let Some(a) = &self.auth {
            cmd.env("XAUTHORITY", a.path());
        }
        let st = cmd.stdin(Stdio::null()).status()?;
        if st.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("xsetroot {colour}: {st}")))
        }
    }

    /// The server's guard: its pid, and signals (SIGSTOP makes a stalled server).
    pub fn guard_mut(&mut self) -> &mut ChildGuard {
        &mut self.guard
    }

    /// Kills the server (the server-died fault). Idempotent.
    pub fn kill(&mut self) {
        self.guard.kill();
    }

    /// Kills the server if it runs and starts a new one with the same size on the same
    /// display number (removing the socket and lock file the killed one left behind).
    pub fn restart(&mut self) -> io::Result<()> {
        self.guard.kill();
        let _ = std::fs::remove_file(socket_path(self.number));
        let _ = std::fs::remove_file(lock_path(self.number));
        let auth = self.auth.take();
        *self = Self::spawn_on(self.number, self.size, auth)?;
        Ok(())
    }
}

/// A window a test owns on an X display: one solid colour and a name
/// (`WM_NAME`), mapped at once, destroyed when dropped (its connection
/// closes). Window capture tests move, resize, unmap and map it.
pub struct TestWindow {
    conn: x11rb::rust_connection::RustConnection,
    id: u32,
}

impl std::fmt::Debug for TestWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestWindow").field("id", &self.id).finish()
    }
}

impl TestWindow {
    /// Creates and maps a `0xRRGGBB` window named `name` at `(x, y, w, h)`
    /// on `display` (override-redirect: placed exactly, with or without a
    /// window manager).
    pub fn create(
        display: &str,
        name: &str,
        rgb: u32,
        rect: (i16, i16, u16, u16),
    ) -> io::Result<Self> {
        use x11rb::connection::Connection;
        use x11rb::protocol::xproto::{
            AtomEnum, ConnectionExt, CreateWindowAux, PropMode, WindowClass,
        };
        use x11rb::wrapper::ConnectionExt as _;
        let err = |e: &dyn std::fmt::Display| io::Error::other(format!("X11 on {display}: {e}"));
        let (conn, screen) = x11rb::connect(Some(display)).map_err(|e| err(&e))?;
        let root = conn
            .setup()
            .roots
            .get(screen)
            .ok_or_else(|| err(&"no screen"))?
            .root;
        let id = conn.generate_id().map_err(|e| err(&e))?;
        let (x, y, w, h) = rect;
        conn.create_window(
            x11rb::COPY_DEPTH_FROM_PARENT,
            id,
            root,
            x,
            y,
            w,
            h,
            0,
            WindowClass::INPUT_OUTPUT,
            x11rb::COPY_FROM_PARENT,
            &CreateWindowAux::new()
                .background_pixel(rgb)
                .override_redirect(1),
        )
        .map_err(|e| err(&e))?;
        conn.change_property8(
            PropMode::REPLACE,
            id,
            AtomEnum::WM_NAME,
            AtomEnum::STRING,
            name.as_bytes(),
        )
        .map_err(|e| err(&e))?;
        conn.map_window(id).map_err(|e| err(&e))?;
        conn.flush().map_err(|e| err(&e))?;
        Ok(Self { conn, id })
    }

    /// The X window id.
    pub fn id(&self) -> u32 {
        self.id
    }

    fn configure(&self, aux: &x11rb::protocol::xproto::ConfigureWindowAux) {
        use x11rb::connection::Connection;
        use x11rb::protocol::xproto::ConnectionExt;
        // A test helper: a failure shows as the test's own assertion failing.
        let _ = self.conn.configure_window(self.id, aux);
        let _ = self.conn.flush();
    }

    /// Moves the window's top-left corner to `(x, y)`.
    pub fn move_to(&self, x: i32, y: i32) {
        self.configure(&x11rb::protocol::xproto::ConfigureWindowAux::new().x(x).y(y));
    }

    /// Resizes the window.
    pub fn resize(&self, w: u32, h: u32) {
        self.configure(
            &x11rb::protocol::xproto::ConfigureWindowAux::new()
                .width(w)
                .height(h),
        );
    }

    /// Unmaps the window (as minimising does).
    pub fn unmap(&self) {
        use x11rb::connection::Connection;
        use x11rb::protocol::xproto::ConnectionExt;
        let _ = self.conn.unmap_window(self.id);
        let _ = self.conn.flush();
    }

    /// Maps it again.
    pub fn map(&self) {
        use x11rb::connection::Connection;
        use x11rb::protocol::xproto::ConnectionExt;
        let _ = self.conn.map_window(self.id);
        let _ = self.conn.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_paints_restarts() {
        if !crate::require_tools(&["Xvfb", "xsetroot"]) {
            return;
        }
        let mut x = Xvfb::start(320, 240).expect("Xvfb");
        x.paint("#ff0000").expect("paint");
        let n = x.number;
        x.kill();
        assert!(!answers_setup(n));
        x.restart().expect("restart");
        assert_eq!(x.number, n);
        x.paint("#00ff00").expect("paint after restart");
    }
}
