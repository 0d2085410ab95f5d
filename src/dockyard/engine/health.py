"""Healthchecks: run the container's HEALTHCHECK as an exec on a schedule, keep State.Health.

moby's daemon/health.go rules: ``NONE`` disables; ``CMD`` runs argv, ``CMD-SHELL`` runs it with the
container's shell (``/bin/sh -c``). Defaults: interval 30 s, timeout 30 s, retries 3, start period
0, start interval 5 s (used while ``starting`` inside the start period). A failure inside the start
period does not count while still ``starting``. The last 5 results are kept, output cut at 4096
bytes (``...`` appended). ``health_status: <status>`` is published when the status changes. A
stopped (or paused) container's monitor stops and its status becomes ``unhealthy``; a start
resets it to ``starting`` (the log stays).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dockyard.engine.containers import parse_rfc3339
from dockyard.engine.types import ContainerRecord, ExecConfig, Health, HealthConfig
from dockyard.errors import DockyardError, InvalidArgument, NotFound

if TYPE_CHECKING:
    from dockyard.engine.execs import ExecService
    from dockyard.engine.streams import StreamSession

log = logging.getLogger(__name__)
DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_START_INTERVAL = 5.0
DEFAULT_RETRIES = 3
MAX_LOG = 5
MAX_OUTPUT = 4096
MIN_DURATION_NS = 1_000_000  # moby's containertypes.MinimumDuration (1 ms)


def probe_argv(test: list[str], shell: list[str] | None = None) -> list[str] | None:
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD":
        return list(test[1:]) or None
    if test[0] == "CMD-SHELL":
        return [*(shell or ["/bin/sh", "-c"]), *test[1:]] if len(test) > 1 else None
    return None


def validate_healthcheck(hc: HealthConfig | None) -> None:
    """moby's validateHealthCheck, on the config as the user sent it."""
    if hc is None:
        return
    for value, name in ((hc.interval_ns, "Interval"), (hc.timeout_ns, "Timeout")):
        if value != 0 and value < MIN_DURATION_NS:
            raise InvalidArgument(f"{name} in Healthcheck cannot be less than 1ms")
    if hc.retries < 0:
        raise InvalidArgument("Retries in Healthcheck cannot be negative")
    for value, name in ((hc.start_period_ns, "StartPeriod"), (hc.start_interval_ns, "StartInterval")):
        if value != 0 and value < MIN_DURATION_NS:
            raise InvalidArgument(f"{name} in Healthcheck cannot be less than 1ms")


def merge_healthcheck(user: HealthConfig | None, image: dict[str, Any]) -> HealthConfig | None:
    """Docker's merge with the image's HEALTHCHECK: a user healthcheck without a test (only
    ``--health-interval`` and the like) takes the image's test; its zero fields take the image's."""
    hc = image.get("Healthcheck")
    if not hc:
        return user
    from_image = HealthConfig(
        test=list(hc.get("Test") or []), interval_ns=int(hc.get("Interval") or 0),
        timeout_ns=int(hc.get("Timeout") or 0), start_period_ns=int(hc.get("StartPeriod") or 0),
        start_interval_ns=int(hc.get("StartInterval") or 0), retries=int(hc.get("Retries") or 0))
    if user is None:
        return from_image
    return replace(
        user, test=user.test or from_image.test, interval_ns=user.interval_ns or from_image.interval_ns,
        timeout_ns=user.timeout_ns or from_image.timeout_ns,
        start_period_ns=user.start_period_ns or from_image.start_period_ns,
        start_interval_ns=user.start_interval_ns or from_image.start_interval_ns,
        retries=user.retries or from_image.retries)


def go_duration(ns: int) -> str:
    """Go's time.Duration.String (``500ms``, ``1.5s``, ``1m30s``), as moby prints timeouts."""
    if ns == 0:
        return "0s"
    sign, ns = ("-" if ns < 0 else ""), abs(ns)

    def frac(value: int, unit: int) -> str:
        whole, rest = divmod(value, unit)
        digits = str(rest).rjust(len(str(unit)) - 1, "0").rstrip("0")
        return f"{whole}.{digits}" if digits else str(whole)

    if ns < 1_000_000_000:
        for suffix, unit in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= unit:
                return sign + frac(ns, unit) + suffix
    hours, rest = divmod(ns, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    seconds = frac(rest, 10**9) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}"
    return f"{sign}{minutes}m{seconds}" if minutes else sign + seconds


