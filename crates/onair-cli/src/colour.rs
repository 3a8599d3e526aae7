//! Whether what the CLI prints on stderr may carry ANSI colour codes.
//!
//! Why: logs are read in pipes, files and CI output, where escape codes are
//! noise (`^[[33m WARN^[[0m`). Colour only when stderr is a terminal, and
//! never when `NO_COLOR` is set to a non-empty value (https://no-color.org).

use std::ffi::OsString;
use std::io::IsTerminal;

/// The environment variable that turns colour off.
pub const NO_COLOR: &str = "NO_COLOR";

/// True when stderr is a terminal and `NO_COLOR` does not forbid colour.
pub fn stderr_wants_colour() -> bool {
    wants_colour(std::io::stderr().is_terminal(), std::env::var_os(NO_COLOR))
}

/// The policy, apart from where its inputs come from.
fn wants_colour(terminal: bool, no_color: Option<OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(wants_colour(true, None));
        assert!(wants_colour(true, Some(OsString::new())));
        assert!(!wants_colour(true, Some("1".into())));
        assert!(!wants_colour(false, None));
        assert!(!wants_colour(false, Some("1".into())));
    }
}
