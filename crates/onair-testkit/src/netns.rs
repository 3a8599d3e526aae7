//! Kernel-level network faults inside a private network namespace.
//!
//! Why: some faults cannot be faked by a userspace proxy. A dead link that silently drops
//! packets (no ACK ever comes back, so TCP_INFO / stall detection must fire), a reset
//! injected by the kernel, or a real token-bucket shaper with queueing latency all need
//! the kernel. Doing it on the host's loopback would disturb everything else on the
//! machine, so each test creates its own namespace (`ip netns add`), brings its `lo` up
//! (MTU 1500 so tbf bursts are realistic), runs the server *and* onair inside it, and
//! deletes it on drop after killing whatever still runs there.
//!
//! Needs root and a working `ip netns`; otherwise [`NetNs::create`] returns an error and
//! [`require_netns`] applies the test kit's one skip policy ([`crate::procs::skip`]):
//! a `SKIP` line on a developer's machine, a failure under CI.

use crate::procs::{find_tool, is_root, skip, ChildGuard};
use std::ffi::OsString;
use std::io;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A private network namespace for a kernel-fault test, or `None` after [`skip`] (which
/// panics under CI) when one cannot be made here (not root, no `ip netns`).
pub fn require_netns(name_prefix: &str) -> Option<NetNs> {
    match NetNs::create(name_prefix) {
        Ok(ns) => Some(ns),
        Err(e) => {
            skip(&format!("network namespace unavailable ({e}); run as root"));
            None
        }
    }
}

/// True if iptables works inside `ns`; otherwise [`skip`] (a panic under CI).
pub fn require_iptables(ns: &NetNs) -> bool {
    let ok = ns.iptables_available();
    if !ok {
        skip("iptables unusable in the network namespace (apt: iptables)");
    }
    ok
}

/// A network namespace owned by the test; deleted (with its processes) on drop.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

fn run(cmd: &mut Command) -> io::Result<Output> {
    let out = cmd.stdin(Stdio::null()).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{:?} {:?} failed ({}): {}",
            cmd.get_program(),
            cmd.get_args().collect::<Vec<_>>(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out)
}

impl NetNs {
    /// Creates `PREFIX-PID-N`, brings `lo` up with MTU 1500. Errors when not root or when
    /// `ip netns` does not work here.
    pub fn create(name_prefix: &str) -> io::Result<NetNs> {
        if !is_root() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "network namespaces need root",
            ));
        }
        if find_tool("ip").is_none() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "`ip` not found (install iproute2)",
            ));
        }
        let name = format!(
            "{name_prefix}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = NetNs { name };
        ns.run(&["ip", "link", "set", "lo", "up"])?;
        ns.run(&["ip", "link", "set", "lo", "mtu", "1500"])?;
        Ok(ns)
    }

    /// True if iptables works inside this namespace (binary present, netfilter usable).
    pub fn iptables_available(&self) -> bool {
        find_tool("iptables").is_some() && self.run(&["iptables", "-L", "-n"]).is_ok()
    }

    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A copy of `cmd` wrapped as `ip netns exec NAME PROGRAM ARGS...` (same env and cwd).
    /// `ip netns exec` execs the program, so the child's pid is the program's pid.
    pub fn exec(&self, cmd: &mut Command) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]);
        c.arg(cmd.get_program());
        c.args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        if let Some(d) = cmd.get_current_dir() {
            c.current_dir(d);
        }
        c
    }

    /// Spawns `cmd` inside the namespace, guarded (killed by pid on drop). Stdio as set on `cmd`
    /// is not carried over: pass it to the returned command via [`NetNs::exec`] if needed;
    /// here stdin is null and stdout/stderr are inherited.
    pub fn spawn_in(&self, cmd: &mut Command) -> io::Result<ChildGuard> {
        let name: OsString = cmd.get_program().to_owned();
        let child = self.exec(cmd).stdin(Stdio::null()).spawn()?;
        Ok(ChildGuard::new(name.to_string_lossy(), child))
    }

    /// Runs `f` on a new thread that has joined the namespace (setns), and returns its
    /// result. Sockets created in `f` belong to the namespace and stay usable from any
    /// thread afterwards, and threads spawned from `f` inherit the namespace: this is how
    /// library-level tests put onair itself behind the kernel faults.
    pub fn run_in<F, R>(&self, f: F) -> io::Result<R>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let file = std::fs::File::open(format!("/var/run/netns/{}", self.name))?;
        std::thread::scope(|sc| {
            sc.spawn(move || {
                use std::os::fd::AsRawFd;
                // SAFETY: setns(2) on a namespace fd we opened; affects only this thread.
                let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                if r != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(f())
            })
            .join()
            .map_err(|_| io::Error::other("closure panicked inside the namespace"))?
        })
    }

    /// Runs `argv` inside the namespace and returns its output; error on non-zero exit.
    pub fn run(&self, argv: &[&str]) -> io::Result<Output> {
        let (prog, args) = argv
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty argv"))?;
        run(Command::new("ip")
            .args(["netns", "exec", &self.name, prog])
            .args(args))
    }

    /// Shapes `lo` with tbf: `rate_kbit` kbit/s, `burst_bytes` bucket, `latency_ms` queue.
    pub fn tbf(&self, rate_kbit: u64, burst_bytes: u64, latency_ms: u64) -> io::Result<()> {
        self.run(&[
            "tc",
            "qdisc",
            "replace",
            "dev",
            "lo",
            "root",
            "tbf",
            "rate",
            &format!("{rate_kbit}kbit"),
            "burst",
            &burst_bytes.to_string(),
            "latency",
            &format!("{latency_ms}ms"),
        ])
        .map(|_| ())
    }

    /// Removes any qdisc from `lo` (no error if there is none).
    pub fn clear_qdisc(&self) -> io::Result<()> {
        match self.run(&["tc", "qdisc", "del", "dev", "lo", "root"]) {
            Ok(_) => Ok(()),
            Err(e)
                if e.to_string().contains("No such file") || e.to_string().contains("noqueue") =>
            {
                Ok(())
            }
            Err(e) => {
                // `tc` reports deleting the default qdisc in several ways; only fail if a
                // non-default qdisc is still there.
                let out = self.run(&["tc", "qdisc", "show", "dev", "lo"])?;
                if String::from_utf8_lossy(&out.stdout).contains("tbf") {
                    Err(e)
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Silently drops every TCP segment to or from `port` (a dead link: no RST, no ACK).
    pub fn iptables_drop_port(&self, port: u16) -> io::Result<()> {
        let p = port.to_string();
        self.run(&[
            "iptables", "-A", "INPUT", "-p", "tcp", "--dport", &p, "-j", "DROP",
        ])?;
        self.run(&[
            "iptables", "-A", "INPUT", "-p", "tcp", "--sport", &p, "-j", "DROP",
        ])?;
        Ok(())
    }

    /// Answers every segment sent to `port` with a TCP RST (a reset link).
    pub fn iptables_reject_reset_port(&self, port: u16) -> io::Result<()> {
        let p = port.to_string();
        self.run(&[
            "iptables",
            "-A",
            "INPUT",
            "-p",
            "tcp",
            "--dport",
            &p,
            "-j",
            "REJECT",
            "--reject-with",
            "tcp-reset",
        ])
        .map(|_| ())
    }

    /// Removes all iptables rules in the namespace.
    pub fn iptables_flush(&self) -> io::Result<()> {
        self.run(&["iptables", "-F"]).map(|_| ())
    }

    /// Pids of processes running in the namespace.
    pub fn pids(&self) -> Vec<i32> {
        Command::new("ip")
            .args(["netns", "pids", &self.name])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .filter_map(|s| s.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        for pid in self.pids() {
            // SAFETY: kill(2) on processes inside our own namespace.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        for _ in 0..50 {
            if self.pids().is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::{Duration, Instant};

    /// Echo server + client inside the namespace; DROP stalls silently, REJECT resets.
    fn kernel_faults(ns: &NetNs) {
        if !require_iptables(ns) {
            return;
        }
        let (l, mut c) = ns
            .run_in(|| {
                let l = TcpListener::bind("127.0.0.1:0").expect("bind in ns");
                let c = TcpStream::connect(l.local_addr().expect("addr")).expect("connect in ns");
                (l, c)
            })
            .expect("run_in");
        let port = l.local_addr().expect("addr").port();
        // The host cannot reach it: it lives in the namespace.
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
        let (mut srv, _) = l.accept().expect("accept");
        c.set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        let mut b = [0u8; 4];
        c.write_all(b"ping").expect("write");
        srv.read_exact(&mut b).expect("server read");

        ns.iptables_drop_port(port).expect("drop");
        c.write_all(b"lost").expect("write under DROP succeeds");
        srv.set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        assert!(srv.read(&mut b).is_err(), "data crossed a DROP rule");
        ns.iptables_flush().expect("flush");

        ns.iptables_reject_reset_port(port).expect("reject");
        let t = Instant::now();
        let mut err = None;
        while t.elapsed() < Duration::from_secs(2) {
            if let Err(e) = c.write_all(b"rst?").and_then(|_| c.read(&mut b)) {
                if e.kind() != io::ErrorKind::WouldBlock {
                    err = Some(e);
                    break;
                }
            }
        }
        let e = err.expect("no error under REJECT tcp-reset");
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}");
        ns.iptables_flush().expect("flush");
    }

    #[test]
    fn create_shape_filter_delete() {
        let Some(ns) = require_netns("onair-tk") else {
            return;
        };
        let name = ns.name().to_string();
        let out = ns.run(&["ip", "addr"]).expect("ip addr");
        let s = String::from_utf8_lossy(&out.stdout);
        assert!(s.contains("lo:") && s.contains("mtu 1500"), "{s}");
        ns.tbf(1000, 4096, 50).expect("tbf");
        let q = ns
            .run(&["tc", "qdisc", "show", "dev", "lo"])
            .expect("tc show");
        assert!(String::from_utf8_lossy(&q.stdout).contains("tbf"));
        ns.clear_qdisc().expect("clear");
        ns.clear_qdisc().expect("clear twice");
        if require_iptables(&ns) {
            ns.iptables_drop_port(1935).expect("drop");
            ns.iptables_reject_reset_port(1936).expect("reject");
            ns.iptables_flush().expect("flush");
        }
        kernel_faults(&ns);
        let mut g = ns
            .spawn_in(Command::new("sleep").arg("30"))
            .expect("spawn in ns");
        let pid = g.pid().expect("pid") as i32;
        std::thread::sleep(Duration::from_millis(100));
        assert!(ns.pids().contains(&pid), "pid {pid} not in {:?}", ns.pids());
        drop(ns);
        let _ = g.wait_timeout(Duration::from_secs(2));
        let list = Command::new("ip")
            .args(["netns", "list"])
            .output()
            .expect("ip netns list");
        assert!(!String::from_utf8_lossy(&list.stdout).contains(&name));
    }
}
