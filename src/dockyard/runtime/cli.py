"""``dockyard-runtime``: a runc-compatible OCI runtime CLI over a ``config.json`` bundle.

Every call starts a fresh interpreter, so this module imports only what the command needs; the
Linux machinery is imported lazily inside the commands.
"""

from __future__ import annotations

import os
import sys
import time

from dockyard.errors import Conflict, DockyardError, InvalidArgument, NotFound
from dockyard.runtime import jsonio
from dockyard.runtime import state as st
from dockyard.runtime.args import Args, parse_args
from dockyard.runtime.linux.cgroups import Cgroup, with_default_devices

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any



def _status(root: str, s: st.ContainerState) -> str:
    if not st.init_alive(s):
        return "stopped"
    if os.path.exists(os.path.join(st.container_dir(root, s.id), "exec.fifo")):
        return "created"
    if s.cgroup_path and Cgroup(s.cgroup_path).frozen():
        return "paused"
    return "running"


def _load_json(path: str, what: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = jsonio.loads(f.read())
    except FileNotFoundError as exc:
        raise NotFound(f"{what} {path} does not exist") from exc
    except InvalidArgument as exc:
        raise InvalidArgument(f"{what} {path}: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidArgument(f"{what} {path} must hold a JSON object")
    return data


# A bundle config the process that forks this runtime (the shim host) has read already:
# (path, identity of the file it read, its JSON). ``create`` takes it from memory while the file
# at that path is still the one read (a rewrite is a new file: atomic rename).
_known_config: tuple[str, tuple[int, int, int, int], dict[str, Any]] | None = None


def remember_config(path: str, identity: tuple[int, int, int, int], spec: dict[str, Any]) -> None:
    """Offer ``spec``, read from ``path`` whose ``file_identity`` was ``identity``, to the next
    ``create`` forked from this process."""
    global _known_config
    _known_config = (path, identity, spec)


def file_identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _bundle_config(path: str) -> dict[str, Any]:
    known = _known_config
    if known is not None and known[0] == path:
        try:
            if file_identity(os.stat(path)) == known[1]:
                return known[2]
        except OSError:
            pass
    return _load_json(path, "bundle config")


def _connect_console(path: str | None, terminal: bool) -> int | None:
    if not terminal:
        if path:
            raise InvalidArgument("--console-socket given but process.terminal is false")
        return None
    if not path:
        raise InvalidArgument("process.terminal is true but --console-socket was not given")
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise InvalidArgument(f"cannot connect to console socket {path}: {exc.strerror}") from exc
    return sock.detach()


def _read_sync(fd: int, on_request: Callable[[dict[str, Any], list[dict[str, Any]]], None] | None = None,
               ) -> list[dict[str, Any]]:
    """Read JSON lines from the sync pipe until error, or ready once the init's pid is known, or
    EOF; a request (``{"userns"}``: write the id maps, ``{"hooks"}``: run the runtime hooks) calls
    ``on_request(msg, msgs so far)``.

    With a pid namespace the init's pid comes from the setup child and ``ready`` from the init, two
    writers: the init can be scheduled first and say ``ready`` before its parent has sent the pid,
    so ``ready`` alone does not end the read (the setup child sends the pid before it exits)."""
    msgs: list[dict[str, Any]] = []
    buf = b""
    ready = has_pid = False
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            return msgs
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            msg = jsonio.loads(line)
            msgs.append(msg)
            if ("hooks" in msg or "userns" in msg) and on_request is not None:
                on_request(msg, msgs)
            has_pid = has_pid or "pid" in msg
            ready = ready or "ready" in msg
            if "error" in msg or (ready and has_pid):
                return msgs


def _write_pid_file(path: str | None, pid: int) -> None:
    if path:
        st.atomic_write(path, str(pid).encode(), 0o644)


# -- commands ------------------------------------------------------------------------------------

def cmd_create(root: str, args: Args) -> int:
    bundle = os.path.abspath(args.bundle)
    spec = _bundle_config(os.path.join(bundle, "config.json"))
    proc = spec.get("process") or {}
    if not proc.get("args"):
        raise InvalidArgument("process.args must not be empty")
    linux = spec.get("linux") or {}
    from dockyard.runtime.linux import namespaces

    # checked before anything exists, so a bad spec leaves nothing behind
    wanted = namespaces.parse(linux.get("namespaces") or [])
    if "user" in wanted or linux.get("uidMappings") or linux.get("gidMappings"):
        from dockyard.runtime.linux import userns

        userns.check(linux, wanted, proc)
    new_userns = wanted.get("user") == ""
    cgroup = Cgroup(linux.get("cgroupsPath") or f"/dockyard/{args.id}")
    console_fd = _connect_console(args.console_socket, bool(proc.get("terminal")))
    cdir = st.make_dir(root, args.id)
    init_pid = 0
    try:
        fifo = os.path.join(cdir, "exec.fifo")
        os.mkfifo(fifo, 0o622)
        if "user" in wanted:  # the init reopens it as the container's root: "other" to the host
            os.chmod(fifo, 0o622)  # mkfifo honoured the umask; 0622 as runc makes it
        cgroup.create()
        cgroup.set(with_default_devices(linux.get("resources") or {}, linux.get("devices") or []))
        from dockyard.runtime.linux.init import create_child

        spec_hooks = spec.get("hooks") or {}
        runtime_hooks = (spec_hooks.get("prestart") or []) + (spec_hooks.get("createRuntime") or [])
        go_r, go_w = os.pipe() if runtime_hooks or new_userns else (None, None)
        r, w = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(r)
            if go_w is not None:
                os.close(go_w)
            # compiled seccomp filters are kept under the runtime's root, by profile
            create_child(spec, bundle, fifo, cgroup, w, console_fd, go_r, args.id, _preserve(args),
                         seccomp_cache=os.path.join(root, ".seccomp"))
        os.close(w)
        if go_r is not None:
            os.close(go_r)
        if console_fd is not None:
            os.close(console_fd)

        def on_request(msg: dict[str, Any], msgs: list[dict[str, Any]]) -> None:
            assert go_w is not None
            if "userns" in msg:  # the setup child is in its new user namespace: map it
                from dockyard.runtime.linux import userns

                userns.write_id_maps(child, linux)
                os.write(go_w, b"1")
                return
            # prestart/createRuntime: in the runtime's namespaces, the container's already exist
            from dockyard.runtime import hooks

            pid = next((m["pid"] for m in msgs if "pid" in m), 0)
            doc = hooks.state_doc(args.id, "creating", pid, bundle, spec.get("annotations") or {})
            hooks.run("prestart", spec_hooks.get("prestart") or [], doc)
            hooks.run("createRuntime", spec_hooks.get("createRuntime") or [], doc)
            os.write(go_w, b"1")

        try:
            msgs = _read_sync(r, on_request if go_w is not None else None)
        finally:  # on a failure the init sees EOF on go_r and is killed below through the cgroup
            os.close(r)
            if go_w is not None:
                os.close(go_w)
        for m in msgs:
            init_pid = m.get("pid", init_pid)
        if init_pid != child:
            os.waitpid(child, 0)
        if not msgs or "error" in msgs[-1] or not any("ready" in m for m in msgs) or init_pid <= 0:
            err = msgs[-1].get("error") if msgs else None
            raise DockyardError(f"container init failed: {err or 'exited during setup'}")
        s = st.ContainerState(id=args.id, bundle=bundle, pid=init_pid,
                              pid_start=st.proc_start_time(init_pid),
                              created=time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z",
                              rootfs=(spec.get("root") or {}).get("path") or "rootfs",
                              cgroup_path=cgroup.path, annotations=spec.get("annotations") or {})
        st.save(root, s)
        _write_pid_file(args.pid_file, init_pid)
    except BaseException:
        if init_pid:
            _kill_quiet(init_pid, 9)
        _destroy(root, args.id, cgroup)
        raise
    return 0


def _kill_quiet(pid: int, sig: int) -> None:
    if pid <= 0:  # kill(0) / kill(-1) would signal our whole process group / every process
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _destroy(root: str, container_id: str, cgroup: Cgroup | None) -> None:
    import shutil

    if cgroup is not None:
        for pid in cgroup.procs():
            _kill_quiet(pid, 9)
        cgroup.destroy()
    shutil.rmtree(st.container_dir(root, container_id), ignore_errors=True)


def cmd_start(root: str, args: Args) -> int:
    s = st.load(root, args.id)
    status = _status(root, s)
    if status != "created":
        raise Conflict(f"cannot start a container that is {status}")
    fifo = os.path.join(st.container_dir(root, args.id), "exec.fifo")
    import select

    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP)
        deadline = time.monotonic() + 10
        data = b""
        while not data:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not poller.poll(remaining * 1000):
                raise DockyardError("timed out waiting for the container init to start")
            try:
                data = os.read(fd, 1)
            except BlockingIOError:
                continue
            if not data:
                raise Conflict("cannot start an already stopped container")
    finally:
        os.close(fd)
    os.unlink(fifo)
    poststart = (_bundle_spec(s).get("hooks") or {}).get("poststart")
    if poststart:
        from dockyard.runtime import hooks

        hooks.run_quietly("poststart", poststart, hooks.state_doc(s.id, "running", s.pid, s.bundle, s.annotations))
    return 0


def _bundle_spec(s: st.ContainerState) -> dict[str, Any]:
    """The bundle's config.json as it is now ({} when gone): only hooks are read from it later."""
    try:
        return _load_json(os.path.join(s.bundle, "config.json"), "bundle config")
    except DockyardError:
        return {}


def cmd_state(root: str, args: Args) -> int:
    s = st.load(root, args.id)
    status = _status(root, s)
    out = {"ociVersion": st.OCI_VERSION, "id": s.id, "status": status,
           "pid": s.pid if status != "stopped" else 0, "bundle": s.bundle,
           "rootfs": os.path.join(s.bundle, s.rootfs), "created": s.created,
           "annotations": s.annotations}
    sys.stdout.write(jsonio.dumps(out) + "\n")
    return 0


def parse_signal(value: str) -> int:
    import signal

    if value.isdigit():
        return int(value)
    name = value.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    sig = getattr(signal.Signals, name, None) if name in signal.Signals.__members__ else None
    if sig is None:
        raise InvalidArgument(f"unknown signal {value!r}")
    return int(sig)


def cmd_kill(root: str, args: Args) -> int:
    s = st.load(root, args.id)
    sig = parse_signal(args.signal)
    status = _status(root, s)
    if status == "stopped":
        raise Conflict("container not running")
    if args.all and s.cgroup_path:
        cg = Cgroup(s.cgroup_path)
        for pid in cg.procs():
            _kill_quiet(pid, sig)
        if status == "paused" and sig == 9:
            cg.freeze(False)  # a frozen task never dies; thaw so SIGKILL lands
    else:
        if s.pid <= 0:
            raise Conflict("container has no init process")
        os.kill(s.pid, sig)
    return 0


def cmd_delete(root: str, args: Args) -> int:
    try:
        s = st.load(root, args.id)
    except NotFound:
        if args.force:
            return 0
        raise
    status = _status(root, s)
    cg = Cgroup(s.cgroup_path) if s.cgroup_path else None
    if status in ("running", "paused") and not args.force:
        raise Conflict(f"cannot delete container {args.id} that is not stopped: {status}")
    if status != "stopped" or (cg is not None and cg.procs()):
        _kill_quiet(s.pid, 9)
        if cg is not None:
            for pid in cg.procs():
                _kill_quiet(pid, 9)
            if status == "paused":
                cg.freeze(False)
            deadline = time.monotonic() + 5
            while cg.procs() and time.monotonic() < deadline:
                time.sleep(0.005)
    _destroy(root, args.id, cg)
    poststop = (_bundle_spec(s).get("hooks") or {}).get("poststop")
    if poststop:
        from dockyard.runtime import hooks

        hooks.run_quietly("poststop", poststop, hooks.state_doc(s.id, "stopped", 0, s.bundle, s.annotations))
    return 0


def _freeze(root: str, args: Args, frozen: bool) -> int:
    """pause (frozen) needs a running container, resume a paused one."""
    s = st.load(root, args.id)
    status = _status(root, s)
    want = "running" if frozen else "paused"
    if status != want:
        raise Conflict(f"container {args.id} is {status}, not {want}")
    Cgroup(s.cgroup_path).freeze(frozen)
    return 0


def cmd_pause(root: str, args: Args) -> int:
    return _freeze(root, args, True)


def cmd_resume(root: str, args: Args) -> int:
    return _freeze(root, args, False)


def cmd_ps(root: str, args: Args) -> int:
    s = st.load(root, args.id)
    pids = Cgroup(s.cgroup_path).procs() if s.cgroup_path else []
    if args.format == "json":
        sys.stdout.write(jsonio.dumps(pids) + "\n")
    else:
        sys.stdout.write("PID\n" + "".join(f"{p}\n" for p in pids))
    return 0


def cmd_update(root: str, args: Args) -> int:
    s = st.load(root, args.id)
    if _status(root, s) == "stopped":
        raise Conflict(f"container {args.id} is stopped")
    res = _load_json(args.resources, "resources file") if args.resources != "-" else jsonio.loads(sys.stdin.read())
    Cgroup(s.cgroup_path).set(res)
    return 0


def cmd_exec(root: str, args: Args) -> int:
    from dockyard.runtime.exec import run_exec

    s = st.load(root, args.id)
    status = _status(root, s)
    if status not in ("running", "created"):
        raise Conflict(f"cannot exec in a container that is {status}")
    if not args.process:
        raise InvalidArgument("exec needs --process FILE")
    proc = _load_json(args.process, "process file")
    if args.tty:
        proc["terminal"] = True
    console_fd = _connect_console(args.console_socket, bool(proc.get("terminal")))
    seccomp = (_bundle_spec(s).get("linux") or {}).get("seccomp")
    return run_exec(s, proc, console_fd, args.pid_file, args.detach, _preserve(args), seccomp)


def _preserve(args: Args) -> int:
    value = args.preserve_fds or "0"
    if not str(value).isdigit():
        raise InvalidArgument(f"--preserve-fds must be a number, not {value!r}")
    return int(value)


COMMANDS = {
    "create": cmd_create, "start": cmd_start, "state": cmd_state, "kill": cmd_kill,
    "delete": cmd_delete, "pause": cmd_pause, "resume": cmd_resume, "ps": cmd_ps,
    "update": cmd_update, "exec": cmd_exec,
}


def _log_error(args: Args | None, message: str) -> None:
    sys.stderr.write(f"dockyard-runtime: {message}\n")
    if args is not None and args.log:
        _log_file(args.log, args.log_format, message)


def _log_file(path: str, log_format: str, message: str) -> None:
    try:
        with open(path, "a") as f:
            if log_format == "json":
                f.write(jsonio.dumps({"level": "error", "msg": message,
                                    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")
            else:
                f.write(f"error: {message}\n")
    except OSError:
        pass


def _os_message(exc: OSError) -> str:
    return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")


def _dispatch(argv: list[str], inline: bool = False) -> tuple[Args | None, int, str | None]:
    """Parse and run one command: (its args if they parsed, exit code, error message or None).
    ``inline``: only ``INLINE_COMMANDS``, and any exception becomes the message."""
    args: Args | None = None
    try:
        args = parse_args(argv)
        if inline and args.command not in INLINE_COMMANDS:
            raise InvalidArgument(f"{args.command} cannot run inline")
        return args, COMMANDS[args.command](args.root, args), None
    except DockyardError as exc:
        return args, 1, str(exc)
    except OSError as exc:
        return args, 1, _os_message(exc)
    except Exception as exc:
        if not inline:
            raise
        return args, 1, f"{type(exc).__name__}: {exc}"  # a bug here must fail the command, never the host


def main(argv: list[str] | None = None) -> int:
    args, code, message = _dispatch(sys.argv[1:] if argv is None else argv)
    if message is not None:
        _log_error(args, message)
    return code


# Commands a caller that has this module imported (the shim host) may run in its own process
# instead of a forked child: they only read the state dir, signal, open the exec fifo or remove
# directories, and change nothing process-wide (no cwd, no signal dispositions, no stdio) — but
# for the poststart/poststop hooks of a bundle that has them: run those bundles in a child.
INLINE_COMMANDS = frozenset({"start", "kill", "delete"})


def run_inline(argv: list[str]) -> str | None:
    """``main(argv)`` for one of ``INLINE_COMMANDS`` in the calling process, without printing:
    None on success, else the error message ``main`` would have printed (and logged to --log)."""
    args, code, message = _dispatch(argv, inline=True)
    if message is None and code != 0:
        message = f"exit status {code}"
    if message is not None and args is not None and args.log:
        _log_file(args.log, args.log_format, message)
    return message
