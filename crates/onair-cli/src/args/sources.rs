//! `--video`, `--audio` and `--input`: the source grammars (`test`, `screen:...`,
//! `window:...`, a device, `file:PATH`, `none`).
//!
//! Why apart from the other values: these name a source, and a file source is refused
//! here by a build without it (a usage error, exit 2), before anything opens.

use onair::{AudioSourceSpec, FileSpec, VideoSourceSpec};
use std::path::PathBuf;

/// Parsed `--video`.
#[derive(Clone, Debug, PartialEq)]
pub enum VideoChoice {
    /// A source.
    Some(VideoSourceSpec),
    /// No video.
    None,
}

/// Parsed `--audio`.
#[derive(Clone, Debug, PartialEq)]
pub enum AudioChoice {
    /// A source.
    Some(AudioSourceSpec),
    /// No audio.
    None,
}

/// `file:PATH` -> the path (looping is set later from --loop), refused by a
/// build without the file source.
fn parse_file(s: &str) -> Option<Result<FileSpec, String>> {
    let path = s.strip_prefix("file:")?;
    Some(parse_input(path).map(|path| FileSpec {
        path,
        looping: false,
    }))
}

pub(super) fn parse_input(path: &str) -> Result<PathBuf, String> {
    if !onair::FILE_SOURCE {
        return Err(onair::pipeline::NO_FILE_SOURCE.into());
    }
    if path.is_empty() {
        return Err("empty file name".into());
    }
    Ok(PathBuf::from(path))
}

pub(super) fn parse_video(s: &str) -> Result<VideoChoice, String> {
    if let Some(file) = parse_file(s) {
        return file.map(|f| VideoChoice::Some(VideoSourceSpec::File(f)));
    }
    match s {
        "test" => Ok(VideoChoice::Some(VideoSourceSpec::TestPattern)),
        "none" => Ok(VideoChoice::None),
        "screen" => Ok(VideoChoice::Some(VideoSourceSpec::Screen(String::new()))),
        _ => match (s.strip_prefix("screen:"), s.strip_prefix("window:")) {
            (Some(display), _) if !display.is_empty() => {
                Ok(VideoChoice::Some(VideoSourceSpec::Screen(display.into())))
            }
            (_, Some(window)) if !window.is_empty() => {
                Ok(VideoChoice::Some(VideoSourceSpec::Window(window.into())))
            }
            _ => Err(format!(
                "'{s}' is not one of test, screen, screen:DISPLAY, window:NAME|ID[@DISPLAY], file:PATH, none"
            )),
        },
    }
}

pub(super) fn parse_audio(s: &str) -> Result<AudioChoice, String> {
    if let Some(file) = parse_file(s) {
        return file.map(|f| AudioChoice::Some(AudioSourceSpec::File(f)));
    }
    match s {
        "test" => Ok(AudioChoice::Some(AudioSourceSpec::Tone)),
        "none" => Ok(AudioChoice::None),
        "" => Err("empty audio source".into()),
        device => Ok(AudioChoice::Some(AudioSourceSpec::Device(device.into()))),
    }
}
