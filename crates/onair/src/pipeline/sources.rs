//! Opening the sources a config names: the test pattern and tone, X11 screens and
//! windows (on their own grab thread), audio devices, and media files (GPL build).
//!
//! Why apart from the Streamer: each kind opens its own way and fails with its own
//! error before any thread of the pipeline starts; the Streamer only wires them.

use super::{
    AudioSourceSpec, FileSpec, InputState, StreamerConfig, VideoSourceSpec, NO_FILE_SOURCE,
};
use crate::audio::source::{AudioSource, ToneSource};
use crate::clock::Rate;
use crate::stats::EngineCounters;
use crate::video::source::{TestPattern, VideoSource};
use crate::{Error, Result};
use std::sync::Arc;

/// The opened sources of a config, and a probe of each file input.
pub(super) struct Sources {
    /// The pictures, if the config has video.
    pub(super) video: Option<Box<dyn VideoSource>>,
    /// The sound, if the config has audio.
    pub(super) audio: Option<Box<dyn AudioSource>>,
    /// The file inputs' states (the demuxer threads own everything else).
    pub(super) files: Vec<InputProbe>,
}

/// Opens every source `config` names; audio devices count into `engine`.
pub(super) fn open_sources(
    config: &StreamerConfig,
    engine: &Arc<EngineCounters>,
) -> Result<Sources> {
    let (mut file_video, mut file_audio, files) = open_files(config)?;
    let video: Option<Box<dyn VideoSource>> = match &config.video {
        None => None,
        Some(v) => Some(match &v.source {
            VideoSourceSpec::TestPattern => Box::new(TestPattern::new(v.width, v.height)),
            VideoSourceSpec::Screen(spec) => {
                // Grabbed and converted on its own thread: an X server
                // that stalls never reaches the CaptureThread.
                let screen = crate::video::screen::open_screen(spec, v.width, v.height)?;
                grab_thread(Box::new(screen), v.fps)?
            }
            VideoSourceSpec::Window(spec) => {
                let window = crate::video::window::open_window(spec, v.width, v.height)?;
                grab_thread(Box::new(window), v.fps)?
            }
            // Decoded on the file's own demuxer thread (video::file).
            VideoSourceSpec::File(f) => file_video.take().ok_or_else(|| no_file_source(f))?,
        }),
    };
    let audio: Option<Box<dyn AudioSource>> = match &config.audio {
        None => None,
        Some(a) => Some(match &a.source {
            AudioSourceSpec::Tone => Box::new(ToneSource::new(a.sample_rate, a.channels)),
            AudioSourceSpec::Device(spec) => {
                crate::audio::device::open_audio(spec, a.sample_rate, a.channels, engine)?
            }
            AudioSourceSpec::File(f) => file_audio.take().ok_or_else(|| no_file_source(f))?,
        }),
    };
    Ok(Sources {
        video,
        audio,
        files,
    })
}

/// Asks one file input how it is doing.
pub(super) type InputProbe = Box<dyn Fn() -> InputState + Send + Sync>;

/// Sources a file input gave, and its probes.
type OpenedFiles = (
    Option<Box<dyn VideoSource>>,
    Option<Box<dyn AudioSource>>,
    Vec<InputProbe>,
);

/// Opens the files `config` names (one demuxer thread per file, see
/// `video::file`): the GPL build only.
#[cfg(feature = "avcodec")]
fn open_files(config: &StreamerConfig) -> Result<OpenedFiles> {
    let opened = crate::video::file::open_file_sources(
        config.video.as_ref().and_then(|v| match &v.source {
            VideoSourceSpec::File(f) => Some((f, v.width, v.height)),
            _ => None,
        }),
        config.audio.as_ref().and_then(|a| match &a.source {
            AudioSourceSpec::File(f) => Some((f, a.sample_rate, a.channels)),
            _ => None,
        }),
    )?;
    let probes = opened
        .statuses
        .into_iter()
        .map(|s| Box::new(move || s.state()) as InputProbe)
        .collect();
    Ok((opened.video, opened.audio, probes))
}

/// Without libavcodec there is no file to open: a `File` source is refused
/// by the caller ([`no_file_source`]).
#[cfg(not(feature = "avcodec"))]
fn open_files(_config: &StreamerConfig) -> Result<OpenedFiles> {
    Ok((None, None, Vec::new()))
}

/// The error for a file source this build cannot open (the feature is off).
fn no_file_source(f: &FileSpec) -> Error {
    Error::Source {
        name: format!("file:{}", f.path.display()),
        reason: NO_FILE_SOURCE.into(),
    }
}

/// Runs a source that does I/O (a screen, a window) on its own grab thread.
fn grab_thread(source: Box<dyn VideoSource>, fps: u32) -> Result<Box<dyn VideoSource>, Error> {
    crate::video::grab::GrabThread::spawn(source, Rate::per_second(fps))
        .map(|g| Box::new(g) as Box<dyn VideoSource>)
        .map_err(|e| Error::io("starting the video grab thread", e))
}
