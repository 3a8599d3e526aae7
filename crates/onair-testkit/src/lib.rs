//! Test harness for onair's integration tests.
//!
//! onair's promises (never block the engines, survive stalls and resets, resume at the
//! present, never send a mid-GOP drop) can only be proved against real peers and judged
//! by a real decoder. This crate gives tests those peers and judges, and makes sure every
//! process it starts dies with the test, even on panic:
//!
//! - [`nginx`]: a private nginx-rtmp server per test (the usual ingest), recording what it got.
//! - [`ffmpeg`]: an FFmpeg RTMP listener that keeps exactly what was sent, and the FFmpeg /
//!   ffprobe judges (probe, frames, decode errors, hidden "frame num gap"s, pixels, PCM).
//! - [`proxy`]: a userspace TCP fault proxy (pause, throttle, blackhole, reset, refuse, delay).
//! - [`netns`]: kernel-level faults (tbf, iptables DROP / RST) inside a private network namespace.
//! - [`procs`]: process guards, ports and tool discovery (with skip-or-fail policy).
//! - [`stats`]: the `--stats-json` JSON Lines reader.
//!
//! Tests that need external tools start with
//! `if !onair_testkit::procs::require_tools(&["nginx", "ffmpeg"]) { return; }`:
//! locally a missing tool skips the test with a note, under `CI` it fails it.

pub mod ffmpeg;
pub mod netns;
pub mod nginx;
pub mod procs;
pub mod proxy;
pub mod stats;

pub use ffmpeg::{FfmpegListener, FrameInfo, PacketInfo, Probe, StreamInfo};
pub use netns::NetNs;
pub use nginx::{HttpStatusServer, NginxOptions, NginxRtmp};
pub use procs::{
    cargo_bin, free_port, require_tool, require_tools, spawn, wait_for_port, which, ChildGuard,
};
pub use proxy::FaultProxy;
