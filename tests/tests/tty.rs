//! `run -t`, `exec -t`, `start -ai`, `attach` with a pseudo-terminal in the
//! guest. The harness runs `hull` with pipes, so these tests give it a real
//! terminal: a pty of the test's own, whose slave is `hull`'s stdin, stdout,
//! stderr and controlling terminal (so resizing it sends `hull` SIGWINCH,
//! as a terminal emulator's window would).

use hull_tests::harness::{eventually, ok, stderr, stdout, Hull, BUSYBOX_IMAGE};
use nix::pty::{openpty, Winsize};
use nix::sys::termios::LocalFlags;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a VM may take to boot and answer under emulation.
const PATIENCE: Duration = Duration::from_secs(90);

/// `hull` running on a pty whose master the test holds.
struct OnPty {
    child: Child,
    master: std::fs::File,
    /// Everything the terminal has shown so far.
    screen: Arc<Mutex<Vec<u8>>>,
}

fn winsize(rows: u16, cols: u16) -> Winsize {
    Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

impl OnPty {
    /// Runs `hull ARGS` on a fresh pty of `rows` x `cols`.
    fn spawn(hull: &Hull, args: &[&str], rows: u16, cols: u16) -> Self {
        let pty = openpty(Some(&winsize(rows, cols)), None).expect("openpty");
        let child = {
            let mut command = hull.command(args);
            let slave = || Stdio::from(pty.slave.try_clone().expect("dup slave"));
            command.stdin(slave()).stdout(slave()).stderr(slave());
            // SAFETY: only async-signal-safe calls between fork and exec;
            // fd 0 is the slave by now.
            unsafe {
                command.pre_exec(|| {
                    if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            command.spawn().expect("running hull on a pty")
        };
        // Only hull holds the slave now: its exit ends the reads below (EIO).
        drop(pty.slave);
        let master = std::fs::File::from(pty.master);
        let screen = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().expect("dup master");
        let shown = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                shown.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Self {
            child,
            master,
            screen,
        }
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.screen.lock().unwrap()).into_owned()
    }

    /// Waits until the terminal shows `text` (anywhere, at any time).
    fn expect(&self, text: &str) {
        assert!(
            eventually(PATIENCE, || self.screen().contains(text)),
            "{text:?} never appeared; the terminal shows:\n{}",
            self.screen()
        );
    }

    /// Types `keys` every half second until the terminal shows `text`: for
    /// what takes a while to arrive (a new window size).
    fn ask_until(&mut self, keys: &str, text: &str) {
        let mut polls = 0;
        let arrived = eventually(PATIENCE, || {
            if polls % 5 == 0 {
                self.type_keys(keys);
            }
            polls += 1;
            self.screen().contains(text)
        });
        assert!(
            arrived,
            "{text:?} never appeared; the terminal shows:\n{}",
            self.screen()
        );
    }

    /// Types `keys`.
    fn type_keys(&mut self, keys: &str) {
        self.master
            .write_all(keys.as_bytes())
            .expect("typing into the pty");
    }

    /// Resizes the terminal; the kernel sends `hull` SIGWINCH.
    fn resize(&self, rows: u16, cols: u16) {
        use std::os::fd::AsRawFd;
        let size = winsize(rows, cols);
        // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer.
        let result = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
        assert_eq!(result, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
    }

    /// Whether the terminal is in canonical mode with echo, as a shell
    /// leaves it, rather than hull's raw mode. (On a pty's master, tcgetattr
    /// reads the slave's settings.)
    fn is_cooked(&self) -> bool {
        let attrs = nix::sys::termios::tcgetattr(&self.master).expect("tcgetattr");
        let cooked = LocalFlags::ICANON | LocalFlags::ECHO;
        attrs.local_flags.contains(cooked)
    }

    /// Waits for `hull` to exit; its exit code.
    fn wait(&mut self) -> i32 {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for hull") {
                return status.code().unwrap_or_else(|| {
                    panic!(
                        "hull died: {status}; the terminal shows:\n{}",
                        self.screen()
                    )
                });
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("hull did not exit; the terminal shows:\n{}", self.screen());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn interactive_shell_has_a_terminal_that_follows_the_window() {
    let hull = Hull::with_busybox();
    let mut session = OnPty::spawn(&hull, &["run", "-it", "--rm", BUSYBOX_IMAGE, "sh"], 33, 77);
    session.expect("# ");
    // Markers computed by the shell, so that the echo of what was typed
    // cannot match them.
    session.type_keys(
        "tty; test -t 0 && echo stdin-$((20+1))-tty; stty size; echo to-err-$((1+1)) >&2\r",
    );
    session.expect("/dev/pts/");
    session.expect("stdin-21-tty");
    session.expect("33 77");
    session.expect("to-err-2");

    session.resize(40, 100);
    // SIGWINCH, then the monitor and the agent, pass the size on.
    session.ask_until("stty size\r", "40 100");
    session.type_keys("exit 3\r");
    assert_eq!(session.wait(), 3);
    assert!(session.is_cooked(), "hull left the terminal raw");
}

#[test]
fn exit_code_with_a_terminal_is_the_containers() {
    let hull = Hull::with_busybox();
    let mut session = OnPty::spawn(
        &hull,
        &["run", "-it", "--rm", BUSYBOX_IMAGE, "sh", "-c", "exit 3"],
        24,
        80,
    );
    assert_eq!(session.wait(), 3);
    let mut session = OnPty::spawn(
        &hull,
        &["run", "-it", "--rm", BUSYBOX_IMAGE, "no-such-command"],
        24,
        80,
    );
    assert_eq!(session.wait(), 127);
    assert!(
        session.screen().contains("executable file not found"),
        "{}",
        session.screen()
    );
    assert!(session.is_cooked(), "hull left the terminal raw");
}

#[test]
fn tty_without_a_terminal_on_stdin() {
    let hull = Hull::with_busybox();
    // -t alone: the container gets a terminal even though hull has none.
    let out = hull.run([
        "run",
        "--rm",
        "-t",
        BUSYBOX_IMAGE,
        "sh",
        "-c",
        "echo out; echo err >&2; test -t 1 && echo stdout-is-a-tty; tty; echo TERM=$TERM",
    ]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    for expected in [
        "out\r\n",
        "err\r\n",
        "stdout-is-a-tty\r\n",
        "/dev/pts/0\r\n",
        "TERM=xterm\r\n",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from {text:?}"
        );
    }
    assert_eq!(stderr(&out), "", "a terminal merges stderr into stdout");

    // -it: Docker's refusal, before anything is created.
    let out = hull.run(["run", "--rm", "-it", BUSYBOX_IMAGE, "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("the input device is not a TTY"),
        "{}",
        stderr(&out)
    );
    assert_eq!(ok(&hull, &["ps", "-aq"]), "");
}

#[test]
fn detach_keys_leave_it_running_and_attach_comes_back() {
    let hull = Hull::with_busybox();
    ok(
        &hull,
        &["create", "-it", "--name", "keep", BUSYBOX_IMAGE, "sh"],
    );
    let mut session = OnPty::spawn(&hull, &["start", "-ai", "keep"], 33, 77);
    session.expect("# ");
    session.type_keys("stty size\r");
    session.expect("33 77");
    assert!(
        !session.is_cooked(),
        "the user's terminal must be raw while attached"
    );
    // Ctrl-p Ctrl-q.
    session.type_keys("\x10\x11");
    assert_eq!(session.wait(), 0);
    assert!(session.is_cooked(), "detaching left the terminal raw");
    assert_eq!(
        ok(
            &hull,
            &["inspect", "-f", "{{.State.Status}} {{.Config.Tty}}", "keep"]
        ),
        "running true"
    );

    // A new window, another size: attach passes it on.
    let mut session = OnPty::spawn(&hull, &["attach", "keep"], 20, 60);
    session.ask_until("stty size\r", "20 60");
    session.type_keys("exit 4\r");
    assert_eq!(session.wait(), 4);
    assert_eq!(
        ok(
            &hull,
            &[
                "inspect",
                "-f",
                "{{.State.Status}} {{.State.ExitCode}}",
                "keep"
            ]
        ),
        "exited 4"
    );
    ok(&hull, &["rm", "keep"]);
}

#[test]
fn exec_it_into_a_detached_container() {
    let hull = Hull::with_busybox();
    ok(
        &hull,
        &["run", "-d", "--name", "bg", BUSYBOX_IMAGE, "sleep", "1000"],
    );
    let mut session = OnPty::spawn(&hull, &["exec", "-it", "bg", "sh"], 33, 77);
    session.expect("# ");
    session.type_keys("tty; test -t 0 && echo exec-$((2+3))-tty; stty size\r");
    session.expect("/dev/pts/");
    session.expect("exec-5-tty");
    session.expect("33 77");
    session.resize(50, 120);
    session.ask_until("stty size\r", "50 120");
    session.type_keys("exit 5\r");
    assert_eq!(session.wait(), 5);
    // The container's own process has no terminal and is still there.
    assert_eq!(
        ok(
            &hull,
            &["inspect", "-f", "{{.State.Status}} {{.Config.Tty}}", "bg"]
        ),
        "running false"
    );
    ok(&hull, &["rm", "-f", "bg"]);
}
