//! Video sources (TODO(helper-video): test pattern).
