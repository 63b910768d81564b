//! The user's terminal during `run -t`, `exec -t`, `start -a` and `attach`
//! of a container with a terminal: raw mode while the container's own
//! terminal does the line editing, and its window size.

use super::ExitWith;
use crate::monitor_link::proto::TerminalSize;
use anyhow::Result;
use nix::sys::termios::{self, SetArg, Termios};
use std::io::IsTerminal;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

/// Docker's refusal of `-it` when stdin is not a terminal, and its exit code.
pub fn check_input_is_terminal(attach_stdin: bool, tty: bool) -> Result<()> {
    if attach_stdin && tty && !std::io::stdin().is_terminal() {
        return Err(ExitWith {
            code: 1,
            message: "the input device is not a TTY".into(),
        }
        .into());
    }
    Ok(())
}

/// The window size of the terminal on `fd`, if it is one and knows its size.
fn size_of(fd: BorrowedFd<'_>) -> Option<TerminalSize> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize through the pointer, which is
    // valid for it; on a descriptor that is not a terminal it fails.
    let result = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut size) };
    (result == 0 && size.ws_row > 0 && size.ws_col > 0).then_some(TerminalSize {
        rows: size.ws_row,
        cols: size.ws_col,
    })
}

/// The size of the user's terminal: stdout's (where the container's
/// output shows), else stdin's.
pub fn current_size() -> Option<TerminalSize> {
    size_of(std::io::stdout().as_fd()).or_else(|| size_of(std::io::stdin().as_fd()))
}

/// Stdin's terminal in raw mode; its settings come back when this is dropped.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Puts stdin's terminal in raw mode (no echo, no line editing, no
    /// signals from Ctrl-C: the container's terminal does all that), or
    /// returns `None` when stdin is not a terminal.
    pub fn enable() -> Result<Option<Self>> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return Ok(None);
        }
        let saved = termios::tcgetattr(stdin.as_fd())?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw)?;
        Ok(Some(Self { saved }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // TCSADRAIN: output already written is shown with the raw settings.
        if let Err(err) =
            termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSADRAIN, &self.saved)
        {
            tracing::warn!("restoring the terminal: {err}");
        }
    }
}
