//! Reading stats into per-output timelines, and what the picture derives
//! from them (drops per second, reconnect instants, state spans).
//!
//! Why one builder for the file and for a live run: `onair report FILE` and
//! `onair stream --report FILE` must draw the same picture from the same
//! numbers, so both feed the same JSON objects through [`SessionBuilder`]
//! (a live run serializes each `Stats` exactly as `--stats-json` does).
//!
//! Why every field but `t_ms` is optional: files written by older releases
//! lack `video_bitrate_kbps`, `link_kbps` and `congestion`, recorders lack
//! the network fields' meaning, and the picture should show what is there
//! rather than refuse a file.

use serde_json::Value;
use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

/// Samples kept per output before the oldest resolution is halved. 48 h at
/// one sample a second; far more than the picture's width can show, so a
/// week-long run stays bounded (a few tens of MB) instead of growing.
pub const MAX_SAMPLES_PER_OUTPUT: usize = 2 * 86_400;

/// Bad lines reported one by one; the rest are only counted.
const MAX_LINE_WARNINGS: usize = 5;

/// An interval shorter than this still counts as one second when turning
/// counter deltas into rates: the final object comes a fraction of a second
/// after the last periodic one, and dividing its few drops by 0.3 s would
/// draw a spike that never happened.
const MIN_RATE_INTERVAL_S: f64 = 1.0;

/// Link state as named in the stats, so the picture can colour it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// First connection attempt.
    Connecting,
    /// Publishing (recorders: writing).
    Live,
    /// Link lost, retrying.
    Reconnecting,
    /// Stopped on request.
    Stopped,
    /// Gave up.
    Failed,
}

impl State {
    /// Every state, in the order the legend lists them.
    pub const ALL: [State; 5] = [
        State::Connecting,
        State::Live,
        State::Reconnecting,
        State::Stopped,
        State::Failed,
    ];

    /// Parses the stats' lower-case name; an unknown name (a future state)
    /// gives `None` and simply gets no band.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "connecting" => Some(Self::Connecting),
            "live" => Some(Self::Live),
            "reconnecting" => Some(Self::Reconnecting),
            "stopped" => Some(Self::Stopped),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }

    /// The name as the stats spell it, for the legend.
    pub fn name(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Live => "live",
            Self::Reconnecting => "reconnecting",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
        }
    }
}

/// What the picture uses of one stats object; `None` = field absent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    /// Seconds since the pipeline started (`t_ms` / 1000).
    pub t_s: f64,
    /// Link state.
    pub state: Option<State>,
    /// kbit/s actually sent.
    pub kbps: Option<f64>,
    /// The encoder's target bitrate, kbit/s.
    pub video_bitrate_kbps: Option<f64>,
    /// The link estimate, kbit/s.
    pub link_kbps: Option<f64>,
    /// Buffer latency, ms.
    pub buffer_ms: Option<f64>,
    /// Congestion, 0..1.
    pub congestion: Option<f64>,
    /// Cumulative bytes sent (recorders: written).
    pub bytes_sent: Option<u64>,
    /// Cumulative video drops for congestion.
    pub video_dropped_congestion: Option<u64>,
    /// Cumulative video drops while disconnected.
    pub video_dropped_disconnected: Option<u64>,
    /// Cumulative audio frames dropped.
    pub audio_frames_dropped: Option<u64>,
    /// Cumulative packets a recorder lost (recorders only).
    pub record_packets_dropped: Option<u64>,
    /// Cumulative successful reconnections.
    pub reconnects: Option<u64>,
}

impl Sample {
    /// Reads one output's stats object. Only `t_ms` is required; a field of
    /// the wrong type counts as absent (a hand-edited file should still draw).
    pub fn from_json(obj: &Value) -> Result<Self, String> {
        let map = obj.as_object().ok_or("not a JSON object")?;
        let t_ms = map
            .get("t_ms")
            .and_then(Value::as_f64)
            .filter(|t| t.is_finite() && *t >= 0.0)
            .ok_or("no t_ms (not an onair stats object)")?;
        let f = |k: &str| map.get(k).and_then(Value::as_f64).filter(|v| v.is_finite());
        let u = |k: &str| map.get(k).and_then(Value::as_u64);
        Ok(Self {
            t_s: t_ms / 1000.0,
            state: map
                .get("state")
                .and_then(Value::as_str)
                .and_then(State::from_name),
            kbps: f("kbps"),
            video_bitrate_kbps: f("video_bitrate_kbps"),
            link_kbps: f("link_kbps"),
            buffer_ms: f("buffer_ms"),
            congestion: f("congestion"),
            bytes_sent: u("bytes_sent"),
            video_dropped_congestion: u("video_dropped_congestion"),
            video_dropped_disconnected: u("video_dropped_disconnected"),
            audio_frames_dropped: u("audio_frames_dropped"),
            record_packets_dropped: u("record_packets_dropped"),
            reconnects: u("reconnects"),
        })
    }
}

