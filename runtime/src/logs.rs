//! Docker's json-file log: one JSON object per line,
//! `{"log":"hello\n","stream":"stdout","time":"2026-11-22T21:40:00.123456789Z"}`.

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Longest partial line kept before it is written as an entry of its own.
const MAX_PARTIAL_LINE: usize = 16 * 1024;

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

/// Appends a container's output to its json-file log, a line per entry.
pub struct JsonLogWriter {
    file: File,
    partial: [Vec<u8>; 2],
}

/// Which of the two output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    /// stdout.
    Stdout,
    /// stderr.
    Stderr,
}

impl OutputStream {
    fn name(self) -> &'static str {
        match self {
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
        }
    }
}

impl JsonLogWriter {
    /// Opens `path` for appending, creating it.
    pub fn open(path: &Path) -> io::Result<Self> {
        Ok(Self {
            file: OpenOptions::new().create(true).append(true).open(path)?,
            partial: [Vec::new(), Vec::new()],
        })
    }

    fn entry(&mut self, stream: OutputStream, bytes: &[u8]) -> io::Result<()> {
        let entry = LogEntry {
            log: String::from_utf8_lossy(bytes).into_owned(),
            stream: stream.name().into(),
            time: crate::timefmt::now(),
        };
        let mut line = serde_json::to_vec(&entry).map_err(io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)
    }

    /// Logs a chunk of output: complete lines now, the rest when it ends.
    pub fn write(&mut self, stream: OutputStream, chunk: &[u8]) -> io::Result<()> {
        let index = stream as usize;
        let mut pending = std::mem::take(&mut self.partial[index]);
        pending.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(newline) = pending[start..].iter().position(|&b| b == b'\n') {
            let end = start + newline + 1;
            self.entry(stream, &pending[start..end])?;
            start = end;
        }
        let rest = &pending[start..];
        if rest.len() >= MAX_PARTIAL_LINE {
            self.entry(stream, rest)?;
        } else {
            self.partial[index] = rest.to_vec();
        }
        Ok(())
    }

    /// Writes what is left of a stream without a final newline.
    pub fn finish(&mut self, stream: OutputStream) -> io::Result<()> {
        let rest = std::mem::take(&mut self.partial[stream as usize]);
        if rest.is_empty() {
            Ok(())
        } else {
            self.entry(stream, &rest)
        }
    }
}

/// Parses a log's text; lines that are not entries (a torn last line) are skipped.
pub fn parse_entries(text: &str) -> Vec<LogEntry> {
    text.lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut writer = JsonLogWriter::open(&path).unwrap();
        writer.write(OutputStream::Stdout, b"hel").unwrap();
        writer.write(OutputStream::Stderr, b"oops\n").unwrap();
        writer.write(OutputStream::Stdout, b"lo\nwor").unwrap();
        writer.finish(OutputStream::Stdout).unwrap();
        let entries = parse_entries(&std::fs::read_to_string(&path).unwrap());
        let got: Vec<(&str, &str)> = entries
            .iter()
            .map(|e| (e.log.as_str(), e.stream.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("oops\n", "stderr"),
                ("hello\n", "stdout"),
                ("wor", "stdout")
            ]
        );
        assert!(entries[0].time.ends_with('Z'));
    }
}
