//! RTMP URL parsing and stream-key redaction.
//!
//! Why by hand and not with the `url` crate: an RTMP stream key is the last
//! path segment and may itself contain `?query` (some services put auth
//! tokens there), which a generic URL parser would split off as the URL's
//! query. And the key is a secret: this module is the one place that knows
//! where it is, so every printable form of an [`RtmpUrl`] (`Display`,
//! `Debug`, [`RtmpUrl::redacted`], errors) replaces it with `****`.
//!
//! Contract (the CLI, the Node options and `output/rtmp.rs` rely on it):
//! - `RtmpUrl::parse(url, key_override)` accepts `rtmp://host[:port]/app[/more]/streamkey`
//!   and `rtmps://` (port 1935 / 443 by default), the key being the last path segment
//!   (which may contain `?query`). `key_override` (from `ONAIR_STREAM_KEY`) replaces the
//!   last segment, or provides the key when the path is the app alone: a single segment
//!   (`rtmp://host/live2`) or a path ending in `/` (`rtmp://host/app/instance/`).
//! - `tc_url()` is `scheme://host:port/app` (IPv6 hosts in brackets).

use std::fmt;

use crate::Error;

/// Default port of `rtmp://`.
pub const DEFAULT_RTMP_PORT: u16 = 1935;
/// Default port of `rtmps://`.
pub const DEFAULT_RTMPS_PORT: u16 = 443;
/// What replaces the stream key in every printable form.
pub const REDACTED_KEY: &str = "****";

/// Transport of an RTMP URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Plain TCP.
    Rtmp,
    /// RTMP over TLS.
    Rtmps,
}

impl Scheme {
    /// `rtmp` or `rtmps`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Rtmp => "rtmp",
            Scheme::Rtmps => "rtmps",
        }
    }

    /// Port used when the URL names none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Rtmp => DEFAULT_RTMP_PORT,
            Scheme::Rtmps => DEFAULT_RTMPS_PORT,
        }
    }
}

/// A parsed RTMP publish URL. Printing it never shows the stream key.
#[derive(Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    /// `rtmp` or `rtmps`.
    pub scheme: Scheme,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// RTMP application (path before the key, without surrounding slashes).
    pub app: String,
    /// The secret stream key (may contain `?query`).
    pub stream_key: String,
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidUrl(reason.into())
}

impl RtmpUrl {
    /// Parses `url`; `key_override` (e.g. from `ONAIR_STREAM_KEY`) replaces or
    /// provides the stream key. Errors describe the problem without quoting
    /// the key.
    pub fn parse(url: &str, key_override: Option<&str>) -> Result<Self, Error> {
        let url = url.trim();
        let (scheme_str, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("expected rtmp://host[:port]/app/key or rtmps://..."))?;
        let scheme = match scheme_str.to_ascii_lowercase().as_str() {
            "rtmp" => Scheme::Rtmp,
            "rtmps" => Scheme::Rtmps,
            // Nothing the user typed is echoed: a misplaced key could be anywhere.
            _ => return Err(invalid("unsupported scheme (expected rtmp:// or rtmps://)")),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let (host, port) = parse_authority(authority, scheme)?;

        // The key is the last segment; a '?' query belongs to the key, so the
        // split is at the last '/' before any '?'.
        let query_at = path.find('?').unwrap_or(path.len());
        let (app, key_in_url) = match path[..query_at].rfind('/') {
            Some(i) => (&path[..i], &path[i + 1..]),
            None => ("", path),
        };
        let (app, key) = match key_override {
            Some(k) => {
                let k = k.trim();
                if k.is_empty() {
                    return Err(invalid("the stream key override is empty"));
                }
                if app.is_empty() {
                    // `rtmp://host/live2`: the path is the app alone.
                    (key_in_url, k)
                } else {
                    // `rtmp://host/app/` or `rtmp://host/app/oldkey`.
                    (app, k)
                }
            }
            None => {
                if app.is_empty() {
                    return Err(invalid(
                        "missing application or stream key: expected rtmp://host[:port]/app/key \
                         (or give the key in ONAIR_STREAM_KEY)",
                    ));
                }
                if key_in_url.is_empty() {
                    return Err(invalid(
                        "missing stream key at the end of the URL (or give it in ONAIR_STREAM_KEY)",
                    ));
                }
                (app, key_in_url)
            }
        };
        let app = app.trim_matches('/');
        if app.is_empty() {
            return Err(invalid("missing application name in the URL path"));
        }
        if app.contains("//") || app.contains('?') {
            return Err(invalid("malformed application path"));
        }
        if key.chars().any(|c| c.is_control() || c == ' ') {
            return Err(invalid(
                "the stream key contains spaces or control characters",
            ));
        }
        if app.chars().any(|c| c.is_control() || c == ' ') {
            return Err(invalid(
                "the application contains spaces or control characters",
            ));
        }
        Ok(Self {
            scheme,
            host,
            port,
            app: app.to_string(),
            stream_key: key.to_string(),
        })
    }

    /// `scheme://host:port/app`, sent as tcUrl in the connect command.
    pub fn tc_url(&self) -> String {
        format!(
            "{}://{}:{}/{}",
            self.scheme.as_str(),
            self.host_for_url(),
            self.port,
            self.app
        )
    }

    /// The URL with the key replaced by `****`: safe for logs and errors.
    pub fn redacted(&self) -> String {
        format!("{}/{}", self.tc_url(), REDACTED_KEY)
    }

    /// Host as written in a URL: IPv6 literals in brackets.
    pub fn host_for_url(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }
}

fn parse_authority(authority: &str, scheme: Scheme) -> Result<(String, u16), Error> {
    if authority.is_empty() {
        return Err(invalid("missing host"));
    }
    if authority.contains('@') {
        return Err(invalid(
            "credentials in the URL are not supported (put the key in the path or ONAIR_STREAM_KEY)",
        ));
    }
    let (host, port_str) = if let Some(rest) = authority.strip_prefix('[') {
        let end = rest
            .find(']')
            .ok_or_else(|| invalid("unterminated IPv6 address (missing ']')"))?;
        let host = &rest[..end];
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(invalid("invalid IPv6 address in brackets"));
        }
        let after = &rest[end + 1..];
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| invalid("unexpected characters after the IPv6 address"))?,
            ),
        };
        (host, port)
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(invalid("missing host"));
    }
    if !authority.starts_with('[')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
    {
        return Err(invalid("invalid characters in the host name"));
    }
    let port = match port_str {
        None => scheme.default_port(),
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(invalid("invalid port (expected 1-65535)")),
            Ok(port) => port,
        },
    };
    Ok((host.to_ascii_lowercase(), port))
}

