//! Reading `onair --stats-json FILE` (JSON Lines: one object per second, then a final one).
//!
//! Why: fault tests judge the engine by its own counters as much as by the video (frames
//! dropped for congestion, reconnects, buffer latency, tick lateness). The reader tolerates
//! a truncated last line, because a test may read the file of a process it just killed.

use serde_json::Value;
use std::io;
use std::path::Path;

/// Worst engine tick lateness (`audio_late_max_ms`, `capture_late_max_ms`) a test run may
/// show: a scheduling hiccup on the loaded 2-core machine has been measured at 89 ms
/// (33 ms in a PulseAudio restart test while two other builds ran), while an engine blocked
/// by a source shows as the whole stall (a Pulse connect timeout: 3000 ms). The same bound
/// as the library's own integration tests; the tight numbers are in the benchmarks.
pub const MAX_TICK_LATENESS_MS: f64 = 300.0;
/// The 99th percentile of engine tick lateness a test run may show.
pub const MAX_TICK_LATENESS_P99_MS: f64 = 20.0;

/// Checks a stats object's engine lateness against [`MAX_TICK_LATENESS_MS`] (max) and
/// [`MAX_TICK_LATENESS_P99_MS`] (p99); returns the four values as a line for the report.
pub fn check_engines_on_time(obj: &Value) -> Result<String, String> {
    let mut line = Vec::new();
    for (field, bound) in [
        ("audio_late_max_ms", MAX_TICK_LATENESS_MS),
        ("capture_late_max_ms", MAX_TICK_LATENESS_MS),
        ("audio_late_p99_ms", MAX_TICK_LATENESS_P99_MS),
        ("capture_late_p99_ms", MAX_TICK_LATENESS_P99_MS),
    ] {
        let late = field_f64(obj, field).ok_or_else(|| format!("no {field}"))?;
        if late > bound {
            return Err(format!("{field} = {late} > {bound}"));
        }
        line.push(format!("{field} {late}"));
    }
    Ok(line.join(", "))
}

/// Parses every line of `path`. Blank lines are skipped; an unparsable *last* line without
/// a trailing newline (a write cut short) is ignored; any other bad line is an error.
pub fn read_stats(path: &Path) -> io::Result<Vec<Value>> {
    let text = std::fs::read_to_string(path)?;
    parse_stats(&text)
}

/// [`read_stats`] on a string.
pub fn parse_stats(text: &str) -> io::Result<Vec<Value>> {
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(v) => out.push(v),
            Err(_) if i + 1 == lines.len() && !complete => {}
            Err(e) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("stats line {}: {e}: {line}", i + 1),
                ))
            }
        }
    }
    Ok(out)
}

/// The last object (the final summary when the process ended cleanly).
pub fn last(stats: &[Value]) -> Option<&Value> {
    stats.last()
}

/// `obj[field]` as f64 (numbers, or numeric strings).
pub fn field_f64(obj: &Value, field: &str) -> Option<f64> {
    match &obj[field] {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// `obj[field]` as u64.
pub fn field_u64(obj: &Value, field: &str) -> Option<u64> {
    obj[field]
        .as_u64()
        .or_else(|| field_f64(obj, field).map(|f| f as u64))
}

/// `obj[field]` as a string (e.g. `state`).
pub fn field_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj[field].as_str()
}

/// Maximum of `field` over all objects that have it.
pub fn max_f64(stats: &[Value], field: &str) -> Option<f64> {
    stats
        .iter()
        .filter_map(|o| field_f64(o, field))
        .fold(None, |m, x| Some(m.map_or(x, |m: f64| m.max(x))))
}

/// Minimum of `field` over all objects that have it.
pub fn min_f64(stats: &[Value], field: &str) -> Option<f64> {
    stats
        .iter()
        .filter_map(|o| field_f64(o, field))
        .fold(None, |m, x| Some(m.map_or(x, |m: f64| m.min(x))))
}

/// Every `state` value in order, consecutive duplicates removed
/// (e.g. `["connecting", "live", "reconnecting", "live", "stopped"]`).
pub fn states(stats: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for s in stats.iter().filter_map(|o| field_str(o, "state")) {
        if v.last().map(String::as_str) != Some(s) {
            v.push(s.to_string());
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_summarises() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("s.jsonl");
        std::fs::write(
            &p,
            "{\"t_ms\":1000,\"state\":\"connecting\",\"buffer_ms\":5}\n\n\
             {\"t_ms\":2000,\"state\":\"live\",\"buffer_ms\":120.5}\n\
             {\"t_ms\":3000,\"state\":\"live\",\"buffer_ms\":40}\n\
             {\"t_ms\":3100,\"state\":\"stopped\",\"reconnects\":2}\n{\"t_ms\":31",
        )
        .expect("write");
        let s = read_stats(&p).expect("read");
        assert_eq!(s.len(), 4);
        assert_eq!(max_f64(&s, "buffer_ms"), Some(120.5));
        assert_eq!(min_f64(&s, "buffer_ms"), Some(5.0));
        let l = last(&s).expect("last");
        assert_eq!(field_u64(l, "reconnects"), Some(2));
        assert_eq!(field_str(l, "state"), Some("stopped"));
        assert_eq!(states(&s), ["connecting", "live", "stopped"]);
        assert!(parse_stats("{bad}\n{}\n").is_err());
        assert_eq!(max_f64(&[], "x"), None);
    }
}
