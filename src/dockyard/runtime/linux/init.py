"""The code that runs in the container's processes between fork and execve.

``create``: the runtime forks a *setup* child which joins the cgroup and namespaces; with a pid
namespace it forks again so the container's init is PID 1 and reports that init's host pid. The init
builds the rootfs, pivots, reports ``ready`` and blocks opening the exec fifo for writing; ``start``
opening it for reading releases the init, which switches user/capabilities and execs the process.

Messages to the runtime go over a sync pipe as JSON lines: ``{"pid": N}``, ``{"ready": true}``,
``{"error": "..."}``. The pipe is close-on-exec, so for ``exec`` EOF after the pid means success.
Requests the runtime answers with a byte on the go pipe: ``{"userns": true}`` (write the id maps of
the setup child's new user namespace) and ``{"hooks": true}`` (run prestart/createRuntime hooks).
"""

from __future__ import annotations

import _signal
import errno

# Everything these processes import must be imported before pivot_root/setns(mnt): afterwards the
# host's Python library is out of reach. fcntl/struct/resource are small (resource is a .so).
import fcntl
import os
import resource
import struct
import sys

from dockyard.runtime import hooks, jsonio
from dockyard.runtime.linux import capabilities, namespaces, rootfs
from dockyard.runtime.linux.cgroups import Cgroup
from dockyard.runtime.linux.syscalls import (
    AT_RECURSIVE,
    OPEN_TREE_CLONE,
    PR_SET_KEEPCAPS,
    PR_SET_NO_NEW_PRIVS,
    open_tree,
    prctl,
    setdomainname,
    sethostname,
)

TYPE_CHECKING = False  # typing costs ~4 ms per runtime call; annotations are strings anyway
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from dockyard.runtime.linux.seccomp import Filter

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TIOCSCTTY = 0x540E
TIOCSWINSZ = 0x5414


class ProcessError(Exception):
    """Setup failure in a container process, reported to the runtime over the sync pipe."""


def send(fd: int, **msg: Any) -> None:
    os.write(fd, (jsonio.dumps(msg) + "\n").encode())


# -- process setup shared by create and exec -------------------------------------------------------

def env_dict(proc: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in proc.get("env") or []:
        key, _, value = item.partition("=")
        env[key] = value
    return env


def lookpath(name: str, env: dict[str, str], cwd: str = "/") -> str:
    """Resolve args[0] as execvp would, inside the container (after pivot_root / setns); a
    relative path ("./run.sh") is relative to the process's cwd, where it will be exec'd from."""
    if "/" in name:
        full = os.path.join(cwd or "/", name)
        if not os.access(full, os.X_OK) or os.path.isdir(full):  # a directory: EACCES, as Go's LookPath
            raise ProcessError(f'exec: "{name}": stat {name}: no such file or directory'
                               if not os.path.exists(full) else f'exec: "{name}": permission denied')
        return name
    for d in (env.get("PATH") or DEFAULT_PATH).split(":"):
        cand = os.path.join(d or ".", name)
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    raise ProcessError(f'exec: "{name}": executable file not found in $PATH')


def setup_console(sock_fd: int, proc: dict[str, Any]) -> None:
    """Allocate a pty from the container's devpts, make it our controlling tty, send the master."""
    import socket  # already loaded by the runtime, which connected the console socket

    master, slave = os.openpty()
    size = proc.get("consoleSize") or {}
    if size.get("height") or size.get("width"):
        fcntl.ioctl(slave, TIOCSWINSZ, struct.pack("HHHH", size.get("height", 0), size.get("width", 0), 0, 0))
    user = proc.get("user") or {}
    try:
        os.fchown(slave, user.get("uid", 0), user.get("gid", 0))
    except OSError:
        pass
    sock = socket.socket(fileno=sock_fd)
    try:
        socket.send_fds(sock, [b"/dev/ptmx"], [master])
    finally:
        sock.close()
        os.close(master)
    os.setsid()
    fcntl.ioctl(slave, TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)


def apply_limits(proc: dict[str, Any]) -> None:
    if proc.get("rlimits"):
        for rl in proc["rlimits"]:
            num = getattr(resource, rl.get("type", ""), None)
            if not isinstance(num, int):
                raise ProcessError(f"unknown rlimit type {rl.get('type')!r}")
            # the spec's uint64: RLIM_INFINITY is 2^64-1 there, -1 for Python's resource module
            soft, hard = (v if v < 2**63 else resource.RLIM_INFINITY
                          for v in (int(rl.get("soft", 0)), int(rl.get("hard", 0))))
            resource.setrlimit(num, (soft, hard))
    if proc.get("oomScoreAdj") is not None:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(proc["oomScoreAdj"]))


def _home_of(uid: int) -> str:
    try:
        with open("/etc/passwd") as f:
            for line in f:
                parts = line.rstrip("\n").split(":")
                if len(parts) >= 6 and parts[2] == str(uid):
                    return parts[5] or "/"
    except OSError:
        pass
    return "/"


