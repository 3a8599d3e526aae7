//! JS errors with a stable `code`.
//!
//! Why codes: JS callers branch on `err.code` (Node's convention), not on
//! messages, which stay free to improve. Why scrubbing here: the library
//! already redacts the stream key from every message; this is the last door
//! before JS, so it removes the key once more in case any text ever carries it.

use napi::bindgen_prelude::*;

/// Stable error codes, set as `err.code` on every error the addon throws.
#[napi(string_enum)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)] // the variants are the JS codes, spelled as JS spells them
pub enum ErrorCode {
    /// An option is missing, of the wrong type or out of range.
    ERR_INVALID_OPTION,
    /// The RTMP URL could not be parsed.
    ERR_INVALID_URL,
    /// The server refused the publish (bad stream key, app or auth).
    ERR_PUBLISH_REJECTED,
    /// The server could not be reached, or the link failed for good.
    ERR_CONNECT,
    /// The server's TLS certificate failed verification (unknown issuer, wrong
    /// name, expired): the output stops at once, without retrying. Not a network
    /// fault, and not the server refusing the publish: give its CA with `caFile`.
    ERR_CERTIFICATE,
    /// An encoder could not be created or failed.
    ERR_ENCODER,
    /// A capture source could not be opened.
    ERR_SOURCE,
    /// Local I/O (threads, files) failed.
    ERR_IO,
    /// A recording file already exists and `overwrite` was not set.
    ERR_FILE_EXISTS,
    /// The call is not valid in the object's current state (e.g. `start()` twice).
    ERR_INVALID_STATE,
    /// The feature is not available in this build.
    ERR_NOT_IMPLEMENTED,
}

impl ErrorCode {
    /// The code as JS sees it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ERR_INVALID_OPTION => "ERR_INVALID_OPTION",
            Self::ERR_INVALID_URL => "ERR_INVALID_URL",
            Self::ERR_PUBLISH_REJECTED => "ERR_PUBLISH_REJECTED",
            Self::ERR_CONNECT => "ERR_CONNECT",
            Self::ERR_CERTIFICATE => "ERR_CERTIFICATE",
            Self::ERR_ENCODER => "ERR_ENCODER",
            Self::ERR_SOURCE => "ERR_SOURCE",
            Self::ERR_IO => "ERR_IO",
            Self::ERR_FILE_EXISTS => "ERR_FILE_EXISTS",
            Self::ERR_INVALID_STATE => "ERR_INVALID_STATE",
            Self::ERR_NOT_IMPLEMENTED => "ERR_NOT_IMPLEMENTED",
        }
    }
}

impl AsRef<str> for ErrorCode {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

/// An error on its way to JS: code + scrubbed message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// `err.code`.
    pub code: ErrorCode,
    /// `err.message` (never contains the stream key).
    pub message: String,
}

impl Failure {
    /// A failure with `code`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// An invalid option, named as JS spells it.
    pub fn option(name: &str, reason: impl std::fmt::Display) -> Self {
        Self::new(
            ErrorCode::ERR_INVALID_OPTION,
            format!("invalid option {name}: {reason}"),
        )
    }

    /// Maps a library error; `key` is scrubbed from the message.
    pub fn from_engine(e: &onair::Error, key: Option<&str>) -> Self {
        use onair::Error as E;
        let code = match e {
            E::InvalidConfig { .. } => ErrorCode::ERR_INVALID_OPTION,
            E::InvalidUrl(_) => ErrorCode::ERR_INVALID_URL,
            E::Encoder { .. } => ErrorCode::ERR_ENCODER,
            E::Source { .. } => ErrorCode::ERR_SOURCE,
            // `Publish` carries the output's last error as text only; a
            // rejection's text is `RtmpError::Rejected`'s Display.
            E::Publish { rejected: true, .. } => ErrorCode::ERR_PUBLISH_REJECTED,
            E::Publish { reason, .. } if is_certificate_refusal(reason) => {
                ErrorCode::ERR_CERTIFICATE
            }
            E::Publish { .. } => ErrorCode::ERR_CONNECT,
            E::FileExists { .. } => ErrorCode::ERR_FILE_EXISTS,
            E::Io { .. } => ErrorCode::ERR_IO,
        };
        let message = match e {
            E::InvalidConfig { option, reason } => {
                format!("invalid option {}: {reason}", js_option_name(option))
            }
            // The library's text names the CLI flag (`--overwrite`).
            E::FileExists { path } => {
                format!("{path} already exists; set overwrite: true to replace it")
            }
            other => other.to_string(),
        };
        Self::new(code, scrub(&message, key))
    }

