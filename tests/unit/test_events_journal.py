"""The events journal and bus: rotation bound, torn lines, since/until parsing, replay with filters
across a "restart" (a new bus on the same directory), and slow subscribers being dropped."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from dockyard.engine.eventlog import decode, encode, journal_stats
from dockyard.engine.events import EventBus, EventTime, event_window, parse_event_time
from dockyard.engine.types import Event
from dockyard.errors import InvalidArgument

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, 30)   # a hang fails the test instead of the run
    return asyncio.run(bounded())


async def collect(bus: EventBus, since: float | None, until: float | None,
                  filters: dict[str, list[str]] | None = None) -> list[Event]:
    return [e async for e in bus.subscribe(since, until, filters or {})]


def test_rotation_keeps_disk_use_bounded(tmp_path: Path) -> None:
    bus = EventBus()
    bus.open_journal(tmp_path / "events", max_bytes=4096, keep=3)
    for i in range(2000):
        bus.publish("container", "start", f"{i:064x}", {"name": f"c{i}", "image": "busybox"})
    bus.close()
    line = len(encode(Event("container", "start", "0" * 64, {"name": "c1999", "image": "busybox"})))
    stats = journal_stats(tmp_path / "events")
    assert stats["segments"] == 3
    assert stats["bytes"] <= 3 * (4096 + line)

    # what is left is the newest events, oldest first, none missing in between
    bus = EventBus()
    bus.open_journal(tmp_path / "events", max_bytes=4096, keep=3)
    got = run(collect(bus, 0, time.time()))
    ids = [int(e.actor_id, 16) for e in got]
    assert ids[-1] == 1999 and ids == list(range(ids[0], 2000)) and len(ids) < 2000
    bus.close()


def test_torn_and_foreign_lines_are_skipped(tmp_path: Path) -> None:
    root = tmp_path / "events"
    bus = EventBus(journal=root)
    start = time.time()
    bus.publish("volume", "create", "v1", {"driver": "local"})
    bus.publish("volume", "destroy", "v1", {"driver": "local"})
    bus.close()
    seg = sorted(root.iterdir())[-1]
    with open(seg, "ab") as f:      # a crash in the middle of a line, then junk
        f.write(b'{"Type":"volume","Action":"mount","Actor":{"ID":"v1","Attri')
    # a new bus ("daemon restart") fences the torn line off and keeps appending
    bus = EventBus(journal=root)
    bus.publish("volume", "create", "v2", {})
    with open(seg, "ab") as f:
        f.write(b"not json\n[1,2]\n{}\n")
    bus.publish("volume", "destroy", "v2", {})
    got = run(collect(bus, start, time.time()))
    assert [(e.actor_id, e.action) for e in got] == [
        ("v1", "create"), ("v1", "destroy"), ("v2", "create"), ("v2", "destroy")]
    bus.close()
    assert decode(b'{"Type":"x"') is None and decode(b"\xff\xfe") is None


def test_since_until_parsing() -> None:
    assert parse_event_time("1700000000", "since").ns == 1_700_000_000 * 10**9
    assert parse_event_time("1700000000.5", "since").ns == 1_700_000_000_500_000_000
    assert parse_event_time("1700000000.123456789", "since").ns == 1_700_000_000_123_456_789
    assert parse_event_time("1700000000.1234567891", "since").ns == 1_700_000_000_123_456_789
    assert parse_event_time("-1.5", "since").ns == -1_500_000_000
    now = 1_700_000_000 * 10**9
    assert parse_event_time("10m", "since", now).ns == now - 600 * 10**9
    assert parse_event_time("1h30m", "since", now).ns == now - 5400 * 10**9
    assert parse_event_time("1.5s", "since", now).ns == now - 1_500_000_000
    assert parse_event_time("-10s", "until", now).ns == now + 10 * 10**9
    assert parse_event_time("2023-11-14T22:13:20Z", "since").ns == now
    assert parse_event_time("2023-11-14T22:13:20.000000001Z", "since").ns == now + 1
    assert parse_event_time("2023-11-14T23:13:20+01:00", "since").ns == now
    assert isinstance(parse_event_time("1", "since"), float)   # the Engine facade takes floats
    for bad in ("yesterday", "10x", "", "2023-13-45T00:00:00Z"):
        with pytest.raises(InvalidArgument):
            parse_event_time(bad, "since")
    assert event_window("", "") == (None, None)
    with pytest.raises(InvalidArgument, match="cannot be after"):
        event_window("200", "100")


def test_replay_with_filters_across_restart(tmp_path: Path) -> None:
    root = tmp_path / "events"
    bus = EventBus(journal=root)
    start = time.time()
    bus.publish("container", "create", "c" * 64, {"name": "web", "image": "busybox", "tier": "front"})
    bus.publish("image", "tag", "sha256:abc", {"name": "busybox:latest"})
    bus.publish("network", "connect", "n1", {"name": "net1", "container": "c" * 64})
    bus.publish("container", "exec_start: sh -c x", "d" * 64, {"name": "db", "image": "busybox"})
    mid = bus.history()[-1].time_nano
    bus.publish("daemon", "reload", "daemon-id", {"name": "host"})
    bus.close()

    bus = EventBus(journal=root)      # nothing in memory: all of it comes from disk
    assert bus.history() == []
    now = time.time()

    def actions(filters: dict[str, list[str]], since: float = start, until: float = now) -> list[str]:
        return [e.action for e in run(collect(bus, since, until, filters))]
    assert actions({}) == ["create", "tag", "connect", "exec_start: sh -c x", "reload"]
    assert actions({"type": ["container"]}) == ["create", "exec_start: sh -c x"]
    assert actions({"label": ["tier=front"]}) == ["create"]
    assert actions({"container": ["web"]}) == ["create"]
    assert actions({"event": ["exec_start"]}) == ["exec_start: sh -c x"]
    assert actions({"image": ["busybox"]}) == ["create", "tag", "exec_start: sh -c x"]
    assert actions({"network": ["net1"]}) == ["connect"]
    assert actions({"daemon": ["daemon-id"]}) == ["reload"]
    # the exact nanoseconds of an event as ``until`` include it; one less excludes it
    assert actions({}, until=EventTime(mid))[-1] == "exec_start: sh -c x"
    assert actions({}, until=EventTime(mid - 1))[-1] == "connect"
    assert actions({}, since=EventTime(mid))[0] == "exec_start: sh -c x"
    bus.close()


def test_replay_then_live_without_duplicates(tmp_path: Path) -> None:
    async def main() -> list[str]:
        bus = EventBus(journal=tmp_path / "events")
        start = time.time()
        bus.publish("volume", "create", "old", {})
        got: list[str] = []
        sub = bus.subscribe(start, None, {})

        async def consume() -> None:
            async for e in sub:
                got.append(e.actor_id)
                if e.actor_id == "last":
                    return
        task = asyncio.ensure_future(consume())
        while bus.subscribers() == 0:
            await asyncio.sleep(0.01)
        bus.publish("volume", "create", "new", {})
        await asyncio.to_thread(bus.publish, "volume", "create", "last", {})  # from a worker thread
        await task
        await sub.aclose()
        assert bus.subscribers() == 0
        bus.close()
        return got
    assert run(main()) == ["old", "new", "last"]


def test_slow_subscriber_is_dropped_not_waited_for() -> None:
    async def main() -> None:
        bus = EventBus(backlog=10)
        sub = bus.subscribe(None, None, {})
        drops: list[bool] = []
        sub.on_drop = lambda: drops.append(True)
        first = asyncio.ensure_future(sub.__anext__())   # registers, then never reads again
        while bus.subscribers() == 0:
            await asyncio.sleep(0.01)
        for i in range(1000):
            bus.publish("container", "start", str(i))
        assert sub.dropped and drops == [True] and bus.subscribers() == 0
        with pytest.raises(StopAsyncIteration):   # the stream ends rather than skipping events
            await first
        # a fast subscriber alongside is unaffected
        fast = bus.subscribe(None, None, {})
        nxt = asyncio.ensure_future(fast.__anext__())
        await asyncio.sleep(0.01)
        bus.publish("container", "die", "x")
        assert (await nxt).action == "die"
        await fast.aclose()
    run(main())


def test_until_in_the_past_returns_after_replay_and_close_ends_streams(tmp_path: Path) -> None:
    async def main() -> None:
        bus = EventBus(journal=tmp_path / "events")
        bus.publish("volume", "create", "v", {})
        assert [e.actor_id for e in await collect(bus, None, time.time())] == ["v"]
        live = asyncio.ensure_future(collect(bus, None, None))
        while bus.subscribers() == 0:
            await asyncio.sleep(0.01)
        bus.close()
        assert await live == []
    run(main())
