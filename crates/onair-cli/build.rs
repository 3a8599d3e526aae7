//! Stamps the build with the commit it was made from, for `onair --version`.
//!
//! Why: a bug report or a package must say exactly which code it runs.
//! `ONAIR_COMMIT` wins (a package built from a source tarball has no .git);
//! otherwise `git rev-parse`; otherwise "unknown".
//!
//! Every git command here runs with `--no-optional-locks`: a plain `git diff`
//! refreshes and rewrites `.git/index`, which this script watches, so each
//! cargo run after the first re-ran it and rebuilt the CLI (21 s per fresh
//! test run).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=ONAIR_COMMIT");
    // Rebuild when the commit or the staged state moves: HEAD (a checkout),
    // the branch it names (a commit, a reset, a pull), packed refs, the index.
    for path in ["HEAD", "packed-refs", "index"]
        .into_iter()
        .filter_map(git_path)
        .chain(head_ref().and_then(|r| git_path(&r)))
    {
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    let commit = std::env::var("ONAIR_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=ONAIR_COMMIT={commit}");
}

/// Runs git without letting it write to the repository; its trimmed stdout on success.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("--no-optional-locks")
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Where git keeps `name` (`.git/HEAD`, `.git/refs/heads/main`, ...), worktrees included.
fn git_path(name: &str) -> Option<PathBuf> {
    git(&["rev-parse", "--path-format=absolute", "--git-path", name]).map(PathBuf::from)
}

/// The ref HEAD points at (`refs/heads/main`), none when detached.
fn head_ref() -> Option<String> {
    git(&["symbolic-ref", "-q", "HEAD"]).filter(|r| !r.is_empty())
}

fn git_commit() -> Option<String> {
    let mut commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    let dirty = Command::new("git")
        .args(["--no-optional-locks", "diff", "--quiet", "HEAD", "--"])
        .status()
        .map(|s| !s.success())
        .unwrap_or(false);
    if dirty {
        commit.push_str("-dirty");
    }
    (!commit.is_empty()).then_some(commit)
}
