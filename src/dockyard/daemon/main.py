"""``dockyardd`` entry point: parse configuration, set up logging, run the server."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import sys
import time

from dockyard.daemon.config import apply_log_level, load_config
from dockyard.daemon.server import serve
from dockyard.errors import DockyardError


class _Formatter(logging.Formatter):
    """dockerd-like lines: time="..." level=info msg="..."."""

    def format(self, record: logging.LogRecord) -> str:
        level = {"WARNING": "warning", "CRITICAL": "fatal"}.get(record.levelname, record.levelname.lower())
        msg = record.getMessage()
        if record.exc_info:
            msg += "\n" + self.formatException(record.exc_info)
        when = self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
        return f'time="{when}.{int(record.msecs):03d}" level={level} msg="{msg}"'


DEFAULT_LOG_FILE = "/var/log/dockyardd.log"
DETACH_TIMEOUT = 120.0


def detach(log_file: str) -> int | None:
    """Fork into the background. The parent returns its exit status once the child has said
    ``READY=1`` over a private notify socket (the sd_notify protocol), or has died; the child
    returns None and runs the daemon in a session of its own, logging to ``log_file``."""
    name = f"dockyardd-ready-{os.getpid()}-{secrets.token_hex(4)}"
    ready = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    ready.bind("\0" + name)
    try:
        log_fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
    except OSError as exc:
        print(f"dockyardd: cannot open log file {log_file}: {exc.strerror}", file=sys.stderr)
        return 1
    pid = os.fork()
    if pid == 0:
        ready.close()
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(null)
        os.close(log_fd)
        os.environ["NOTIFY_SOCKET"] = "@" + name
        return None
    os.close(log_fd)
    ready.settimeout(0.2)
    deadline = time.monotonic() + DETACH_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if b"READY=1" in ready.recv(4096).split(b"\n"):
                print(pid)
                return 0
        except TimeoutError:
            pass
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            print(f"dockyardd: the daemon exited with status {os.waitstatus_to_exitcode(status)} before "
                  f"it was ready; see {log_file}", file=sys.stderr)
            return 1
    print(f"dockyardd: the daemon (pid {pid}) is not ready after {DETACH_TIMEOUT:.0f}s; see {log_file}",
          file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    try:
        cfg = load_config(sys.argv[1:] if argv is None else argv)
    except DockyardError as exc:
        print(f"dockyardd: {exc}", file=sys.stderr)
        return 1
    if cfg.detach:
        status = detach(cfg.log_file or DEFAULT_LOG_FILE)
        if status is not None:
            return status
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    apply_log_level(cfg.log_level)
    try:
        asyncio.run(serve(cfg))
    except DockyardError as exc:
        logging.getLogger("dockyard.daemon").critical("%s", exc)
        print(f"dockyardd: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except Exception:  # an unexpected failure (e.g. the engine could not open): say so and exit 1
        logging.getLogger("dockyard.daemon").critical("dockyardd failed", exc_info=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
