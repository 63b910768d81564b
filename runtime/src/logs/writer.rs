//! A container's output as json-file entries: a line per entry, a partial
//! line held until its newline comes (or it grows too long), appended to
//! its log with rotation ([`super::rotate`]), or dropped with the `none` driver.

use super::config::{LogConfig, LogDriver};
use super::rotate::RotatingFile;
use super::LogEntry;
use std::io;
use std::path::Path;

/// Longest partial line kept before it is written as an entry of its own.
const MAX_PARTIAL_LINE: usize = 16 * 1024;

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

/// Appends a container's output to its json-file log, a line per entry.
pub struct JsonLogWriter {
    /// The log; `None` with the `none` driver.
    file: Option<RotatingFile>,
    partial: [Vec<u8>; 2],
}

impl JsonLogWriter {
    /// Opens the log at `path` for appending, creating it, rotated as
    /// `config` says; with the `none` driver nothing is opened or written.
    pub fn open(path: &Path, config: &LogConfig) -> io::Result<Self> {
        let file = match config.driver {
            LogDriver::JsonFile => {
                Some(RotatingFile::open(path, config.max_size, config.max_file)?)
            }
            LogDriver::None => None,
        };
        Ok(Self {
            file,
            partial: [Vec::new(), Vec::new()],
        })
    }

    fn entry(&mut self, stream: OutputStream, bytes: &[u8]) -> io::Result<()> {
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        let entry = LogEntry {
            log: String::from_utf8_lossy(bytes).into_owned(),
            stream: stream.name().into(),
            time: crate::timefmt::now(),
        };
        let mut line = serde_json::to_vec(&entry).map_err(io::Error::other)?;
        line.push(b'\n');
        file.write(&line)
    }

    /// Logs a chunk of output: complete lines now, the rest when it ends.
    pub fn write(&mut self, stream: OutputStream, chunk: &[u8]) -> io::Result<()> {
        if self.file.is_none() {
            return Ok(());
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::parse_entries;
    use crate::logs::rotate::log_files;

    #[test]
    fn lines_become_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut writer = JsonLogWriter::open(&path, &LogConfig::default()).unwrap();
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

    #[test]
    fn entries_are_rotated_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let config = LogConfig {
            max_size: Some(1_000),
            max_file: 2,
            ..LogConfig::default()
        };
        let mut writer = JsonLogWriter::open(&path, &config).unwrap();
        for i in 1..=500 {
            writer
                .write(OutputStream::Stdout, format!("line-{i}\n").as_bytes())
                .unwrap();
        }
        let files = log_files(&path).unwrap();
        assert_eq!(files.len(), 2);
        let mut numbers = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            assert!(
                text.len() <= 1_000,
                "{}: {} bytes",
                file.display(),
                text.len()
            );
            // Every line in a file is a whole entry.
            let entries = parse_entries(&text);
            assert_eq!(entries.len(), text.lines().count());
            numbers.extend(entries.iter().map(|e| {
                e.log
                    .trim_end()
                    .trim_start_matches("line-")
                    .parse::<u32>()
                    .unwrap()
            }));
        }
        assert_eq!(numbers.last(), Some(&500));
        assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
    }

    #[test]
    fn the_none_driver_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut writer = JsonLogWriter::open(&path, &LogConfig::none()).unwrap();
        writer.write(OutputStream::Stdout, b"hello\nrest").unwrap();
        writer.finish(OutputStream::Stdout).unwrap();
        assert!(!path.exists());
    }
}
