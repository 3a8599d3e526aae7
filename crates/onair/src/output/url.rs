//! RTMP URL parsing and stream-key redaction (TODO(helper-rtmp): implement).
//!
//! Interface contract (the lead's code relies on it):
//! - `RtmpUrl::parse(url: &str, key_override: Option<&str>) -> Result<RtmpUrl, crate::Error>`
//!   accepts `rtmp://host[:port]/app[/more]/streamkey` and `rtmps://` (port 1935 / 443 by default),
//!   the key being the last path segment (may contain '?query'); `key_override` (from
//!   ONAIR_STREAM_KEY) replaces/provides it. Errors never contain the key.
//! - fields: `scheme: Scheme { Rtmp, Rtmps }`, `host: String`, `port: u16`, `app: String`,
//!   `stream_key: String`, and `fn tc_url(&self) -> String` (`rtmp://host:port/app`).
//! - `Display` and `Debug` print the URL with the key replaced by `****` (`redacted()` returns it).

/// Placeholder until the rtmp helper lands; see the module doc for the contract.
#[derive(Clone)]
pub struct RtmpUrl {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// RTMP application (path before the key).
    pub app: String,
    /// The secret stream key.
    pub stream_key: String,
}
