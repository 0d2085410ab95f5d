"""``exec``: run an extra process inside a running container.

The runtime becomes a child subreaper, forks a child that joins the init's cgroup and namespaces and
forks the process (a pid namespace is only entered by children). Without ``--detach`` the runtime
waits for that process, forwards signals to it and exits with its status, like ``runc exec``.
"""

from __future__ import annotations

import os
import signal

from dockyard.errors import DockyardError
from dockyard.runtime import jsonio
from dockyard.runtime.linux.cgroups import Cgroup
from dockyard.runtime.linux.init import compile_seccomp, exec_child
from dockyard.runtime.linux.syscalls import PR_SET_CHILD_SUBREAPER, prctl
from dockyard.runtime.state import ContainerState, atomic_write

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
              signal.SIGUSR2, signal.SIGWINCH)


def _status_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def run_exec(s: ContainerState, proc: dict[str, Any], console_fd: int | None,
             pid_file: str | None, detach: bool, preserve_fds: int = 0,
             seccomp: dict[str, Any] | None = None) -> int:
    if not proc.get("args"):
        raise DockyardError("process.args must not be empty")
    if not detach:
        prctl(PR_SET_CHILD_SUBREAPER, 1)
    cgroup = Cgroup(s.cgroup_path)
    sec = compile_seccomp({"seccomp": seccomp})  # the container's profile applies to exec too
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(r)
        exec_child(s.pid, proc, cgroup, w, console_fd, preserve_fds, sec)
    os.close(w)
    if console_fd is not None:
        os.close(console_fd)
    data = b""
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        data += chunk
    os.close(r)
    msgs = [jsonio.loads(line) for line in data.splitlines() if line.strip()]
    pid = next((m["pid"] for m in msgs if "pid" in m), 0)
    os.waitpid(child, 0)
    err = next((m["error"] for m in msgs if "error" in m), None)
    if err is not None or not pid:
        if pid:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        raise DockyardError(f"exec failed: {err or 'the exec process exited during setup'}")
    if pid_file:
        atomic_write(pid_file, str(pid).encode(), 0o644)
    if detach:
        return 0
    for sig in _FORWARDED:
        signal.signal(sig, lambda signum, _frame: os.kill(pid, signum))
    while True:
        try:
            reaped, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255
        if reaped == pid:
            return _status_code(status)
