//! Video side of the engines: sources, the CaptureThread and the VideoEncoder.

pub mod bitrate;
pub mod capture;
pub mod convert;
pub mod encoder;
#[cfg(feature = "avcodec")]
pub mod file;
pub mod frame;
pub mod grab;
pub mod screen;
pub mod source;
pub mod window;
mod x11;
