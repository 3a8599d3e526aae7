//! Stamps the build with the commit it was made from, for `onair --version`.
//!
//! Why: a bug report or a package must say exactly which code it runs.
//! `ONAIR_COMMIT` wins (a package built from a source tarball has no .git);
//! otherwise `git rev-parse`; otherwise "unknown".

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=ONAIR_COMMIT");
    // Rebuild when HEAD moves (a commit, a checkout).
    for path in ["../../.git/HEAD", "../../.git/index"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let commit = std::env::var("ONAIR_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=ONAIR_COMMIT={commit}");
}

fn git_commit() -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let mut commit = String::from_utf8(out.stdout).ok()?.trim().to_string();
    let dirty = Command::new("git")
        .args(["diff", "--quiet", "HEAD", "--"])
        .status()
        .map(|s| !s.success())
        .unwrap_or(false);
    if dirty {
        commit.push_str("-dirty");
    }
    (!commit.is_empty()).then_some(commit)
}
