//! CaptureThread (TODO(helper-video)).
