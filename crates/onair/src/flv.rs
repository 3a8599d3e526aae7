//! TODO(helper-rtmp)
