//! Errors of the engine, carrying enough context to act on.
//!
//! Why two layers: `RtmpError` (in `output::rtmp`) says what happened on one
//! connection and whether it is a network fault or a rejection; `Error` is
//! what the library API returns. Neither ever carries a stream key: URLs are
//! kept as their redacted form.

/// The library's error type.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is out of range or malformed. `option` is the
    /// name the CLI and the Node addon use for it.
    #[error("invalid {option}: {reason}")]
    InvalidConfig {
        /// Option name, e.g. `size`.
        option: &'static str,
        /// What is wrong, for a human.
        reason: String,
    },
    /// The URL could not be parsed (the message never includes the key).
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// An encoder could not be created or failed.
    #[error("{codec} encoder: {reason}")]
    Encoder {
        /// "H.264" or "AAC".
        codec: &'static str,
        /// Details from the codec library.
        reason: String,
    },
    /// A capture source could not be opened.
    #[error("source {name}: {reason}")]
    Source {
        /// Source name as given by the user.
        name: String,
        /// Details.
        reason: String,
    },
    /// An output gave up before the stream could start.
    #[error("{output}: {reason}")]
    Publish {
        /// The destination, key redacted.
        output: String,
        /// Why (key redacted).
        reason: String,
        /// The server refused the publish (bad key or app), as opposed to
        /// a network fault.
        rejected: bool,
    },
    /// A recording would replace an existing file and overwriting was not
    /// asked for (CLI: `--overwrite`).
    #[error("{path} already exists; pass --overwrite to replace it")]
    FileExists {
        /// The file, as given.
        path: String,
    },
    /// Local I/O (files, threads).
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl Error {
    /// Wraps an I/O error with what we were doing.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// Result alias for the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;
