//! What can be captured here, under the names `--video` and `--audio` accept.
//!
//! Why a listing: users cannot guess PulseAudio source names, ALSA card names
//! or which X displays run; `onair devices` prints this list so the value can
//! be copied. Listing is quiet: alsa-lib's probing messages go to `tracing`
//! (a thread-local handler), and no ALSA PCM or plugin is opened.

use crate::audio::device::{
    alsa_cards, list_pulse, DeviceOptions, PulseListing, DESKTOP, MIC, PULSE_PREFIX,
};

/// The kind of a capture source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// An X11 screen (`--video screen:...`).
    Screen,
    /// An X11 window (`--video window:...`).
    Window,
    /// An audio input (`--audio ...`).
    AudioInput,
    /// A PulseAudio/PipeWire sink: not an input itself, but what it plays is
    /// recorded through its monitor, whose `pulse:` name the description
    /// gives.
    AudioSink,
}

/// One capture source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Screen, audio input or sink.
    pub kind: DeviceKind,
    /// The value the option accepts, e.g. `screen::0`, `desktop` or
    /// `pulse:alsa_input.pci-0000_00_1f.3.analog-stereo` (a sink: its
    /// server name).
    pub name: String,
    /// What it is, for humans (size, backend, description, ...).
    pub description: String,
}

/// Windows listed per display at most (a desktop can hold hundreds).
pub const MAX_LISTED_WINDOWS: usize = 50;
/// Highest X display number probed through `/tmp/.X11-unix` sockets.
pub const MAX_PROBED_DISPLAY: u32 = 9;

/// Lists X screens (`$DISPLAY` and `:0..=:9` with a socket in
/// `/tmp/.X11-unix`), audio inputs (`desktop`, `mic` and every source of the
/// PulseAudio/PipeWire server as `pulse:NAME`, then `default` and the ALSA
/// cards) and the server's sinks. Probing a display costs at most a few X
/// round-trips with a bounded wait, the sound server at most twice
/// `audio::device::pulse::CONNECT_TIMEOUT`.
pub fn list_devices() -> Vec<DeviceInfo> {
    list_devices_with(&DeviceOptions::default())
}

/// [`list_devices`] with a PulseAudio server of the caller's choice, given
/// in `options` rather than by setting `PULSE_SERVER` for the whole process.
pub fn list_devices_with(options: &DeviceOptions) -> Vec<DeviceInfo> {
    let mut out = list_screens();
    match list_pulse(options.pulse_server.as_deref()) {
        Ok(listing) => out.extend(pulse_devices(&listing)),
        Err(e) => out.push(DeviceInfo {
            kind: DeviceKind::AudioInput,
            name: format!("{DESKTOP}, {MIC}, {PULSE_PREFIX}NAME"),
            description: format!("unavailable: no PulseAudio/PipeWire server ({e})"),
        }),
    }
    out.push(DeviceInfo {
        kind: DeviceKind::AudioInput,
        name: "default".to_string(),
        description: "ALSA's default capture device".to_string(),
    });
    for card in alsa_cards() {
        out.push(DeviceInfo {
            kind: DeviceKind::AudioInput,
            description: format!(
                "ALSA card {} (hw:{}): {}",
                card.index, card.index, card.long_name
            ),
            name: card.name,
        });
    }
    out
}

fn list_screens() -> Vec<DeviceInfo> {
    let mut out = Vec::new();
    let mut displays: Vec<String> = Vec::new();
    if let Ok(d) = std::env::var("DISPLAY") {
        if !d.is_empty() {
            displays.push(d);
        }
    }
    for n in 0..=MAX_PROBED_DISPLAY {
        let d = format!(":{n}");
        if std::path::Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() && !displays.contains(&d)
        {
            displays.push(d);
        }
    }
    for d in displays {
        if let Some((w, h)) = crate::video::screen::probe_display(&d) {
            out.push(DeviceInfo {
                kind: DeviceKind::Screen,
                name: format!("screen:{d}"),
                description: format!("X11 display {d}, {w}x{h} (region: screen:{d}+X,Y,WxH)"),
            });
            let windows = crate::video::window::list_windows(Some(&d)).unwrap_or_default();
            for win in windows.into_iter().take(MAX_LISTED_WINDOWS) {
                out.push(DeviceInfo {
                    kind: DeviceKind::Window,
                    name: format!("window:0x{:x}@{d}", win.id),
                    description: format!(
                        "{:?}, {}x{} (also window:NAME@{d})",
                        win.name, win.width, win.height
                    ),
                });
            }
        }
    }
    out
}