/// A span of time in one state, for the background bands.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StateSpan {
    /// Start, seconds.
    pub from_s: f64,
    /// End, seconds.
    pub to_s: f64,
    /// The state.
    pub state: State,
}

/// One output's samples in time order: what one set of panels draws.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timeline {
    /// The `output` field (stream key already redacted by onair).
    pub name: String,
    /// A recorder (its objects carry `record_packets_dropped`): it has no
    /// link, so the picture treats it differently.
    pub recorder: bool,
    /// Samples, `t_s` never decreasing.
    pub samples: Vec<Sample>,
}

impl Timeline {
    /// The time of the last sample, seconds (0 when empty).
    pub fn end_s(&self) -> f64 {
        self.samples.last().map_or(0.0, |s| s.t_s)
    }

    /// `(t, value)` runs of a gauge field: a new run starts wherever the
    /// field is absent, so a gap is not drawn as a straight line.
    pub fn gauge(&self, field: fn(&Sample) -> Option<f64>) -> Vec<Vec<(f64, f64)>> {
        let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
        let mut current = Vec::new();
        for s in &self.samples {
            match field(s) {
                Some(v) => current.push((s.t_s, v)),
                None if !current.is_empty() => runs.push(std::mem::take(&mut current)),
                None => {}
            }
        }
        if !current.is_empty() {
            runs.push(current);
        }
        runs
    }

    /// Per-second rate of a cumulative counter: at each sample, the increase
    /// since the previous sample divided by the interval (at least
    /// [`MIN_RATE_INTERVAL_S`]). Never negative: a counter that goes down
    /// (a restarted process appending to the file) counts as no increase.
    /// The first sample counts from 0 at t = 0, where every counter starts.
    /// Empty when no sample has the counter.
    pub fn rate(&self, counter: fn(&Sample) -> Option<u64>) -> Vec<(f64, f64)> {
        let mut out = Vec::new();
        let mut prev = Some((0.0, 0u64));
        for s in &self.samples {
            let Some(v) = counter(s) else {
                // An absent value breaks the chain: the next delta would
                // span an unknown stretch, so restart from the next sample.
                prev = None;
                continue;
            };
            if let Some((t0, v0)) = prev {
                let dt = (s.t_s - t0).max(MIN_RATE_INTERVAL_S);
                out.push((s.t_s, v.saturating_sub(v0) as f64 / dt));
            }
            prev = Some((s.t_s, v));
        }
        out
    }

    /// kbit/s derived from `bytes_sent`: recorders report bytes written but
    /// no `kbps`.
    pub fn written_kbps(&self) -> Vec<(f64, f64)> {
        self.rate(|s| s.bytes_sent)
            .into_iter()
            .map(|(t, bytes_per_s)| (t, bytes_per_s * 8.0 / 1000.0))
            .collect()
    }

    /// Times (seconds) of the samples where `reconnects` went up: the
    /// reconnection happened in the second before.
    pub fn reconnect_times(&self) -> Vec<f64> {
        let mut out = Vec::new();
        let mut prev: Option<u64> = Some(0);
        for s in &self.samples {
            if let (Some(p), Some(v)) = (prev, s.reconnects) {
                if v > p {
                    out.push(s.t_s);
                }
            }
            prev = s.reconnects.or(prev);
        }
        out
    }

