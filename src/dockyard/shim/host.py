"""The process shims live in: one event loop, one reaper, any number of containers.

The daemon keeps one **shim host** (``python -m dockyard.shim.host``, started on first use): every
container it starts becomes a ``Shim`` object inside it instead of a process of its own. A Python
process costs ~11 MB RSS (~3 MB PSS when forked from a pre-imported parent); a shim object and its
pipes cost tens of kilobytes — so an idle container adds almost nothing (``docs/shim-host.md``).

The host is a child subreaper: the containers' init processes (daemonised by the runtime) are
re-parented to it, and it alone reaps them, handing each exit to the shim that claimed the pid.
It runs in a session of its own and does not depend on the daemon: when the daemon goes away
(stdin EOF) it stops taking requests and serves its containers until the last one is deleted,
then exits. A restarted daemon starts a new host for new containers and talks to the old
containers through their ``shim.sock`` as before — which process hosts a shim is invisible to it.

    python -m dockyard.shim.host --fd N    # requests and replies on the socket N

The first process forks the host off and exits, so the host is nobody's child but its own
session's (the daemon can neither kill it by accident nor leave it a zombie). Request: one JSON line, the shim's argv (without the program name). Reply: one JSON line
``{"status": N, "stderr": "..."}``: 0 once the flags are accepted, 2 with the reason for bad flags;
after a 0, a second line ``{"ready": {...}}`` once the container is created or failed: what the
shim's ``ready`` file holds (the engine polls that file only for an exec'd shim).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time

from dockyard.errors import DockyardError
from dockyard.runtime import jsonio
from dockyard.shim import protocol as proto
from dockyard.shim.reactor import Reactor
from dockyard.shim.server import Options, Shim

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

PR_SET_CHILD_SUBREAPER = 36
MAX_LOOP_ERRORS = 100


class Host:
    def __init__(self) -> None:
        self.reactor = Reactor()
        self.shims: set[Shim] = set()
        self.owners: dict[int, Shim] = {}   # pid of an init or exec -> the shim that started it
        self.accepting = False              # a daemon may still send requests

    # ----------------------------------------------------------------- what shims ask of the host
    def claim(self, pid: int, shim: Shim) -> None:
        self.owners[pid] = shim

    def release(self, shim: Shim) -> None:
        self.shims.discard(shim)
        for pid in [p for p, s in self.owners.items() if s is shim]:
            del self.owners[pid]

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            shim = self.owners.pop(pid, None)
            if shim is not None:  # else a runtime helper re-parented to us
                shim.reaped(pid, status)

    # --------------------------------------------------------------------------------- start-up
    def start(self, opts: Options, announce: Callable[[dict[str, object]], None] | None = None) -> Shim | None:
        """Create the container and serve it; the outcome goes to its ``ready`` file either way,
        and first to ``announce`` (the reply line to the daemon's request) when given."""
        os.makedirs(opts.state_dir, mode=0o700, exist_ok=True)
        log_fd = os.open(os.path.join(opts.state_dir, proto.LOG_FILE),
                         os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)

        def log(msg: str) -> None:
            with contextlib.suppress(OSError):
                os.write(log_fd, f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {msg}\n".encode())

        for name in (proto.READY_FILE, proto.EXIT_FILE):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(opts.state_dir, name))
        with open(os.path.join(opts.state_dir, proto.PID_FILE), "w") as f:
            f.write(str(os.getpid()))
        shim = Shim(opts, log, self)
        shim.log_fd = log_fd
        self.shims.add(shim)
        try:
            pid = shim.create()
            shim.listen()
        except Exception as exc:
            if isinstance(exc, DockyardError):
                log(f"start failed: {exc}")
                ready: dict[str, object] = {"error": str(exc), "kind": type(exc).__name__}
            else:
                import traceback
                log("start failed:\n" + traceback.format_exc())
                ready = {"error": f"shim: {exc}", "kind": "Internal"}
            with contextlib.suppress(DockyardError):  # leave no half-created container behind
                shim.rt.run("delete", "--force", opts.id)
            if announce is not None:
                announce({"ready": ready})
            write_ready(opts.state_dir, ready)
            shim.close()
            return None
        if announce is not None:
            announce({"ready": {"pid": pid}})
        write_ready(opts.state_dir, {"pid": pid})
        return shim

    # -------------------------------------------------------------------------------- main loop
    def run(self) -> None:
        """Serve until no shim is left and no daemon can ask for another."""
        rfd, wfd = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(wfd, warn_on_full_buffer=False)
        self.reactor.want_read(rfd, lambda: self._sigchld(rfd))
        self.reap()
        errors = 0
        while self.shims or self.accepting:
            deadlines = [d for d in (s.deadline() for s in self.shims) if d is not None]
            timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            try:
                self.reactor.run_once(timeout)
                now = time.monotonic()
                for shim in list(self.shims):
                    shim.tick(now)
                errors = 0
            except Exception:  # a bug in one callback must not orphan every container here
                import traceback
                for shim in list(self.shims)[:1]:
                    shim.debug_log("loop error:\n" + traceback.format_exc())
                errors += 1
                if errors > MAX_LOOP_ERRORS:
                    raise

    def _sigchld(self, rfd: int) -> None:
        with contextlib.suppress(OSError):
            while os.read(rfd, 512):
                pass
        self.reap()


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def write_ready(state_dir: str, obj: dict[str, object]) -> None:
    path = os.path.join(state_dir, proto.READY_FILE)
    with open(path + ".tmp", "w") as f:
        f.write(jsonio.dumps(obj))
    os.replace(path + ".tmp", path)


class Requests:
    """The daemon's end: argv lines in, a reply line each out (a socket, or a pipe pair)."""

    def __init__(self, host: Host, rfd: int, wfd: int) -> None:
        self.host, self.rfd, self.wfd = host, rfd, wfd
        self.buf = b""
        os.set_blocking(rfd, False)
        host.accepting = True
        host.reactor.want_read(rfd, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.rfd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the daemon went away: serve what we have, take nothing new
            self.host.reactor.forget(self.rfd)
            self.host.accepting = False
            for fd in {self.rfd, self.wfd}:
                with contextlib.suppress(OSError):
                    os.close(fd)
            return
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            self._request(line)

    def _request(self, line: bytes) -> None:
        from dockyard.shim.main import UsageError, parse
        opts = None
        try:
            argv = jsonio.loads(line)
            if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
                raise UsageError("request must be a JSON list of strings")
            opts, _ = parse(argv)
            reply: dict[str, object] = {"status": 0, "stderr": ""}
        except (UsageError, ValueError) as exc:
            reply = {"status": 2, "stderr": f"dockyard-shim: {exc}\n"}
        self._reply(reply)
        if opts is None:
            return
        announced = False

        def announce(ready: dict[str, object]) -> None:
            nonlocal announced
            announced = True
            self._reply(ready)

        try:
            self.host.start(opts, announce)
        finally:  # the daemon waits for this line: never leave it without one
            if not announced:
                self._reply({"ready": {"error": "shim: the container could not be created", "kind": "Internal"}})

    def _reply(self, reply: dict[str, object]) -> None:
        data = (jsonio.dumps(reply) + "\n").encode()
        os.set_blocking(self.wfd, True)   # a reply line is small; the daemon reads it at once
        try:
            os.write(self.wfd, data)
        except OSError:
            self.host.accepting = False
        finally:
            os.set_blocking(self.wfd, False)


def serve(argv: list[str]) -> None:
    """``python -m dockyard.shim.host --fd N``: requests on the socket N."""
    if len(argv) != 2 or argv[0] != "--fd" or not argv[1].isdigit():
        sys.stderr.write("usage: python -m dockyard.shim.host --fd N\n")
        sys.exit(2)
    fd = int(argv[1])
    if os.fork() > 0:
        os._exit(0)
    from dockyard.shim.ocicli import preload_builtin_runtime
    preload_builtin_runtime()
    become_subreaper()
    host = Host()
    Requests(host, fd, fd)
    host.run()


if __name__ == "__main__":
    serve(sys.argv[1:])
