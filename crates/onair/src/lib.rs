//! onair: a live-streaming engine that survives bad networks.
//!
//! The pipeline, engine side to network side (see docs/ARCHITECTURE.md):
//! AudioEngine (master clock) and CaptureThread produce raw media at a
//! constant rate and never block; AudioEncoder and VideoEncoder turn it into
//! `EncodedPacket`s; each output's StreamMuxer decides what to drop and builds
//! FLV tag bodies into a bounded StreamBuffer; a NetworkSendThread writes them
//! to an RTMP connection and a ReconnectThread brings the link back, resuming
//! at the present.
#![warn(missing_docs)]

// Two builds, never mixed (README, "Licences"): fdk-aac's licence is not
// GPL-compatible, and the `avcodec` build links GPL code (x264, x265,
// Debian's libavcodec). Exactly one AAC encoder must be chosen.
#[cfg(all(feature = "fdk-aac", feature = "avcodec"))]
compile_error!(
    "features `fdk-aac` and `avcodec` cannot be combined: fdk-aac's licence is not GPL-compatible. \
     Build the GPL variant with `--no-default-features --features avcodec` (onair-cli: `--features gpl`)."
);
#[cfg(not(any(feature = "fdk-aac", feature = "avcodec")))]
compile_error!(
    "onair needs an AAC encoder: feature `fdk-aac` (the default build) or `avcodec` (the GPL build)"
);

pub mod amf0;
pub mod audio;
#[cfg(feature = "avcodec")]
mod avcodec;
pub mod clock;
pub mod codec_config;
pub mod devices;
pub mod error;
pub mod flv;
pub mod limits;
pub mod net;
pub mod output;
pub mod packet;
pub mod pipeline;
pub mod stats;
pub mod video;

pub use devices::{list_devices, list_devices_with, DeviceInfo, DeviceKind};
pub use error::{Error, Result};

/// Which of the two builds this is, and the licence its binaries carry
/// (`onair --version` prints it; README, "Licences").
pub const BUILD_LICENCE: &str = if cfg!(feature = "avcodec") {
    "GPL-2.0-or-later as a whole: the binary links libavcodec (Debian's build is GPL) with \
     libx264 and libx265 (GPL); onair's own code is MIT OR Apache-2.0; no fdk-aac"
} else {
    "MIT OR Apache-2.0 for onair's code; the binary includes openh264 (BSD-2-Clause) and fdk-aac \
     (Fraunhofer FDK AAC licence, not GPL-compatible); no GPL code"
};

/// True when openh264 was built with its assembly (nasm was found at build time).
pub const BUILT_WITH_NASM: bool = matches!(env!("ONAIR_BUILT_WITH_NASM").as_bytes(), b"1");

pub use output::record::{RecordConfig, RecordFormat, Recorder};
pub use output::stream::StreamOutputConfig;
pub use output::Event;
pub use pipeline::{
    AudioSettings, AudioSourceSpec, FileSpec, InputState, OutputId, Streamer, StreamerConfig,
    VideoSettings, VideoSourceSpec, FILE_SOURCE,
};
pub use stats::{LinkState, Stats};
