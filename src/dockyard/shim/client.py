"""The daemon's side of the shim: spawn one, and talk to it over ``<state-dir>/shim.sock`` (asyncio)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from dockyard import errors
from dockyard.shim import protocol as proto

READY_TIMEOUT = 60.0
_KINDS: dict[str, type[errors.DockyardError]] = {
    name: cls for name, cls in vars(errors).items()
    if isinstance(cls, type) and issubclass(cls, errors.DockyardError)
}


def _error(reply: dict[str, Any], default: type[errors.DockyardError] = errors.Internal) -> errors.DockyardError:
    cls = _KINDS.get(str(reply.get("kind")), default)
    return cls(str(reply.get("error") or "shim error"))


def read_exit(state_dir: str | Path) -> dict[str, Any] | None:
    """The init's exit record (``exit_code``, ``exited_at``, ``oom_killed``) if the shim wrote one."""
    try:
        with open(os.path.join(state_dir, proto.EXIT_FILE)) as f:
            data: dict[str, Any] = json.load(f)
            return data
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise errors.Internal(f"unreadable shim exit record in {state_dir}: {exc}") from exc


def shim_pid(state_dir: str | Path) -> int | None:
    """The shim's pid if it is alive (from ``shim.pid``)."""
    try:
        pid = int(Path(state_dir, proto.PID_FILE).read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


async def spawn(shim_argv_prefix: list[str], id: str, bundle: str | Path, state_dir: str | Path,
                runtime: str, runtime_root: str | Path, log_path: str | Path,
                log_max_size: int | None = None, log_max_file: int | None = None, tty: bool = False,
                stdin: bool = False, console_size: tuple[int, int] | None = None,
                host: ShimHost | None = None) -> ShimClient:
    """Start a detached shim (it runs ``runtime create``) and wait for ``ready``.

    ``shim_argv_prefix`` is how to run the shim, e.g. ``[sys.executable, "-m", "dockyard.shim.main"]``
    or ``["dockyard-shim"]``. The shim's own error becomes InvalidArgument/Internal/... by its kind.
    With ``host`` the shim is made inside that shim host instead (same flags, same result; the
    exec'd prefix stays the fallback when the host is unusable).
    """
    state = Path(state_dir)
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name in (proto.READY_FILE, proto.EXIT_FILE):
        with contextlib.suppress(FileNotFoundError):
            (state / name).unlink()
    argv = [*shim_argv_prefix, "--id", id, "--bundle", str(bundle), "--state-dir", str(state),
            "--runtime", runtime, "--runtime-root", str(runtime_root), "--log-path", str(log_path)]
    if log_max_size is not None:
        argv += ["--log-max-size", str(log_max_size)]
    if log_max_file is not None:
        argv += ["--log-max-file", str(log_max_file)]
    if tty:
        argv.append("--tty")
    if stdin:
        argv.append("--stdin")
    if console_size:
        argv += ["--console-size", f"{console_size[0]},{console_size[1]}"]
    hosted = await host.launch(argv[len(shim_argv_prefix):], state.parent) if host is not None else None
    ready: dict[str, Any] | None = None
    launched: tuple[int, str] | None = None
    if hosted is not None:
        launched, ready = hosted[:2], hosted[2]
    if launched is None:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE, start_new_session=True, env=_shim_env())
        except OSError as exc:
            raise errors.Internal(f"cannot run shim {argv[0]}: {exc.strerror}") from exc
        # The first process only validates flags and forks the real shim away, so this is quick.
        _, err = await proc.communicate()
        launched = (proc.returncode or 0, err.decode(errors="replace"))
    if launched[0] != 0:
        msg = launched[1].strip().splitlines()
        raise errors.InvalidArgument(f"shim refused to start: {msg[-1] if msg else launched[0]}")
    if ready is None:
        ready = await _wait_ready(state)
    if "error" in ready:
        raise _error(ready)
    client = ShimClient(state)
    client.pid = int(ready.get("pid", 0))
    return client


