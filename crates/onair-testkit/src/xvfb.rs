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

/// A running Xvfb, killed (by pid) on drop.
#[derive(Debug)]
pub struct Xvfb {
    guard: ChildGuard,
    number: u32,
    size: (u32, u32),
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
            match Self::spawn_on(n, (w, h)) {
                Ok(x) => return Ok(x),
                Err(e) => last_err = e,
            }
        }
        Err(last_err)
    }

    fn spawn_on(number: u32, size: (u32, u32)) -> io::Result<Xvfb> {
        let xvfb = find_tool("Xvfb")
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "Xvfb not found (apt: xvfb)"))?;
        let child = Command::new(xvfb)
            .arg(format!(":{number}"))
            .args(["-screen", "0", &format!("{}x{}x24", size.0, size.1)])
            .args(["-nolisten", "tcp", "-noreset"])
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
        Ok(Xvfb {
            guard,
            number,
            size,
        })
    }

    /// The display name, e.g. `:104`.
    pub fn display(&self) -> String {
        format!(":{}", self.number)
    }

    /// Paints the whole root window one colour (`xsetroot -solid`), e.g. `#ff0000`.
    pub fn paint(&self, colour: &str) -> io::Result<()> {
        let xsetroot = find_tool("xsetroot").ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "xsetroot not found (apt: x11-xserver-utils)",
            )
        })?;
        let st = Command::new(xsetroot)
            .args(["-display", &self.display(), "-solid", colour])
            .stdin(Stdio::null())
            .status()?;
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
        *self = Self::spawn_on(self.number, self.size)?;
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
