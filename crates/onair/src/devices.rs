//! What can be captured here, under the names `--video` and `--audio` accept.
//!
//! Why a listing: users cannot guess ALSA device names or which X displays
//! run; `onair devices` prints this list so the value can be copied.

/// The kind of a capture source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// An X11 screen (`--video screen:...`).
    Screen,
    /// An X11 window (`--video window:...`).
    Window,
    /// An audio input (`--audio ...`).
    AudioInput,
}

/// One capture source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Screen or audio input.
    pub kind: DeviceKind,
    /// The value the option accepts, e.g. `screen::0` or `desktop`.
    pub name: String,
    /// What it is, for humans (size, backend, ...).
    pub description: String,
}

/// Windows listed per display at most (a desktop can hold hundreds).
pub const MAX_LISTED_WINDOWS: usize = 50;
/// Highest X display number probed through `/tmp/.X11-unix` sockets.
pub const MAX_PROBED_DISPLAY: u32 = 9;

/// Lists X screens (`$DISPLAY` and `:0..=:9` with a socket in
/// `/tmp/.X11-unix`) and audio inputs (cpal input devices, plus `desktop`
/// and `default`). Probing a display costs at most a few X round-trips with
/// a bounded wait.
pub fn list_devices() -> Vec<DeviceInfo> {
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
    let names = crate::audio::device::input_device_names();
    out.push(DeviceInfo {
        kind: DeviceKind::AudioInput,
        name: "default".to_string(),
        description: "default input (the microphone); also `mic`".to_string(),
    });
    if names
        .iter()
        .any(|n| n == crate::audio::device::PULSE_ALSA_DEVICE)
    {
        out.push(DeviceInfo {
            kind: DeviceKind::AudioInput,
            name: "desktop".to_string(),
            description: "what the computer plays (PulseAudio/PipeWire default sink's monitor); \
                          mix with e.g. desktop+mic@0.8"
                .to_string(),
        });
    }
    for n in names {
        out.push(DeviceInfo {
            kind: DeviceKind::AudioInput,
            description: format!("ALSA input {n}"),
            name: n,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
