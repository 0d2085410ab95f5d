"""The shim's only way to the OCI runtime: its command line (runc-compatible), plus pty/cgroup helpers.

``runc`` is a drop-in for the built-in runtime. The built-in ``dockyard-runtime`` is not exec'd but
run in a forked child of the shim (``dockyard.runtime.cli.main``, same argv, stdio, cwd and exit
status): that skips a fresh interpreter (~12 ms) on every create/start/delete of the start path.
"""

from __future__ import annotations

import _signal
import fcntl
import gc
import os
import select
import socket
import struct
import sys
import termios

from dockyard.errors import Internal, InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CGROUP_ROOT = "/sys/fs/cgroup"
# Messages of a failed create/exec that mean "the user asked for something that cannot run".
_USER_ERRORS = ("executable file not found", "no such file or directory", "permission denied",
                "not a directory", "is a directory")


class Runtime:
    """Runs ``<path> --root <root> <command> ...`` with the state dir as working directory, so the
    console socket can be named relative to it (unix socket paths are limited to 108 bytes)."""

    def __init__(self, path: str, root: str, state_dir: str, container_id: str) -> None:
        self.path = path
        self.root = root
        self.state_dir = state_dir
        self.id = container_id
        self.builtin = is_builtin_runtime(path)
        # the built-in runtime's start/kill/delete run in this process (no fork, ~2.5 ms each);
        # the shim turns it off for a bundle with hooks, which then run in a child as before
        self.inline = self.builtin

    def argv(self, *args: str) -> list[str]:
        return [self.path, "--root", self.root, *args]

    def _launch(self, args: tuple[str, ...] | list[str], stdio: tuple[int, int, int]) -> int:
        """Start the runtime with ``stdio`` and the state dir as cwd; returns its pid."""
        if self.builtin:
            return _fork_builtin(["--root", self.root, *args], stdio, self.state_dir)
        import subprocess  # only for an exec'd runtime (runc): ~4 ms of imports

        proc = subprocess.Popen(self.argv(*args), stdin=stdio[0], stdout=stdio[1], stderr=stdio[2],
                                cwd=self.state_dir, close_fds=True, process_group=0)
        proc.returncode = 0  # we reap it ourselves (waitpid); keep Popen.__del__ from warning
        return proc.pid

    def run(self, *args: str) -> None:
        """A short command whose stdio the container does not inherit (start, kill, delete, ...)."""
        if self.inline:
            cli = preload_builtin_runtime()
            if args[0] in cli.INLINE_COMMANDS:
                message = cli.run_inline(["--root", self.root, *args])
                if message is not None:
                    raise Internal(f"runtime {args[0]} failed: {_clean(f'dockyard-runtime: {message}'.encode())}")
                return
        err_path = os.path.join(self.state_dir, "runtime.err")
        with open(err_path, "w+b") as err, open(os.devnull, "r+b") as null:
            try:
                rc = _wait(self._launch(args, (null.fileno(), null.fileno(), err.fileno())))
            except OSError as exc:
                raise Internal(f"cannot run runtime {self.path}: {exc.strerror}") from exc
            if rc != 0:
                err.seek(0)
                raise Internal(f"runtime {args[0]} failed: {_clean(err.read())}")

    def spawn(self, args: list[str], stdio: tuple[int, int, int], console: socket.socket | None,
              err_reader: int | None) -> int | None:
        """Run ``create``/``exec --detach``: the container inherits ``stdio`` unless it has a
        terminal, in which case the pty master arrives on ``console`` and is returned.

        ``err_reader`` is the read end of the stderr pipe given in ``stdio`` (a failing runtime
        writes its message there); without it, stderr of the runtime is a file we read on failure.
        """
        argv = self.argv(*args)
        err_path = os.path.join(self.state_dir, "runtime.err")
        err_file = open(err_path, "w+b") if err_reader is None else None  # noqa: SIM115
        try:
            try:
                pid = self._launch(args, (stdio[0], stdio[1],
                                          stdio[2] if err_file is None else err_file.fileno()))
            except OSError as exc:
                raise Internal(f"cannot run runtime {argv[0]}: {exc.strerror}") from exc
            try:
                master = _receive_console(pid, console) if console is not None else None
            finally:
                rc = _wait(pid)
            if rc != 0:
                if master is not None:
                    os.close(master)
                if err_file is not None:
                    err_file.seek(0)
                    msg = _clean(err_file.read())
                else:
                    msg = _clean(_read_available(err_reader))
                kind = InvalidArgument if any(s in msg.lower() for s in _USER_ERRORS) else Internal
                raise kind(f"runtime {args[0]} failed: {msg}")
            if console is not None and master is None:
                raise Internal(f"runtime {args[0]} did not send a pty master over the console socket")
            return master
        finally:
            if err_file is not None:
                err_file.close()


def is_builtin_runtime(path: str) -> bool:
    """``path`` is the ``dockyard-runtime`` console script (it imports ``dockyard.runtime.cli``)."""
    if os.path.basename(path) != "dockyard-runtime":
        return False
    try:
        with open(path, "rb") as f:
            return b"dockyard.runtime.cli" in f.read(1024)
    except OSError:
        return False