    /// Runs of one state. A sample's state holds from its time until the
    /// next sample with another state; the first run starts at 0 (the
    /// pipeline's start), the last one ends at the last sample. Samples
    /// without a known state do not interrupt a run.
    pub fn state_spans(&self) -> Vec<StateSpan> {
        let mut spans: Vec<StateSpan> = Vec::new();
        for s in &self.samples {
            let Some(state) = s.state else { continue };
            match spans.last_mut() {
                Some(last) if last.state == state => last.to_s = s.t_s,
                Some(last) => {
                    last.to_s = s.t_s;
                    spans.push(StateSpan {
                        from_s: s.t_s,
                        to_s: s.t_s,
                        state,
                    });
                }
                None => spans.push(StateSpan {
                    from_s: 0.0,
                    to_s: s.t_s,
                    state,
                }),
            }
        }
        spans.retain(|s| s.to_s > s.from_s);
        spans
    }

    /// Final value of a cumulative counter (0 when absent), for the title.
    pub fn total(&self, counter: fn(&Sample) -> Option<u64>) -> u64 {
        self.samples.iter().rev().find_map(counter).unwrap_or(0)
    }

    /// Appends a sample (the caller checked its time order), halving the
    /// resolution of what is kept when the bound is reached.
    fn push(&mut self, sample: Sample) {
        if self.samples.len() >= MAX_SAMPLES_PER_OUTPUT {
            // Keep every other sample (the first one included): counters
            // are cumulative, so rates over the longer intervals stay
            // right; only detail is lost.
            let mut i = 0;
            self.samples.retain(|_| {
                i += 1;
                i % 2 == 1
            });
        }
        self.samples.push(sample);
    }
}

/// Every output of one run, in the order they first appear (the order of
/// `outputs` in the stats file, i.e. stream outputs, then recorders).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Session {
    /// One timeline per output.
    pub timelines: Vec<Timeline>,
}

impl Session {
    /// Picks one output by exact name, or else by 0-based index (the
    /// position in the stats' `outputs` array and in Node event indices).
    pub fn select(&self, which: &str) -> Option<&Timeline> {
        self.timelines.iter().find(|t| t.name == which).or_else(|| {
            which
                .parse::<usize>()
                .ok()
                .and_then(|i| self.timelines.get(i))
        })
    }

    /// What the picture shows by default: every stream output; recorders
    /// only when there is nothing else (an `onair record` run), since a
    /// recorder has no link and its panels would be mostly empty.
    pub fn default_selection(&self) -> Vec<&Timeline> {
        let streams: Vec<&Timeline> = self.timelines.iter().filter(|t| !t.recorder).collect();
        if streams.is_empty() {
            self.timelines.iter().collect()
        } else {
            streams
        }
    }

