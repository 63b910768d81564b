//! Reading a json-file log back, oldest file first (`<log>.<n>`, …,
//! `<log>.1`, `<log>`), as Docker does, and following it while it is
//! written and rotated (`logs -f`). Files are read a chunk at a time: a
//! flood of output never has to fit in memory.
//!
//! A reader lists and opens the files under a shared [`RotationLock`] (never
//! half rotated), and holds open those it has still to read, so a rotation
//! cannot take them away; when `<log>` turns out to be a different file
//! than the one being read, that one has ended (rotations rename it, or
//! delete it, before a new `<log>` is created), and the reader reads on in
//! the files rotated after it. Like Docker's, a reader that falls behind a
//! writer by more than `max-file` files misses what was deleted meanwhile.

use super::rotate::{log_files, RotationLock};
use super::LogEntry;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// How much is read at once.
const CHUNK: usize = 64 * 1024;
/// The longest line kept while its newline is awaited: the writer's entries
/// are far shorter, so a longer one is no entry, and is dropped.
const MAX_LINE: usize = 1024 * 1024;
/// How many rotations one read follows before it returns (the next goes on).
const MAX_SWITCHES: usize = 16;

/// A file of the log, open, with its identity (device and inode).
#[derive(Debug)]
struct LogFile {
    file: File,
    id: (u64, u64),
}

impl LogFile {
    fn open(path: &Path) -> io::Result<Option<Self>> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err),
        };
        let meta = file.metadata()?;
        Ok(Some(Self {
            file,
            id: (meta.dev(), meta.ino()),
        }))
    }
}

/// The identity of the file at `path`, if there is one.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path)
        .ok()
        .map(|meta| (meta.dev(), meta.ino()))
}

/// Opens the log's files, oldest first, while no rotation shifts them.
fn open_files(path: &Path) -> io::Result<Vec<LogFile>> {
    // Without it (no directory yet, say), the files are still read.
    let _no_rotation = RotationLock::shared(path).ok();
    let mut opened: Vec<LogFile> = Vec::new();
    for file in log_files(path)? {
        // (Gone: deleted by a writer that stopped waiting for the lock.)
        if let Some(file) = LogFile::open(&file)? {
            if !opened.iter().any(|o| o.id == file.id) {
                opened.push(file);
            }
        }
    }
    Ok(opened)
}

/// Reads a container's json-file log, its rotated files included.
#[derive(Debug)]
pub struct LogReader {
    path: PathBuf,
    /// Files to read before `current`, oldest first.
    older: VecDeque<LogFile>,
    /// The newest file known; `None` while the log does not exist.
    current: Option<LogFile>,
    /// The start of a line whose newline has not been read yet.
    partial: Vec<u8>,
}

impl LogReader {
    /// A reader of the log at `path` (which need not exist yet), from its
    /// oldest file's start.
    pub fn open(path: &Path) -> io::Result<Self> {
        let mut reader = Self {
            path: path.to_path_buf(),
            older: VecDeque::new(),
            current: None,
            partial: Vec::new(),
        };
        reader.take_files(None)?;
        Ok(reader)
    }

    /// Lists the log's files again: those after the one `after` names (all
    /// if it is gone) are read next. Whether there was any.
    fn take_files(&mut self, after: Option<(u64, u64)>) -> io::Result<bool> {
        let mut files = open_files(&self.path)?;
        if let Some(position) = after.and_then(|id| files.iter().position(|f| f.id == id)) {
            files.drain(..=position);
        }
        let Some(newest) = files.pop() else {
            return Ok(false);
        };
        self.older = files.into();
        self.current = Some(newest);
        Ok(true)
    }

