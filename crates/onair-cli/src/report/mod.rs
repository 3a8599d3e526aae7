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

use parse::{Session, Timeline};
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
}
