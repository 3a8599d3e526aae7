//! Enhanced RTMP on the connection: the capabilities announced in `connect`
//! and where a server's `NetConnection.Connect.ReconnectRequest` points.
//!
//! Why apart from the publisher: both are pure (values in, values out) and
//! tested without a socket; the publisher only calls them.

use super::proto;
use crate::output::url::RtmpUrl;

/// Where a reconnect request's `tcUrl` points, with our stream key: an
/// absolute `rtmp[s]://host[:port]/app`, a scheme-relative `//host/app`, or a
/// path `/app` on the same server (Enhanced RTMP v2, "Reconnect Request");
/// `None` = the same URL.
pub fn resolve_tc_url(current: &RtmpUrl, tc_url: Option<&str>) -> Result<RtmpUrl, String> {
    let Some(tc) = tc_url.map(str::trim) else {
        return Ok(current.clone());
    };
    let absolute = if tc.contains("://") {
        tc.to_string()
    } else if let Some(rest) = tc.strip_prefix("//") {
        format!("{}://{rest}", current.scheme.as_str())
    } else if tc.starts_with('/') {
        format!(
            "{}://{}:{}{tc}",
            current.scheme.as_str(),
            current.host_for_url(),
            current.port
        )
    } else {
        return Err("reconnect request: tcUrl is neither a URL nor a path".into());
    };
    // A placeholder key makes the whole path the app; ours replaces it.
    let mut url = RtmpUrl::parse(&format!("{}/k", absolute.trim_end_matches('/')), None)
        .map_err(|e| format!("reconnect request: unusable tcUrl: {e}"))?;
    url.stream_key = current.stream_key.clone();
    Ok(url)
}

/// Enhanced RTMP capabilities announced in `connect`, whatever the stream's
/// codec (servers that do not know them ignore unknown properties, as
/// nginx-rtmp and FFmpeg's listener do):
/// - v1 `fourCcList`: the FourCCs we can publish (`hvc1`, `av01`; `avc1`
///   also, though H.264 goes out as legacy FLV);
/// - v2 `videoFourCcInfoMap`: the same codecs, each `CanEncode`;
/// - v2 `capsEx`: `Reconnect`, because we act on
///   `NetConnection.Connect.ReconnectRequest` (`output/send.rs`).
pub fn enhanced_rtmp_connect_properties() -> Vec<(String, proto::amf0::Value)> {
    use crate::packet::VideoCodec;
    use proto::amf0::Value;
    let codecs = [VideoCodec::Hevc, VideoCodec::Av1, VideoCodec::H264];
    let fourcc = |c: VideoCodec| String::from_utf8_lossy(&c.fourcc()).into_owned();
    vec![
        (
            "fourCcList".to_string(),
            Value::StrictArray(codecs.iter().map(|&c| Value::String(fourcc(c))).collect()),
        ),
        (
            "videoFourCcInfoMap".to_string(),
            Value::Object(
                codecs
                    .iter()
                    .map(|&c| (fourcc(c), Value::Number(FOURCC_CAN_ENCODE)))
                    .collect(),
            ),
        ),
        ("capsEx".to_string(), Value::Number(CAPS_EX_RECONNECT)),
    ]
}

/// Enhanced RTMP v2 `FourCcInfoMask.CanEncode`.
pub const FOURCC_CAN_ENCODE: f64 = 2.0;
/// Enhanced RTMP v2 `CapsExMask.Reconnect`.
pub const CAPS_EX_RECONNECT: f64 = 1.0;
