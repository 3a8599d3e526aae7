//! A private nginx-rtmp server per test, and a tiny HTTP status server for `on_publish`.
//!
//! Why: nginx-rtmp is the ingest most users test against, and the one whose quirks
//! (it records only from the first keyframe, finalizes a recording when the publisher
//! disconnects, rejects a publish when `on_publish` answers non-2xx) onair must survive.
//! Each test gets its own instance on a free 127.0.0.1 port, with its own prefix, config,
//! pid file, logs and recording directory in a temp dir, running in the foreground
//! (`daemon off; master_process off;`) so the single process can be killed by pid, and
//! restarted on the same port for server-crash tests. The system nginx is never touched.
//! RTMPS: nginx's `stream` module (libnginx-mod-stream) terminates TLS on extra ports
//! ([`NginxOptions::tls`], one port per certificate) and passes the bytes to nginx-rtmp.

use crate::procs::{find_tool, free_port, wait_for_port, ChildGuard};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Where Debian's libnginx-mod-rtmp installs the module, plus other common places.
const MODULE_CANDIDATES: &[&str] = &[
    "/usr/lib/nginx/modules/ngx_rtmp_module.so",
    "/usr/lib64/nginx/modules/ngx_rtmp_module.so",
    "/usr/local/nginx/modules/ngx_rtmp_module.so",
    "/usr/share/nginx/modules/ngx_rtmp_module.so",
];

/// Where Debian's libnginx-mod-stream installs the TLS front's module.
const STREAM_MODULE_CANDIDATES: &[&str] = &[
    "/usr/lib/nginx/modules/ngx_stream_module.so",
    "/usr/lib64/nginx/modules/ngx_stream_module.so",
    "/usr/local/nginx/modules/ngx_stream_module.so",
    "/usr/share/nginx/modules/ngx_stream_module.so",
];

