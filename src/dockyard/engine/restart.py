"""Restart policies (``always``, ``unless-stopped``, ``on-failure[:N]``), Docker's restart manager.

Mixed into ContainerService: after a container exits, ``_should_restart`` decides, and
``_schedule_restart`` starts it again after a back-off (100 ms doubling per restart, ≤ 1 min).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from dockyard.engine.types import ContainerRecord
from dockyard.errors import DockyardError, NotFound

if TYPE_CHECKING:
    from dockyard.engine.containers import ContainerStore
    from dockyard.engine.shims import Running

log = logging.getLogger(__name__)


class RestartPolicies:
    store: ContainerStore
    running: dict[str, Running]
    _restarts: dict[str, asyncio.Task[None]]
    _closing: bool

    def lock(self, cid: str) -> asyncio.Lock:
        raise NotImplementedError

    async def _start_locked(self, rec: ContainerRecord) -> None:
        raise NotImplementedError

    def _should_restart(self, rec: ContainerRecord) -> bool:
        """Docker's restart manager: never after an explicit stop; on-failure honours its limit."""
        policy = rec.host_config.restart_policy
        if rec.manually_stopped or self._closing:
            return False
        if policy.name in ("always", "unless-stopped"):
            return True
        if policy.name == "on-failure" and rec.state.exit_code != 0:
            limit = policy.maximum_retry_count
            return limit <= 0 or rec.state.restart_count < limit
        return False

    def _schedule_restart(self, rec: ContainerRecord) -> None:
        # back-off like Docker: 100 ms doubling per consecutive restart, at most 1 minute
        delay = min(0.1 * (2 ** min(rec.state.restart_count, 10)), 60.0)
        rec.state.status = "restarting"
        rec.state.restart_count += 1
        self.store.save(rec)

        async def again() -> None:
            await asyncio.sleep(delay)
            async with self.lock(rec.id):
                try:
                    current = self.store.get(rec.id)
                except NotFound:
                    return
                if current.state.status != "restarting" or current.manually_stopped:
                    return
                try:
                    await self._start_locked(current)
                except DockyardError as exc:
                    log.warning("restart of %s failed: %s", rec.id[:12], exc)
                    current = self.store.get(rec.id)
                    current.state.status = "exited"
                    self.store.save(current)

        task = asyncio.create_task(again(), name=f"restart-{rec.id[:12]}")
        self._restarts[rec.id] = task
        task.add_done_callback(lambda _t: self._restarts.pop(rec.id, None))

    def _cancel_restart(self, rec: ContainerRecord) -> bool:
        """A container waiting to be restarted has no process: stopping it just cancels that."""
        task = self._restarts.pop(rec.id, None)
        if task is not None:
            task.cancel()
        if rec.state.status != "restarting" or rec.id in self.running:
            return False
        rec.state.status = "exited"
        rec.manually_stopped = True
        self.store.save(rec)
        return True
