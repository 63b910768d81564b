//! Signals by name or number, as Docker's command line and runc take them
//! (`9`, `KILL`, `SIGKILL`, `sigusr1`).

use thiserror::Error;

/// A signal Linux does not have.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("Invalid signal: {0}")]
pub struct InvalidSignal(pub String);

/// The number of signal `text`: 1 to 64 (real-time ones included), or a
/// name with or without `SIG`, any case.
pub fn parse_signal(text: &str) -> Result<i32, InvalidSignal> {
    if let Ok(number) = text.parse::<i32>() {
        return match number {
            1..=64 => Ok(number),
            _ => Err(InvalidSignal(text.to_string())),
        };
    }
    let name = text.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    nix::sys::signal::Signal::iterator()
        .find(|s| s.as_str().strip_prefix("SIG") == Some(name))
        .map(|s| s as i32)
        .ok_or_else(|| InvalidSignal(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse_signal("KILL"), Ok(libc::SIGKILL));
        assert_eq!(parse_signal("SIGTERM"), Ok(libc::SIGTERM));
        assert_eq!(parse_signal("sigusr1"), Ok(libc::SIGUSR1));
        assert_eq!(parse_signal("9"), Ok(9));
        assert_eq!(parse_signal("40"), Ok(40));
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("65").is_err());
        assert_eq!(
            parse_signal("NOPE").unwrap_err().to_string(),
            "Invalid signal: NOPE"
        );
    }
}