/// Path of `ngx_rtmp_module.so`, if installed.
pub fn rtmp_module_path() -> Option<PathBuf> {
    MODULE_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Options for [`NginxRtmp::start`].
#[derive(Debug, Clone)]
pub struct NginxOptions {
    /// `on_publish URL;` — nginx POSTs there on publish; any non-2xx/3xx answer rejects it.
    pub on_publish: Option<String>,
    /// Record every publish (`record all`) into [`NginxRtmp::record_dir`]. Default true.
    pub record: bool,
    /// Extra directives appended inside `application live { ... }`.
    pub extra_application: String,
    /// How long [`NginxRtmp::start`] waits for the port. Default 5 s.
    pub start_timeout: Duration,
    /// `drop_idle_publisher`: nginx-rtmp drops a publisher that sent nothing for this long.
    /// Without it, a publisher whose link died silently keeps the stream name busy and
    /// every reconnect with the same key is refused ("Already publishing",
    /// `NetStream.Publish.BadName`) until nginx notices (TCP keepalive: hours).
    /// Default `None` (nginx's default); dead-link tests usually want `Some(2 s)`.
    pub drop_idle_publisher: Option<Duration>,
    /// Run inside this network namespace ([`crate::netns::NetNs::name`]) so kernel faults
    /// (tbf, iptables) apply; the client must then run there too.
    pub netns: Option<String>,
    /// TLS fronts: one `listen ... ssl` port per certificate, proxied to the RTMP port
    /// ([`NginxRtmp::tls_port`], [`NginxRtmp::rtmps_url`]). Default none.
    pub tls: Vec<crate::tls::CertFiles>,
}

impl Default for NginxOptions {
    fn default() -> Self {
        NginxOptions {
            on_publish: None,
            record: true,
            extra_application: String::new(),
            start_timeout: Duration::from_secs(5),
            netns: None,
            drop_idle_publisher: None,
            tls: Vec::new(),
        }
    }
}

/// A running (or killed, restartable) nginx-rtmp on 127.0.0.1, application `live`.
#[derive(Debug)]
pub struct NginxRtmp {
    dir: tempfile::TempDir,
    port: u16,
    tls_ports: Vec<u16>,
    opts: NginxOptions,
    child: Option<ChildGuard>,
}

impl NginxRtmp {
    /// Writes the config in a fresh temp prefix, starts nginx on a free port and waits
    /// until the port accepts connections.
    pub fn start(opts: NginxOptions) -> io::Result<NginxRtmp> {
        let dir = tempfile::Builder::new().prefix("onair-nginx-").tempdir()?;
        for sub in ["rec", "logs", "temp"] {
            std::fs::create_dir_all(dir.path().join(sub))?;
        }
        let port = free_port()?;
        let tls_ports = opts
            .tls
            .iter()
            .map(|_| free_port())
            .collect::<io::Result<Vec<u16>>>()?;
        let mut n = NginxRtmp {
            dir,
            port,
            tls_ports,
            opts,
            child: None,
        };
        n.write_config()?;
        n.spawn()?;
        Ok(n)
    }

    fn write_config(&self) -> io::Result<()> {
        let module = rtmp_module_path().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "ngx_rtmp_module.so not found (install libnginx-mod-rtmp)",
            )
        })?;
        let d = self.dir.path();
        let mut app = String::from("            live on;\n");
        if self.opts.record {
            app.push_str(&format!(
                "            record all;\n            record_path {};\n            record_unique on;\n            record_append off;\n",
                d.join("rec").display()
            ));
        }
        if let Some(url) = &self.opts.on_publish {
            app.push_str(&format!("            on_publish {url};\n"));
        }
        if let Some(d) = self.opts.drop_idle_publisher {
            app.push_str(&format!(
                "            drop_idle_publisher {}ms;\n",
                d.as_millis().max(1)
            ));
        }
        if !self.opts.extra_application.is_empty() {
            app.push_str(&self.opts.extra_application);
            app.push('\n');
        }
        let mut conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\n\
             pid {pid};\nerror_log {log} info;\nload_module {module};\n\
             events {{ worker_connections 256; }}\n\
             rtmp {{\n    server {{\n        listen 127.0.0.1:{port};\n        chunk_size 4096;\n\
             \x20       application live {{\n{app}        }}\n    }}\n}}\n",
            pid = d.join("logs/nginx.pid").display(),
            log = d.join("logs/error.log").display(),
            module = module.display(),
            port = self.port,
        );
        if !self.opts.tls.is_empty() {
            let stream_module = STREAM_MODULE_CANDIDATES
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        "ngx_stream_module.so not found (install libnginx-mod-stream)",
                    )
                })?;
            // load_module must come before the blocks.
            conf = format!("load_module {};\n{conf}", stream_module.display());
            conf.push_str("stream {\n");
            for (files, port) in self.opts.tls.iter().zip(&self.tls_ports) {
                conf.push_str(&format!(
                    "    server {{\n        listen 127.0.0.1:{port} ssl;\n\
                     \x20       ssl_certificate {cert};\n        ssl_certificate_key {key};\n\
                     \x20       proxy_pass 127.0.0.1:{rtmp};\n    }}\n",
                    cert = files.cert.display(),
                    key = files.key.display(),
                    rtmp = self.port,
                ));
            }
            conf.push_str("}\n");
        }
        std::fs::write(d.join("nginx.conf"), conf)
    }

    fn spawn(&mut self) -> io::Result<()> {
        let nginx = find_tool("nginx")
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "nginx not found"))?;
        let d = self.dir.path();
        let mut cmd = match &self.opts.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(nginx);
                c
            }
            None => Command::new(nginx),
        };
        let child = cmd
            .arg("-p")
            .arg(d)
            .arg("-c")
            .arg(d.join("nginx.conf"))
            // -e: the startup error log, before the config is read (else /var/log/nginx).
            .arg("-e")
            .arg(d.join("logs/error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut guard = ChildGuard::new("nginx", child);
        let addr = self.addr();
        let deadline = std::time::Instant::now() + self.opts.start_timeout;
        loop {
            if let Some(st) = guard.try_wait()? {
                return Err(io::Error::other(format!(
                    "nginx exited at start ({st}); error.log:\n{}",
                    self.error_log()
                )));
            }
            let up = match &self.opts.netns {
                Some(_) => guard
                    .pid()
                    .is_some_and(|pid| crate::procs::is_listening_pid(pid, self.port)),
                None => wait_for_port(addr, Duration::from_millis(100)).is_ok(),
            };
            if up {
                break;
            }
            if self.opts.netns.is_some() {
                std::thread::sleep(Duration::from_millis(20));
            }
            if std::time::Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "nginx did not listen on {addr}; error.log:\n{}",
                        self.error_log()
                    ),
                ));
            }
        }
        self.child = Some(guard);
        Ok(())
    }

    /// The port nginx listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `rtmp://127.0.0.1:PORT/live/KEY`.
    pub fn url(&self, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{key}", self.port)
    }

    /// The port of the TLS front with the `i`th certificate of [`NginxOptions::tls`].
    pub fn tls_port(&self, i: usize) -> Option<u16> {
        self.tls_ports.get(i).copied()
    }

    /// `rtmps://HOST:PORT/live/KEY` through the `i`th TLS front (`host`: `localhost`
    /// or `127.0.0.1`, the names the test certificates are for).
    pub fn rtmps_url(&self, i: usize, host: &str, key: &str) -> Option<String> {
        self.tls_port(i)
            .map(|port| format!("rtmps://{host}:{port}/live/{key}"))
    }

    /// The process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.pid())
    }

    /// Directory where recordings go.
    pub fn record_dir(&self) -> PathBuf {
        self.dir.path().join("rec")
    }

    /// The temp prefix (config, logs, recordings). Deleted on drop.
    pub fn prefix(&self) -> &Path {
        self.dir.path()
    }

    /// Contents of nginx's error log (info level): publish/reject/record messages.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("logs/error.log")).unwrap_or_default()
    }

    /// All `.flv` recordings so far, oldest first (by mtime, then name). A recording is
    /// only complete once its publisher disconnected; see [`NginxRtmp::stop_and_collect`].
    pub fn recordings(&self) -> Vec<PathBuf> {
        let Ok(rd) = std::fs::read_dir(self.record_dir()) else {
            return Vec::new();
        };
        let mut v: Vec<(std::time::SystemTime, PathBuf)> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "flv"))
            .map(|p| {
                let t = std::fs::metadata(&p)
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                (t, p)
            })
            .collect();
        v.sort();
        v.into_iter().map(|(_, p)| p).collect()
    }

    /// Kills nginx abruptly (SIGKILL): the server-crash fault. Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill();
        }
    }

    /// True while the nginx process runs.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills (if running) and starts again on the same port, keeping the recordings.
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        self.spawn()
    }

    /// Gracefully stops nginx (SIGQUIT, so it closes the sessions and finalizes the
    /// recordings; SIGKILL after 5 s) and returns the recordings, oldest first. The files
    /// are copied out of the temp prefix (which is deleted) into a new temp dir that is
    /// kept on disk, so they can be judged and inspected after a failure.
    pub fn stop_and_collect(mut self) -> Vec<PathBuf> {
        if let Some(mut c) = self.child.take() {
            c.stop(libc::SIGQUIT, Duration::from_secs(5));
        }
        let recs = self.recordings();
        let Ok(out) = tempfile::Builder::new()
            .prefix("onair-recordings-")
            .tempdir()
            .map(|d| d.keep())
        else {
            return recs;
        };
        recs.into_iter()
            .map(|p| {
                let dst = out.join(p.file_name().unwrap_or_default());
                match std::fs::copy(&p, &dst) {
                    Ok(_) => dst,
                    Err(_) => p,
                }
            })
            .collect()
    }
}