    /// "0 NAME, 1 NAME" for error messages.
    pub fn list(&self) -> String {
        self.timelines
            .iter()
            .enumerate()
            .map(|(i, t)| format!("{i} {}", t.name))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Builds a [`Session`] from stats objects, one line or one snapshot at a
/// time.
#[derive(Debug, Default)]
pub struct SessionBuilder {
    session: Session,
    by_name: HashMap<String, usize>,
}

impl SessionBuilder {
    /// Adds one line of a stats file: with several outputs, onair writes the
    /// first output's fields at the top level and every output under
    /// `outputs`; with one, just that output's object. Either way every
    /// output object becomes one sample. On error nothing of the line is
    /// kept.
    pub fn push_line(&mut self, line: &Value) -> Result<(), String> {
        let objects: Vec<&Value> = match line.get("outputs").and_then(Value::as_array) {
            Some(outputs) if !outputs.is_empty() => outputs.iter().collect(),
            _ => vec![line],
        };
        let mut parsed = Vec::with_capacity(objects.len());
        for obj in objects {
            let sample = Sample::from_json(obj)?;
            let name = obj
                .get("output")
                .and_then(Value::as_str)
                .unwrap_or("output")
                .to_string();
            let recorder = obj.get("record_packets_dropped").is_some();
            parsed.push((name, recorder, sample));
        }
        for (name, _, sample) in &parsed {
            if let Some(t) = self
                .by_name
                .get(name)
                .and_then(|&i| self.session.timelines.get(i))
            {
                if let Some(last) = t.samples.last() {
                    if sample.t_s < last.t_s {
                        return Err(format!(
                            "t_ms goes back from {:.0} to {:.0} for output '{name}' (two runs in one file?)",
                            last.t_s * 1000.0,
                            sample.t_s * 1000.0
                        ));
                    }
                }
            }
        }
        for (name, recorder, sample) in parsed {
            let index = match self.by_name.get(&name) {
                Some(&i) => i,
                None => {
                    self.session.timelines.push(Timeline {
                        name: name.clone(),
                        recorder,
                        samples: Vec::new(),
                    });
                    let i = self.session.timelines.len() - 1;
                    self.by_name.insert(name, i);
                    i
                }
            };
            if let Some(t) = self.session.timelines.get_mut(index) {
                t.push(sample);
            }
        }
        Ok(())
    }

    /// True until a line was accepted.
    pub fn is_empty(&self) -> bool {
        self.session.timelines.is_empty()
    }

    /// The session so far.
    pub fn finish(self) -> Session {
        self.session
    }
}

/// Reads a stats file. Blank lines are ignored. A bad line (not JSON, not
/// a stats object, time going back) is skipped with a warning on stderr as
/// long as some lines are good: a run killed mid-write leaves a truncated
/// last line, and the rest of the evening is still worth drawing. When no
/// line is good, or the file is empty or unreadable, the error is one line
/// naming the file (and the first bad line).
pub fn read_file(path: &Path) -> Result<Session, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    read(std::io::BufReader::new(file), path, &mut |w| {
        eprintln!("onair: warning: {w}")
    })
}

/// [`read_file`] on any reader; `warn` gets each warning line (tests
/// collect them).
pub fn read(
    reader: impl BufRead,
    path: &Path,
    warn: &mut dyn FnMut(&str),
) -> Result<Session, String> {
    let mut builder = SessionBuilder::default();
    // Warnings wait for the end: when no line is good, the error alone
    // says it, in one line.
    let mut warnings: Vec<String> = Vec::new();
    let mut first_bad: Option<String> = None;
    let mut bad = 0usize;
    let mut any_line = false;
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        any_line = true;
        let result = serde_json::from_str::<Value>(&line)
            .map_err(|e| format!("not JSON ({e})"))
            .and_then(|v| builder.push_line(&v));
        if let Err(reason) = result {
            let msg = format!("{}:{}: {reason}", path.display(), i + 1);
            bad += 1;
            if bad <= MAX_LINE_WARNINGS {
                warnings.push(format!("{msg}; line skipped"));
            }
            first_bad.get_or_insert(msg);
        }
    }
    if !any_line {
        return Err(format!("{}: empty file, no stats to draw", path.display()));
    }
    if builder.is_empty() {
        return Err(first_bad.unwrap_or_else(|| format!("{}: no stats", path.display())));
    }
    for w in &warnings {
        warn(w);
    }
    if bad > MAX_LINE_WARNINGS {
        warn(&format!(
            "{}: {} more bad lines skipped",
            path.display(),
            bad - MAX_LINE_WARNINGS
        ));
    }
    Ok(builder.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn session(text: &str) -> (Result<Session, String>, Vec<String>) {
        let mut warnings = Vec::new();
        let r = read(text.as_bytes(), Path::new("s.jsonl"), &mut |w| {
            warnings.push(w.to_string())
        });
        (r, warnings)
    }

    fn timeline(samples: Vec<Value>) -> Timeline {
        let mut b = SessionBuilder::default();
        for s in samples {
            b.push_line(&s).expect("good line");
        }
        b.finish().timelines.remove(0)
    }

    #[test]
    fn rates_are_per_second_deltas_never_negative() {
        let t = timeline(vec![
            json!({"t_ms": 1000, "video_dropped_congestion": 5}),
            json!({"t_ms": 2000, "video_dropped_congestion": 35}),
            json!({"t_ms": 4000, "video_dropped_congestion": 55}),
            // Counter reset (a second run appended): no negative rate.
            json!({"t_ms": 5000, "video_dropped_congestion": 3}),
            // The final object, 0.3 s later: 3 drops count as 3/s, not 10/s.
            json!({"t_ms": 5300, "video_dropped_congestion": 6}),
        ]);
        assert_eq!(
            t.rate(|s| s.video_dropped_congestion),
            vec![(1.0, 5.0), (2.0, 30.0), (4.0, 10.0), (5.0, 0.0), (5.3, 3.0)]
        );
    }

    #[test]
    fn a_missing_counter_breaks_the_rate_chain() {
        let t = timeline(vec![
            json!({"t_ms": 1000, "audio_frames_dropped": 1}),
            json!({"t_ms": 2000}),
            json!({"t_ms": 3000, "audio_frames_dropped": 50}),
            json!({"t_ms": 4000, "audio_frames_dropped": 52}),
        ]);
        assert_eq!(
            t.rate(|s| s.audio_frames_dropped),
            vec![(1.0, 1.0), (4.0, 2.0)]
        );
        assert!(t.rate(|s| s.record_packets_dropped).is_empty());
    }

    #[test]
    fn optional_fields_are_absent_not_zero() {
        let t = timeline(vec![
            json!({"t_ms": 1000, "kbps": 2600.5, "state": "live"}),
            json!({"t_ms": 2000, "kbps": 2590.0, "link_kbps": 3000, "state": "live"}),
            json!({"t_ms": 3000, "kbps": "fast", "state": "warp"}),
        ]);
        assert_eq!(t.samples[0].link_kbps, None);
        assert_eq!(t.samples[1].link_kbps, Some(3000.0));
        assert_eq!(t.samples[2].kbps, None, "wrong type = absent");
        assert_eq!(t.samples[2].state, None, "unknown state = no band");
        assert_eq!(
            t.gauge(|s| s.kbps),
            vec![vec![(1.0, 2600.5), (2.0, 2590.0)]]
        );
        assert_eq!(t.gauge(|s| s.link_kbps), vec![vec![(2.0, 3000.0)]]);
        assert!(t.gauge(|s| s.congestion).is_empty());
        assert_eq!(t.name, "output", "no `output` field: a generic name");
    }

    #[test]
    fn gauges_split_at_gaps() {
        let t = timeline(vec![
            json!({"t_ms": 1000, "buffer_ms": 10}),
            json!({"t_ms": 2000}),
            json!({"t_ms": 3000, "buffer_ms": 30}),
            json!({"t_ms": 4000, "buffer_ms": 40}),
        ]);
        assert_eq!(
            t.gauge(|s| s.buffer_ms),
            vec![vec![(1.0, 10.0)], vec![(3.0, 30.0), (4.0, 40.0)]]
        );
    }

    #[test]
    fn states_become_spans_and_reconnects_marks() {
        let states = [
            "connecting",
            "live",
            "live",
            "reconnecting",
            "reconnecting",
            "live",
            "stopped",
        ];
        let reconnects = [0, 0, 0, 0, 0, 1, 1];
        let t = timeline(
            states
                .iter()
                .zip(reconnects)
                .enumerate()
                .map(|(i, (s, r))| json!({"t_ms": (i + 1) * 1000, "state": s, "reconnects": r}))
                .collect(),
        );
        let spans: Vec<(f64, f64, State)> = t
            .state_spans()
            .iter()
            .map(|s| (s.from_s, s.to_s, s.state))
            .collect();
        assert_eq!(
            spans,
            vec![
                (0.0, 2.0, State::Connecting),
                (2.0, 4.0, State::Live),
                (4.0, 6.0, State::Reconnecting),
                (6.0, 7.0, State::Live),
            ],
            "the last sample's state has no duration of its own"
        );
        assert_eq!(t.reconnect_times(), vec![6.0]);
    }

    #[test]
    fn several_outputs_in_one_line() {
        let line = |t: u64, main_kbps: f64| {
            let main = json!({"t_ms": t, "output": "rtmp://a/app/****", "kbps": main_kbps});
            let backup = json!({"t_ms": t, "output": "rtmp://b/app/****", "kbps": 2500.0});
            let rec = json!({"t_ms": t, "output": "show.mp4", "bytes_sent": t * 300,
                             "record_packets_dropped": 0});
            let mut top = main.clone();
            top["outputs"] = json!([main, backup, rec]);
            top.to_string()
        };
        let text = format!("{}\n{}\n", line(1000, 2600.0), line(2000, 1400.0));
        let (s, warnings) = session(&text);
        let s = s.expect("parses");
        assert!(warnings.is_empty());
        let names: Vec<&str> = s.timelines.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            ["rtmp://a/app/****", "rtmp://b/app/****", "show.mp4"]
        );
        assert!(
            s.timelines.iter().all(|t| t.samples.len() == 2),
            "no duplicate of the top level"
        );
        assert_eq!(s.timelines[0].samples[1].kbps, Some(1400.0));
        assert!(s.timelines[2].recorder && !s.timelines[0].recorder);
        assert_eq!(
            s.timelines[2].written_kbps(),
            vec![(1.0, 2400.0), (2.0, 2400.0)]
        );
        let default: Vec<&str> = s
            .default_selection()
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(
            default,
            ["rtmp://a/app/****", "rtmp://b/app/****"],
            "recorders skipped"
        );
        assert_eq!(
            s.select("1").map(|t| t.name.as_str()),
            Some("rtmp://b/app/****")
        );
        assert_eq!(s.select("show.mp4").map(|t| t.recorder), Some(true));
        assert!(s.select("3").is_none() && s.select("nope").is_none());
    }

