//! `ffmpeg -listen 1` as a one-shot RTMP receiver: the one listener of the test kit, for
//! Debian's FFmpeg 5.1 ([`FfmpegListener::start`], FLV) and for FFmpeg 9
//! ([`crate::ffmpeg9::listen`], Matroska).
//!
//! Why FFmpeg and not nginx-rtmp: nginx-rtmp's recorder drops video until the first
//! keyframe of each file, which hides exactly the bugs the tests look for (a stream that
//! starts or resumes mid-GOP); `-c copy` keeps what was actually sent. FFmpeg's RTMP
//! listener only accepts the exact `app/stream` path it was given, and only one
//! connection; it exits when the publisher disconnects.

use crate::procs::{free_port, wait_for_listen_pid, ChildGuard};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

/// How long the listener may take to open its port before the start fails.
/// How long FFmpeg may take to start listening. Why this long: a cold start (its
/// libraries out of the page cache) beside the test script's background compiler, which
/// fills the disk with build output, once took over 10 s with nothing on stderr (a CI-like
/// run, 2026-12-02); a start that never listens still fails, saying whether FFmpeg ran.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(30);

/// The container the listener writes what it receives into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenFormat {
    /// FLV, keeping the packets before the first keyframe too (`-copyinkf`): what a
    /// mid-GOP start looks like to a viewer; Debian's FFmpeg 5.1 reads it back.
    Flv,
    /// Matroska: the one container both FFmpeg 9 (writing HEVC/AV1 from Enhanced RTMP)
    /// and Debian's ffprobe (judging it) handle.
    Matroska,
}

impl ListenFormat {
    /// The output options after `-c copy`.
    fn args(self) -> &'static [&'static str] {
        match self {
            ListenFormat::Flv => &["-copyinkf", "-f", "flv"],
            ListenFormat::Matroska => &["-f", "matroska"],
        }
    }
}

/// A one-shot RTMP server: `ffmpeg -listen 1` copying the first publish of
/// `rtmp://127.0.0.1:PORT/live/KEY` into a file. Killed on drop.
#[derive(Debug)]
pub struct FfmpegListener {
    child: ChildGuard,
    port: u16,
    key: String,
    out: PathBuf,
    stderr_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl FfmpegListener {
    /// Debian's `ffmpeg` listening on a free port for `rtmp://127.0.0.1:PORT/live/x`,
    /// writing FLV to `out`.
    pub fn start(out: &Path) -> io::Result<FfmpegListener> {
        Self::start_with_key(out, "x")
    }

    /// Like [`FfmpegListener::start`], for `rtmp://127.0.0.1:PORT/live/KEY`.
    pub fn start_with_key(out: &Path, key: &str) -> io::Result<FfmpegListener> {
        Self::start_in(out, key, None)
    }

    /// Like [`FfmpegListener::start_with_key`], inside network namespace `netns` if given
    /// (see [`crate::netns::NetNs::name`]).
    pub fn start_in(out: &Path, key: &str, netns: Option<&str>) -> io::Result<FfmpegListener> {
        Self::spawn(Path::new("ffmpeg"), ListenFormat::Flv, out, key, netns)
    }

    /// `bin -listen 1` (any FFmpeg) on a free port for `rtmp://127.0.0.1:PORT/live/KEY`,
    /// writing `format` to `out`, inside network namespace `netns` if given; returns once
    /// the port is open. A listener that does not open it fails with its stderr.
    pub fn spawn(
        bin: &Path,
        format: ListenFormat,
        out: &Path,
        key: &str,
        netns: Option<&str>,
    ) -> io::Result<FfmpegListener> {
        let port = free_port()?;
        let dir = tempfile::Builder::new()
            .prefix("onair-fflisten-")
            .tempdir()?;
        let stderr_path = dir.path().join("stderr.log");
        let stderr = std::fs::File::create(&stderr_path)?;
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let child = cmd
            .args(["-nostdin", "-y", "-v", "error", "-listen", "1", "-i"])
            .arg(format!("rtmp://127.0.0.1:{port}/live/{key}"))
            .args(["-c", "copy"])
            .args(format.args())
            .arg(out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()?;
        let mut child = ChildGuard::new("ffmpeg-listen", child);
        // Never probe by connecting: the listener would accept the probe and exit.
        // /proc/PID/net/tcp: the table of the listener's own namespace.
        let pid = child.pid().unwrap_or(0);
        if let Err(e) = wait_for_listen_pid(pid, port, LISTEN_TIMEOUT) {
            let state = match child.try_wait() {
                Ok(Some(status)) => format!("ffmpeg had exited ({status})"),
                Ok(None) => "ffmpeg was still running".to_string(),
                Err(e) => format!("ffmpeg's state unknown ({e})"),
            };
            child.kill();
            let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            return Err(io::Error::new(
                e.kind(),
                format!("{e}; {state}; ffmpeg stderr: {err}"),
            ));
        }
        Ok(FfmpegListener {
            child,
            port,
            key: key.to_string(),
            out: out.to_path_buf(),
            stderr_path,
            _dir: dir,
        })
    }

    /// The URL to publish to.
    pub fn url(&self) -> String {
        format!("rtmp://127.0.0.1:{}/live/{}", self.port, self.key)
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The output file.
    pub fn output(&self) -> &Path {
        &self.out
    }

    /// Waits up to `timeout` for ffmpeg to exit (it does when the publisher disconnects).
    /// `Ok(None)` on timeout; the process keeps running until dropped.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        self.child.wait_timeout(timeout)
    }

    /// Everything ffmpeg printed on stderr (`-v error`).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// [`FfmpegListener::stderr`] without the end-of-stream I/O error line FFmpeg prints
    /// (exit status still 0) whenever the publisher disconnects: 5.1 starts it with the
    /// URL, 9 with `[in#0/flv @ 0x...] Error during demuxing`.
    pub fn unexpected_stderr(&self) -> String {
        let url = self.url();
        self.stderr()
            .lines()
            .filter(|l| {
                let eof = l.ends_with("Input/output error");
                !(eof && (l.starts_with(&url) || l.starts_with("[in#0/flv @ ")))
            })
            .map(|l| format!("{l}\n"))
            .collect()
    }

    /// Kills the listener now (the receiver-crash fault).
    pub fn kill(&mut self) {
        self.child.kill();
    }
}