impl Drop for NginxRtmp {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A tiny HTTP server on 127.0.0.1 answering every request with one fixed status code.
///
/// Why: nginx-rtmp's `on_publish` asks an HTTP endpoint whether to accept a publish;
/// answering 403 is how a real ingest rejects a bad stream key, which onair must treat
/// as a fatal error rather than a network fault to retry forever.
#[derive(Debug)]
pub struct HttpStatusServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
    last: Arc<Mutex<String>>,
    thread: Option<JoinHandle<()>>,
}

impl HttpStatusServer {
    /// Starts answering `status` to every request.
    pub fn start(status: u16) -> io::Result<HttpStatusServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicU64::new(0));
        let last = Arc::new(Mutex::new(String::new()));
        let (s, r, l) = (stop.clone(), requests.clone(), last.clone());
        let thread = std::thread::Builder::new()
            .name("http-status".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if s.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(c) = conn {
                        if let Ok(req) = answer(c, status) {
                            r.fetch_add(1, Ordering::SeqCst);
                            if let Ok(mut g) = l.lock() {
                                *g = req;
                            }
                        }
                    }
                }
            })?;
        Ok(HttpStatusServer {
            addr,
            stop,
            requests,
            last,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT/on_publish` (any path works).
    pub fn url(&self) -> String {
        format!("http://{}/on_publish", self.addr)
    }

    /// Number of requests answered.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// The last request (headers and body; nginx-rtmp sends `name=KEY&...` as the body).
    pub fn last_request(&self) -> String {
        self.last.lock().map(|g| g.clone()).unwrap_or_default()
    }
}

fn answer(mut c: TcpStream, status: u16) -> io::Result<String> {
    c.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        let n = c.read(&mut chunk)?;
        if n == 0 {
            break None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break Some(i + 4);
        }
        if buf.len() > 64 * 1024 {
            break None;
        }
    };
    if let Some(end) = header_end {
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let len = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        while buf.len() < end + len {
            let n = c.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }
    let reason = match status {
        200 => "OK",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Status",
    };
    let resp =
        format!("HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    c.write_all(resp.as_bytes())?;
    c.flush()?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

impl Drop for HttpStatusServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procs::require_tools;

    fn publish(url: &str, secs: u32) -> std::process::Output {
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-re", "-f", "lavfi", "-i"])
            .arg("testsrc2=size=160x120:rate=15")
            .args(["-f", "lavfi", "-i", "sine=f=440:r=48000"])
            .args(["-t", &secs.to_string()])
            .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "15"])
            .args(["-c:a", "aac", "-f", "flv", url])
            .output()
            .expect("run ffmpeg publisher")
    }

    #[test]
    fn records_publish_and_restarts() {
        if !require_tools(&["nginx", "ffmpeg"]) {
            return;
        }
        let mut n = NginxRtmp::start(NginxOptions::default()).expect("start nginx");
        let port = n.port();
        let out = publish(&n.url("k1"), 1);
        assert!(out.status.success(), "publish failed: {out:?}");
        n.restart().expect("restart");
        assert_eq!(n.port(), port);
        let out = publish(&n.url("k2"), 1);
        assert!(
            out.status.success(),
            "publish after restart failed: {out:?}"
        );
        let recs = n.stop_and_collect();
        assert_eq!(recs.len(), 2, "recordings: {recs:?}");
        let p = crate::ffmpeg::probe(&recs[1]).expect("probe");
        assert_eq!(p.video().map(|v| v.codec_name.as_str()), Some("h264"));
        assert_eq!(p.audio().map(|v| v.codec_name.as_str()), Some("aac"));
        if let Some(d) = recs[0].parent() {
            let _ = std::fs::remove_dir_all(d);
        }
    }

    #[test]
    fn runs_inside_netns() {
        if !require_tools(&["nginx", "ffmpeg"]) {
            return;
        }
        let Some(ns) = crate::netns::require_netns("onair-tk-ngx") else {
            return;
        };
        let n = NginxRtmp::start(NginxOptions {
            netns: Some(ns.name().to_string()),
            ..Default::default()
        })
        .expect("start nginx in netns");
        // Not reachable from the host's loopback...
        assert!(TcpStream::connect(n.addr()).is_err());
        // ...but from inside the namespace.
        let ok = ns
            .run_in(|| TcpStream::connect(n.addr()).is_ok())
            .expect("run_in");
        assert!(ok);
    }

    /// nginx-rtmp quirk: a silently dead publisher keeps its stream name busy; a second
    /// publisher with the same key is refused until `drop_idle_publisher` fires.
    #[test]
    fn dead_publisher_blocks_key_until_idle_drop() {
        if !require_tools(&["nginx", "ffmpeg"]) {
            return;
        }
        let n = NginxRtmp::start(NginxOptions {
            drop_idle_publisher: Some(Duration::from_secs(2)),
            ..Default::default()
        })
        .expect("start nginx");
        let proxy = crate::proxy::FaultProxy::start(n.addr()).expect("proxy");
        let mut a = Command::new("ffmpeg");
        a.args(["-nostdin", "-v", "quiet", "-re", "-f", "lavfi", "-i"])
            .arg("testsrc2=size=160x120:rate=15")
            .args([
                "-t",
                "20",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-f",
                "flv",
            ])
            .arg(proxy.rtmp_url("same"));
        let _a = crate::procs::spawn(&mut a).expect("publisher A");
        let t = std::time::Instant::now();
        while proxy.bytes_up() < 20_000 && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        proxy.blackhole();
        let t = std::time::Instant::now();
        let b = publish(&n.url("same"), 1);
        if t.elapsed() < Duration::from_millis(1500) {
            assert!(
                !b.status.success(),
                "second publisher accepted while A is alive"
            );
        }
        std::thread::sleep(Duration::from_millis(2500));
        let b = publish(&n.url("same"), 1);
        assert!(
            b.status.success(),
            "publish after drop_idle_publisher failed: {}\n{}",
            String::from_utf8_lossy(&b.stderr),
            n.error_log()
        );
    }

    #[test]
    fn on_publish_rejects() {
        if !require_tools(&["nginx", "ffmpeg"]) {
            return;
        }
        let http = HttpStatusServer::start(403).expect("http");
        let n = NginxRtmp::start(NginxOptions {
            on_publish: Some(http.url()),
            ..Default::default()
        })
        .expect("start nginx");
        let out = publish(&n.url("badkey"), 1);
        assert!(!out.status.success(), "publish should be rejected");
        assert!(http.requests() >= 1);
        assert!(
            http.last_request().contains("badkey"),
            "{}",
            http.last_request()
        );
    }
}
