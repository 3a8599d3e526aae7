//! Files to write: `VideoAudioRecorder`'s `path` and the streamer's `record` option,
//! their type checked from the name before anything opens.

use super::RecorderOptions;
use crate::errors::Failure;
use onair::output::record::RecordFormat;
use onair::{RecordConfig, StreamerConfig};
use std::path::Path;

/// A validated recorder configuration.
#[derive(Clone, Debug)]
pub struct ValidatedRecorder {
    /// What `onair::Streamer::start` gets: no stream output, one record.
    pub config: StreamerConfig,
}

/// A `RecordConfig` for `path`, its format checked now so the constructor
/// throws naming `option`.
pub(super) fn record_config(
    option: &str,
    path: &str,
    overwrite: Option<bool>,
) -> Result<RecordConfig, Failure> {
    if path.trim().is_empty() {
        return Err(Failure::option(option, "expected a file path"));
    }
    if path.contains('\0') {
        return Err(Failure::option(option, "contains a NUL byte"));
    }
    let format = RecordFormat::from_path(Path::new(path)).map_err(|_| {
        Failure::option(
            option,
            format!("'{path}': unknown file type; use a .flv or .mp4 name"),
        )
    })?;
    let mut cfg = RecordConfig::new(path);
    cfg.format = Some(format);
    cfg.overwrite = overwrite.unwrap_or(false);
    Ok(cfg)
}

impl RecorderOptions {
    /// Validates everything and builds the library's config (record only).
    pub fn validate(&self) -> Result<ValidatedRecorder, Failure> {
        let record = record_config("path", &self.path, self.overwrite)?;
        let (video, audio) = self.media().settings()?;
        let config = StreamerConfig {
            video,
            audio,
            outputs: Vec::new(),
            records: vec![record],
        };
        config.validate().map_err(|e| {
            let mut f = Failure::from_engine(&e, None);
            if let onair::Error::InvalidConfig {
                option: "record",
                reason,
            } = &e
            {
                f = Failure::option("path", reason);
            }
            f
        })?;
        Ok(ValidatedRecorder { config })
    }
}
