//! The `--audio` device spec: which inputs to open, through which backend, at
//! which volume.
//!
//! Why a parsed form: the grammar (module docs of `audio::device`) is typed by
//! users, so a typo must be reported at start with the part that is wrong,
//! and each input must say which backend opens it (native PulseAudio for
//! `desktop`, `mic` and `pulse:NAME`; ALSA through cpal for the rest).

use crate::Error;

/// Largest per-input volume accepted in a spec.
pub const MAX_VOLUME: f32 = 4.0;
/// The spec name of the default sink's monitor (what the computer plays).
pub const DESKTOP: &str = "desktop";
/// The spec name of the PulseAudio default source (the microphone).
pub const MIC: &str = "mic";
/// Prefix of a PulseAudio/PipeWire source named in a spec.
pub const PULSE_PREFIX: &str = "pulse:";
/// The PulseAudio special name for the default sink's monitor: accepted after
/// `pulse:` and resolved by the server, like `desktop`.
pub const DEFAULT_MONITOR: &str = "@DEFAULT_MONITOR@";
/// The PulseAudio special name for the default source, like `mic`.
pub const DEFAULT_SOURCE: &str = "@DEFAULT_SOURCE@";

/// One input of a spec.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    /// What to open.
    pub target: InputTarget,
    /// Linear gain.
    pub volume: f32,
}

/// What an input names, and so which backend opens it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputTarget {
    /// ALSA's default capture device, through cpal (`default`).
    Default,
    /// A PulseAudio/PipeWire source, opened natively with libpulse.
    Pulse(PulseSource),
    /// An ALSA input device by cpal's name for it (`hw:` cards and the like).
    Device(String),
}

/// A PulseAudio source as the spec names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PulseSource {
    /// The default sink's monitor (`desktop`, `pulse:@DEFAULT_MONITOR@`).
    DefaultMonitor,
    /// The server's default source (`mic`, `pulse:@DEFAULT_SOURCE@`).
    DefaultSource,
    /// A source by its exact name (`pulse:NAME`).
    Named(String),
}

impl PulseSource {
    /// The device name handed to `pa_stream_connect_record`: the special
    /// names are resolved by the server at connect time, so each stream
    /// names its own source (no process-wide setting).
    pub fn device_name(&self) -> &str {
        match self {
            PulseSource::DefaultMonitor => DEFAULT_MONITOR,
            PulseSource::DefaultSource => DEFAULT_SOURCE,
            PulseSource::Named(n) => n,
        }
    }
}

impl InputTarget {
    /// The name shown in logs, errors and the mix's name.
    pub fn display_name(&self) -> String {
        match self {
            InputTarget::Default => "default".to_string(),
            InputTarget::Pulse(PulseSource::DefaultMonitor) => DESKTOP.to_string(),
            InputTarget::Pulse(PulseSource::DefaultSource) => MIC.to_string(),
            InputTarget::Pulse(PulseSource::Named(n)) => format!("{PULSE_PREFIX}{n}"),
            InputTarget::Device(d) => d.clone(),
        }
    }
}

/// Parses an audio spec (grammar in the module docs of `audio::device`).
pub fn parse_audio_spec(spec: &str) -> Result<Vec<InputSpec>, Error> {
    let bad = |reason: String| Error::InvalidConfig {
        option: "audio",
        reason,
    };
    let mut out = Vec::new();
    for part in spec.split('+') {
        let part = part.trim();
        let (name, volume) = match part.rsplit_once('@') {
            // `@DEFAULT_MONITOR@`-style names end in '@': not a volume.
            Some((n, v)) if !v.is_empty() && !n.ends_with(':') => {
                let vol: f32 = v
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("{part:?}: volume {v:?} is not a number")))?;
                if !(0.0..=MAX_VOLUME).contains(&vol) {
                    return Err(bad(format!("{part:?}: volume must be 0..={MAX_VOLUME}")));
                }
                (n.trim(), vol)
            }
            _ => (part, 1.0),
        };
        let target = match name {
            "" => return Err(bad(format!("empty input in {spec:?}"))),
            "default" => InputTarget::Default,
            MIC => InputTarget::Pulse(PulseSource::DefaultSource),
            DESKTOP => InputTarget::Pulse(PulseSource::DefaultMonitor),
            n => match n.strip_prefix(PULSE_PREFIX) {
                Some(DEFAULT_MONITOR) => InputTarget::Pulse(PulseSource::DefaultMonitor),
                Some(DEFAULT_SOURCE) => InputTarget::Pulse(PulseSource::DefaultSource),
                Some(src) if !src.is_empty() => {
                    InputTarget::Pulse(PulseSource::Named(src.to_string()))
                }
                Some(_) => return Err(bad("pulse: needs a source name".to_string())),
                None => InputTarget::Device(n.to_string()),
            },
        };
        out.push(InputSpec { target, volume });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        let s = parse_audio_spec("desktop+mic@0.5").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].target, InputTarget::Pulse(PulseSource::DefaultMonitor));
        assert_eq!(
            (s[1].target.clone(), s[1].volume),
            (InputTarget::Pulse(PulseSource::DefaultSource), 0.5)
        );
        let s = parse_audio_spec("pulse:@DEFAULT_MONITOR@").unwrap();
        assert_eq!(s[0].target, InputTarget::Pulse(PulseSource::DefaultMonitor));
        assert_eq!(s[0].volume, 1.0);
        let s = parse_audio_spec("pulse:a.monitor@0.25+pulse:b").unwrap();
        assert_eq!(
            s[0].target,
            InputTarget::Pulse(PulseSource::Named("a.monitor".into()))
        );
        assert_eq!(s[0].volume, 0.25);
        assert_eq!(s[1].target.display_name(), "pulse:b");
        let s = parse_audio_spec("hw:CARD=USB,DEV=0@2").unwrap();
        assert_eq!(s[0].target, InputTarget::Device("hw:CARD=USB,DEV=0".into()));
        assert_eq!(s[0].volume, 2.0);
        assert_eq!(
            parse_audio_spec("default").unwrap()[0].target,
            InputTarget::Default
        );
        for bad in ["", "a+", "x@loud", "x@9", "pulse:"] {
            assert!(parse_audio_spec(bad).is_err(), "{bad}");
        }
    }
}