class ShimHost:
    """The daemon's handle on its shim host (``python -m dockyard.shim.host``, started on first
    use, one request at a time, over a socketpair). The host is not our child — its first process
    forks it away and exits — so no process handle of ours can kill it or leave it a zombie: it
    outlives this handle and the daemon, serving its containers until they are deleted. ``launch``
    returns None whenever the host cannot serve, so the caller exec's a shim of its own instead."""

    def __init__(self, python: str | None = None) -> None:
        self.python = python or sys.executable
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._lock = asyncio.Lock()
        self.broken = False

    async def launch(self, args: list[str], cwd: str | Path | None = None,
                     ) -> tuple[int, str, dict[str, Any] | None] | None:
        """Start the shim ``dockyard-shim args`` would start, in the host: (status, stderr) of
        the flag check, and after a 0 the shim's ready record (None if the host did not send
        it: the caller then polls the ready file). ``cwd`` (the shims' directory) is where a new
        host lives."""
        if self.broken:
            return None
        async with self._lock:
            try:
                reader, writer = await self._ensure(cwd)
                writer.write(proto.encode_list(args))
                await writer.drain()
                line = await reader.readline()
                reply = json.loads(line) if line else None
            except (OSError, ValueError, asyncio.IncompleteReadError):
                reply = None
            if not isinstance(reply, dict) or int(reply.get("status", -1)) < 0:
                self._break()
                return None
            status, stderr = int(reply["status"]), str(reply.get("stderr") or "")
            if status != 0:
                return status, stderr, None
            # the host creates the container, then says so on the same line-oriented socket
            try:
                line = await asyncio.wait_for(reader.readline(), READY_TIMEOUT)
                ready = json.loads(line).get("ready") if line else None
            except (OSError, ValueError, AttributeError, TimeoutError):
                ready = None
            if not isinstance(ready, dict):  # the ready file still tells (or its absence)
                self._break()
                return status, stderr, None
            return status, stderr, ready

    def _break(self) -> None:
        """A dead or confused host: exec shims from now on."""
        self._let_go()
        self.broken = True

    async def _ensure(self, cwd: str | Path | None) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._conn is None:
            import subprocess
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                proc = subprocess.Popen(
                    [self.python, "-m", "dockyard.shim.host", "--fd", str(theirs.fileno())],
                    pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, start_new_session=True, env=_shim_env(), cwd=cwd)
            except OSError:
                ours.close()
                raise
            finally:
                theirs.close()
            if await asyncio.to_thread(proc.wait) != 0:  # the first process forks the host off
                ours.close()
                raise OSError("the shim host did not start")
            self._conn = await asyncio.open_unix_connection(sock=ours, limit=1 << 20)
        return self._conn

    def _let_go(self) -> None:
        """EOF on its requests: the host takes no new container and exits after its last one.
        Never waited for or killed here — its containers must not notice the daemon leaving."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn[1].close()

    async def close(self) -> None:
        async with self._lock:
            self._let_go()


def _shim_env() -> dict[str, str]:
    """Our environment minus PYTHONDONTWRITEBYTECODE: the shim (and a Python runtime it runs) then
    writes and reuses bytecode caches; compiling its modules afresh costs ~20 ms per container."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


async def _wait_ready(state: Path) -> dict[str, Any]:
    path = state / proto.READY_FILE
    start = time.monotonic()
    deadline = start + READY_TIMEOUT
    while True:
        try:
            data: dict[str, Any] = json.loads(path.read_bytes())
            return data
        except FileNotFoundError:
            pass
        except ValueError as exc:
            raise errors.Internal(f"shim wrote an unreadable ready file in {state}: {exc}") from exc
        if time.monotonic() > deadline:
            raise errors.Internal(f"shim did not become ready within {READY_TIMEOUT:.0f}s; "
                                  f"see {state / proto.LOG_FILE}")
        waited = time.monotonic() - start
        if waited > 0.5 and shim_pid(state) is None and not path.exists():
            log = ""
            with contextlib.suppress(OSError):
                log = (state / proto.LOG_FILE).read_text()[-2000:]
            raise errors.Internal(f"shim died before it was ready: {log.strip() or 'no log'}")
        # a tight poll while a normal start completes (it is on the `docker run` path), then relax
        await asyncio.sleep(0.002 if waited < 1.0 else 0.05)


