"""Live restore, mixed into ContainerService: a starting engine reattaches to the shims of running
containers, records exits that happened while it was away, and clears what a crash in the middle
of create / start / remove / build left (orphan snapshots, directories, shims, mounts)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal as _signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.engine import initlayer, shims
from dockyard.engine.shims import Running
from dockyard.engine.types import ContainerRecord
from dockyard.errors import DockyardError
from dockyard.mount import unmount_all

if TYPE_CHECKING:
    from dockyard.engine.containers import ContainerStore
    from dockyard.engine.endpoints import Endpoints
    from dockyard.engine.engine import EngineConfig


class LiveRestore:
    store: ContainerStore
    config: EngineConfig
    snapshots: Any
    running: dict[str, Running]
    endpoints: Endpoints | None
    _restoring: bool

    def state_dir(self, cid: str) -> Path:
        raise NotImplementedError

    def cdir(self, cid: str) -> Path:
        raise NotImplementedError

    async def _handle_exit(self, cid: str, run: Running | None, info: dict[str, Any]) -> None:
        raise NotImplementedError

    async def _monitor(self, cid: str, run: Running) -> None:
        raise NotImplementedError

    async def start_at_boot(self, recs: list[ContainerRecord]) -> None:
        raise NotImplementedError

    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        raise NotImplementedError

    async def restore(self) -> None:
        """Reattach to live shims; record exits that happened while the engine was away; clean up
        what a crash mid-create/start/remove left (orphan snapshots, dirs, shims, mounts); then
        start the stopped containers whose restart policy wants them running."""
        self._restoring = True  # exits found now are not restarted with back-off: start_at_boot decides
        try:
            await self._restore_all()
        finally:
            self._restoring = False
        for rec in [r for r in self.store.all() if r.state.status == "removing"]:
            # an rm a crash cut short (its layer may already be gone): finish it; anonymous
            # volumes stay, as rm -v was not recorded (volume prune reclaims them)
            with contextlib.suppress(DockyardError, OSError):
                await self.remove(rec.id, force=True)
        self._collect_orphans()
        await self.start_at_boot(self.store.all())

    async def _restore_all(self) -> None:
        for rec in self.store.all():
            state_dir = self.state_dir(rec.id)
            if not rec.state.running:
                if state_dir.exists():  # crashed between spawning the shim and recording the start
                    await self._discard_shim(state_dir)
                    with contextlib.suppress(DockyardError):
                        unmount_all(self.cdir(rec.id) / "rootfs", detach=True)
                continue
            shim = shims.connect(state_dir) if (state_dir / "shim.sock").exists() else None
            if shim is not None and await shims.alive(shim):
                exit_info = shims.read_exit(state_dir)
                run = Running(shim=shim)
                self.running[rec.id] = run
                if exit_info is not None:  # exited while we were away; the shim kept the status
                    await self._handle_exit(rec.id, run, exit_info)
                else:
                    if self.endpoints is not None:  # before its monitor: an exit cannot interleave
                        await self.endpoints.restore_one(rec)
                    run.monitor = asyncio.create_task(self._monitor(rec.id, run))
                continue
            if rec.state.status == "restarting" and not state_dir.exists():
                rec.state.status = "exited"  # was waiting for its back-off: start_at_boot decides
                self.store.save(rec)
                continue
            info = shims.read_exit(state_dir) or {"exit_code": 255}
            await self._handle_exit(rec.id, None, info)

    async def _discard_shim(self, state_dir: Path) -> None:
        shim = shims.connect(state_dir)
        if (state_dir / "shim.sock").exists() and await shims.alive(shim):
            with contextlib.suppress(Exception):
                await shim.kill(signal=int(_signal.SIGKILL), all=True)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(shim.wait(), 10)
            with contextlib.suppress(Exception):
                await shim.delete()
        shims.remove_state_dir(state_dir)

    def _collect_orphans(self) -> None:
        known = {rec.id for rec in self.store.all()}
        for info in list(self.snapshots.walk()):
            key = str(info.key)
            if key.startswith("container-") and key[len("container-"):][:64] not in known:
                with contextlib.suppress(DockyardError, OSError):  # the init layer after its child
                    initlayer.remove(self.snapshots, key.removesuffix("-init-rw").removesuffix("-init"))
            elif key.startswith(("build-", "extract-")) and info.kind != "committed":
                # a build step or layer unpack that a crash interrupted (none runs at start-up)
                with contextlib.suppress(DockyardError, OSError):
                    self.snapshots.remove(key)
        tmp = Path(self.config.data_root) / "tmp"
        if tmp.is_dir():  # contexts, spooled bodies and mount points of requests a crash cut short
            for leftover in tmp.iterdir():
                with contextlib.suppress(DockyardError):
                    unmount_all(leftover, detach=True)
                if leftover.is_dir() and not leftover.is_symlink():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink(missing_ok=True)
        cdirs = Path(self.config.data_root) / "containers"
        if cdirs.is_dir():
            for d in cdirs.iterdir():
                if d.name not in known and len(d.name) == 64:
                    with contextlib.suppress(DockyardError):
                        unmount_all(d / "rootfs", detach=True)
                    shutil.rmtree(d, ignore_errors=True)
