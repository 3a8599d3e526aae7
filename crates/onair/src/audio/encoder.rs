//! TODO(helper-audio)
