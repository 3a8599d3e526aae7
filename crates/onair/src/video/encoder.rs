//! VideoEncoder (TODO(helper-video)).
