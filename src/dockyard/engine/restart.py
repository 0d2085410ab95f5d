"""Restart policies (``no``, ``always``, ``unless-stopped``, ``on-failure[:N]``) as moby's restart manager.

Mixed into ContainerService. Each container gets an in-memory RestartManager (Docker keeps its
own in memory too): the back-off starts at 100 ms, doubles per restart up to 1 minute, and starts
over when the container had run for 10 s. A user's stop/kill/rm cancels the manager (no restart
after that exit); a user's start replaces it and resets RestartCount. While waiting, the
container is ``restarting`` (Docker counts it as running: stop, kill, rm -f and wait act on it).
At daemon start, stopped containers that the policy wants running come back (``start_at_boot``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal as _signal
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dockyard.engine.containers import parse_rfc3339
from dockyard.engine.spec import parse_signal
from dockyard.engine.types import ContainerRecord
from dockyard.errors import DockyardError, NotFound

if TYPE_CHECKING:
    from dockyard.engine.containers import ContainerStore
    from dockyard.engine.shims import Running

log = logging.getLogger(__name__)

FIRST_DELAY = 0.1    # seconds before the first restart
MAX_DELAY = 60.0     # the back-off never grows past this
RESET_AFTER = 10.0   # a run at least this long starts the back-off over


@dataclass
class RestartManager:
    delay: float = 0.0                       # the last back-off (0: none yet)
    canceled: bool = False                   # a user stopped it: no restart after this exit
    task: asyncio.Task[None] | None = None   # the pending restart, while it may still be called off

    def next_delay(self, ran_for: float) -> float:
        """moby computes this on every exit, restart or not."""
        if ran_for >= RESET_AFTER:
            self.delay = 0.0
        self.delay = FIRST_DELAY if self.delay == 0 else min(self.delay * 2, MAX_DELAY)
        return self.delay


def ran_for(rec: ContainerRecord) -> float:
    started, finished = parse_rfc3339(rec.state.started_at), parse_rfc3339(rec.state.finished_at)
    return max(finished - started, 0.0) if started else 0.0


def wants_restart(rec: ContainerRecord, manually_stopped: bool) -> bool:
    policy = rec.host_config.restart_policy
    if policy.name == "always":
        return True
    if policy.name == "unless-stopped":
        return not manually_stopped
    if policy.name == "on-failure":
        limit = policy.maximum_retry_count
        return rec.state.exit_code != 0 and (limit <= 0 or rec.state.restart_count < limit)
    return False


class RestartPolicies:
    store: ContainerStore
    running: dict[str, Running]
    _managers: dict[str, RestartManager]
    _exit_waiters: dict[str, list[asyncio.Future[tuple[int, str]]]]
    _closing: bool
    _restoring: bool

    def lock(self, cid: str) -> asyncio.Lock:
        raise NotImplementedError

    async def _start_locked(self, rec: ContainerRecord) -> None:
        raise NotImplementedError

    def _manager(self, cid: str) -> RestartManager:
        return self._managers.setdefault(cid, RestartManager())

    def _reset_restart_manager(self, rec: ContainerRecord, reset_count: bool) -> None:
        """A user's start (and a start at boot) gets a fresh manager: back-off and cancel go."""
        old = self._managers.pop(rec.id, None)
        if old is not None and old.task is not None:
            old.task.cancel()
        if reset_count:
            rec.state.restart_count = 0

    def _decide_restart(self, rec: ContainerRecord) -> float | None:
        """On exit (exit code and FinishedAt recorded): the back-off if the policy restarts it, and
        the state for that (``restarting``, one more RestartCount), else ``exited``."""
        rec.state.status = "exited"
        if rec.host_config.restart_policy.name in ("", "no") or rec.host_config.auto_remove:
            return None
        mgr = self._manager(rec.id)
        delay = mgr.next_delay(ran_for(rec))
        if mgr.canceled or self._closing or self._restoring or not wants_restart(rec, rec.manually_stopped):
            return None
        rec.state.status = "restarting"
        rec.state.restart_count += 1
        return delay

    def _schedule_restart(self, rec: ContainerRecord, delay: float) -> None:
        log.info("restarting container %s in %gs (restart count %d)", rec.id, delay, rec.state.restart_count)
        mgr = self._manager(rec.id)
        mgr.task = asyncio.create_task(self._restart_after(rec.id, delay), name=f"restart-{rec.id[:12]}")

    async def _restart_after(self, cid: str, delay: float) -> None:
        await asyncio.sleep(delay)
        async with self.lock(cid):
            mgr = self._managers.get(cid)
            if mgr is not None:
                mgr.task = None  # starting now: a stop waits for the lock, then stops it
            try:
                rec = self.store.get(cid)
            except NotFound:
                return
            if rec.state.status != "restarting" or cid in self.running:
                return
            try:
                await self._start_locked(rec)
            except DockyardError as exc:  # as moby: the container stays stopped
                log.warning("restart of %s failed: %s", cid[:12], exc)
                with contextlib.suppress(NotFound):
                    rec = self.store.get(cid)
                    rec.state.status = "exited"
                    self.store.save(rec)

    def _note_manual_stop(self, rec: ContainerRecord, signum: int) -> None:
        """A user's stop/kill/rm (moby's killWithSignal): HasBeenManuallyStopped, and the restart
        manager is canceled for SIGKILL or the container's stop signal (any signal without one)."""
        rec.manually_stopped = True
        self.store.save(rec)
        stop_signal = rec.config.stop_signal
        if not stop_signal or signum == int(_signal.SIGKILL) or parse_signal(stop_signal) == signum:
            self._manager(rec.id).canceled = True

    def _restart_canceled(self, cid: str) -> bool:
        mgr = self._managers.get(cid)
        return mgr is not None and mgr.canceled

    async def _stop_restarting(self, rec: ContainerRecord) -> bool:
        """Stop a container waiting for its restart: True if it was waiting (it is ``exited`` now,
        wait() callers have its exit code). False if it is running again (a restart was under way:
        the caller stops it as any running container)."""
        async with self.lock(rec.id):  # an exit being recorded, or a restart starting, finishes first
            try:
                rec = self.store.get(rec.id)
            except NotFound:
                return True
            if rec.state.status != "restarting" or rec.id in self.running:
                return False
            mgr = self._managers.get(rec.id)
            if mgr is not None and mgr.task is not None:
                mgr.task.cancel()  # it sleeps or waits for this lock: it has not begun to start
                mgr.task = None
            rec.state.status = "exited"
            self.store.save(rec)
        for fut in self._exit_waiters.pop(rec.id, []):
            if not fut.done():
                fut.set_result((rec.state.exit_code, ""))
        return True

    def _drop_restart_managers(self) -> None:
        """Engine close: pending restarts are called off (the next start of the daemon decides)."""
        for mgr in self._managers.values():
            if mgr.task is not None:
                mgr.task.cancel()
        self._managers.clear()

    async def start_at_boot(self, recs: list[ContainerRecord]) -> None:
        """moby's restore: stopped containers that ran before come back if the policy wants them
        (``always`` even after a user's stop, ``unless-stopped`` only if not stopped by the user,
        ``on-failure`` after a failure under its limit) — started as by a user (RestartCount 0)."""
        wanted = [r for r in recs if r.state.status == "exited" and parse_rfc3339(r.state.started_at)
                  and not r.host_config.auto_remove and wants_restart(r, r.manually_stopped)]
        # a container joining another's namespaces starts after the others
        wanted.sort(key=lambda r: any(m.startswith("container:") for m in (
            r.host_config.network_mode, r.host_config.pid_mode, r.host_config.ipc_mode)))
        for rec in wanted:
            async with self.lock(rec.id):
                try:
                    rec = self.store.get(rec.id)
                except NotFound:
                    continue
                if rec.state.running:
                    continue
                self._reset_restart_manager(rec, reset_count=True)
                try:
                    await self._start_locked(rec)
                except DockyardError as exc:
                    log.warning("starting %s (restart policy %s) failed: %s", rec.id[:12],
                                rec.host_config.restart_policy.name, exc)
