//! The live status line and the `--stats-json` file.
//!
//! Why together: both are views of the same once-a-second snapshot; the
//! status line goes to a terminal only (never into a pipe or a log file).

use onair::{Event, Stats};
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::Path;

/// More than this many AAC frames of inserted silence in one second (of
/// ~47) means the audio source is gone or stalled, not just jittery.
const SILENT_FRAMES_PER_SECOND: u64 = 20;

/// Where snapshots go.
pub struct StatsSink {
    file: Option<BufWriter<File>>,
    tty: bool,
    fps: u32,
    last_captured: u64,
    last_new_frames: u64,
    last_silence: u64,
    line_shown: bool,
    /// Output names by event index, when there are several outputs.
    names: Vec<String>,
}

impl StatsSink {
    /// Opens the JSON Lines file (truncating it) and decides whether to draw
    /// a status line (only when asked and stderr is a terminal).
    pub fn open(path: Option<&Path>, status: bool, fps: u32) -> std::io::Result<Self> {
        let file = path.map(File::create).transpose()?.map(BufWriter::new);
        Ok(Self {
            file,
            tty: status && std::io::stderr().is_terminal(),
            fps,
            last_captured: 0,
            last_new_frames: 0,
            last_silence: 0,
            line_shown: false,
            names: Vec::new(),
        })
    }

    /// Writes one JSON object (the first output's stats, with every output
    /// under `outputs` when there are several) and redraws the status line.
    pub fn write(&mut self, stats: &[Stats], last: bool) -> std::io::Result<()> {
        let Some(first) = stats.first() else {
            return Ok(());
        };
        if let Some(f) = self.file.as_mut() {
            let mut obj = serde_json::to_value(first).map_err(std::io::Error::other)?;
            if let Some(map) = obj.as_object_mut() {
                if stats.len() > 1 {
                    map.insert(
                        "outputs".into(),
                        serde_json::to_value(stats).map_err(std::io::Error::other)?,
                    );
                }
                if last {
                    map.insert("final".into(), serde_json::Value::Bool(true));
                }
            }
            serde_json::to_writer(&mut *f, &obj).map_err(std::io::Error::other)?;
            f.write_all(b"\n")?;
            f.flush()?;
        }
        if !last {
            self.draw(first);
        }
        Ok(())
    }

    fn draw(&mut self, s: &Stats) {
        let captured = s.video_frames_captured + s.video_frames_duplicated;
        let fps = captured.saturating_sub(self.last_captured);
        self.last_captured = captured;
        let new_frames = s.video_frames_captured.saturating_sub(self.last_new_frames);
        self.last_new_frames = s.video_frames_captured;
        let silence = s.audio_silence_frames.saturating_sub(self.last_silence);
        self.last_silence = s.audio_silence_frames;
        if !self.tty {
            return;
        }
        let drops = s.video_dropped_congestion + s.video_dropped_disconnected;
        // A source that delivers nothing is said so: the engines keep going
        // (repeating the last picture, inserting silence) but the user
        // should know their screen or microphone is not coming through.
        let mut sources = String::new();
        if fps > 0 && new_frames == 0 {
            sources.push_str("  [video source: no new frames]");
        }
        if silence >= SILENT_FRAMES_PER_SECOND {
            sources.push_str("  [audio source: silence inserted]");
        }
        eprint!(
            "\r\x1b[K{:<12} {:>6.0} kbps  {:>3}/{} fps  buffer {:>4} ms  dropped v{} a{}  reconnects {}{}{}",
            s.state,
            s.kbps,
            fps,
            self.fps,
            s.buffer_ms,
            drops,
            s.audio_frames_dropped,
            s.reconnects,
            bitrate_note(s),
            sources
        );
        self.line_shown = true;
    }

    /// Erases the status line before other output.
    pub fn clear_line(&mut self) {
        if self.line_shown {
            eprint!("\r\x1b[K");
            self.line_shown = false;
        }
    }

