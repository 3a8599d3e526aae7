//! Helpers for tests that start real programs (Xvfb, PulseAudio, ...).
//!
//! Why: every program a test starts must die with the test, even when it
//! panics, so each one is held by a [`ChildGuard`] that kills it by pid on
//! drop. A missing tool skips the test with a note on a developer's machine,
//! but fails it under CI (`CI` set), where the tools must be installed.

use std::path::PathBuf;
use std::process::{Child, Command};

/// Kills (SIGKILL) and reaps its child on drop.
pub struct ChildGuard {
    /// The child process.
    pub child: Child,
    /// What it is, for messages.
    pub what: String,
}

impl ChildGuard {
    /// Spawns `cmd`, panicking with `what` on failure.
    pub fn spawn(what: &str, cmd: &mut Command) -> Self {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Self {
            child,
            what: what.to_string(),
        }
    }

    /// Kills and reaps now (idempotent).
    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            eprintln!("stopping {} (pid {})", self.what, self.child.id());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Finds `tool` on PATH. Returns `None` (after printing a note) when it is
/// missing and `CI` is unset; panics when it is missing under CI.
pub fn require_tool(tool: &str, apt_package: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("{tool} is required under CI (apt: {apt_package})");
        }
        eprintln!("SKIPPED: {tool} not found (apt: {apt_package})");
    }
    found
}

/// Polls `f` every 20 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: std::time::Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if std::time::Instant::now() > end {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
