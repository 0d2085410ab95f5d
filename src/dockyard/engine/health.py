"""Healthchecks: run the container's HEALTHCHECK as an exec on a schedule, keep State.Health.

Docker's rules: ``NONE`` disables; ``CMD`` runs argv, ``CMD-SHELL`` runs ``/bin/sh -c``; defaults
interval 30 s, timeout 30 s, retries 3, start period 0; failures during the start period do not
count; the last 5 results are kept; each status change emits ``health_status: <status>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from dockyard.engine.types import ExecConfig, Health, HealthConfig
from dockyard.errors import DockyardError, NotFound

if TYPE_CHECKING:
    from dockyard.engine.execs import ExecService

log = logging.getLogger(__name__)
DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
MAX_LOG = 5
MAX_OUTPUT = 4096


def probe_argv(test: list[str]) -> list[str] | None:
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD":
        return list(test[1:]) or None
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(test[1:])] if len(test) > 1 else None
    return None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class HealthMonitor:
    def __init__(self, execs: ExecService) -> None:
        self.execs = execs
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, cid: str) -> None:
        rec = self.execs.containers.store.get(cid)
        hc = rec.config.healthcheck
        if hc is None or probe_argv(hc.test) is None:
            return
        self.stop(cid)
        rec.state.health = Health(status="starting")
        self.execs.containers.store.save(rec)
        self._tasks[cid] = asyncio.create_task(self._loop(cid, hc), name=f"health-{cid[:12]}")

    def stop(self, cid: str) -> None:
        task = self._tasks.pop(cid, None)
        if task is not None:
            task.cancel()

    def close(self) -> None:
        for cid in list(self._tasks):
            self.stop(cid)

    async def _loop(self, cid: str, hc: HealthConfig) -> None:
        interval = hc.interval_ns / 1e9 or DEFAULT_INTERVAL
        start_period = hc.start_period_ns / 1e9
        start_interval = hc.start_interval_ns / 1e9 or interval
        began = asyncio.get_running_loop().time()
        while True:
            in_start = asyncio.get_running_loop().time() - began < start_period
            await asyncio.sleep(start_interval if in_start else interval)
            try:
                await self.probe_once(cid, hc, in_start)
            except NotFound:
                return
            except DockyardError as exc:  # container stopping: the monitor is stopped with it
                log.debug("healthcheck of %s: %s", cid[:12], exc)

    async def probe_once(self, cid: str, hc: HealthConfig, in_start_period: bool = False) -> str:
        argv = probe_argv(hc.test)
        assert argv is not None
        containers = self.execs.containers
        started = _now()
        exec_id = self.execs.create(cid, ExecConfig(cmd=argv, attach_stdout=True, attach_stderr=True))
        output = b""
        timeout = hc.timeout_ns / 1e9 or DEFAULT_TIMEOUT
        try:
            session = await self.execs.start(exec_id, detach=False)
            assert session is not None

            async def collect() -> None:
                nonlocal output
                while (item := await session.read()) is not None:
                    if len(output) < MAX_OUTPUT:
                        output += item[1]

            try:
                await asyncio.wait_for(collect(), timeout)
                code = session.exit_code if session.exit_code is not None else -1
                text = output[:MAX_OUTPUT].decode(errors="replace")
            except TimeoutError:
                code = -1
                text = f"Health check exceeded timeout ({timeout:g}s)"
            finally:
                with contextlib.suppress(Exception):
                    await session.close()
        finally:
            self.execs.execs.pop(exec_id, None)
        rec = containers.store.get(cid)
        with contextlib.suppress(ValueError):
            rec.exec_ids.remove(exec_id)
        health = rec.state.health or Health()
        health.log = ([*health.log, {"Start": started, "End": _now(), "ExitCode": code, "Output": text}])[-MAX_LOG:]
        old = health.status
        if code == 0:
            health.status, health.failing_streak = "healthy", 0
        elif not (in_start_period and health.status == "starting"):
            health.failing_streak += 1
            if health.failing_streak >= (hc.retries or DEFAULT_RETRIES):
                health.status = "unhealthy"
        rec.state.health = health
        containers.store.save(rec)
        if health.status != old or health.status != "starting":
            containers.emit(rec, f"health_status: {health.status}")
        return health.status
