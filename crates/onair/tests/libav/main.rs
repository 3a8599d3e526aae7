//! The GPL build's parts built on FFmpeg's libraries, each through its own
//! interface (feature `avcodec`): the libavcodec video encoders (x264, x265,
//! SVT-AV1, the hardware probes and the fallback) and the file source.
//!
//! Why an integration test and not unit tests: the GPL build then compiles
//! onair's library once, not a second time with its unit tests (~80 s of a
//! fresh CI run on two cores), and these tests need nothing private.
#![cfg(feature = "avcodec")]

mod encoders;
mod file_source;