/// `desktop`, `mic`, each source as `pulse:NAME`, and the sinks.
fn pulse_devices(l: &PulseListing) -> Vec<DeviceInfo> {
    let mut out = Vec::new();
    let pulse = |n: &str| format!("{PULSE_PREFIX}{n}");
    let server = l.server.trim();
    out.push(DeviceInfo {
        kind: DeviceKind::AudioInput,
        name: DESKTOP.to_string(),
        description: match l.default_monitor() {
            Some(m) => format!("what the computer plays: now {} ({server})", pulse(m)),
            None => format!("what the computer plays: the default sink's monitor ({server})"),
        },
    });
    out.push(DeviceInfo {
        kind: DeviceKind::AudioInput,
        name: MIC.to_string(),
        description: match &l.default_source {
            Some(s) => format!("the default source: now {}", pulse(s)),
            None => "the default source (none now)".to_string(),
        },
    });
    for s in &l.sources {
        let role = match &s.monitor {
            Some(sink) => format!(" (what sink {sink} plays)"),
            None => String::new(),
        };
        out.push(DeviceInfo {
            kind: DeviceKind::AudioInput,
            name: pulse(&s.name),
            description: format!("{}{role}", s.description),
        });
    }
    for s in &l.sinks {
        let default = if l.default_sink.as_deref() == Some(&s.name) {
            " [default: desktop]"
        } else {
            ""
        };
        let record = match &s.monitor {
            Some(m) => format!("; record it with {}", pulse(m)),
            None => String::new(),
        };
        out.push(DeviceInfo {
            kind: DeviceKind::AudioSink,
            name: s.name.clone(),
            description: format!("{}{default}{record}", s.description),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use onair_testkit::{require_tools, PulseServer};

    #[test]
    fn lists_default_audio_and_names_screens_as_options() {
        let t = std::time::Instant::now();
        let list = list_devices();
        assert!(t.elapsed() < std::time::Duration::from_secs(10));
        assert!(list
            .iter()
            .any(|d| d.kind == DeviceKind::AudioInput && d.name == "default"));
        for d in list.iter().filter(|d| d.kind == DeviceKind::Screen) {
            assert!(d.name.starts_with("screen:"), "{d:?}");
        }
    }

    #[test]
    fn lists_pulse_sources_sinks_and_what_desktop_and_mic_are() {
        if !require_tools(&["pulseaudio", "pactl"]) {
            return;
        }
        let pulse = PulseServer::start_with_mic().expect("pulseaudio");
        let options = DeviceOptions {
            pulse_server: Some(pulse.server()),
        };
        let list = list_devices_with(&options);
        let find = |name: &str| {
            list.iter()
                .find(|d| d.name == name)
                .unwrap_or_else(|| panic!("{name} not in {list:#?}"))
        };
        let monitor = format!("pulse:{}.monitor", onair_testkit::pulse::NULL_SINK);
        assert!(find("desktop").description.contains(&monitor), "{list:#?}");
        let mic = format!("pulse:{}", onair_testkit::pulse::MIC_SOURCE);
        assert!(find("mic").description.contains(&mic), "{list:#?}");
        assert_eq!(find(&monitor).kind, DeviceKind::AudioInput);
        assert_eq!(find(&mic).kind, DeviceKind::AudioInput);
        let sink = find(onair_testkit::pulse::NULL_SINK);
        assert_eq!(sink.kind, DeviceKind::AudioSink);
        assert!(sink.description.contains("[default: desktop]"), "{sink:?}");
        assert!(sink.description.contains(&monitor), "{sink:?}");
    }
}
