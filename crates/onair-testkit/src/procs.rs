//! Processes, ports and tools.
//!
//! Why: a fault test that panics halfway must not leave an nginx or ffmpeg behind holding a
//! port (the next test would talk to a stale server, and CI machines would fill up with
//! orphans). Every child a test starts lives in a [`ChildGuard`], which kills it *by pid*
//! and reaps it on drop. Tools and privileges are checked by one policy ([`skip`]): a
//! developer without nginx gets one `SKIP <test>: <why>` line, while CI (env `CI` set)
//! fails loudly instead of silently skipping the tests that matter.

use std::io;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Owns a child process; kills it (SIGKILL, by pid) and reaps it when dropped.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
    name: String,
}

impl ChildGuard {
    /// Wraps `child`; `name` is used in messages only.
    pub fn new(name: impl Into<String>, child: Child) -> Self {
        ChildGuard {
            child: Some(child),
            name: name.into(),
        }
    }

    /// The name given at creation.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id, or `None` once the child has been reaped by [`ChildGuard::kill`].
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Mutable access to the child (e.g. to take its stdout).
    pub fn child_mut(&mut self) -> Option<&mut Child> {
        self.child.as_mut()
    }

    /// Non-blocking exit check.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        match self.child.as_mut() {
            Some(c) => c.try_wait(),
            None => Ok(None),
        }
    }

    /// Waits up to `timeout` for the child to exit by itself. `Ok(None)` on timeout.
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_wait()? {
                return Ok(Some(st));
            }
            if self.child.is_none() || Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `sig` (e.g. `libc::SIGTERM`) to the child, if it is still ours.
    pub fn signal(&mut self, sig: libc::c_int) -> io::Result<()> {
        if let Some(c) = self.child.as_mut() {
            if c.try_wait()?.is_none() {
                // SAFETY: kill(2) on a pid we spawned and have not reaped yet.
                let r = unsafe { libc::kill(c.id() as libc::pid_t, sig) };
                if r != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
        }
        Ok(())
    }

    /// SIGKILLs the child (if still running) and reaps it. Idempotent.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        let mut c = self.child.take()?;
        if let Ok(Some(st)) = c.try_wait() {
            return Some(st);
        }
        // SAFETY: kill(2) on a pid we spawned and have not reaped yet.
        unsafe {
            libc::kill(c.id() as libc::pid_t, libc::SIGKILL);
        }
        c.wait().ok()
    }

    /// Sends `sig`, waits up to `grace` for a clean exit, then SIGKILLs. Returns the status.
    pub fn stop(&mut self, sig: libc::c_int, grace: Duration) -> Option<ExitStatus> {
        if self.signal(sig).is_ok() {
            if let Ok(Some(st)) = self.wait_timeout(grace) {
                self.child = None;
                return Some(st);
            }
        }
        self.kill()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Spawns `cmd` (stdin null) and guards it; `name` is the program name.
pub fn spawn(cmd: &mut Command) -> io::Result<ChildGuard> {
    let name = cmd.get_program().to_string_lossy().into_owned();
    let child = cmd.stdin(Stdio::null()).spawn()?;
    Ok(ChildGuard::new(name, child))
}

/// Runs `cmd` to completion like [`Command::output`], but SIGKILLs it after `timeout`
/// (a hung `onair` must fail its test, not hang the suite). On timeout the error message
/// carries what the process printed on stderr so far.
pub fn output_timeout(cmd: &mut Command, timeout: Duration) -> io::Result<Output> {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut g = ChildGuard::new(cmd.get_program().to_string_lossy(), child);
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(
        g.child_mut()
            .and_then(|c| c.stdout.take())
            .map(|s| Box::new(s) as _),
    );
    let err = drain(
        g.child_mut()
            .and_then(|c| c.stderr.take())
            .map(|s| Box::new(s) as _),
    );
    let status = g.wait_timeout(timeout)?;
    if status.is_none() {
        g.kill();
    }
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    match status {
        Some(status) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        None => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "{} still running after {timeout:?}, killed; stderr:\n{}",
                g.name(),
                String::from_utf8_lossy(&stderr)
            ),
        )),
    }
}

/// Path of a binary built by cargo in the same target dir and profile as the running
/// test (e.g. `cargo_bin("onair")`): test executables live in `target/PROFILE/deps/`,
/// binaries in `target/PROFILE/`. Inside the binary's own package prefer
/// `env!("CARGO_BIN_EXE_onair")`. `None` if it was not built.
pub fn cargo_bin(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let mut dir = exe.parent()?;
    if dir.ends_with("deps") {
        dir = dir.parent()?;
    }
    let p = dir.join(name);
    is_executable(&p).then_some(p)
}

/// Environment variable naming the `onair` binary a CLI test drives instead of
/// the one cargo built beside it. Why: the GPL build's `onair` and the default
/// build's share one path in `target/`; scripts/test.sh keeps a copy of the GPL
/// one elsewhere and runs the GPL build's test binaries with this set, beside
/// the default build's tests.
pub const ONAIR_EXE_ENV: &str = "ONAIR_EXE";

