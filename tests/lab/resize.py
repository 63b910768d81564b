#!/usr/bin/env python3
"""`-it` on a terminal that changes size, for tests/lab/suite.sh.

usage: resize.py COMMAND...   (COMMAND runs `sh` in a container with -it)

Runs COMMAND on a new pty of 33x77 as its controlling terminal, checks that
`stty size` in the container says so, resizes the pty to 40x100 (the kernel
sends COMMAND SIGWINCH), and checks that the container follows. Exits 0 when
it did, 1 with what the terminal showed when it did not.
"""

import fcntl
import os
import select
import struct
import subprocess
import sys
import termios
import time

PATIENCE = 120.0


def set_size(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def take_terminal():
    # In the child, after setsid: the pty on stdin becomes its terminal.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def main():
    master, slave = os.openpty()
    set_size(master, 33, 77)
    child = subprocess.Popen(
        sys.argv[1:],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        preexec_fn=take_terminal,
    )
    os.close(slave)
    screen = bytearray()

    def read_until(text, deadline):
        while text.encode() not in screen:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            ready, _, _ = select.select([master], [], [], min(left, 1.0))
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    return False
                if not chunk:
                    return False
                screen.extend(chunk)
        return True

    def ask_until(question, answer):
        # Asked again until answered: the size may follow a moment later.
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline:
            del screen[:]
            os.write(master, question.encode())
            if read_until(answer, min(deadline, time.monotonic() + 5)):
                return True
        return False

    ok = read_until("# ", time.monotonic() + PATIENCE)
    # The shell computes the marker, so the echo of what was typed cannot match.
    ok = ok and ask_until("echo size-$((1+1)) $(stty size)\r", "size-2 33 77")
    if ok:
        set_size(master, 40, 100)
        ok = ask_until("echo size-$((1+1)) $(stty size)\r", "size-2 40 100")
    if ok:
        os.write(master, b"exit 3\r")
        try:
            code = child.wait(timeout=PATIENCE)
        except subprocess.TimeoutExpired:
            code = None
        ok = code == 3
        if not ok:
            print(f"exit code {code}, wanted 3")
    if not ok:
        child.kill()
        child.wait()
        print("the terminal shows:\n" + screen.decode(errors="replace"))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
