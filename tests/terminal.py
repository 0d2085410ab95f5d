"""Drive a command under a real pseudo-terminal, as a person at a keyboard would."""

from __future__ import annotations

import os
import pty
import select
import time


def run_in_pty(argv: list[str], send: bytes, *, env: dict[str, str] | None = None,
               after: bytes | None = None, timeout: float = 30) -> tuple[int, bytes]:
    """Run ``argv`` on a new pty and type ``send`` — at once, or once ``after`` has appeared in the
    output. Returns (exit code, everything the terminal showed)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe(argv[0], argv, env if env is not None else dict(os.environ))
    out = b""
    sent = False
    if after is None:
        os.write(fd, send)
        sent = True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        if not sent and after is not None and after in out:
            os.write(fd, send)
            sent = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out