/// The `onair` binary a CLI test runs: `$ONAIR_EXE` when set (see
/// [`ONAIR_EXE_ENV`]), else `built`, the test's `env!("CARGO_BIN_EXE_onair")`.
pub fn onair_exe(built: &str) -> PathBuf {
    std::env::var_os(ONAIR_EXE_ENV).map_or_else(|| PathBuf::from(built), PathBuf::from)
}

/// The longest a runnable thread may wait for a core on a busy 2-core machine (builds
/// and other test binaries running), with margin. Why: a unit test's timing bound must
/// tell "does not block" from "blocked", never measure speed (benchmarks do that, see
/// docs/benchmarks.md), so it is the operation's own timeout plus this slack.
pub const SCHEDULING_SLACK: Duration = Duration::from_millis(250);

/// One real-time pipeline at a time within a test binary.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes the test binary's serial lock. Why: a pipeline encodes 720p30 in real time and
/// its engines' lateness is asserted; two of them on a 2-core machine starve each other.
/// Poison-tolerant: a failed test must not fail the ones after it.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Polls `f` every 20 ms until it returns `Some` or `timeout` passes (then `None`): the
/// one way tests wait for a condition, so none of them sleeps a fixed, hopeful time.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, close).
pub fn free_port() -> io::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Resident memory of process `pid` in KiB (`VmRSS` in /proc), 0 if unknown:
/// the memory-bound tests compare it before and after a fault.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// A port on 127.0.0.1 where connections are refused, for as long as this
/// value lives: a socket is bound to it but never listens, so no other test
/// (an nginx started at the same moment in another thread or binary) can take
/// it. [`free_port`] cannot promise that: the port is free again as soon as it
/// returns.
#[derive(Debug)]
pub struct RefusingPort {
    _socket: socket2::Socket,
    port: u16,
}

impl RefusingPort {
    /// Binds a fresh port without listening.
    pub fn new() -> io::Result<Self> {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        socket.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
        let port = socket
            .local_addr()?
            .as_socket()
            .map(|a| a.port())
            .ok_or_else(|| io::Error::other("not an inet socket"))?;
        Ok(Self {
            _socket: socket,
            port,
        })
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Connects to `addr` repeatedly until it accepts or `timeout` passes.
///
/// Do not use on a one-shot listener (`ffmpeg -listen 1`): the probe connection would be
/// the one it accepts. Use [`wait_for_listen`] there.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{addr} did not accept within {timeout:?}: {e}"),
                ))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// True if a socket in this network namespace listens on 127.0.0.1:`port` (or 0.0.0.0),
/// read from /proc/net/tcp without connecting to it.
pub fn is_listening(port: u16) -> bool {
    listening_in("/proc/net/tcp", port)
}

/// Like [`is_listening`], in the network namespace of process `pid` (/proc/PID/net/tcp):
/// works for a listener started inside a [`crate::netns::NetNs`].
pub fn is_listening_pid(pid: u32, port: u16) -> bool {
    listening_in(&format!("/proc/{pid}/net/tcp"), port)
}

fn listening_in(table: &str, port: u16) -> bool {
    let Ok(text) = std::fs::read_to_string(table) else {
        return false;
    };
    let want = [
        format!("0100007F:{port:04X}"),
        format!("00000000:{port:04X}"),
    ];
    text.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[3] == "0A" && want.iter().any(|w| w == f[1])
    })
}

/// Waits until something listens on 127.0.0.1:`port`, without connecting (see [`is_listening`]).
pub fn wait_for_listen(port: u16, timeout: Duration) -> io::Result<()> {
    wait_listen_with(timeout, port, || is_listening(port))
}

/// [`wait_for_listen`] in the network namespace of process `pid`.
pub fn wait_for_listen_pid(pid: u32, port: u16, timeout: Duration) -> io::Result<()> {
    wait_listen_with(timeout, port, || is_listening_pid(pid, port))
}

fn wait_listen_with(timeout: Duration, port: u16, f: impl Fn() -> bool) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    while !f() {
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("nothing listened on 127.0.0.1:{port} within {timeout:?}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Full path of `tool` on `PATH`, the same search `Command::new(tool)` does: what the
/// policy finds is what the test runs, and a tool hidden from `PATH` counts as missing
/// (nginx, ip, tc and iptables live in /usr/sbin: `scripts/test.sh` puts it on `PATH`).
pub fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| is_executable(p))
}

