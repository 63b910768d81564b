//! Docker's line files: `--env-file` and `--label-file`. One `KEY=VALUE`
//! per line; blank lines and `#` comments skipped; in an env file a bare
//! `KEY` takes the caller's value (and is left out when it has none), in a
//! label file it is a label with an empty value.

use anyhow::{bail, Context, Result};
use std::path::Path;

/// Most bytes read from one file.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// What a bare `KEY` line means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareKey {
    /// `KEY=` the caller's value of `KEY`, if it has one (`--env-file`).
    FromEnvironment,
    /// `KEY` itself (`--label-file`).
    Kept,
}

/// The `KEY=VALUE` entries of the file at `path`.
pub fn read_entries(path: &Path, bare: BareKey) -> Result<Vec<String>> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_FILE_BYTES).read_to_string(&mut text))
        .with_context(|| format!("open {}", path.display()))?;
    parse_entries(&text, bare, |key| std::env::var(key).ok())
}

/// The entries of `text`; `lookup` gives the caller's environment.
fn parse_entries(
    text: &str,
    bare: BareKey,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Vec<String>> {
    let mut entries = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = line.split_once('=').map_or(line, |(key, _)| key);
        if key.is_empty() {
            bail!("no variable name on line '{line}'");
        }
        if key.contains(char::is_whitespace) {
            bail!("variable '{key}' contains whitespaces");
        }
        if line.contains('=') {
            entries.push(line.to_string());
        } else {
            match bare {
                BareKey::FromEnvironment => {
                    if let Some(value) = lookup(key) {
                        entries.push(format!("{key}={value}"));
                    }
                }
                BareKey::Kept => entries.push(key.to_string()),
            }
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_as_docker_reads_them() {
        let text = "# comment\n\n  A=1\nB=two words\nHOME\nUNSET\nC=\n";
        let lookup = |key: &str| (key == "HOME").then(|| "/root".to_string());
        assert_eq!(
            parse_entries(text, BareKey::FromEnvironment, lookup).unwrap(),
            ["A=1", "B=two words", "HOME=/root", "C="]
        );
        assert_eq!(
            parse_entries("x\ny=1\n", BareKey::Kept, |_| None).unwrap(),
            ["x", "y=1"]
        );
        assert_eq!(
            parse_entries("A B=1\n", BareKey::Kept, |_| None)
                .unwrap_err()
                .to_string(),
            "variable 'A B' contains whitespaces"
        );
        assert!(parse_entries("=1\n", BareKey::Kept, |_| None).is_err());
    }
}
