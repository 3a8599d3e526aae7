//! `VideoAudioStreamer`'s options: the URL and key, the media options, and the output's
//! buffer, stall timeout, reconnect backoff and CA file.

use super::numbers::{bitrate, in_limits, millis, saturating_u32, whole};
use super::record::record_config;
use super::{StreamerOptions, STREAM_KEY_ENV};
use crate::errors::Failure;
use napi::bindgen_prelude::Either;
use onair::limits;
use onair::output::buffer::BufferLimits;
use onair::output::url::RtmpUrl;
use onair::{StreamOutputConfig, StreamerConfig};
use std::time::Duration;

/// A validated streamer configuration, plus the key for scrubbing messages.
#[derive(Clone, Debug)]
pub struct Validated {
    /// What `onair::Streamer::start` gets.
    pub config: StreamerConfig,
    /// The stream key, kept only to scrub it from any text going to JS.
    pub key: Option<String>,
}

impl StreamerOptions {
    /// Validates everything and builds the library's config. Reads
    /// `$ONAIR_STREAM_KEY` when `streamKey` is absent.
    pub fn validate(&self) -> Result<Validated, Failure> {
        let key = match &self.stream_key {
            Some(k) if k.trim().is_empty() => {
                return Err(Failure::option("streamKey", "is empty"));
            }
            Some(k) => Some(k.clone()),
            None => std::env::var(STREAM_KEY_ENV).ok().filter(|k| !k.is_empty()),
        };
        let url = RtmpUrl::parse(&self.url, key.as_deref()).map_err(|e| {
            let reason = match &e {
                onair::Error::InvalidUrl(r) => r.clone(),
                other => other.to_string(),
            };
            Failure::new(
                crate::ErrorCode::ERR_INVALID_URL,
                crate::errors::scrub(&format!("invalid option url: {reason}"), key.as_deref()),
            )
        })?;
        let key = Some(url.stream_key.clone());

        let (mut video, audio) = self.media().settings()?;
        if let Some(v) = video.as_mut() {
            v.adaptive_bitrate = self.adaptive_bitrate.unwrap_or(true);
            if let Some(b) = &self.min_video_bitrate {
                let min = bitrate("minVideoBitrate", b)?;
                if min > v.bitrate_bps {
                    return Err(Failure::option(
                        "minVideoBitrate",
                        format!("{min} bit/s is above videoBitrate ({})", v.bitrate_bps),
                    ));
                }
                v.min_bitrate_bps = Some(min);
            }
        }
        let total_bps = video.as_ref().map_or(0, |v| u64::from(v.bitrate_bps))
            + audio.as_ref().map_or(0, |a| u64::from(a.bitrate_bps));
        let mut out = StreamOutputConfig::new(url);
        if let Some(path) = &self.ca_file {
            if !std::path::Path::new(path).is_file() {
                return Err(Failure::option(
                    "caFile",
                    format!("'{path}' is not a readable file"),
                ));
            }
            out.ca_file = Some(path.into());
        }
        if let Some(b) = &self.buffer {
            let mut buffer = BufferLimits::for_bitrate(total_bps);
            if let Some(p) = b.packets {
                let n = usize::try_from(whole("buffer.packets", p)?).unwrap_or(usize::MAX);
                in_limits("buffer.packets", limits::check_buffer_packets(n))?;
                buffer.max_packets = n;
            }
            if let Some(ms) = b.ms {
                let ms = whole("buffer.ms", ms)?;
                in_limits("buffer.ms", limits::check_buffer_ms(ms))?;
                buffer.max_span = Duration::from_millis(ms);
            }
            if let Some(bytes) = b.bytes {
                let n = usize::try_from(whole("buffer.bytes", bytes)?).unwrap_or(usize::MAX);
                in_limits("buffer.bytes", limits::check_buffer_bytes(n))?;
                buffer.max_bytes = n;
            }
            out.limits = Some(buffer);
        }
        if let Some(ms) = self.stall_timeout_ms {
            out.stall_timeout = millis("stallTimeoutMs", ms)?;
            in_limits(
                "stallTimeoutMs",
                limits::check_stall_timeout(out.stall_timeout),
            )?;
        }
        if let Some(r) = &self.reconnect {
            if let Some(ms) = r.max_delay_ms {
                let d = millis("reconnect.maxDelayMs", ms)?;
                in_limits("reconnect.maxDelayMs", limits::check_reconnect_max_delay(d))?;
                out.reconnect.max_delay = d;
                out.reconnect.first_delay = out.reconnect.first_delay.min(d);
            }
            if let Some(n) = r.max_retries {
                let n = saturating_u32(whole("reconnect.maxRetries", n)?);
                in_limits("reconnect.maxRetries", limits::check_max_retries(n))?;
                out.reconnect.max_retries = Some(n);
            }
        }
        let config = StreamerConfig {
            video,
            audio,
            outputs: vec![out],
            records: match &self.record {
                None => Vec::new(),
                Some(Either::A(path)) => vec![record_config("record", path, None)?],
                Some(Either::B(r)) => vec![record_config("record.path", &r.path, r.overwrite)?],
            },
        };
        config
            .validate()
            .map_err(|e| Failure::from_engine(&e, key.as_deref()))?;
        Ok(Validated { config, key })
    }
}
