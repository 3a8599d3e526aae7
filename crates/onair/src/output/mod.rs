//! Outputs: everything after the encoders. One output = one StreamMuxer, one
//! StreamBuffer, one NetworkSendThread and one ReconnectThread.

pub mod buffer;
pub mod muxer;
pub mod reconnect;
pub mod rtmp;
pub mod send;
pub mod server;
pub mod url;
