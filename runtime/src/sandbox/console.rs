//! The guest's console, as the host reads it: only its tail, only a
//! regular file, and the kernel's panic message when there is one.

use std::path::Path;

/// The message of the guest kernel's panic, if its console shows one:
/// `Kernel panic - not syncing: <message>`, as Linux prints it.
pub fn guest_panic(console_log: &Path) -> Option<String> {
    const MARK: &str = "Kernel panic - not syncing: ";
    // The panic is at the end; a guest may have written much before it.
    let text = read_tail(console_log, 64 * 1024)?;
    let tail = String::from_utf8_lossy(&text);
    let line = tail
        .lines()
        .rev()
        .find_map(|line| line.split_once(MARK).map(|(_, message)| message))?;
    Some(line.trim().chars().take(200).collect())
}

/// The last `limit` bytes of a file the guest writes (its console): never
/// more, however much it wrote. The console is in the VMM's directory, so a
/// VMM the guest took over may have put a link or a FIFO there: only a
/// regular file is read, without following a link or waiting on a FIFO.
pub(super) fn read_tail(path: &Path, limit: u64) -> Option<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let metadata = file.metadata().ok()?;
    if !metadata.is_file() {
        return None;
    }
    let length = metadata.len();
    file.seek(SeekFrom::Start(length.saturating_sub(limit)))
        .ok()?;
    let mut tail = Vec::new();
    file.take(limit).read_to_end(&mut tail).ok()?;
    Some(tail)
}

/// The last lines of the console log, for boot failures.
pub(super) fn console_tail(path: &Path) -> String {
    let text = read_tail(path, 2048).unwrap_or_default();
    let tail = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = tail
        .lines()
        .rev()
        .take(15)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if lines.is_empty() {
        String::new()
    } else {
        format!("\nguest console (last lines):\n{}", lines.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn guest_panics_are_found_in_the_console() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        std::fs::write(&log, "[    0.5] Run /init as init process\n[    0.9] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\n[    0.9] CPU: 0 PID: 1\n").unwrap();
        assert_eq!(
            super::guest_panic(&log).as_deref(),
            Some("Attempted to kill init! exitcode=0x00000100")
        );
        std::fs::write(&log, "all well\n").unwrap();
        assert_eq!(super::guest_panic(&log), None);
        assert_eq!(super::guest_panic(&dir.path().join("missing")), None);
    }
}
