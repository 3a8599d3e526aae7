//! `onair report STATS.jsonl` and `onair stream|record --report FILE`: the
//! picture of a session (throughput, buffer, drops, link state over time).
//!
//! Why a picture: after a bad evening a streamer wants to see *when* the
//! link choked, how the encoder and the buffer reacted and what viewers
//! lost; a thousand JSON lines do not tell that at a glance.
//!
//! Decisions (also in `--help`):
//! - SVG only (see [`draw`] for why); `rsvg-convert` makes a PNG of it.
//! - Several outputs: every stream output is drawn, stacked on one time
//!   axis; recorders only when there is no stream output (an `onair record`
//!   run). `--output NAME|INDEX` picks one output, recorders included.
//! - Bad lines are skipped with a warning naming file and line, as long as
//!   one line is good; otherwise exit 1 with one line naming the first bad
//!   line (see [`parse::read`]).
//! - `--report` on a run: the samples are kept in memory (bounded, see
//!   [`parse::MAX_SAMPLES_PER_OUTPUT`]) and the picture is written after the
//!   final stats. A picture that cannot be written is a warning only: the
//!   exit code stays the run's, because the stream's result matters more.

pub mod draw;
pub mod parse;

use onair::Stats;
use parse::{Session, SessionBuilder, Timeline};
use std::path::{Path, PathBuf};

/// How drawing a report failed, so the CLI can pick the exit code.
#[derive(Debug, PartialEq)]
pub enum ReportError {
    /// The command asked for something the file cannot give (an unknown
    /// `--output`): exit 2.
    Usage(String),
    /// The stats could not be read or the picture not written: exit 1.
    Runtime(String),
}

/// Checks a picture path given on the command line (clap value parser), so
/// a wrong extension fails before a long run rather than after it.
pub fn parse_svg_path(s: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(s);
    let is_svg = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("svg"));
    if !is_svg {
        return Err(format!(
            "'{s}': the report is written as SVG only (FILE.svg); for a PNG: rsvg-convert -o x.png x.svg"
        ));
    }
    Ok(path)
}

/// True when the picture's directory exists, checked before a run starts:
/// finding out after a four-hour stream would lose the picture.
pub fn directory_exists(path: &Path) -> bool {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.is_dir(),
        _ => true,
    }
}

/// `onair report`: reads `stats`, draws the chosen outputs, writes `out`
/// (default: `stats` with the extension `.svg`).
pub fn run(stats: &Path, out: Option<&Path>, which: Option<&str>) -> Result<PathBuf, ReportError> {
    let out = match out {
        Some(o) => o.to_path_buf(),
        None => {
            if stats
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("svg"))
            {
                return Err(ReportError::Usage(format!(
                    "{} looks like a picture, not a stats file; name the stats file (and -o FILE.svg)",
                    stats.display()
                )));
            }
            stats.with_extension("svg")
        }
    };
    let session = parse::read_file(stats).map_err(ReportError::Runtime)?;
    write(&session, which, &out, stats)?;
    Ok(out)
}

/// Draws `session` (every stream output, or only `which`) into `out`.
/// `source` names where the stats came from, for error messages.
pub fn write(
    session: &Session,
    which: Option<&str>,
    out: &Path,
    source: &Path,
) -> Result<(), ReportError> {
    let chosen: Vec<&Timeline> = match which {
        Some(w) => vec![session.select(w).ok_or_else(|| {
            ReportError::Usage(format!(
                "no output '{w}' in {} (outputs: {}); -o names the picture, --output picks an output",
                source.display(),
                session.list()
            ))
        })?],
        None => session.default_selection(),
    };
    let svg = draw::svg(&chosen).map_err(ReportError::Runtime)?;
    std::fs::write(out, svg)
        .map_err(|e| ReportError::Runtime(format!("writing {}: {e}", out.display())))
}

/// The samples of a running stream, for `--report`: fed the same snapshots
/// as `--stats-json`, serialized the same way, so the picture equals what
/// `onair report` would draw from the stats file.
#[derive(Debug)]
pub struct LiveReport {
    path: PathBuf,
    builder: SessionBuilder,
}

impl LiveReport {
    /// Starts collecting for a picture to be written to `path`.
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            builder: SessionBuilder::default(),
        }
    }

    /// Adds one snapshot (every output's stats at one instant).
    pub fn record(&mut self, stats: &[Stats]) {
        for s in stats {
            // A snapshot that does not serialize or goes back in time would
            // only cost one point of the picture; the run goes on.
            if let Ok(v) = serde_json::to_value(s) {
                let _ = self.builder.push_line(&v);
            }
        }
    }

    /// Writes the picture; returns where, or a one-line reason.
    pub fn finish(self) -> Result<PathBuf, String> {
        if self.builder.is_empty() {
            return Err("no stats were collected".into());
        }
        let session = self.builder.finish();
        match write(&session, None, &self.path, Path::new("the run")) {
            Ok(()) => Ok(self.path),
            Err(ReportError::Usage(e) | ReportError::Runtime(e)) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_svg_paths() {
        assert!(parse_svg_path("a/b.svg").is_ok());
        assert!(parse_svg_path("B.SVG").is_ok());
        assert!(parse_svg_path("x.png").is_err());
        assert!(parse_svg_path("x").is_err());
    }

    #[test]
    fn live_report_draws_what_the_run_saw() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("live.svg");
        let mut live = LiveReport::new(path.clone());
        for t in 1..=3u64 {
            let stats = Stats {
                t_ms: t * 1000,
                state: if t == 2 { "reconnecting" } else { "live" },
                kbps: 2600.0,
                reconnects: t / 3,
                output: "rtmp://h/app/****".into(),
                ..Stats::default()
            };
            live.record(&[stats]);
        }
        assert_eq!(live.finish(), Ok(path.clone()));
        let svg = std::fs::read_to_string(&path).expect("written");
        assert!(svg.contains("rtmp://h/app/****"));
        assert!(svg.contains("reconnecting"));
    }

    #[test]
    fn live_report_without_samples_or_directory_fails_softly() {
        assert!(LiveReport::new("x.svg".into()).finish().is_err());
        let mut live = LiveReport::new("/nonexistent-dir/x.svg".into());
        live.record(&[Stats {
            t_ms: 1000,
            ..Stats::default()
        }]);
        let e = live.finish().expect_err("no such directory");
        assert!(e.starts_with("writing /nonexistent-dir/x.svg"), "{e}");
        assert!(!directory_exists(Path::new("/nonexistent-dir/x.svg")));
        assert!(directory_exists(Path::new("x.svg")));
    }
}
