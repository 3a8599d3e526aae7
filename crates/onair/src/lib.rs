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

pub mod amf0;
pub mod audio;
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
