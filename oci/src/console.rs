//! A terminal for a container's process (`process.terminal`, `docker run
//! -t`): as runc does, the runtime makes a pty and sends its master over
//! `--console-socket` (SCM_RIGHTS) to whoever asked (the shim, conmon). The
//! slave, raw, becomes the relay's stdio and controlling terminal; the
//! guest has a pty of its own that does the line discipline, and the relay
//! carries bytes between the two and the window size the caller sets on
//! the master (the relay gets SIGWINCH) to the guest.

use crate::error::OciError;
use hull_runtime::monitor_link::proto::TerminalSize;
use nix::pty::{openpty, Winsize};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

/// A pty whose master went to the caller.
pub struct Console {
    /// The slave: the relay's stdio.
    pub slave: OwnedFd,
}

/// Makes a pty of `size` (if known), sends its master to `socket`, and
/// returns the slave, raw.
pub fn create(socket: &Path, size: Option<TerminalSize>) -> Result<Console, OciError> {
    let failed = |what: &str, err: nix::Error| OciError::Setup(format!("{what}: {err}"));
    let winsize = size.map(|s| Winsize {
        ws_row: s.rows,
        ws_col: s.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    });
    let pty = openpty(winsize.as_ref(), None).map_err(|e| failed("openpty", e))?;
    let mut termios = tcgetattr(pty.slave.as_fd()).map_err(|e| failed("tcgetattr", e))?;
    cfmakeraw(&mut termios);
    tcsetattr(pty.slave.as_fd(), SetArg::TCSANOW, &termios).map_err(|e| failed("tcsetattr", e))?;
    let stream = std::os::unix::net::UnixStream::connect(socket)
        .map_err(OciError::io("connecting to the console socket", socket))?;
    let fds = [pty.master.as_raw_fd()];
    let name = b"/dev/ptmx";
    sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(name)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| failed("sending the terminal's master", e))?;
    Ok(Console { slave: pty.slave })
}

/// The window size of the terminal on this process's stdin, if it is one.
pub fn size_of_stdin() -> Option<TerminalSize> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills the winsize it is given.
    let ret = unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut size) };
    (ret == 0 && size.ws_row > 0 && size.ws_col > 0).then_some(TerminalSize {
        rows: size.ws_row,
        cols: size.ws_col,
    })
}

/// Whether this process's stdin is a terminal.
pub fn stdin_is_terminal() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(0) == 1 }
}
