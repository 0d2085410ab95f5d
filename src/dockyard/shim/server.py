"""The shim proper: owns one container's stdio, log, exit status, execs and the control socket.

A ``Shim`` lives in a ``shim.host.Host``: the process that reaps its children and runs the event
loop. One host may carry many shims (the daemon's shim host) or just one (an exec'd
``dockyard-shim``); a shim never relies on the process's working directory or on being alone in it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time

from dockyard.errors import Conflict, DockyardError, Internal, InvalidArgument, NotFound
from dockyard.runtime import jsonio
from dockyard.shim import protocol as proto
from dockyard.shim.jsonlog import JSONLogWriter, format_time
from dockyard.shim.ocicli import Runtime, console_listener, oom_killed, preload_builtin_runtime, set_winsize
from dockyard.shim.reactor import HIGH_WATER, Conn, Reactor, Sink, Source

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DRAIN_GRACE = 5.0  # after the init exits, how long output may still trickle in before we give up
_STREAM_NAMES = {proto.STDOUT: "stdout", proto.STDERR: "stderr"}


class Options:
    """The command line (plain class, not a dataclass: import time counts on the start path)."""

    def __init__(self, id: str, bundle: str, state_dir: str, runtime: str, runtime_root: str,
                 log_path: str, log_max_size: int, log_max_file: int, tty: bool, stdin: bool,
                 console_size: tuple[int, int] | None) -> None:
        self.id, self.bundle, self.state_dir = id, bundle, state_dir
        self.runtime, self.runtime_root = runtime, runtime_root
        self.log_path, self.log_max_size, self.log_max_file = log_path, log_max_size, log_max_file
        self.tty, self.stdin, self.console_size = tty, stdin, console_size


class Proc:
    """The init or one exec: its pid, stdio and the clients reading it."""

    def __init__(self) -> None:
        self.pid = 0
        self.sources: list[Source] = []
        self.sink: Sink | None = None
        self.master = -1  # pty master (owned here; sources/sink only borrow it)
        self.status: int | None = None  # exit code once reaped
        self.reaped_at = 0.0
        self.conns: list[Conn] = []
        self.done = False

    def drained(self) -> bool:
        return all(s.eof for s in self.sources)


def _pipe() -> tuple[int, int]:
    r, w = os.pipe2(os.O_CLOEXEC)
    with contextlib.suppress(OSError):
        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 1 << 20)  # fewer stalls of a chatty container
    return r, w


class Shim:
    def __init__(self, opts: Options, log: Any, host: Any) -> None:
        self.o = opts
        self.debug_log = log
        self.host = host               # shim.host.Host: the reactor, reaping, our removal
        self.reactor: Reactor = host.reactor
        # the state dir, held open: sockets are bound and named through /proc/<pid>/fd/<dirfd>/
        # when their real path would pass the 108-byte sun_path limit
        self.dirfd = os.open(opts.state_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.rt = Runtime(opts.runtime, opts.runtime_root, opts.state_dir, opts.id)
        self.init = Proc()
        self.execs: dict[str, Proc] = {}
        self.pids: dict[int, Proc] = {}
        self.status = "created"
        self.exit_record: dict[str, Any] | None = None
        self.waiters: list[Conn] = []
        self.conns: set[Conn] = set()
        self.listener: socket.socket | None = None
        self.logw: JSONLogWriter | None = None
        self.cgroups_path = ""
        self.uid = self.gid = 0
        self._exec_seq = 0
        self.gone = False
        self.log_fd = -1               # the debug log's fd, closed with the shim
        self._log_dropped = 0   # bytes of output the log had no room for since the last write that worked

    def path(self, name: str) -> str:
        return os.path.join(self.o.state_dir, name)

    def sock_path(self, name: str) -> str:
        """A name in the state dir as a unix socket address (short enough for sun_path)."""
        path = self.path(name)
        return path if len(path.encode()) < 100 else f"/proc/{os.getpid()}/fd/{self.dirfd}/{name}"

    # ------------------------------------------------------------------------------------ start-up
    def read_bundle(self) -> None:
        path = os.path.join(self.o.bundle, "config.json")
        try:
            with open(path, "rb") as f:
                spec = jsonio.loads(f.read())
                st = os.fstat(f.fileno())
        except OSError as exc:
            raise InvalidArgument(f"cannot read bundle config {path}: {exc.strerror}") from exc
        except (ValueError, InvalidArgument) as exc:
            raise InvalidArgument(f"bundle config {path} is not valid JSON: {exc}") from exc
        if spec.get("hooks"):  # hooks run in a runtime process of their own, never in the host
            self.rt.inline = False
        if self.rt.builtin:  # its forked create need not parse it again
            cli = preload_builtin_runtime()
            cli.remember_config(os.path.abspath(path), cli.file_identity(st), spec)
        process = spec.get("process") or {}
        if bool(process.get("terminal")) != self.o.tty:
            raise InvalidArgument(f"--tty={self.o.tty} does not match process.terminal in {path}")
        user = process.get("user") or {}
        self.uid, self.gid = int(user.get("uid", 0)), int(user.get("gid", 0))
        self.cgroups_path = (spec.get("linux") or {}).get("cgroupsPath") or ""

    def create(self) -> int:
        """``runtime create``; returns the init's pid. The init inherits our pipes (or gets a pty)."""
        self.read_bundle()
        if self.o.log_path:  # "": the "none" log driver, output only goes to attached clients
            os.makedirs(os.path.dirname(os.path.abspath(self.o.log_path)), exist_ok=True)
            self.logw = JSONLogWriter(self.o.log_path, self.o.log_max_size, self.o.log_max_file)
        pid_file = os.path.join(self.o.state_dir, "init.pid")
        args = ["create", "--bundle", self.o.bundle, "--pid-file", pid_file]
        self.init.sources, self.init.sink, self.init.master = self._spawn(args, self.init, self.o.tty,
                                                                          self.o.stdin, "console.sock")
        self.init.pid = _read_pid(pid_file)
        self.pids[self.init.pid] = self.init
        self.host.claim(self.init.pid, self)
        if self.init.master >= 0 and self.o.console_size:
            set_winsize(self.init.master, *self.o.console_size)
        return self.init.pid

    def _spawn(self, args: list[str], proc: Proc, tty: bool, stdin: bool,
               console_name: str) -> tuple[list[Source], Sink | None, int]:
        """Run create/exec with pipes or a console socket; wire up the parent ends."""
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        child: list[int] = [null]
        mine: list[int] = []
        console = None
        try:
            if tty:
                console = console_listener(self.path(console_name), self.sock_path(console_name))
                master = self.rt.spawn([*args[:1], "--console-socket", self.sock_path(console_name),
                                        *args[1:], self.o.id],
                                       (null, null, null), console, None)
                assert master is not None
                mine.append(master)
                on_data = self._init_data if proc is self.init else self._exec_data(proc)
                sources = [Source(self.reactor, master, proto.STDOUT, on_data, self._eof(proc),
                                  close_fd=False)]
                sink = Sink(self.reactor, master, close_fd=False) if stdin else None
                return sources, sink, master
            out_r, out_w = _pipe()
            err_r, err_w = _pipe()
            mine += [out_r, err_r]
            child += [out_w, err_w]
            in_r, in_w = (_pipe() if stdin else (null, -1))
            if stdin:
                mine.append(in_w)
                child.append(in_r)
            for fd in child[1:]:
                with contextlib.suppress(OSError):
                    os.fchown(fd, self.uid, self.gid)  # a non-root user may reopen /dev/stdout
            self.rt.spawn([*args, self.o.id], (in_r, out_w, err_w), None, err_r)
            on_data = self._init_data if proc is self.init else self._exec_data(proc)
            sources = [Source(self.reactor, out_r, proto.STDOUT, on_data, self._eof(proc)),
                       Source(self.reactor, err_r, proto.STDERR, on_data, self._eof(proc))]
            return sources, (Sink(self.reactor, in_w, close_fd=True) if stdin else None), -1
        except BaseException:
            for fd in mine:
                with contextlib.suppress(OSError):
                    os.close(fd)
            raise
        finally:
            for fd in child:
                os.close(fd)
            if console is not None:
                console.close()
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.o.state_dir, console_name))

    def listen(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(proto.SOCKET_FILE))
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.bind(self.sock_path(proto.SOCKET_FILE))
        os.chmod(self.path(proto.SOCKET_FILE), 0o600)
        sock.listen(64)
        sock.setblocking(False)
        self.listener = sock
        self.reactor.want_read(sock.fileno(), self._accept)

    # ------------------------------------------------------------------------- driven by the host
    def deadline(self) -> float | None:
        """When the init's leftover output stops being waited for (monotonic), if it is pending."""
        if self.init.status is not None and not self.init.done:
            return self.init.reaped_at + DRAIN_GRACE
        return None

    def tick(self, now: float) -> None:
        deadline = self.deadline()
        if deadline is not None and now >= deadline:
            for src in self.init.sources:  # something outside the container holds the pipe
                src.drain_now()
                src.close()
            self._maybe_finish(self.init)

    def reaped(self, pid: int, status: int) -> None:
        proc = self.pids.pop(pid, None)
        if proc is None:
            return
        code = os.waitstatus_to_exitcode(status)
        proc.status = 128 - code if code < 0 else code
        proc.reaped_at = time.monotonic()
        if proc is self.init:
            self.exit_record = {"exit_code": proc.status, "exited_at": format_time(time.time_ns()),
                                "oom_killed": oom_killed(self.cgroups_path, self.o.id)}
        self._maybe_finish(proc)

    # ----------------------------------------------------------------------------------- output
    def _init_data(self, src: Source, data: bytes) -> None:
        if self.logw is None:
            self._fan_out(self.init, src.stream, data)
            return
        try:
            self.logw.write(_STREAM_NAMES[src.stream], data)
        except OSError as exc:  # a full disk must not stop the container or its attach streams:
            if not self._log_dropped:   # keep draining, drop what cannot be written, say so once
                self.debug_log(f"writing {self.o.log_path} failed: {exc}; dropping output until it can be written")
            self._log_dropped += len(data)
        else:
            if self._log_dropped:
                self.debug_log(f"writing {self.o.log_path} again; {self._log_dropped} bytes of output were dropped")
                self._log_dropped = 0
        self._fan_out(self.init, src.stream, data)

    def _exec_data(self, proc: Proc) -> Any:
        def on_data(src: Source, data: bytes) -> None:
            self._fan_out(proc, src.stream, data)
        return on_data

    def _fan_out(self, proc: Proc, stream: int, data: bytes) -> None:
        chunk = proto.frame(stream, data)
        for conn in list(proc.conns):
            if stream in conn.streams:
                conn.send(chunk)
        self._pressure(proc)

    def _pressure(self, proc: Proc) -> None:
        full = any(c.pending() > HIGH_WATER for c in proc.conns)
        for src in proc.sources:
            src.pause(full)

    def _eof(self, proc: Proc) -> Any:
        def on_eof(src: Source) -> None:
            if proc is self.init and self.logw is not None:
                with contextlib.suppress(OSError):
                    self.logw.flush(_STREAM_NAMES[src.stream])
            self._maybe_finish(proc)
        return on_eof

    def _maybe_finish(self, proc: Proc) -> None:
        """Once a process is reaped and its output drained: record it and end its streams."""
        if proc.done or proc.status is None or not proc.drained():
            return
        proc.done = True
        if proc.sink is not None:
            proc.sink.abort()
        if proc.master >= 0:
            os.close(proc.master)
            proc.master = -1
        if proc is self.init:
            assert self.exit_record is not None
            if self.logw is not None:
                try:
                    self.logw.flush()
                except OSError as exc:
                    self.debug_log(f"writing {self.o.log_path} failed: {exc}")
            _write_atomic(self.path(proto.EXIT_FILE), self.exit_record)
            self.status = "stopped"
            for conn in list(self.waiters):
                conn.send(proto.encode({"ok": True, **self.exit_record}))
                conn.finish()
            self.waiters.clear()
            for exec_proc in self.execs.values():  # execs die with the init's pid namespace
                self._maybe_finish(exec_proc)
        else:
            for conn in list(proc.conns):
                conn.send(proto.frame(proto.EXIT, jsonio.dumps({"exit_code": proc.status}).encode()))
            for exec_id, p in list(self.execs.items()):
                if p is proc:
                    del self.execs[exec_id]
                    for suffix in (".json", ".pid"):
                        with contextlib.suppress(OSError):
                            os.unlink(self.path(f"exec-{exec_id}{suffix}"))
        for conn in list(proc.conns):  # finish() may close and unlist a connection
            conn.on_drained = None
            conn.finish()
        proc.conns.clear()

    # ----------------------------------------------------------------------------------- control
    def _accept(self) -> None:
        assert self.listener is not None
        while True:
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                self.debug_log(f"accept: {exc}")
                return
            self.conns.add(Conn(self.reactor, sock, self._request, self._gone))

    def _gone(self, conn: Conn) -> None:
        self.conns.discard(conn)
        if conn in self.waiters:
            self.waiters.remove(conn)
        for proc in [self.init, *self.execs.values()]:
            if conn in proc.conns:
                proc.conns.remove(conn)
                self._pressure(proc)

    def _request(self, conn: Conn, line: bytes) -> None:
        try:
            req = jsonio.loads(line)
            if not isinstance(req, dict):
                raise InvalidArgument("shim request must be a JSON object")
            op = req.get("op")
            handler = getattr(self, f"op_{op}", None) if isinstance(op, str) else None
            if handler is None:
                raise InvalidArgument(f"unknown shim op {op!r}")
            reply = handler(conn, req)
        except ValueError as exc:
            reply = {"ok": False, "error": f"bad shim request: {exc}", "kind": "InvalidArgument"}
        except DockyardError as exc:
            reply = {"ok": False, "error": str(exc), "kind": type(exc).__name__}
        except Exception as exc:  # a bug: answer, keep serving the container
            self.debug_log(f"op failed: {exc!r}")
            reply = {"ok": False, "error": f"shim: {exc}", "kind": "Internal"}
        if reply is None:
            return  # answered later (wait) or already answered (attach, exec)
        conn.send(proto.encode(reply))
        conn.finish()

    def _state(self) -> dict[str, Any]:
        rec = self.exit_record if self.status == "stopped" else None
        return {"ok": True, "status": self.status, "pid": self.init.pid,
                "exit_code": rec["exit_code"] if rec else None,
                "exited_at": rec["exited_at"] if rec else None,
                "oom_killed": rec["oom_killed"] if rec else False}

    def _running(self, what: str) -> None:
        if self.status == "stopped" or self.init.status is not None:
            raise Conflict(f"cannot {what} container {self.o.id}: container is not running")

    def op_state(self, conn: Conn, req: dict[str, Any]) -> dict[str, Any]:
        return self._state()

    def op_start(self, conn: Conn, req: dict[str, Any]) -> dict[str, Any]:
        if self.status != "created" or self.init.status is not None:
            raise Conflict(f"cannot start container {self.o.id}: it is {self.status}")
        self.rt.run("start", self.o.id)
        self.status = "running"
        return {"ok": True}

    def op_kill(self, conn: Conn, req: dict[str, Any]) -> dict[str, Any]:
        self._running("kill")
        sig = str(req.get("signal") or "KILL")
        self.rt.run("kill", *(["--all"] if req.get("all") else []), self.o.id, sig)
        return {"ok": True}

    def op_pause(self, conn: Conn, req: dict[str, Any]) -> dict[str, Any]:
        self._running("pause")
        if self.status != "running":
            raise Conflict(f"cannot pause container {self.o.id}: it is {self.status}")
        self.rt.run("pause", self.o.id)
        self.status = "paused"
        return {"ok": True}

    def op_resume(self, conn: Conn, req: dict[str, Any]) -> dict[str, Any]:
        if self.status != "paused":
            raise Conflict(f"cannot resume container {self.o.id}: it is not paused")
        self.rt.run("resume", self.o.id)
        self.status = "running"
        return {"ok": True}

    def op_resize(self, conn: Conn, req: dict[str, Any]) -> dict[str, Any]:
        exec_id = req.get("exec_id")
        if exec_id:
            proc = self.execs.get(exec_id)
            if proc is None:
                raise NotFound(f"no such exec: {exec_id}")
        else:
            proc = self.init
        try:
            height, width = int(req["height"]), int(req["width"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgument("resize needs integer height and width") from exc
        if proc.master >= 0:
            set_winsize(proc.master, height, width)
        return {"ok": True}

    def op_update(self, conn: Conn, req: dict[str, Any]) -> dict[str, Any]:
        self._running("update")
        res = req.get("resources")
        if not isinstance(res, dict):
            raise InvalidArgument("update needs a resources object")
        _write_atomic(self.path("update.json"), res)
        self.rt.run("update", "--resources", self.path("update.json"), self.o.id)
        return {"ok": True}

    def op_wait(self, conn: Conn, req: dict[str, Any]) -> dict[str, Any] | None:
        if self.status == "stopped":
            assert self.exit_record is not None
            return {"ok": True, **self.exit_record}
        self.waiters.append(conn)
        return None

    def op_attach(self, conn: Conn, req: dict[str, Any]) -> None:
        conn.send(proto.encode({"ok": True, "tty": self.o.tty}))
        self._stream(conn, self.init, bool(req.get("stdin")), bool(req.get("stdout", True)),
                     bool(req.get("stderr", True)), self.o.tty, close_stdin=bool(req.get("stdin_once", True)))
        if self.init.done:
            conn.finish()

    def _stream(self, conn: Conn, proc: Proc, stdin: bool, stdout: bool, stderr: bool,
                tty: bool, close_stdin: bool = True) -> None:
        conn.streaming = True
        conn.streams = {s for s, want in ((proto.STDOUT, stdout), (proto.STDERR, stderr)) if want}
        sink = proc.sink
        if stdin and sink is not None and not proc.done:
            conn.on_stdin = sink.write
            # tty: EOF of one client says nothing to the terminal; pipe: it is the container's EOF,
            # unless the container keeps its stdin across attaches (no StdinOnce: dockerd)
            conn.on_stdin_eof = sink.close if close_stdin and not tty else (lambda: None)
        if not proc.done:
            proc.conns.append(conn)
            conn.on_drained = lambda: self._pressure(proc)

    def op_exec(self, conn: Conn, req: dict[str, Any]) -> None:
        self._running("exec in")
        exec_id, process = req.get("exec_id"), req.get("process")
        if not isinstance(exec_id, str) or not exec_id or "/" in exec_id:
            raise InvalidArgument("exec needs an exec_id")
        if exec_id in self.execs:
            raise Conflict(f"exec {exec_id} is already running")
        if not isinstance(process, dict):
            raise InvalidArgument("exec needs an OCI process object")
        tty, stdin = bool(req.get("tty")), bool(req.get("stdin"))
        process = {**process, "terminal": tty}
        spec_file = self.path(f"exec-{exec_id}.json")
        pid_file = self.path(f"exec-{exec_id}.pid")
        _write_atomic(spec_file, process)
        proc = Proc()
        self._exec_seq += 1
        args = ["exec", "--process", spec_file, "--detach", "--pid-file", pid_file]
        try:
            proc.sources, proc.sink, proc.master = self._spawn(args, proc, tty, stdin,
                                                               f"exec{self._exec_seq}.sock")
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(spec_file)
            raise
        proc.pid = _read_pid(pid_file)
        size = process.get("consoleSize")
        if proc.master >= 0 and isinstance(size, dict):
            set_winsize(proc.master, int(size.get("height", 0)), int(size.get("width", 0)))
        self.execs[exec_id] = proc
        self.pids[proc.pid] = proc
        self.host.claim(proc.pid, self)
        conn.send(proto.encode({"ok": True, "pid": proc.pid}))
        self._stream(conn, proc, stdin, True, True, tty)
        self.host.reap()  # it may already be gone

    def op_delete(self, conn: Conn, req: dict[str, Any]) -> None:
        try:
            self.rt.run("delete", "--force", self.o.id)
        except Internal as exc:
            if "not exist" not in str(exc):
                raise
        if self.logw is not None:
            with contextlib.suppress(OSError):   # a last partial line on a full disk
                self.logw.close()
        import shutil
        shutil.rmtree(self.o.state_dir, ignore_errors=True)
        # answer synchronously: the shim is gone right after (and the process too, if it was its last)
        with contextlib.suppress(OSError):
            conn.sock.setblocking(True)
            conn.sock.sendall(bytes(conn.wbuf) + proto.encode({"ok": True}))
        conn.wbuf.clear()
        self.close()

    def close(self) -> None:
        """Let go of everything this shim holds in the host: connections, listener, fds."""
        if self.gone:
            return
        self.gone = True
        for conn in list(self.conns):
            with contextlib.suppress(OSError):
                self.reactor.forget(conn.fd)
                conn.sock.close()
        self.conns.clear()
        if self.listener is not None:
            self.reactor.forget(self.listener.fileno())
            self.listener.close()
            self.listener = None
        for proc in [self.init, *self.execs.values()]:
            for src in proc.sources:
                with contextlib.suppress(OSError):
                    src.close()
            if proc.sink is not None:
                proc.sink.abort()
            if proc.master >= 0:
                with contextlib.suppress(OSError):
                    os.close(proc.master)
                proc.master = -1
        for fd in (self.dirfd, self.log_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.dirfd = self.log_fd = -1
        self.host.release(self)


def _read_pid(path: str) -> int:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError) as exc:
        raise Internal(f"runtime wrote no usable pid file {path}: {exc}") from exc


def _write_atomic(path: str, obj: dict[str, Any]) -> None:
    """Readers see all of it or none (rename). Not fsynced: the state dir is under the exec root,
    which holds only what lives while the machine is up (a daemon that crashes still reads the
    page cache; after a power loss the process the file describes is gone anyway)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(jsonio.dumps(obj))
    os.replace(tmp, path)