def preload_builtin_runtime() -> Any:
    """Import the built-in runtime's CLI and what its ``create`` needs; returns the CLI module.
    Also ``shutil`` (with ``re``, ``bz2``, ``lzma``): ``delete`` in the runtime and in the shim
    removes directories with it, and importing it there costs ~4 ms on every container's exit.
    The seccomp compiler (and the ``_sha256`` its cache key uses) is imported by the init only,
    i.e. in every container's setup child afresh unless it is here (~1.5 ms per start)."""
    import shutil  # noqa: F401

    from dockyard.runtime import cli
    from dockyard.runtime.linux import init as _init  # noqa: F401  # used by create
    from dockyard.runtime.linux import seccomp

    seccomp.preload()
    return cli


def _fork_builtin(argv: list[str], stdio: tuple[int, int, int], cwd: str) -> int:
    """Run ``dockyard-runtime argv`` in a forked child, set up as exec would leave it: the given
    stdio, cwd, no other fds, default signal handling. The runtime is imported here, in the shim,
    so every later call reuses it (the create path also needs the Linux init machinery)."""
    cli = preload_builtin_runtime()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        gc.disable()  # a collected shim object could close an fd number the runtime now uses
        # a process group of its own: no signal the runtime sends to "its group" (kill(0, …))
        # can reach the shim host and the other containers' shims in it
        os.setpgid(0, 0)
        for target, fd in enumerate(stdio):
            os.dup2(fd, target)  # dup2 leaves the new fd inheritable, as exec'd stdio is
        os.closerange(3, 65536)  # close_range(2): what Popen(close_fds=True) gives the exec'd one
        os.chdir(cwd)
        # _signal: the `signal` wrappers convert every argument and result to enums (~0.3 ms here)
        _signal.set_wakeup_fd(-1)
        for sig in (_signal.SIGCHLD, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGUSR1, _signal.SIGUSR2):
            _signal.signal(sig, _signal.SIG_DFL)
        _signal.pthread_sigmask(_signal.SIG_SETMASK, ())
        code = cli.main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:  # never return into the shim's loop from the child
        with_msg = f"dockyard-runtime: {exc}\n".encode()
        try:
            os.write(2, with_msg)
        except OSError:
            pass
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    raise AssertionError("unreachable")  # pragma: no cover


def _wait(pid: int) -> int:
    """Reap ``pid`` (ours alone: the shim's SIGCHLD loop only reaps pids it owns or doesn't know)."""
    while True:
        try:
            _, status = os.waitpid(pid, 0)
        except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for clarity
            continue
        return os.waitstatus_to_exitcode(status)


def _receive_console(pid: int, console: socket.socket) -> int | None:
    """Wait for the runtime to connect to the console socket and pass the pty master, or to exit."""
    pidfd = os.pidfd_open(pid)
    try:
        while True:
            ready, _, _ = select.select([console.fileno(), pidfd], [], [])
            if console.fileno() in ready:
                conn, _ = console.accept()
                with conn:
                    conn.settimeout(10)
                    _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
                if not fds:
                    raise Internal("console socket: the runtime sent no file descriptor")
                return fds[0]
            # exited without connecting: a connection may still wait in the backlog
            console.setblocking(False)
            try:
                conn, _ = console.accept()
            except BlockingIOError:
                return None
            finally:
                console.setblocking(True)
            with conn:
                conn.settimeout(10)
                _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
            return fds[0] if fds else None
    finally:
        os.close(pidfd)


def _read_available(fd: int | None) -> bytes:
    if fd is None:
        return b""
    out = b""
    os.set_blocking(fd, False)
    try:
        while len(out) < 65536:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            out += chunk
    except BlockingIOError:
        pass
    return out


def _clean(raw: bytes) -> str:
    """The runtime's message without log decoration (runc prints ``time=... level=error msg=...``)."""
    text = raw.decode("utf-8", "replace").strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return "no error message"
    last = lines[-1]
    marker = 'msg="'
    if marker in last:
        last = last.split(marker, 1)[1].rsplit('"', 1)[0].replace('\\"', '"')
    return last


def console_listener(path: str, address: str) -> socket.socket:
    """A unix socket for ``--console-socket`` at ``path``, bound as ``address`` (the same file,
    possibly named through ``/proc/<pid>/fd/<dirfd>/`` to fit sun_path)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock.bind(address)
    sock.listen(1)
    return sock


def set_winsize(fd: int, height: int, width: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def oom_killed(cgroups_path: str, container_id: str) -> bool:
    """Whether the kernel OOM-killed anything in the container's memory cgroup (v1 or v2)."""
    rel = (cgroups_path or container_id).lstrip("/")
    if ":" in rel:  # systemd "slice:prefix:name" form: not used by dockyard; give up quietly
        return False
    v1 = os.path.join(CGROUP_ROOT, "memory", rel, "memory.oom_control")
    v2 = os.path.join(CGROUP_ROOT, rel, "memory.events")
    for path in (v1, v2):
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value or 0) > 0
    return False
