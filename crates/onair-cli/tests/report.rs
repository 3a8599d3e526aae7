//! `onair report` and `--report`: the built binary draws a stats file, and
//! the SVG it writes is read back as XML to check what a streamer would see.
//!
//! The fixture `fixtures/stats-throttle-reconnect.jsonl` is a 40 s run in the
//! format `--stats-json` writes (first output at the top level, every output
//! under `outputs`, a final object), with three outputs:
//! - `rtmp://live.example.com/app/****`: connecting for 1 s, live, throttled
//!   to 1500 kbit/s from 12 s (buffer up to 2 s, video dropped for
//!   congestion at 13-16 s, the encoder's target lowered to 1200 kbit/s),
//!   link freed at 23 s, link reset at 27 s: reconnecting for the samples at
//!   27-31 s (video and audio dropped while disconnected), reconnected in the
//!   sample at 32 s, stopped at 40.4 s;
//! - `rtmp://backup.example.com/live/****`: live all along;
//! - `/home/me/show.mp4`: a recorder.
//!
//! Why the checks look at colours and point counts: plotters' SVG has no ids,
//! but each series has its own colour (`report::draw` constants, repeated
//! below) and is the only polyline with more than two points in it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/stats-throttle-reconnect.jsonl"
);
const MAIN: &str = "rtmp://live.example.com/app/****";
const BACKUP: &str = "rtmp://backup.example.com/live/****";
const RECORDER: &str = "/home/me/show.mp4";

// The colours of `crates/onair-cli/src/report/draw.rs`.
const SENT: &str = "#1F77B4";
const TARGET: &str = "#FF7F0E";
const LINK: &str = "#2CA02C";
const BUFFER: &str = "#007777";
const CONGESTION: &str = "#D62728";
const DROP_CONGESTION: &str = "#9467BD";
const DROP_DISCONNECTED: &str = "#8C564B";
const DROP_AUDIO: &str = "#E377C2";
const DROP_RECORD: &str = "#7F7F7F";
const RECONNECT: &str = "#780000";
const RECONNECTING_BAND: &str = "#E63C28";
const CONNECTING_BAND: &str = "#F0C800";

/// Every series of a stream output when the stats have every field.
const ALL_SERIES: [&str; 8] = [
    SENT,
    TARGET,
    LINK,
    BUFFER,
    CONGESTION,
    DROP_CONGESTION,
    DROP_DISCONNECTED,
    DROP_AUDIO,
];