impl fmt::Display for RtmpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for RtmpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RtmpUrl({})", self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> RtmpUrl {
        RtmpUrl::parse(url, None).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn good_urls() {
        let u = ok("rtmp://live.twitch.tv/app/live_123_abc");
        assert_eq!(u.scheme, Scheme::Rtmp);
        assert_eq!((u.host.as_str(), u.port), ("live.twitch.tv", 1935));
        assert_eq!(
            (u.app.as_str(), u.stream_key.as_str()),
            ("app", "live_123_abc")
        );
        assert_eq!(u.tc_url(), "rtmp://live.twitch.tv:1935/app");

        let u = ok("rtmps://live-api-s.facebook.com/rtmp/FB-123-0-Ab");
        assert_eq!((u.scheme, u.port), (Scheme::Rtmps, 443));
        assert_eq!(u.tc_url(), "rtmps://live-api-s.facebook.com:443/rtmp");

        let u = ok("RTMP://Example.COM:1936/app/inst/key");
        assert_eq!((u.host.as_str(), u.port), ("example.com", 1936));
        assert_eq!((u.app.as_str(), u.stream_key.as_str()), ("app/inst", "key"));

        let u = ok("rtmp://127.0.0.1:19350/live/key?token=a/b&x=1");
        assert_eq!(u.app, "live");
        assert_eq!(u.stream_key, "key?token=a/b&x=1");

        let u = ok("rtmp://[::1]:1940/live/k");
        assert_eq!((u.host.as_str(), u.port), ("::1", 1940));
        assert_eq!(u.tc_url(), "rtmp://[::1]:1940/live");
        let u = ok("rtmp://[2001:db8::5]/live/k");
        assert_eq!(u.port, 1935);
    }

    #[test]
    fn key_override() {
        let u = RtmpUrl::parse("rtmp://a.rtmp.youtube.com/live2", Some("secret")).unwrap();
        assert_eq!((u.app.as_str(), u.stream_key.as_str()), ("live2", "secret"));
        let u = RtmpUrl::parse("rtmp://h/live2/", Some("secret")).unwrap();
        assert_eq!((u.app.as_str(), u.stream_key.as_str()), ("live2", "secret"));
        let u = RtmpUrl::parse("rtmp://h/app/inst/", Some("secret")).unwrap();
        assert_eq!(
            (u.app.as_str(), u.stream_key.as_str()),
            ("app/inst", "secret")
        );
        let u = RtmpUrl::parse("rtmp://h/live/old", Some("new")).unwrap();
        assert_eq!((u.app.as_str(), u.stream_key.as_str()), ("live", "new"));
        assert!(RtmpUrl::parse("rtmp://h/live", Some("  ")).is_err());
        assert!(RtmpUrl::parse("rtmp://h/", Some("k")).is_err());
    }

    #[test]
    fn bad_urls() {
        for bad in [
            "",
            "live.twitch.tv/app/key",
            "http://host/app/key",
            "rtmp://",
            "rtmp:///app/key",
            "rtmp://host",
            "rtmp://host/",
            "rtmp://host/app",
            "rtmp://host/app/",
            "rtmp://host:0/app/key",
            "rtmp://host:99999/app/key",
            "rtmp://host:abc/app/key",
            "rtmp://[::1/app/key",
            "rtmp://[zz::1]/app/key",
            "rtmp://user:pw@host/app/key",
            "rtmp://ho st/app/key",
            "rtmp://host//key",
        ] {
            assert!(RtmpUrl::parse(bad, None).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn key_never_printed() {
        const KEY: &str = "sup3rSecretKey";
        let u = ok(&format!("rtmp://host/app/{KEY}?tok=1"));
        for s in [format!("{u}"), format!("{u:?}"), u.redacted(), u.tc_url()] {
            assert!(!s.contains(KEY), "{s}");
        }
        assert_eq!(u.to_string(), "rtmp://host:1935/app/****");
        // Errors never echo the key, whatever is wrong around it.
        for bad in [
            format!("rtmp://host:0/app/{KEY}"),
            format!("rtmp://ho st/app/{KEY}"),
            format!("ftp://host/app/{KEY}"),
            format!("rtmp://u:{KEY}@host/app/k"),
            format!("rtmp://host/{KEY}"),
            format!("rtmp://host/app/{KEY} x"),
            KEY.to_string(),
        ] {
            let e = RtmpUrl::parse(&bad, None).unwrap_err().to_string();
            assert!(!e.contains(KEY), "{e}");
        }
        let e = RtmpUrl::parse("rtmp://host/app", Some(&format!("{KEY}\n"))).map(|u| u.to_string());
        assert!(!format!("{e:?}").contains(KEY));
    }
}
