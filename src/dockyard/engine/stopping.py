"""Stopping containers: kill, stop, wait and remove (a mixin of ``ContainerService``).

A stop or kill of a ``restarting`` container calls the pending restart off; a user's stop marks
the container manually stopped (``unless-stopped`` then stays down across a daemon restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal as _signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.engine import initlayer, shims
from dockyard.engine.restart import RestartPolicies
from dockyard.engine.shims import Running
from dockyard.engine.spec import cgroup_parent_of, parse_signal
from dockyard.engine.types import ContainerRecord
from dockyard.errors import Conflict, DockyardError, Internal, InvalidArgument, NotFound, NotModified
from dockyard.mount import unmount_all

if TYPE_CHECKING:
    from dockyard.engine.engine import EngineConfig
    from dockyard.engine.streams import StreamSession
    from dockyard.engine.volumes import VolumeService


class Stopping(RestartPolicies):
    config: EngineConfig
    snapshots: Any
    volumes: VolumeService | None
    pending_attach: dict[str, list[StreamSession]]
    _remove_waiters: dict[str, list[asyncio.Future[tuple[int, str]]]]
    _locks: dict[str, asyncio.Lock]

    def state_dir(self, cid: str) -> Path:
        raise NotImplementedError

    def cdir(self, cid: str) -> Path:
        raise NotImplementedError

    def emit(self, rec: ContainerRecord, action: str, extra: dict[str, str] | None = None) -> None:
        raise NotImplementedError

    # -- stop / kill ------------------------------------------------------------------------
    async def kill(self, ref: str, signal: str = "KILL") -> None:
        rec = self.store.get(ref)
        signum = parse_signal(signal or "KILL")
        if rec.state.status == "restarting":  # as moby: no process to signal, the restart is called off
            self._note_manual_stop(rec, signum)
            if not self._restart_canceled(rec.id) or await self._stop_restarting(rec):
                return
            rec = self.store.get(rec.id)
        run = self.running.get(rec.id)
        if run is None or not rec.state.running:
            raise Conflict(f"Cannot kill container: {rec.id}: container {rec.id} is not running")
        self._note_manual_stop(rec, signum)
        await run.shim.kill(signal=signum, all=signum == int(_signal.SIGKILL))
        self.emit(rec, "kill", {"signal": str(signum)})
        if signum == int(_signal.SIGKILL):
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(run.exited.wait()), 10)

    async def stop(self, ref: str, timeout: int | None, signal: str | None) -> None:
        rec = self.store.get(ref)
        if rec.state.status == "restarting":
            self._note_manual_stop(rec, int(_signal.SIGKILL))  # a stop always calls the restart off
            if await self._stop_restarting(rec):
                self.emit(self.store.get(rec.id), "stop")
                return
            rec = self.store.get(rec.id)
        run = self.running.get(rec.id)
        if run is None or not rec.state.running:
            raise NotModified(f"container {rec.id} is not running")
        self._note_manual_stop(rec, int(_signal.SIGKILL))
        signum = parse_signal(signal or rec.config.stop_signal or "SIGTERM")
        if timeout is None:
            timeout = rec.config.stop_timeout if rec.config.stop_timeout is not None else 10
        await self._signal(rec, run, signum)
        if rec.state.status == "paused":
            with contextlib.suppress(DockyardError):
                await run.shim.resume()
        try:
            await asyncio.wait_for(asyncio.shield(run.exited.wait()), None if timeout < 0 else timeout)
        except TimeoutError:
            await self._signal(rec, run, int(_signal.SIGKILL))
            try:
                await asyncio.wait_for(asyncio.shield(run.exited.wait()), 30)
            except TimeoutError as exc:
                raise Internal(f"container {rec.id} did not exit after SIGKILL") from exc
        self.emit(self.store.get(rec.id), "stop")

    async def _signal(self, rec: ContainerRecord, run: Running, signum: int) -> None:
        try:
            await run.shim.kill(signal=signum, all=signum == int(_signal.SIGKILL))
        except DockyardError as exc:
            if run.exited.is_set():
                return
            raise exc
        self.emit(rec, "kill", {"signal": str(signum)})

    # -- wait -------------------------------------------------------------------------------
    async def wait(self, ref: str, condition: str = "not-running") -> tuple[int, str]:
        rec = self.store.get(ref)
        cid = rec.id
        loop = asyncio.get_running_loop()
        if condition in ("", "not-running"):
            if not rec.state.running:
                return rec.state.exit_code, ""
            fut: asyncio.Future[tuple[int, str]] = loop.create_future()
            self._exit_waiters.setdefault(cid, []).append(fut)
        elif condition == "next-exit":
            fut = loop.create_future()
            self._exit_waiters.setdefault(cid, []).append(fut)
        elif condition == "removed":
            fut = loop.create_future()
            self._remove_waiters.setdefault(cid, []).append(fut)
        else:
            raise InvalidArgument(f"invalid condition: \"{condition}\"")
        return await fut

    # -- remove -----------------------------------------------------------------------------
    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        """``volumes`` (``rm -v``, and ``--rm`` containers): its anonymous volumes go too."""
        rec = self.store.get(ref)
        if rec.state.status == "paused" and not force:
            raise Conflict(f"You cannot remove a paused container {rec.id}. Unpause and then stop the "
                           "container before attempting removal or force remove")
        if rec.state.running and not force:
            raise Conflict(f'cannot remove container "/{rec.name}": container is {rec.state.status}: '
                           "stop the container before removing or force remove")
        if rec.state.running:
            self._note_manual_stop(rec, int(_signal.SIGKILL))
        if rec.state.status == "restarting":
            await self._stop_restarting(rec)
        with contextlib.suppress(NotFound):
            rec = self.store.get(rec.id)
        run = self.running.get(rec.id)
        if run is not None:
            with contextlib.suppress(DockyardError):
                await self._signal(rec, run, int(_signal.SIGKILL))
            if rec.state.status == "paused":
                with contextlib.suppress(DockyardError):
                    await run.shim.resume()
            try:
                await asyncio.wait_for(asyncio.shield(run.exited.wait()), 30)
            except TimeoutError as exc:
                raise Internal(f"container {rec.id} did not exit after SIGKILL") from exc
        async with self.lock(rec.id):
            try:
                rec = self.store.get(rec.id)
            except NotFound:
                return  # AutoRemove got there first
            rec.state.status = "removing"
            self.store.save(rec)
            # never the record's path: one written by an older dockyard may lack it, and an empty
            # path would make this rmtree the daemon's working directory
            cdir = self.cdir(rec.id)
            with contextlib.suppress(DockyardError):
                unmount_all(cdir / "rootfs", detach=True)
            shims.remove_state_dir(self.state_dir(rec.id))
            if rec.snapshot_key:
                initlayer.remove(self.snapshots, rec.snapshot_key)
            remove_cgroups(cgroup_parent_of(rec, self.config.cgroup_parent), rec.id)
            shutil.rmtree(cdir, ignore_errors=True)
            self.store.delete(rec.id)
            if volumes and self.volumes is not None:
                self.volumes.remove_anonymous(rec)
            for session in self.pending_attach.pop(rec.id, []):
                session.end()
        self._locks.pop(rec.id, None)
        self._managers.pop(rec.id, None)
        self.emit(rec, "destroy")
        for fut in self._remove_waiters.pop(rec.id, []) + self._exit_waiters.pop(rec.id, []):
            if not fut.done():
                fut.set_result((rec.state.exit_code, ""))


def remove_cgroups(parent: str, cid: str) -> None:
    """rmdir what the runtime may have left of ``/<parent>/<id>`` (v1 controllers and unified)."""
    base = Path("/sys/fs/cgroup")
    candidates = [base / parent / cid]
    if base.is_dir():
        candidates += [d / parent / cid for d in base.iterdir() if d.is_dir()]
    for path in candidates:
        with contextlib.suppress(OSError):
            path.rmdir()
