"""Exec: run another process in a running container through its shim."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from typing import TYPE_CHECKING

from dockyard.engine.rootfs import resolve_user
from dockyard.engine.security import host_caps
from dockyard.engine.spec import build_env, merge_env, process_spec
from dockyard.engine.streams import StreamSession
from dockyard.engine.types import ExecConfig, ExecRecord
from dockyard.errors import Conflict, DockyardError, InvalidArgument, NotFound

if TYPE_CHECKING:
    from dockyard.engine.lifecycle import ContainerService


class ExecService:
    def __init__(self, containers: ContainerService) -> None:
        self.containers = containers
        self.execs: dict[str, ExecRecord] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def create(self, ref: str, config: ExecConfig) -> str:
        rec = self.containers.store.get(ref)
        if not rec.state.running:
            raise Conflict(f"Container {rec.id} is not running")
        if rec.state.status == "paused":
            raise Conflict(f"Container {rec.id} is paused, unpause the container before exec")
        if not config.cmd:
            raise InvalidArgument("No exec command specified")
        exec_id = secrets.token_hex(32)
        self.execs[exec_id] = ExecRecord(id=exec_id, container_id=rec.id, config=config,
                                         open_stdin=config.attach_stdin)
        rec.exec_ids.append(exec_id)
        self.containers.store.save(rec)
        self.containers.emit(rec, f"exec_create: {' '.join(config.cmd)}", {"execID": exec_id})
        return exec_id

    def inspect(self, exec_id: str) -> ExecRecord:
        try:
            return self.execs[exec_id]
        except KeyError:
            raise NotFound(f"No such exec instance: {exec_id}") from None

    def _process(self, ex: ExecRecord) -> dict[str, object]:
        rec = self.containers.store.get(ex.container_id)
        cfg = ex.config
        spec = json.loads((self.containers.cdir(rec.id) / "config.json").read_text())
        base = spec.get("process", {})
        rootfs = self.containers.cdir(rec.id) / "rootfs"
        if cfg.user:
            user = resolve_user(rootfs, cfg.user, rec.host_config.group_add)
        else:
            user = resolve_user(rootfs, rec.config.user, rec.host_config.group_add)
        env = merge_env(build_env(rec.config.env, rec.config.hostname, cfg.tty), cfg.env)
        caps = list(host_caps()) if cfg.privileged else list(base.get("capabilities", {}).get("bounding", []))
        return process_spec(args=list(cfg.cmd), env=env, cwd=cfg.working_dir or base.get("cwd", "/"),
                            user=user, tty=cfg.tty, caps=caps, console_size=cfg.console_size,
                            no_new_privileges=bool(base.get("noNewPrivileges", False)))

    async def start(self, exec_id: str, detach: bool) -> StreamSession | None:
        ex = self.inspect(exec_id)
        if ex.running or ex.exit_code is not None:
            raise Conflict(f"Error: Exec command {exec_id} has already run")
        rec = self.containers.store.get(ex.container_id)
        run = self.containers.running.get(rec.id)
        if run is None or not rec.state.running:
            raise Conflict(f"Container {rec.id} is not running")
        process = self._process(ex)
        ex.running = True

        def finished(code: int) -> None:
            ex.running = False
            ex.exit_code = code
            with contextlib.suppress(NotFound):
                self.containers.emit(self.containers.store.get(rec.id),
                                     "exec_die", {"execID": exec_id, "exitCode": str(code)})

        session = StreamSession(tty=ex.config.tty, stdin=ex.config.attach_stdin and not detach,
                                stdout=ex.config.attach_stdout, stderr=ex.config.attach_stderr,
                                on_exit=finished)
        try:
            stream = await run.shim.exec(exec_id=exec_id, process=process, tty=ex.config.tty,
                                         stdin=ex.config.attach_stdin and not detach)
        except DockyardError:
            ex.running = False
            ex.exit_code = 126
            raise
        ex.pid = int(getattr(stream, 'pid', 0))
        session.connect(stream)
        self.containers.emit(rec, f"exec_start: {' '.join(ex.config.cmd)}", {"execID": exec_id})
        if detach:
            task = asyncio.create_task(self._drain(session))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return None
        return session

    async def _drain(self, session: StreamSession) -> None:
        try:
            await session.close_stdin()
            await session.drain_to_end()
        finally:
            await session.close()

    async def resize(self, exec_id: str, height: int, width: int) -> None:
        ex = self.inspect(exec_id)
        run = self.containers.running.get(ex.container_id)
        if run is None or not ex.running:
            raise Conflict(f"Exec {exec_id} is not running")
        await run.shim.resize(height=height, width=width, exec_id=exec_id)

    def forget_container(self, cid: str) -> None:
        for exec_id in [k for k, v in self.execs.items() if v.container_id == cid]:
            del self.execs[exec_id]