    /// Into a napi error that becomes `Error { code, message }` in JS.
    pub fn into_napi(self) -> napi::Error<ErrorCode> {
        napi::Error::new(self.code, self.message)
    }

    /// Into a JS `Error` object with `code`, for promise rejections.
    pub fn into_js_error(self, env: &Env) -> napi::Error {
        let value = JsError::from(self.into_napi()).into_unknown(*env);
        napi::Error::from(value)
    }
}

/// How the library's text for a refused certificate starts: `RtmpError::Certificate`
/// displays as `TLS certificate of HOST:PORT refused: WHY`.
const CERTIFICATE_REFUSED_PREFIX: &str = "TLS certificate of ";

/// True when `text` (an output's error, as the library's events and `Publish`
/// errors carry it) says the server's certificate failed verification.
///
/// Why from the text: the library's `Event::Error` and `Error::Publish` carry
/// only `rejected` (the server refused the publish) and the message; a refused
/// certificate is neither a rejection nor a network fault, and its message is
/// the one thing that tells it (pinned by a test against `RtmpError`'s Display).
pub fn is_certificate_refusal(text: &str) -> bool {
    text.strip_prefix(CERTIFICATE_REFUSED_PREFIX)
        .is_some_and(|rest| rest.contains(" refused: "))
}

/// The library names options as the CLI spells them; JS uses camelCase.
fn js_option_name(cli: &str) -> &str {
    match cli {
        "video-bitrate" => "videoBitrate",
        "audio-bitrate" => "audioBitrate",
        "stall-timeout" => "stallTimeoutMs",
        "buffer-packets" => "buffer.packets",
        "buffer-ms" => "buffer.ms",
        "buffer-bytes" => "buffer.bytes",
        "reconnect-max-delay" => "reconnect.maxDelayMs",
        "max-retries" => "reconnect.maxRetries",
        "ca-file" => "caFile",
        "video-encoder" => "videoEncoder",
        "video-codec" => "videoCodec",
        other => other,
    }
}

/// Removes every occurrence of the stream key from `text`.
pub fn scrub(text: &str, key: Option<&str>) -> String {
    match key {
        Some(k) if !k.is_empty() => text.replace(k, onair::output::url::REDACTED_KEY),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onair::output::rtmp::RtmpError;

    /// The library's own text for a refused certificate is recognised; a TLS
    /// failure of another kind, a rejection and a network fault are not.
    #[test]
    fn a_refused_certificate_is_told_from_other_failures() {
        let refused = RtmpError::Certificate {
            target: "127.0.0.1:4443".into(),
            reason: "unknown issuer".into(),
        };
        assert!(is_certificate_refusal(&refused.to_string()), "{refused}");
        let others = [
            RtmpError::Tls {
                target: "127.0.0.1:4443".into(),
                reason: "received fatal alert: HandshakeFailure".into(),
            },
            RtmpError::Rejected {
                code: "NetStream.Publish.BadName".into(),
                description: String::new(),
            },
            RtmpError::Protocol("TLS certificate of x refused: y, said the server".into()),
        ];
        for e in others {
            assert!(!is_certificate_refusal(&e.to_string()), "{e}");
        }
        let publish = |reason: String| onair::Error::Publish {
            output: "rtmps://127.0.0.1:4443/live/<key>".into(),
            reason,
            rejected: false,
        };
        let f = Failure::from_engine(&publish(refused.to_string()), None);
        assert_eq!(f.code, ErrorCode::ERR_CERTIFICATE, "{}", f.message);
        let f = Failure::from_engine(&publish("connection refused".into()), None);
        assert_eq!(f.code, ErrorCode::ERR_CONNECT);
    }
}