def close_extra_fds(preserve: int) -> None:
    """Mark every fd above 2 + ``preserve`` close-on-exec: nothing of ours or the caller's leaks in."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd >= 3 + preserve:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass  # the fd listdir itself used


def compile_seccomp(spec_linux: dict[str, Any], cache_dir: str | None = None) -> Filter | None:
    if not spec_linux.get("seccomp"):
        return None
    from dockyard.runtime.linux.seccomp import Filter

    return Filter(spec_linux["seccomp"], cache_dir)


def finish_and_exec(proc: dict[str, Any], path: str, env: dict[str, str], preserve_fds: int = 0,
                    sec: Filter | None = None) -> NoReturn:
    """Switch user and capabilities, reset signals, and execve; never returns.

    Without noNewPrivileges the seccomp filter is loaded while we still have CAP_SYS_ADMIN (before
    the user switch); with it, as late as possible, right before execve (runc's order).
    """
    close_extra_fds(preserve_fds)
    nnp = bool(proc.get("noNewPrivileges"))
    user = proc.get("user") or {}
    uid, gid = int(user.get("uid", 0)), int(user.get("gid", 0))
    caps = proc.get("capabilities")
    cwd = proc.get("cwd") or "/"
    try:
        os.chdir(cwd)
    except OSError as exc:
        raise ProcessError(f"chdir to cwd ({cwd!r}) set in config.json failed: {exc.strerror}") from exc
    if sec is not None and not nnp:
        sec.load()
    if caps is not None:
        capabilities.drop_bounding(caps)
        prctl(PR_SET_KEEPCAPS, 1)
    try:
        os.setgroups([int(g) for g in user.get("additionalGids") or []])
        os.setgid(gid)
        os.setuid(uid)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        # EINVAL: an id the container's user namespace does not map
        raise ProcessError(f"process.user uid {uid} / gid {gid} (or additionalGids) are not mapped in "
                           "the container's user namespace") from None
    if caps is not None:
        prctl(PR_SET_KEEPCAPS, 0)
        capabilities.apply(caps)
    if user.get("umask") is not None:
        os.umask(int(user["umask"]))
    if nnp:
        prctl(PR_SET_NO_NEW_PRIVS, 1)
    env.setdefault("HOME", _home_of(uid))
    # Python ignores SIGPIPE/SIGXFSZ; ignored dispositions survive execve, so restore defaults
    # (_signal: the `signal` wrapper imports enum, a few ms per call)
    for sig in (_signal.SIGPIPE, _signal.SIGXFSZ, _signal.SIGINT, _signal.SIGTERM, _signal.SIGCHLD):
        _signal.signal(sig, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])
    if sec is not None and nnp:
        sec.load()
    os.execve(path, proc["args"], env)


# -- create ------------------------------------------------------------------------------------

def create_child(spec: dict[str, Any], bundle: str, fifo: str, cgroup: Cgroup,
                 sync_w: int, console_fd: int | None, go_r: int | None, container_id: str,
                 preserve_fds: int = 0, seccomp_cache: str | None = None) -> NoReturn:
    """Runs in the setup child forked by ``create``; never returns.

    ``go_r`` (only when the spec has prestart/createRuntime hooks or a new user namespace): after
    sending ``{"userns": true}`` (id maps) or ``{"hooks": true}`` the child waits for one byte on
    it, written once the runtime wrote the maps or ran those hooks.
    """
    try:
        os.chdir(bundle)  # relative bind sources are relative to the bundle, as with runc
        cgroup.join_self()
        linux = spec.get("linux") or {}
        proc = spec["process"]
        wanted = namespaces.parse(linux.get("namespaces") or [])
        if "mount" not in wanted:
            raise ProcessError("dockyard-runtime needs a mount namespace (pivot_root)")
        # done while still host root, before a user namespace takes our rights over host files and
        # limits: the fifo's state dir and libseccomp need not be reachable by the container's root,
        # and raising a hard rlimit or lowering oom_score_adj needs host capabilities
        fifo_fd = os.open(fifo, os.O_PATH | os.O_CLOEXEC)
        if wanted.get("user"):
            from dockyard.runtime.linux import userns
        apply_limits(proc)
        sec = compile_seccomp(linux, seccomp_cache)
        root = spec.get("root") or {}
        rootfs_path = os.path.realpath(os.path.join(bundle, root.get("path") or "rootfs"))
        if not os.path.isdir(rootfs_path):
            raise ProcessError(f"rootfs {rootfs_path} is not a directory")

        pinned = _pin_bind_sources(spec) if "user" in wanted else {}

        def map_ids() -> None:
            send(sync_w, userns=True)
            if go_r is None or os.read(go_r, 1) != b"1":
                raise ProcessError("the runtime could not write the user namespace id maps")

        if namespaces.enter(wanted, map_ids if wanted.get("user") == "" else None):
            pid = os.fork()
            if pid:
                send(sync_w, pid=pid)
                os._exit(0)
        else:
            send(sync_w, pid=os.getpid())
        if wanted.get("user"):
            userns.check_joined_maps(linux, wanted["user"])
        hooks_r = go_r
        if go_r is not None and not _runtime_hooks(spec):
            os.close(go_r)
            hooks_r = None
        _init(spec, bundle, rootfs_path, fifo_fd, sec, cgroup, sync_w, console_fd, wanted, hooks_r,
              container_id, preserve_fds, pinned)
    except BaseException as exc:  # report everything, including our own bugs, to `create`
        try:
            send(sync_w, error=_describe(exc))
        finally:
            os._exit(1)


def _runtime_hooks(spec: dict[str, Any]) -> bool:
    h = spec.get("hooks") or {}
    return bool(h.get("prestart") or h.get("createRuntime"))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror and exc.filename is None:
        return str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    return str(exc) or type(exc).__name__


def _pin_bind_sources(spec: dict[str, Any]) -> dict[int, int]:
    """Clone every bind source as a detached mount while still host root (mount index → fd):
    the container's root may not be allowed to walk the path to it (a 0700 parent), and an fd
    opened here could not be bind-mounted from the new mount namespace (runc passes mount fds
    for the same reason)."""
    pinned = {}
    for i, m in enumerate(spec.get("mounts") or []):
        opts = m.get("options") or []
        if m.get("type") == "bind" or "bind" in opts or "rbind" in opts:
            recursive = AT_RECURSIVE if "rbind" in opts else 0
            pinned[i] = open_tree(m.get("source") or "", OPEN_TREE_CLONE | recursive)
    return pinned


def _init(spec: dict[str, Any], bundle: str, rootfs_path: str, fifo_fd: int, sec: Filter | None,
          cgroup: Cgroup, sync_w: int, console_fd: int | None, wanted: dict[str, str],
          go_r: int | None, container_id: str, preserve_fds: int, pinned: dict[int, int]) -> NoReturn:
    proc = spec["process"]
    all_hooks = spec.get("hooks") or {}

    def before_pivot() -> None:
        if go_r is not None:
            send(sync_w, hooks=True)
            if os.read(go_r, 1) != b"1":
                raise ProcessError("createRuntime/prestart hooks failed")
            os.close(go_r)
        if all_hooks.get("createContainer"):
            hooks.run("createContainer", all_hooks["createContainer"],
                      hooks.state_doc(container_id, "creating", os.getpid(), bundle,
                                      spec.get("annotations") or {}))

    if "user" in wanted:
        try:
            os.stat(rootfs_path)
        except PermissionError:
            raise ProcessError(f"rootfs {rootfs_path} is out of reach of the container's root user: "
                               "every directory above it must be searchable by it (as with runc)") from None
    if "uts" in wanted:
        if spec.get("hostname"):
            sethostname(spec["hostname"])
        if spec.get("domainname"):
            setdomainname(spec["domainname"])
    rootfs.prepare(spec, rootfs_path, cgroup, before_pivot, userns="user" in wanted, pinned=pinned)
    if proc.get("terminal"):
        if console_fd is None:
            raise ProcessError("process.terminal is true but no --console-socket was given")
        setup_console(console_fd, proc)
    rootfs.finalize(spec)
    env = env_dict(proc)
    path = lookpath(proc["args"][0], env, proc.get("cwd") or "/")
    send(sync_w, ready=True)
    try:
        wfd = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise ProcessError("cannot reopen the exec fifo: is /proc mounted in the container?") from exc
    # from here on `create` has gone: errors go to the container's stderr
    try:
        os.write(wfd, b"0")
        os.close(wfd)
        os.close(fifo_fd)
        if all_hooks.get("startContainer"):
            hooks.run("startContainer", all_hooks["startContainer"],
                      hooks.state_doc(container_id, "running", os.getpid(), bundle,
                                      spec.get("annotations") or {}))
        finish_and_exec(proc, path, env, preserve_fds, sec)
    except BaseException as exc:
        sys.stderr.write(f"dockyard-runtime: {_describe(exc)}\n")
        sys.stderr.flush()
        os._exit(127)


# -- exec ---------------------------------------------------------------------------------------

def exec_child(init_pid: int, proc: dict[str, Any], cgroup: Cgroup, sync_w: int,
               console_fd: int | None, preserve_fds: int = 0, sec: Filter | None = None) -> NoReturn:
    """Runs in the child forked by ``exec``: join cgroup + namespaces of the init, fork, exec.

    ``sec`` is compiled by the caller before the fork: after setns(mnt) libseccomp cannot be loaded.
    """
    try:
        cgroup.join_self()
        apply_limits(proc)  # before a user namespace takes our host capabilities (see create_child)
        namespaces.join_process(init_pid, [*namespaces.NAMESPACES, "user"])
        pid = os.fork()
        if pid:
            send(sync_w, pid=pid)
            os._exit(0)
        if proc.get("terminal"):
            if console_fd is None:
                raise ProcessError("process.terminal is true but no --console-socket was given")
            setup_console(console_fd, proc)
        env = env_dict(proc)
        path = lookpath(proc["args"][0], env, proc.get("cwd") or "/")
        finish_and_exec(proc, path, env, preserve_fds, sec)
    except BaseException as exc:
        try:
            send(sync_w, error=_describe(exc))
        finally:
            os._exit(1)