    /// Passes each whole entry written since the last call to `each`,
    /// oldest first. A line being written is passed when it is whole.
    pub fn read_new(&mut self, mut each: impl FnMut(LogEntry)) -> io::Result<()> {
        if self.current.is_none() && !self.take_files(None)? {
            return Ok(());
        }
        for _ in 0..MAX_SWITCHES {
            while let Some(mut older) = self.older.pop_front() {
                read_entries(&mut older.file, &mut self.partial, &mut each)?;
                // A rotated file ends with a whole entry.
                self.partial.clear();
            }
            let Some(current) = self.current.as_mut() else {
                return Ok(());
            };
            read_entries(&mut current.file, &mut self.partial, &mut each)?;
            match file_id(&self.path) {
                Some(id) if id != current.id => {}
                // Still the file being written (or, mid-rotation, none yet).
                _ => return Ok(()),
            }
            // Rotated: the file was complete before the new one appeared.
            read_entries(&mut current.file, &mut self.partial, &mut each)?;
            self.partial.clear();
            let finished = current.id;
            self.take_files(Some(finished))?;
        }
        Ok(())
    }
}

/// Reads `file` to its end, passing each whole line that is an entry to
/// `each`; an unfinished last line stays in `partial`.
fn read_entries(
    file: &mut File,
    partial: &mut Vec<u8>,
    each: &mut impl FnMut(LogEntry),
) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        let mut chunk = &buf[..n];
        while let Some(newline) = chunk.iter().position(|&b| b == b'\n') {
            let line = if partial.is_empty() {
                &chunk[..newline]
            } else {
                partial.extend_from_slice(&chunk[..newline]);
                &partial[..]
            };
            // Not an entry (torn by a crash, say): skipped.
            if let Ok(entry) = serde_json::from_slice::<LogEntry>(line) {
                each(entry);
            }
            partial.clear();
            chunk = &chunk[newline + 1..];
        }
        partial.extend_from_slice(chunk);
        if partial.len() > MAX_LINE {
            // Its end will not parse either, and is skipped in turn.
            partial.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::config::LogConfig;
    use crate::logs::writer::{JsonLogWriter, OutputStream};
    use std::io::Write;

    fn config(max_size: u64, max_file: u32) -> LogConfig {
        LogConfig {
            max_size: Some(max_size),
            max_file,
            ..LogConfig::default()
        }
    }

    fn lines(reader: &mut LogReader) -> Vec<String> {
        let mut lines = Vec::new();
        reader
            .read_new(|entry| lines.push(entry.log.trim_end().to_string()))
            .unwrap();
        lines
    }

    fn write_lines(writer: &mut JsonLogWriter, range: std::ops::RangeInclusive<u32>) {
        for i in range {
            writer
                .write(OutputStream::Stdout, format!("line-{i}\n").as_bytes())
                .unwrap();
        }
    }

    fn numbered(range: std::ops::RangeInclusive<u32>) -> Vec<String> {
        range.map(|i| format!("line-{i}")).collect()
    }

    #[test]
    fn rotated_files_are_read_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        // Big enough to keep everything: each file holds a few entries.
        let mut writer = JsonLogWriter::open(&path, &config(300, 100)).unwrap();
        write_lines(&mut writer, 1..=50);
        assert!(log_files(&path).unwrap().len() > 5);
        let mut reader = LogReader::open(&path).unwrap();
        assert_eq!(lines(&mut reader), numbered(1..=50));
        assert!(lines(&mut reader).is_empty());
    }

    #[test]
    fn a_follower_goes_on_across_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut reader = LogReader::open(&path).unwrap();
        assert!(lines(&mut reader).is_empty(), "no log yet");
        let mut writer = JsonLogWriter::open(&path, &config(300, 10)).unwrap();
        write_lines(&mut writer, 1..=3);
        assert_eq!(lines(&mut reader), numbered(1..=3));
        // Several rotations between two reads, fewer than max-file.
        write_lines(&mut writer, 4..=20);
        assert_eq!(lines(&mut reader), numbered(4..=20));
        write_lines(&mut writer, 21..=21);
        assert_eq!(lines(&mut reader), numbered(21..=21));
    }

    #[test]
    fn a_follower_that_falls_behind_misses_deleted_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut writer = JsonLogWriter::open(&path, &config(300, 2)).unwrap();
        write_lines(&mut writer, 1..=2);
        let mut reader = LogReader::open(&path).unwrap();
        assert_eq!(lines(&mut reader), numbered(1..=2));
        write_lines(&mut writer, 3..=100);
        let got = lines(&mut reader);
        let numbers: Vec<u32> = got
            .iter()
            .map(|l| l.trim_start_matches("line-").parse().unwrap())
            .collect();
        assert_eq!(numbers.last(), Some(&100));
        assert!(numbers.windows(2).all(|w| w[1] > w[0]), "{numbers:?}");
    }

    /// Follows a writer in another thread writing `count` lines to the log at `path`.
    fn follow_a_writer(path: &Path, config: LogConfig, count: u32) -> Vec<u32> {
        let writer_path = path.to_path_buf();
        let writer = std::thread::spawn(move || {
            let mut writer = JsonLogWriter::open(&writer_path, &config).unwrap();
            write_lines(&mut writer, 1..=count);
        });
        let mut reader = LogReader::open(path).unwrap();
        let mut got = Vec::new();
        loop {
            let finished = writer.is_finished();
            let new = lines(&mut reader);
            if finished && new.is_empty() {
                break;
            }
            got.extend(new);
            std::thread::yield_now();
        }
        writer.join().unwrap();
        got.iter()
            .map(|l| l.trim_start_matches("line-").parse().unwrap())
            .collect()
    }

    #[test]
    fn a_follower_keeps_up_with_a_writer_that_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        // Enough files that none is deleted: every line is read, once, in order.
        let got = follow_a_writer(&path, config(2_000, 1_000), 3_000);
        assert_eq!(got, (1..=3_000).collect::<Vec<u32>>());
    }

    #[test]
    fn a_follower_of_few_files_never_repeats_or_reorders() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        for max_file in [1, 2] {
            let got = follow_a_writer(&path, config(1_000, max_file), 3_000);
            assert_eq!(got.last(), Some(&3_000), "max-file={max_file}");
            assert!(
                got.windows(2).all(|w| w[1] > w[0]),
                "max-file={max_file}: {got:?}"
            );
            for file in log_files(&path).unwrap() {
                std::fs::remove_file(file).unwrap();
            }
        }
    }

    #[test]
    fn one_file_logs_are_followed_when_they_start_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        // Two entries fit, not three.
        let mut writer = JsonLogWriter::open(&path, &config(200, 1)).unwrap();
        write_lines(&mut writer, 1..=1);
        let mut reader = LogReader::open(&path).unwrap();
        assert_eq!(lines(&mut reader), numbered(1..=1));
        write_lines(&mut writer, 2..=2);
        assert_eq!(lines(&mut reader), numbered(2..=2));
        // The next entry does not fit: the log starts afresh.
        write_lines(&mut writer, 3..=3);
        assert_eq!(lines(&mut reader), numbered(3..=3));
    }

    #[test]
    fn a_line_being_written_waits_for_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let entry = r#"{"log":"hi\n","stream":"stdout","time":"2026-01-01T00:00:00Z"}"#;
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(format!("not json\n{}", &entry[..10]).as_bytes())
            .unwrap();
        let mut reader = LogReader::open(&path).unwrap();
        assert!(lines(&mut reader).is_empty());
        file.write_all(format!("{}\n", &entry[10..]).as_bytes())
            .unwrap();
        assert_eq!(lines(&mut reader), ["hi"]);
    }

    #[test]
    fn a_log_that_never_was() {
        let dir = tempfile::tempdir().unwrap();
        let mut reader = LogReader::open(&dir.path().join("missing.log")).unwrap();
        assert!(lines(&mut reader).is_empty());
        let mut reader = LogReader::open(Path::new("")).unwrap();
        assert!(lines(&mut reader).is_empty());
    }
}