    /// Names the outputs in event lines (only useful with several outputs;
    /// `names[i]` is the output whose events carry index `i`).
    pub fn set_output_names(&mut self, names: Vec<String>) {
        self.names = if names.len() > 1 { names } else { Vec::new() };
    }

    /// Prints an event as its own line.
    pub fn event(&mut self, e: &Event) {
        self.clear_line();
        let index = match e {
            Event::State { output, .. }
            | Event::Reconnecting { output, .. }
            | Event::Reconnected { output, .. }
            | Event::Error { output, .. } => *output,
        };
        let who = self
            .names
            .get(index)
            .map_or_else(String::new, |n| format!("{n}: "));
        match e {
            Event::State { state, .. } => eprintln!("onair: {who}{}", state.as_str()),
            Event::Reconnecting {
                attempt,
                delay_ms,
                reason,
                ..
            } => eprintln!(
                "onair: {who}attempt {attempt} failed ({reason}); retrying in {delay_ms} ms"
            ),
            Event::Reconnected { downtime_ms, .. } => {
                eprintln!("onair: {who}reconnected after {downtime_ms} ms")
            }
            // Error messages already name their output.
            Event::Error { message, .. } => eprintln!("onair: {message}"),
        }
    }

    /// One closing line per output.
    pub fn summary(&mut self, stats: &[Stats]) {
        for s in stats {
            if let Some(dropped) = s.record_packets_dropped {
                eprintln!(
                    "onair: recording {} {}: wrote {} bytes, video {} packets, audio {} frames, lost {} packets, {} write errors",
                    s.output,
                    s.state,
                    s.bytes_sent,
                    s.video_packets_sent,
                    s.audio_frames_sent,
                    dropped,
                    s.record_errors.unwrap_or(0)
                );
                continue;
            }
            eprintln!(
                "onair: {} {}: sent {} bytes, video {} packets, audio {} frames, dropped video {}/{} (congestion/disconnected), audio {}, reconnects {}",
                s.output,
                s.state,
                s.bytes_sent,
                s.video_packets_sent,
                s.audio_frames_sent,
                s.video_dropped_congestion,
                s.video_dropped_disconnected,
                s.audio_frames_dropped,
                s.reconnects
            );
        }
    }
}

/// What the status line says about the video bitrate: nothing while it is
/// the user's, otherwise how far it was lowered and why.
pub fn bitrate_note(s: &Stats) -> String {
    if s.video_bitrate_ceiling_kbps == 0 || s.video_bitrate_kbps >= s.video_bitrate_ceiling_kbps {
        return String::new();
    }
    let why = match s.bitrate_reason {
        Some("floor") => format!(
            "at its floor, link carries ~{}k: dropping frames",
            s.link_kbps
        ),
        Some("probing") => format!("climbing back, link carried ~{}k", s.link_kbps),
        Some("link") => format!("link carries ~{}k", s.link_kbps),
        _ => "another destination is slower".to_owned(),
    };
    format!(
        "  video {}k of {}k ({why})",
        s.video_bitrate_kbps, s.video_bitrate_ceiling_kbps
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_says_when_and_why_the_bitrate_is_lowered() {
        let mut s = Stats {
            video_bitrate_kbps: 2500,
            video_bitrate_ceiling_kbps: 2500,
            ..Stats::default()
        };
        assert_eq!(bitrate_note(&s), "");
        s.video_bitrate_kbps = 1200;
        s.link_kbps = 1550;
        s.bitrate_reason = Some("link");
        assert_eq!(
            bitrate_note(&s),
            "  video 1200k of 2500k (link carries ~1550k)"
        );
        s.bitrate_reason = Some("floor");
        assert!(bitrate_note(&s).contains("dropping frames"));
        s.bitrate_reason = Some("ceiling");
        assert!(bitrate_note(&s).contains("another destination"));
    }
}
