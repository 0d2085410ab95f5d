"""The shim's only way to the OCI runtime: its command line (runc-compatible), plus pty/cgroup helpers.

Nothing here imports ``dockyard.runtime``; ``runc`` is a drop-in for the built-in runtime.
"""

from __future__ import annotations

import fcntl
import os
import select
import socket
import struct
import subprocess
import termios

from dockyard.errors import Internal, InvalidArgument

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

    def argv(self, *args: str) -> list[str]:
        return [self.path, "--root", self.root, *args]

    def run(self, *args: str) -> None:
        """A short command whose stdio the container does not inherit (start, kill, delete, ...)."""
        err_path = os.path.join(self.state_dir, "runtime.err")
        with open(err_path, "w+b") as err:
            try:
                rc = subprocess.call(self.argv(*args), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=err, cwd=self.state_dir)
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
                proc = subprocess.Popen(argv, stdin=stdio[0], stdout=stdio[1],
                                        stderr=stdio[2] if err_file is None else err_file,
                                        cwd=self.state_dir, close_fds=True)
            except OSError as exc:
                raise Internal(f"cannot run runtime {self.path}: {exc.strerror}") from exc
            master = _receive_console(proc, console) if console is not None else None
            rc = proc.wait()
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


def _receive_console(proc: subprocess.Popen[bytes], console: socket.socket) -> int | None:
    """Wait for the runtime to connect to the console socket and pass the pty master, or to exit."""
    pidfd = os.pidfd_open(proc.pid)
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


def console_listener(state_dir: str, name: str) -> socket.socket:
    """A unix socket for ``--console-socket`` bound relative to the state dir (our cwd)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    path = os.path.join(state_dir, name)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock.bind(name)
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