def _rfc3339nano(ns: int) -> str:
    """Go's RFC3339Nano (trailing zeros of the fraction dropped), UTC."""
    base = datetime.fromtimestamp(ns // 10**9, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{ns % 10**9:09d}".rstrip("0")
    return f"{base}.{fraction}Z" if fraction else f"{base}Z"


class HealthMonitor:
    def __init__(self, execs: ExecService) -> None:
        self.execs = execs
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def _store(self) -> Any:
        return self.execs.containers.store

    def start(self, cid: str) -> None:
        """A started (restarted, restored) container: status ``starting``, streak 0, log kept."""
        rec = self._store.get(cid)
        hc = rec.config.healthcheck
        if hc is None or probe_argv(hc.test, rec.config.shell) is None:
            return
        self._cancel(cid)
        health = rec.state.health or Health()
        health.status, health.failing_streak = "starting", 0
        rec.state.health = health
        self._store.save(rec)
        self._tasks[cid] = asyncio.create_task(self._loop(cid, hc), name=f"health-{cid[:12]}")

    def stop(self, cid: str) -> None:
        """The container stopped: as moby, a monitor that stops leaves the status ``unhealthy``."""
        if not self._cancel(cid):
            return
        with contextlib.suppress(NotFound):
            rec = self._store.get(cid)
            if rec.state.health is not None:
                rec.state.health.status = "unhealthy"
                self._store.save(rec)

    def close(self) -> None:
        """Daemon shutdown: containers keep running; the next start of the daemon resumes."""
        for cid in list(self._tasks):
            self._cancel(cid)

    def _cancel(self, cid: str) -> bool:
        task = self._tasks.pop(cid, None)
        if task is None:
            return False
        if task is not asyncio.current_task():
            task.cancel()
        return True

    async def _loop(self, cid: str, hc: HealthConfig) -> None:
        interval = hc.interval_ns / 1e9 or DEFAULT_INTERVAL
        start_interval = hc.start_interval_ns / 1e9 or DEFAULT_START_INTERVAL
        start_period = hc.start_period_ns / 1e9
        started = parse_rfc3339(self._store.get(cid).state.started_at)

        def next_interval() -> float:
            if time.time() - started >= start_period:
                return interval
            health = self._store.get(cid).state.health
            return start_interval if health is not None and health.status == "starting" else interval

        while True:
            try:
                await asyncio.sleep(next_interval())
                rec = self._store.get(cid)
                if rec.state.status == "paused":  # no probe into a frozen container: moby stops it
                    self._record(rec, None, "unhealthy")
                    continue
                if rec.state.status != "running":
                    return
                await self.probe_once(cid, hc, started)
            except NotFound:
                return
            except (DockyardError, OSError) as exc:  # recorded or transient: the schedule goes on
                log.warning("healthcheck of %s: %s", cid[:12], exc)

    async def probe_once(self, cid: str, hc: HealthConfig, started: float = 0.0) -> str:
        """Run the probe once, record its result, return the health status."""
        rec = self._store.get(cid)
        argv = probe_argv(hc.test, rec.config.shell)
        assert argv is not None
        begin = time.time_ns()
        try:
            code, output = await self._run(rec, argv, hc.timeout_ns or int(DEFAULT_TIMEOUT * 1e9))
        except NotFound:
            raise
        except DockyardError as exc:  # the probe could not run: moby records -1 and the error
            code, output = -1, str(exc)
        rec = self._store.get(cid)
        if rec.state.status not in ("running", "paused"):
            return rec.state.health.status if rec.state.health else "none"  # stopped meanwhile
        result = {"Start": _rfc3339nano(begin), "End": _rfc3339nano(time.time_ns()),
                  "ExitCode": code, "Output": output}
        health = rec.state.health or Health()
        status = health.status
        if code == 0:
            status, health.failing_streak = "healthy", 0
        elif not (status == "starting" and begin / 1e9 - started < hc.start_period_ns / 1e9):
            health.failing_streak += 1
            if health.failing_streak >= (hc.retries if hc.retries > 0 else DEFAULT_RETRIES):
                status = "unhealthy"
        rec.state.health = health
        return self._record(rec, result, status)

    def _record(self, rec: ContainerRecord, result: dict[str, Any] | None, status: str) -> str:
        health = rec.state.health or Health()
        old = health.status
        if result is not None:
            health.log = [*health.log, result][-MAX_LOG:]
        health.status = status
        rec.state.health = health
        self._store.save(rec)
        if status != old:
            self.execs.containers.emit(rec, f"health_status: {status}")
        return status

    async def _run(self, rec: ContainerRecord, argv: list[str], timeout_ns: int) -> tuple[int, str]:
        """The probe as an exec (user and working dir of the container); (exit code, output)."""
        exec_id = self.execs.create(rec.id, ExecConfig(
            cmd=argv, attach_stdout=True, attach_stderr=True, user=rec.config.user,
            working_dir=rec.config.working_dir))
        output = bytearray()
        truncated = False

        async def collect(session: StreamSession) -> None:
            nonlocal truncated
            while (item := await session.read()) is not None:
                room = MAX_OUTPUT - len(output)
                output.extend(item[1][:max(room, 0)])
                truncated = truncated or len(item[1]) > room

        try:
            session = await self.execs.start(exec_id, detach=False)
            assert session is not None
            try:
                await asyncio.wait_for(collect(session), timeout_ns / 1e9)
                code = session.exit_code if session.exit_code is not None else -1
                text = output.decode(errors="replace") + ("..." if truncated else "")
            except TimeoutError:
                self._kill(exec_id)
                with contextlib.suppress(TimeoutError, DockyardError):
                    await asyncio.wait_for(session.drain_to_end(), 5)  # reaped: exec_die follows
                code, text = -1, f"Health check exceeded timeout ({go_duration(timeout_ns)})"
                if output:
                    text += ": " + output.decode(errors="replace") + ("..." if truncated else "")
            finally:
                with contextlib.suppress(Exception):
                    await session.close()
        finally:
            self.execs.execs.pop(exec_id, None)
            with contextlib.suppress(NotFound, ValueError):
                self._store.get(rec.id).exec_ids.remove(exec_id)
        return code, text

    def _kill(self, exec_id: str) -> None:
        """A probe over its timeout is killed, as moby cancels it (the shim reaps it)."""
        ex = self.execs.execs.get(exec_id)
        if ex is not None and ex.pid > 0:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(ex.pid, signal.SIGKILL)