fn onair() -> Command {
    Command::new(onair_testkit::onair_exe(env!("CARGO_BIN_EXE_onair")))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("onair runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The parts of the picture the tests look at.
struct Picture {
    /// (stroke colour, points) of every polyline.
    polylines: Vec<(String, Vec<(f64, f64)>)>,
    /// (fill colour, x, width, height) of every filled rectangle.
    rects: Vec<(String, f64, f64, f64)>,
    /// Every text.
    texts: Vec<String>,
}

impl Picture {
    fn read(path: &Path) -> Self {
        let text = std::fs::read_to_string(path).expect("the SVG exists");
        let doc = roxmltree::Document::parse(&text).expect("the SVG is well-formed XML");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        let num = |n: &roxmltree::Node, a: &str| -> f64 {
            n.attribute(a)
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN)
        };
        let mut p = Picture {
            polylines: Vec::new(),
            rects: Vec::new(),
            texts: Vec::new(),
        };
        for n in doc.descendants() {
            match n.tag_name().name() {
                "polyline" => {
                    let points = n
                        .attribute("points")
                        .unwrap_or("")
                        .split_whitespace()
                        .filter_map(|xy| xy.split_once(','))
                        .map(|(x, y)| {
                            (x.parse().unwrap_or(f64::NAN), y.parse().unwrap_or(f64::NAN))
                        })
                        .collect();
                    p.polylines
                        .push((n.attribute("stroke").unwrap_or("").to_string(), points));
                }
                "rect" if n.attribute("fill").is_some_and(|f| f != "none") => p.rects.push((
                    n.attribute("fill").unwrap_or("").to_string(),
                    num(&n, "x"),
                    num(&n, "width"),
                    num(&n, "height"),
                )),
                "text" => p.texts.push(n.text().unwrap_or("").to_string()),
                _ => {}
            }
        }
        p
    }

    /// Data lines of one colour (legend samples and axes have 2 points).
    fn series(&self, color: &str) -> Vec<&Vec<(f64, f64)>> {
        self.polylines
            .iter()
            .filter(|(c, pts)| c == color && pts.len() > 2)
            .map(|(_, pts)| pts)
            .collect()
    }

    /// State bands of one colour (the legend's swatches are 12 px high).
    fn bands(&self, color: &str) -> Vec<(f64, f64)> {
        self.rects
            .iter()
            .filter(|(c, _, w, h)| c == color && *w > 0.0 && *h > 50.0)
            .map(|(_, x, w, _)| (*x, *w))
            .collect()
    }

    fn has_text(&self, needle: &str) -> bool {
        self.texts.iter().any(|t| t.contains(needle))
    }
}

fn draw(args: &[&str]) -> (Output, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let svg = dir.path().join("session.svg");
    let out = run(onair().arg("report").args(args).arg("-o").arg(&svg));
    (out, svg, dir)
}

#[test]
fn report_draws_every_panel_of_each_stream_output() {
    let (out, svg, _dir) = draw(&[FIXTURE]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        svg.display().to_string(),
        "prints where the picture went"
    );
    let p = Picture::read(&svg);
    for color in ALL_SERIES {
        assert_eq!(
            p.series(color).len(),
            2,
            "series {color}: one line per stream output (the recorder is left out)"
        );
    }
    assert!(p.series(DROP_RECORD).is_empty());
    // 41 samples; drops are rates from the first sample on.
    assert!(p.series(SENT).iter().all(|s| s.len() == 41));
    assert!(p.has_text(MAIN) && p.has_text(BACKUP));
    assert!(!p.has_text(RECORDER), "recorders only when asked for");
    for label in [
        "sent",
        "encoder target",
        "link estimate",
        "buffer (ms)",
        "congestion (0..1, right)",
        "video (congestion)",
        "video (disconnected)",
        "audio frames",
        "kbit/s",
        "time since start (s)",
        "reconnecting",
    ] {
        assert!(p.has_text(label), "no '{label}' in the picture");
    }
    assert!(p.has_text(
        "1 reconnect · video dropped: 92 for congestion, 170 while disconnected · audio frames dropped: 235"
    ));
    // The two outputs are stacked: the backup's lines are below the main's.
    let sent = p.series(SENT);
    let max_y = |s: &Vec<(f64, f64)>| s.iter().map(|q| q.1).fold(f64::MIN, f64::max);
    let min_y = |s: &Vec<(f64, f64)>| s.iter().map(|q| q.1).fold(f64::MAX, f64::min);
    assert!(max_y(sent[0]) < min_y(sent[1]));
}

#[test]
fn report_shows_the_reconnecting_span_and_the_reconnect() {
    let (out, svg, _dir) = draw(&[FIXTURE]);
    assert!(out.status.success(), "{}", stderr(&out));
    let p = Picture::read(&svg);
    // Sample i of the main output is point i of its "sent" line, so its x
    // is where that sample's time is on the shared axis.
    let sent = p.series(SENT)[0];
    let x_at = |t_s: usize| sent[t_s - 1].0;
    let bands = p.bands(RECONNECTING_BAND);
    assert_eq!(bands.len(), 3, "one band per panel of the main output only");
    for (x, w) in &bands {
        assert!(
            (x - x_at(27)).abs() <= 1.0,
            "starts at 27 s: {x} vs {}",
            x_at(27)
        );
        assert!(
            (x + w - x_at(32)).abs() <= 1.0,
            "ends at 32 s, when live again"
        );
    }
    assert_eq!(p.bands(CONNECTING_BAND).len(), 6, "both outputs connect");
    let marks: Vec<_> = p
        .polylines
        .iter()
        .filter(|(c, pts)| c == RECONNECT && pts.len() == 2 && pts[0].0 == pts[1].0)
        .filter(|(_, pts)| (pts[0].0 - x_at(32)).abs() <= 1.0)
        .collect();
    assert_eq!(marks.len(), 3, "a reconnect line across each panel at 32 s");
    // Congestion peaks during the throttle, and the drops for congestion
    // happen then too (smaller y = higher on the page).
    let drops = p.series(DROP_CONGESTION)[0];
    let peak = drops
        .iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .expect("points");
    assert!(peak.0 > x_at(12) && peak.0 < x_at(17), "peak at {peak:?}");
}

/// Stats written before adaptive bitrate have no target, link estimate or
/// congestion: the picture leaves them out and draws the rest.
#[test]
fn report_draws_what_older_stats_have() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old = dir.path().join("old.jsonl");
    let text = std::fs::read_to_string(FIXTURE).expect("fixture");
    let strip = |v: &mut serde_json::Value| {
        if let Some(m) = v.as_object_mut() {
            for k in ["video_bitrate_kbps", "link_kbps", "congestion"] {
                m.remove(k);
            }
        }
    };
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).expect("fixture line");
            strip(&mut v);
            if let Some(outs) = v.get_mut("outputs").and_then(|o| o.as_array_mut()) {
                outs.iter_mut().for_each(strip);
            }
            v.to_string()
        })
        .collect();
    std::fs::write(&old, lines.join("\n") + "\n").expect("write");
    let svg = dir.path().join("old.svg");
    let out = run(onair().arg("report").arg(&old).arg("-o").arg(&svg));
    assert!(out.status.success(), "{}", stderr(&out));
    let p = Picture::read(&svg);
    for color in [TARGET, LINK, CONGESTION] {
        assert!(p.series(color).is_empty(), "{color} drawn without data");
    }
    for color in [SENT, BUFFER, DROP_CONGESTION, DROP_DISCONNECTED, DROP_AUDIO] {
        assert_eq!(p.series(color).len(), 2, "{color}");
    }
    assert!(!p.has_text("encoder target") && !p.has_text("congestion (0..1"));
    assert_eq!(p.bands(RECONNECTING_BAND).len(), 3);
}

