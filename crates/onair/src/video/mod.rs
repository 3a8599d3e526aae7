//! Video side of the engines: sources, the CaptureThread and the VideoEncoder.

pub mod bitrate;
pub mod capture;
pub mod convert;
pub mod encoder;
pub mod frame;
pub mod grab;
pub mod screen;
pub mod source;
pub mod window;
mod x11;