class ShimStream:
    """An attach or exec connection: framed output in, raw stdin out."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 tty: bool = False, pid: int = 0) -> None:
        self._r, self._w = reader, writer
        self.tty = tty
        self.pid = pid
        self.exit_code: int | None = None
        self._stdin_closed = False

    async def read(self) -> tuple[int, bytes] | None:
        """The next (stream, data) with stream 1 or 2; None at the end (exit_code set for exec)."""
        while True:
            try:
                head = await self._r.readexactly(proto.HEADER.size)
                stream, size = proto.HEADER.unpack(head)
                data = await self._r.readexactly(size)
            except (asyncio.IncompleteReadError, ConnectionError):
                return None
            if stream == proto.EXIT:
                self.exit_code = int(json.loads(data)["exit_code"])
                continue
            return stream, data

    async def write(self, data: bytes) -> None:
        if self._stdin_closed:
            return
        try:
            self._w.write(data)
            await self._w.drain()
        except ConnectionError as exc:
            raise errors.Unavailable(f"shim stream closed: {exc}") from exc

    async def close_stdin(self) -> None:
        if self._stdin_closed:
            return
        self._stdin_closed = True
        with contextlib.suppress(OSError):
            if self._w.can_write_eof():
                self._w.write_eof()

    async def close(self) -> None:
        self._w.close()
        with contextlib.suppress(OSError):
            await self._w.wait_closed()


class ShimClient:
    def __init__(self, state_dir: str | Path) -> None:
        self.state_dir = Path(state_dir)
        self.pid = 0  # the init's pid, when known

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        path = str(self.state_dir / proto.SOCKET_FILE)
        dirfd = -1
        if len(path.encode()) > 100:  # sun_path limit: reach the socket through /proc/self/fd
            dirfd = os.open(self.state_dir, os.O_PATH | os.O_CLOEXEC)
            path = f"/proc/self/fd/{dirfd}/{proto.SOCKET_FILE}"
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            sock.setblocking(False)
            try:
                await asyncio.get_running_loop().sock_connect(sock, path)
            except OSError:
                sock.close()
                raise
            return await asyncio.open_unix_connection(sock=sock, limit=1 << 20)
        except OSError as exc:
            raise errors.Unavailable(f"shim in {self.state_dir} is not running: {exc.strerror}") from exc
        finally:
            if dirfd >= 0:
                os.close(dirfd)

    async def _open(self, req: dict[str, Any]) -> tuple[dict[str, Any], asyncio.StreamReader,
                                                         asyncio.StreamWriter]:
        reader, writer = await self._connect()
        try:
            writer.write(proto.encode(req))
            await writer.drain()
            line = await reader.readline()
        except (OSError, asyncio.IncompleteReadError) as exc:
            writer.close()
            raise errors.Unavailable(f"shim in {self.state_dir} went away: {exc}") from exc
        if not line:
            writer.close()
            raise errors.Unavailable(f"shim in {self.state_dir} closed the connection")
        reply: dict[str, Any] = json.loads(line)
        if not reply.get("ok"):
            writer.close()
            raise _error(reply)
        return reply, reader, writer

    async def _call(self, req: dict[str, Any]) -> dict[str, Any]:
        reply, _, writer = await self._open(req)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return reply

    async def state(self) -> dict[str, Any]:
        return await self._call({"op": "state"})

    async def start(self) -> None:
        await self._call({"op": "start"})

    async def kill(self, signal: str | int = "KILL", all: bool = False) -> None:
        await self._call({"op": "kill", "signal": str(signal), "all": all})

    async def pause(self) -> None:
        await self._call({"op": "pause"})

    async def resume(self) -> None:
        await self._call({"op": "resume"})

    async def resize(self, height: int, width: int, exec_id: str | None = None) -> None:
        req: dict[str, Any] = {"op": "resize", "height": height, "width": width}
        if exec_id:
            req["exec_id"] = exec_id
        await self._call(req)

    async def wait(self) -> dict[str, Any]:
        """Blocks until the init has exited; ``{"exit_code", "exited_at", "oom_killed"}``."""
        reply = await self._call({"op": "wait"})
        reply.pop("ok", None)
        return reply

    async def update(self, resources: dict[str, Any]) -> None:
        await self._call({"op": "update", "resources": resources})

    async def delete(self) -> None:
        await self._call({"op": "delete"})

    async def attach(self, stdin: bool = False, stdout: bool = True, stderr: bool = True,
                     stdin_once: bool = True) -> ShimStream:
        """``stdin_once``: this client's stdin EOF (or going away) closes the container's stdin."""
        reply, reader, writer = await self._open({"op": "attach", "stdin": stdin, "stdout": stdout,
                                                  "stderr": stderr, "stdin_once": stdin_once})
        return ShimStream(reader, writer, tty=bool(reply.get("tty")))

    async def exec(self, exec_id: str, process: dict[str, Any], tty: bool = False,
                   stdin: bool = False) -> ShimStream:
        """Start an exec; its output streams on the returned object, ``exit_code`` set at the end."""
        reply, reader, writer = await self._open({"op": "exec", "exec_id": exec_id, "process": process,
                                                  "tty": tty, "stdin": stdin})
        return ShimStream(reader, writer, tty=tty, pid=int(reply.get("pid", 0)))