#[test]
fn report_output_picks_one_by_name_or_index() {
    let (out, svg, _dir) = draw(&[FIXTURE, "--output", BACKUP]);
    assert!(out.status.success(), "{}", stderr(&out));
    let p = Picture::read(&svg);
    assert!(p.has_text(BACKUP) && !p.has_text(MAIN));
    assert_eq!(p.series(SENT).len(), 1);
    assert!(p.bands(RECONNECTING_BAND).is_empty());

    // Index 2 is the recorder: drawn simply, from bytes written.
    let (out, svg, _dir) = draw(&[FIXTURE, "--output", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let p = Picture::read(&svg);
    assert!(p.has_text(RECORDER) && p.has_text("written"));
    assert!(p.has_text("recorder: 0 packets lost"));
    assert_eq!(p.series(SENT).len(), 1);
    assert_eq!(p.series(DROP_RECORD).len(), 1);
    assert!(p.series(DROP_AUDIO).is_empty(), "no link, no link drops");

    let (out, svg, _dir) = draw(&[FIXTURE, "--output", "3"]);
    assert_eq!(out.status.code(), Some(2), "an output the file lacks");
    let err = stderr(&out);
    assert!(
        err.contains("no output '3'") && err.contains(BACKUP),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!svg.exists());
}

#[test]
fn report_skips_bad_lines_with_a_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stats = dir.path().join("cut.jsonl");
    let mut text = std::fs::read_to_string(FIXTURE).expect("fixture");
    text.insert_str(0, "not json\n");
    // A run killed mid-write: the last line is cut.
    text.push_str("{\"t_ms\":41000,\"sta");
    std::fs::write(&stats, text).expect("write");
    let out = run(onair().arg("report").arg(&stats));
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("cut.jsonl:1: not JSON"), "{err}");
    assert!(err.contains("cut.jsonl:43: not JSON"), "{err}");
    assert_eq!(err.lines().count(), 2, "{err}");
    // Default picture name: the stats file's, with .svg.
    let p = Picture::read(&dir.path().join("cut.svg"));
    assert_eq!(p.series(SENT).len(), 2);
}

#[test]
fn report_errors_exit_1_with_one_line_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let check = |name: &str, content: Option<&str>, expect: &str| {
        let stats = dir.path().join(name);
        if let Some(c) = content {
            std::fs::write(&stats, c).expect("write");
        }
        let out = run(onair().arg("report").arg(&stats));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        assert!(err.contains(name) && err.contains(expect), "{name}: {err}");
        assert!(!stats.with_extension("svg").exists());
    };
    check("missing.jsonl", None, "No such file");
    check("empty.jsonl", Some(""), "empty file");
    check(
        "bad.jsonl",
        Some("\nhello\n{\"no\":1}\n"),
        "bad.jsonl:2: not JSON",
    );
    check(
        "array.jsonl",
        Some("[1]\n"),
        "array.jsonl:1: not a JSON object",
    );
}

#[test]
fn report_usage_errors_exit_2() {
    for args in [
        vec![],
        vec![FIXTURE, "-o", "x.png"],
        vec![FIXTURE, "--bogus"],
    ] {
        let out = run(onair().arg("report").args(&args));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out).lines().count(), 1, "{args:?}");
    }
    let out = run(onair().args(["report", "x.svg"]));
    assert_eq!(
        out.status.code(),
        Some(2),
        "a picture given as the stats file"
    );
    let out = run(onair().args(["stream", "--report", "x.png"]));
    assert_eq!(out.status.code(), Some(2));
    let out = run(onair().args(["record", "x.flv", "--report", "/nonexistent-dir/r.svg"]));
    assert_eq!(out.status.code(), Some(2), "checked before the run");
    assert!(stderr(&out).contains("directory does not exist"));
}

/// `stream --report`: a short run to the built-in receiver draws the
/// session it just had, without --stats-json.
#[test]
fn stream_report_draws_the_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let svg = dir.path().join("run.svg");
    let out = run(onair()
        .current_dir(dir.path())
        .args([
            "stream",
            "--duration",
            "3",
            "--size",
            "320x240",
            "--fps",
            "10",
            "-q",
        ])
        .arg("--report")
        .arg(&svg));
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("report written to"), "{err}");
    let p = Picture::read(&svg);
    assert!(p.has_text("rtmp://127.0.0.1"), "{:?}", p.texts);
    let sent = p.series(SENT);
    assert_eq!(sent.len(), 1, "one stream output");
    assert!(sent[0].len() >= 3, "a sample a second and the final one");
    assert!(p.has_text("live") && p.has_text("ended stopped"));
}