fn is_executable(p: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// True if `tool` can be found (see [`find_tool`]).
pub fn which(tool: &str) -> bool {
    find_tool(tool).is_some()
}

/// True when running under CI (env `CI` set to anything but empty/"0"/"false").
pub fn in_ci() -> bool {
    match std::env::var("CI") {
        Ok(v) => !(v.is_empty() || v == "0" || v.eq_ignore_ascii_case("false")),
        Err(_) => false,
    }
}

/// The running test's name: libtest names each test's thread after the test.
fn test_name() -> String {
    match std::thread::current().name() {
        Some(n) if n != "main" => n.to_string(),
        _ => "test".to_string(),
    }
}

/// The one skip policy, for a test that cannot run here (`why`: what is missing and how
/// to get it). On a developer's machine it prints `SKIP <test>: <why>` on stderr and the
/// caller returns early. Under CI ([`in_ci`]) it panics instead: there a missing tool or
/// privilege must be a failure, never a silent pass.
pub fn skip(why: &str) {
    skip_with(in_ci(), why);
}

fn skip_with(ci: bool, why: &str) {
    let test = test_name();
    if ci {
        panic!("FAIL {test}: {why} (CI is set: a test that cannot run is a failure)");
    }
    // Straight to stderr, not `eprintln!`: libtest captures the macros' output of a
    // passing test, and a skip must never be silent.
    let _ = writeln!(io::stderr(), "SKIP {test}: {why}");
}

/// Checks one tool: true if present; if missing, [`skip`] (false, or a panic under CI).
///
/// `nginx` also requires the RTMP module (libnginx-mod-rtmp).
pub fn require_tool(name: &str) -> bool {
    let (ok, what) = if name == "nginx" {
        (
            which("nginx") && crate::nginx::rtmp_module_path().is_some(),
            "nginx with libnginx-mod-rtmp",
        )
    } else {
        (which(name), name)
    };
    if !ok {
        skip(&format!(
            "{what} not found on PATH (run scripts/install-deps.sh; nginx, ip, tc and iptables are in /usr/sbin)"
        ));
    }
    ok
}

/// [`require_tool`] for each name; true only if all are present.
pub fn require_tools(names: &[&str]) -> bool {
    // No short-circuit: report every missing tool at once.
    let mut ok = true;
    for n in names {
        ok &= require_tool(n);
    }
    ok
}

/// True if the process runs as root; otherwise [`skip`] with `what` (what needs root).
pub fn require_root(what: &str) -> bool {
    let ok = is_root();
    if !ok {
        skip(&format!("{what} needs root"));
    }
    ok
}

/// True if the process runs as root (needed by [`crate::netns`]).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_kills_on_drop() {
        let child = Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id() as libc::pid_t;
        drop(ChildGuard::new("sleep", child));
        // SAFETY: signal 0 only checks existence.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        assert!(!alive, "child {pid} still alive after guard drop");
    }

    #[test]
    fn guard_kills_on_panic() {
        let child = Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id() as libc::pid_t;
        let r = std::panic::catch_unwind(move || {
            let _g = ChildGuard::new("sleep", child);
            panic!("boom");
        });
        assert!(r.is_err());
        // SAFETY: signal 0 only checks existence.
        assert!(unsafe { libc::kill(pid, 0) } != 0);
    }

    #[test]
    fn ports_and_tools() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        assert!(is_listening(port));
        wait_for_listen(port, Duration::from_secs(1)).expect("listen");
        wait_for_port(l.local_addr().expect("addr"), Duration::from_secs(1)).expect("port");
        drop(l);
        assert!(!is_listening(port));
        let p = free_port().expect("free port");
        assert!(wait_for_port(([127, 0, 0, 1], p).into(), Duration::from_millis(100)).is_err());
        assert!(which("sh"));
        assert!(!which("definitely-not-a-tool-onair"));
    }

    #[test]
    fn spawn_and_cargo_bin() {
        let mut g = spawn(Command::new("sleep").arg("30")).expect("spawn");
        assert_eq!(g.name(), "sleep");
        assert!(g.try_wait().expect("try_wait").is_none());
        g.stop(libc::SIGTERM, Duration::from_secs(2));
        assert!(g.pid().is_none());
        assert!(cargo_bin("definitely-not-built").is_none());
    }

    #[test]
    fn output_with_timeout() {
        let o = output_timeout(
            Command::new("sh").args(["-c", "echo hi; echo err >&2"]),
            Duration::from_secs(5),
        )
        .expect("run sh");
        assert!(o.status.success());
        assert_eq!(
            (o.stdout.as_slice(), o.stderr.as_slice()),
            (&b"hi\n"[..], &b"err\n"[..])
        );
        let t = Instant::now();
        let e = output_timeout(
            Command::new("sh").args(["-c", "echo slow >&2; exec sleep 30"]),
            Duration::from_millis(300),
        )
        .expect_err("must time out");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(e.to_string().contains("slow"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn skip_fails_under_ci_only() {
        skip_with(false, "(self-test of the skip policy, nothing is missing)");
        let r = std::panic::catch_unwind(|| skip_with(true, "tool X not found"));
        let msg = r.expect_err("under CI a skip is a failure");
        let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            msg.starts_with("FAIL procs::tests::skip_fails_under_ci_only: tool X not found"),
            "{msg}"
        );
    }

    #[test]
    fn wait_timeout_sees_exit() {
        let child = Command::new("true").spawn().expect("spawn true");
        let mut g = ChildGuard::new("true", child);
        let st = g.wait_timeout(Duration::from_secs(5)).expect("wait");
        assert!(st.is_some_and(|s| s.success()));
    }
}
