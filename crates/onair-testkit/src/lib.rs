//! Test harness for onair's integration tests.
//!
//! onair's promises (never block the engines, survive stalls and resets, resume at the
//! present, never send a mid-GOP drop) can only be proved against real peers and judged
//! by a real decoder. This crate gives tests those peers and judges, and makes sure every
//! process it starts dies with the test, even on panic:
//!
//! - [`nginx`]: a private nginx-rtmp server per test (the usual ingest), recording what it got.
//! - [`listener`]: `ffmpeg -listen 1` as an RTMP receiver that keeps exactly what was sent
//!   (any FFmpeg binary, FLV or Matroska).
//! - [`ffmpeg`]: the FFmpeg / ffprobe judges (probe, frames, decode errors, hidden
//!   "frame num gap"s, pixels, PCM).
//! - [`ffmpeg9`]: FFmpeg 9 (PyPI's static build) for Enhanced RTMP (HEVC/AV1): where it is,
//!   its listener, its judge, and the HEVC/AV1 fixture encoder.
//! - [`proxy`]: a userspace TCP fault proxy (pause, throttle, blackhole, reset, refuse, delay).
//! - [`netns`]: kernel-level faults (tbf, iptables DROP / RST) inside a private network namespace.
//! - [`xvfb`]: a private X server per test, painted by the test (screen capture), optionally
//!   also on TCP with a cookie of its own (a remote display, e.g. behind the fault proxy).
//! - [`pulse`]: a private PulseAudio server per test with a null sink, an optional
//!   microphone source, tone players, and pause/kill/restart faults.
//! - [`pcm`]: reading an audio source like the AudioEngine and judging its PCM (tones).
//! - [`procs`]: process guards, ports and tool discovery (with skip-or-fail policy).
//! - [`stats`]: the `--stats-json` JSON Lines reader.
//! - [`scripted`]: a one-connection TCP server driven by a script (hostile RTMP servers).
//! - [`tls`]: a test CA and good/bad server certificates for the RTMPS tests (nginx's
//!   TLS front, [`NginxOptions::tls`]).
//!
//! Tool quirks the helpers encode (FFmpeg 5.1, nginx 1.22 + nginx-rtmp, Debian 12):
//!
//! - `ffmpeg -listen 1 -i rtmp://...` accepts exactly one connection and exits when the
//!   publisher leaves, printing `URL: Input/output error` with exit status 0
//!   ([`FfmpegListener::unexpected_stderr`] filters it). It only *warns* when the
//!   publisher's app/stream differ from its URL. Never probe its port by connecting.
//! - nginx-rtmp needs `load_module .../ngx_rtmp_module.so` (Debian: /usr/lib/nginx/modules)
//!   and `-e LOG` so it does not touch /var/log/nginx before reading the config.
//! - nginx-rtmp records only from the first keyframe, finalizes the file when the publisher
//!   disconnects, and with `record_unique on` names it `KEY-UNIXSECONDS.flv`: two sessions
//!   of one key starting in the same second overwrite each other (`record_append off`).
//! - nginx-rtmp refuses a second publisher of a busy key ("Already publishing"); a publisher
//!   whose link died silently keeps the key busy until `drop_idle_publisher`
//!   ([`NginxOptions::drop_idle_publisher`]).
//! - FFmpeg conceals lost reference frames silently at `-v error`: use [`ffmpeg::frame_num_gaps`].
//!
//! One skip policy ([`procs::skip`]): tests that need external tools start with
//! `if !onair_testkit::require_tools(&["nginx", "ffmpeg"]) { return; }`, tests that need
//! a privilege with [`require_root`] or [`require_netns`]. Locally a missing tool or
//! privilege skips the test with one line, `SKIP <test>: <why>`; under CI (`CI=true`)
//! it fails the test.
//!
//! A typical fault test (server behind the proxy, reset mid-stream, judge the recording):
//!
//! ```no_run
//! use onair_testkit::{ffmpeg, output_timeout, require_tools, stats, FaultProxy, NginxOptions, NginxRtmp};
//! use std::{process::Command, time::Duration};
//!
//! if !require_tools(&["nginx", "ffmpeg"]) { return; }
//! let nginx = NginxRtmp::start(NginxOptions::default()).expect("nginx");
//! let proxy = FaultProxy::start(nginx.addr()).expect("proxy");
//! let dir = tempfile::tempdir().expect("tempdir");
//! let stats_path = dir.path().join("stats.jsonl");
//! let onair = onair_testkit::cargo_bin("onair").expect("build onair first");
//! let mut cmd = Command::new(onair);
//! cmd.args(["stream", &proxy.rtmp_url("key"), "--duration", "10", "--stats-json"])
//!     .arg(&stats_path);
//! let t = std::thread::spawn(move || output_timeout(&mut cmd, Duration::from_secs(30)));
//! std::thread::sleep(Duration::from_secs(4));
//! proxy.reset_all();
//! let out = t.join().expect("thread").expect("onair");
//! assert!(out.status.success());
//! let recs = nginx.stop_and_collect();
//! assert_eq!(recs.len(), 2, "one recording per session");
//! for r in &recs {
//!     assert_eq!(ffmpeg::decode_errors(r).expect("ffmpeg"), "");
//!     assert_eq!(ffmpeg::frame_num_gaps(r).expect("ffmpeg"), 0);
//! }
//! let s = stats::read_stats(&stats_path).expect("stats");
//! assert_eq!(stats::last(&s).and_then(|o| stats::field_u64(o, "reconnects")), Some(1));
//! ```

pub mod ffmpeg;
pub mod ffmpeg9;
pub mod listener;
pub mod netns;
pub mod nginx;
pub mod pcm;
pub mod procs;
pub mod proxy;
pub mod pulse;
pub mod scripted;
pub mod stats;
pub mod tls;
pub mod xvfb;

pub use ffmpeg::{FrameInfo, PacketInfo, Probe, StreamInfo};
pub use listener::{FfmpegListener, ListenFormat};
pub use netns::{require_netns, NetNs};
pub use nginx::{HttpStatusServer, NginxOptions, NginxRtmp};
pub use procs::{
    cargo_bin, free_port, onair_exe, output_timeout, require_root, require_tool, require_tools,
    rss_kib, serial, skip, spawn, wait_for, wait_for_port, which, ChildGuard, RefusingPort,
    SCHEDULING_SLACK,
};
pub use proxy::FaultProxy;
pub use pulse::PulseServer;
pub use scripted::{ScriptConn, ScriptedServer};
pub use tls::{CertFiles, TestPki};
pub use xvfb::{TestWindow, Xvfb};