    #[test]
    fn a_recorder_alone_is_drawn() {
        let (s, _) = session(r#"{"t_ms":1000,"output":"x.flv","record_packets_dropped":0}"#);
        assert_eq!(s.expect("parses").default_selection().len(), 1);
    }

    #[test]
    fn bad_lines_are_skipped_with_a_warning_naming_the_line() {
        let text = "{\"t_ms\":1000,\"kbps\":1}\nnot json\n\n[1,2]\n{\"kbps\":3}\n{\"t_ms\":500}\n{\"t_ms\":2000,\"kbps\":2}\n{\"t_ms\":30";
        let (s, warnings) = session(text);
        let s = s.expect("some lines are good");
        assert_eq!(s.timelines[0].samples.len(), 2);
        assert_eq!(warnings.len(), 5, "{warnings:?}");
        assert!(
            warnings[0].starts_with("s.jsonl:2: not JSON"),
            "{warnings:?}"
        );
        assert!(warnings[1].starts_with("s.jsonl:4: not a JSON object"));
        assert!(warnings[2].starts_with("s.jsonl:5: no t_ms"));
        assert!(warnings[3].starts_with("s.jsonl:6: t_ms goes back"));
        assert!(
            warnings[4].starts_with("s.jsonl:8: not JSON"),
            "truncated last line"
        );
    }

    #[test]
    fn many_bad_lines_are_counted_not_listed() {
        let text = format!("{{\"t_ms\":1}}\n{}", "x\n".repeat(12));
        let (s, warnings) = session(&text);
        assert!(s.is_ok());
        assert_eq!(warnings.len(), MAX_LINE_WARNINGS + 1);
        assert_eq!(
            warnings[MAX_LINE_WARNINGS],
            "s.jsonl: 7 more bad lines skipped"
        );
    }

    #[test]
    fn empty_or_all_bad_is_an_error_naming_the_file_and_line() {
        assert_eq!(
            session("").0,
            Err("s.jsonl: empty file, no stats to draw".into())
        );
        assert_eq!(
            session("\n  \n").0,
            Err("s.jsonl: empty file, no stats to draw".into())
        );
        let (r, warnings) = session("\nhello\nworld\n");
        let err = r.expect_err("no good line");
        assert!(err.starts_with("s.jsonl:2: not JSON"), "{err}");
        assert!(!err.contains('\n'), "one line");
        assert!(warnings.is_empty(), "the error alone: {warnings:?}");
    }

    #[test]
    fn a_bad_output_object_rejects_its_whole_line() {
        let text = r#"{"t_ms":1000,"output":"a","outputs":[{"t_ms":1000,"output":"a"},{"output":"b"}]}
{"t_ms":2000,"output":"a","outputs":[{"t_ms":2000,"output":"a"},{"t_ms":2000,"output":"b"}]}"#;
        let (s, warnings) = session(text);
        let s = s.expect("second line is good");
        assert_eq!(warnings.len(), 1);
        assert_eq!(s.timelines[0].samples.len(), 1, "nothing kept of line 1");
        assert_eq!(s.timelines.len(), 2);
    }

    #[test]
    fn long_runs_stay_bounded() {
        let mut b = SessionBuilder::default();
        for i in 0..(MAX_SAMPLES_PER_OUTPUT as u64 + 10) {
            b.push_line(&json!({"t_ms": i * 1000, "reconnects": i / 1000}))
                .expect("good");
        }
        let t = &b.finish().timelines[0];
        assert!(t.samples.len() <= MAX_SAMPLES_PER_OUTPUT);
        assert!(t.samples.len() > MAX_SAMPLES_PER_OUTPUT / 2);
        assert!(t.samples.windows(2).all(|w| w[0].t_s < w[1].t_s));
        assert_eq!(
            t.reconnect_times().len(),
            (MAX_SAMPLES_PER_OUTPUT + 9) / 1000
        );
    }
}
