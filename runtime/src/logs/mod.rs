//! Docker's json-file log: one JSON object per line,
//! `{"log":"hello\n","stream":"stdout","time":"2026-11-22T21:40:00.123456789Z"}`,
//! in `<id>-json.log`, rotated (`--log-opt max-size=10m --log-opt max-file=3`)
//! to `<id>-json.log.1`, `.2`, … as Docker's json-file driver rotates it.
//!
//! [`config`] is what `--log-driver` and `--log-opt` ask for, [`size`] their
//! sizes; [`writer`] turns a container's output into entries, which
//! [`rotate`] appends and rotates; [`reader`] reads them back, oldest file
//! first, following rotations.

pub mod config;
pub mod reader;
pub mod rotate;
pub mod writer;

pub use config::{LogConfig, LogConfigError, LogDriver};
pub use reader::LogReader;
pub use writer::{JsonLogWriter, OutputStream};

use serde::{Deserialize, Serialize};

/// One log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The text, with its newline.
    pub log: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// When the line was written.
    pub time: String,
}

/// Parses a log's text; lines that are not entries (a torn last line) are skipped.
pub fn parse_entries(text: &str) -> Vec<LogEntry> {
    text.lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}
