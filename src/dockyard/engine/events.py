"""The event bus: publish, subscribe with filters and a time window, replay from the on-disk journal.

Publishing never waits for a subscriber: each one has a bounded backlog, and one that falls more than
``backlog`` events behind is dropped (its stream ends, see ``Subscription.on_drop``) instead of
holding memory or slowing the daemon. Past events come from the journal (``eventlog``) when one is
attached, else from a small in-memory ring.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from datetime import datetime
from pathlib import Path

from dockyard.engine.eventlog import EventJournal, Segment, first_time, read_chunk
from dockyard.engine.types import Event
from dockyard.errors import InvalidArgument

log = logging.getLogger(__name__)

HISTORY = 1024
BACKLOG = 1024       # events a subscriber may fall behind before it is dropped (moby buffers 1024)


def matches(event: Event, filters: dict[str, list[str]]) -> bool:
    """Docker's events filters: type, event, scope, container, image, network, volume, daemon,
    label (key or key=value)."""
    def one_of(key: str, values: list[str]) -> bool:
        wanted = filters.get(key)
        return not wanted or any(v in wanted for v in values)

    name = event.attributes.get("name", "")
    if not one_of("type", [event.type]) or not one_of("scope", [event.scope]):
        return False
    # "event" filters may name "exec_start" while the action is "exec_start: sh -c …"
    actions = [event.action, event.action.split(":", 1)[0]]
    if not one_of("event", actions):
        return False
    if filters.get("container") and (
            event.type != "container" or not _match_id(event.actor_id, name, filters["container"])):
        return False
    for kind in ("network", "volume", "daemon"):   # as moby: the actor's ID (prefix) or name
        if filters.get(kind) and not _match_id(event.actor_id, name, filters[kind]):
            return False
    if filters.get("image"):
        # as moby: the actor's ID, or the image name ("name" of image events, "image" of others),
        # with or without its tag; plus ID prefixes of image events
        image = event.attributes.get("name" if event.type == "image" else "image", "")
        names = {event.actor_id, image, _strip_tag(image)}
        if not any(v in names or image == v.split(":", 1)[0]
                   or (event.type == "image" and event.actor_id.startswith(v))
                   for v in filters["image"]):
            return False
    for label in filters.get("label", []):
        key, sep, value = label.partition("=")
        if key not in event.attributes or (sep and event.attributes[key] != value):
            return False
    return True


def _strip_tag(ref: str) -> str:
    if ref.startswith("sha256:"):
        return ref
    ref = ref.split("@", 1)[0]
    head, sep, tail = ref.rpartition(":")
    return head if sep and "/" not in tail else ref


def _match_id(actor: str, name: str, wanted: list[str]) -> bool:
    return any(w == name or w.lstrip("/") == name or (len(w) >= 1 and actor.startswith(w))
               for w in wanted)


# -- since / until ---------------------------------------------------------------------------------
class EventTime(float):
    """Unix seconds as a float (what the Engine facade passes on) that keeps the exact nanoseconds
    it was parsed from, so ``until=<an event's timeNano>`` still includes that event."""
    ns: int

    def __new__(cls, ns: int) -> EventTime:
        obj = super().__new__(cls, ns / 1e9)
        obj.ns = ns
        return obj


_UNIX = re.compile(r"^(-?\d+)(?:\.(\d*))?$")
_DURATION = re.compile(r"^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 10**9,
            "m": 60 * 10**9, "h": 3600 * 10**9}


def parse_event_time(value: str, name: str, now_ns: int | None = None) -> EventTime:
    """A ``since``/``until`` value. dockerd takes only ``<seconds>[.<nanos>]`` (the docker CLI
    converts durations and RFC 3339 before sending); we also take those forms for raw API users:
    a Go duration counts back from now (``10m``), RFC 3339 without a zone is local time."""
    text = value.strip()
    if m := _UNIX.match(text):
        frac = (m.group(2) or "")[:9].ljust(9, "0")
        sec = int(m.group(1))
        return EventTime(sec * 10**9 + (-1 if text.startswith("-") else 1) * int(frac))
    now = time.time_ns() if now_ns is None else now_ns
    if _DURATION.match(text):
        total = sum(int(float(n) * _UNIT_NS[u]) for n, u in _DURATION_PART.findall(text))
        return EventTime(now + total if text.startswith("-") else now - total)
    try:
        return EventTime(_rfc3339_ns(text))
    except ValueError as exc:
        raise InvalidArgument(f"invalid value for {name}: {value!r}: not a unix timestamp, "
                              "RFC 3339 time or duration") from exc


def _rfc3339_ns(text: str) -> int:
    if not re.match(r"^\d{4}-\d{2}-\d{2}", text):
        raise ValueError(text)
    nanos = 0
    if m := re.search(r"\.(\d+)", text):  # fromisoformat stops at microseconds: take them apart
        nanos = int(m.group(1)[:9].ljust(9, "0"))
        text = text[:m.start()] + text[m.end():]
    text = re.sub(r"[zZ]$", "+00:00", text)
    return int(datetime.fromisoformat(text).timestamp()) * 10**9 + nanos


def event_window(since: str, until: str) -> tuple[EventTime | None, EventTime | None]:
    """Parse the query's ``since``/``until`` (empty = unset) and reject ``since`` after ``until``."""
    now = time.time_ns()
    lo = parse_event_time(since, "since", now) if since else None
    hi = parse_event_time(until, "until", now) if until else None
    if lo is not None and hi is not None and hi.ns < lo.ns:
        raise InvalidArgument(f"`since` time ({since}) cannot be after `until` time ({until})")
    return lo, hi


def _ns(value: float | None) -> int | None:
    if value is None:
        return None
    return value.ns if isinstance(value, EventTime) else round(value * 1e9)


# -- the bus ---------------------------------------------------------------------------------------
class _Sub:
    """One subscriber's backlog; touched only on the event loop."""
    __slots__ = ("dropped", "ended", "on_drop", "pending", "ready")

    def __init__(self) -> None:
        self.pending: deque[Event] = deque()
        self.ready = asyncio.Event()
        self.ended = False
        self.dropped = False
        self.on_drop: Callable[[], None] | None = None


class Subscription:
    """An async iterator of events. ``on_drop`` (set by the consumer) is called on the event loop
    if the subscriber is dropped for falling behind: the stream then ends at its next step, so a
    consumer blocked elsewhere (a write to a client that does not read) should abort there."""

    def __init__(self, sub: _Sub, gen: AsyncGenerator[Event, None]) -> None:
        self._sub, self._gen = sub, gen

    @property
    def on_drop(self) -> Callable[[], None] | None:
        return self._sub.on_drop

    @on_drop.setter
    def on_drop(self, callback: Callable[[], None] | None) -> None:
        self._sub.on_drop = callback

    @property
    def dropped(self) -> bool:
        return self._sub.dropped

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        return await self._gen.__anext__()

    async def aclose(self) -> None:
        await self._gen.aclose()


class EventBus:
    def __init__(self, history: int = HISTORY, journal: Path | None = None,
                 backlog: int = BACKLOG) -> None:
        self._history: deque[Event] = deque(maxlen=history)
        self._subs: set[_Sub] = set()
        self._lock = threading.Lock()      # publish may run in worker threads (asyncio.to_thread)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._journal: EventJournal | None = None
        self._flush_pending = False
        self._flush_loop: asyncio.AbstractEventLoop | None = None
        self.backlog = backlog
        if journal is not None:
            self.open_journal(journal)

    def open_journal(self, root: Path, max_bytes: int | None = None, keep: int | None = None) -> None:
        """Journal every event from now on under ``root``; replays read from it."""
        kwargs = {k: v for k, v in (("max_bytes", max_bytes), ("keep", keep)) if v is not None}
        try:
            journal = EventJournal(root, **kwargs)
        except OSError as exc:  # events are best effort: a daemon without a journal still runs
            log.warning("events journal %s: %s; past events are kept in memory only", root, exc)
            return
        with self._lock:
            old, self._journal = self._journal, journal
        if old is not None:
            old.close()

    @property
    def journal(self) -> EventJournal | None:
        return self._journal

    def publish(self, type_: str, action: str, actor_id: str,
                attributes: dict[str, str] | None = None) -> Event:
        event = Event(type=type_, action=action, actor_id=actor_id,
                      attributes=dict(attributes or {}), time_nano=time.time_ns())
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        with self._lock:
            self._history.append(event)
            # a subscriber registered after this point finds the event in the journal/ring instead
            subs = tuple(self._subs)
            if self._journal is not None:
                self._journal.append(event)
                if loop is None:
                    self._journal.flush()       # no loop to flush for us soon: do it now
                elif not self._flush_pending or self._flush_loop is not loop:
                    # one flush per loop turn, however many events (a loop that died with a
                    # flush pending, as in tests running several loops, does not stall it)
                    self._flush_pending, self._flush_loop = True, loop
                    loop.call_soon(self._flush)
        if subs:
            if loop is not None and loop is self._loop:
                self._deliver(subs, event)
            elif self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._deliver, subs, event)
        return event

    def _flush(self) -> None:
        with self._lock:
            self._flush_pending = False
            if self._journal is not None:
                self._journal.flush()

    def _deliver(self, subs: tuple[_Sub, ...], event: Event) -> None:
        for sub in subs:
            if sub.ended:
                continue
            if len(sub.pending) >= self.backlog:
                self._drop(sub)
                continue
            sub.pending.append(event)
            sub.ready.set()

    def _drop(self, sub: _Sub) -> None:
        log.warning("events: dropping a subscriber more than %d events behind", self.backlog)
        self._end(sub)
        sub.dropped = True
        if sub.on_drop is not None:
            try:
                sub.on_drop()
            except Exception:  # the consumer's callback must not break publishing
                log.exception("events: on_drop callback failed")

    def _end(self, sub: _Sub) -> None:
        sub.ended = True
        sub.pending.clear()             # free the backlog now, not when the consumer comes back
        sub.ready.set()
        with self._lock:
            self._subs.discard(sub)

    def history(self) -> list[Event]:
        return list(self._history)

    def subscribers(self) -> int:
        return len(self._subs)

    def subscribe(self, since: float | None, until: float | None,
                  filters: dict[str, list[str]]) -> Subscription:
        """Past events in [since, until] (as dockerd: replayed when either is set), then live ones
        until ``until`` (if given). Times are unix seconds; ``EventTime`` keeps nanoseconds."""
        sub = _Sub()
        return Subscription(sub, self._run(sub, _ns(since), _ns(until), filters))

    async def _run(self, sub: _Sub, since_ns: int | None, until_ns: int | None,
                   filters: dict[str, list[str]]) -> AsyncGenerator[Event, None]:
        self._loop = asyncio.get_running_loop()
        with self._lock:
            self._subs.add(sub)
            cut = self._journal.position() if self._journal is not None else None
            ring = list(self._history) if cut is None else []
        try:
            if since_ns is not None or until_ns is not None:
                lo = since_ns or 0

                def keep(ev: Event) -> bool:
                    return lo <= ev.time_nano and (until_ns is None or ev.time_nano <= until_ns) \
                        and matches(ev, filters)
                if cut is not None and self._journal is not None:
                    async for event in self._replay(self._journal.segments(cut), lo, keep):
                        if sub.ended:
                            return      # dropped (or the bus closed) while replaying
                        yield event
                else:
                    for event in ring:
                        if keep(event):
                            yield event
                if until_ns is not None and until_ns <= time.time_ns():
                    return      # only past events: done after the replay, as dockerd
            async for event in self._live(sub, until_ns, filters):
                yield event
        finally:
            self._end(sub)

    async def _replay(self, segments: list[Segment], since_ns: int,
                      keep: Callable[[Event], bool]) -> AsyncIterator[Event]:
        """Journal events, oldest first; file reads and JSON parsing run off the event loop."""
        for i, seg in enumerate(segments):
            if since_ns and i + 1 < len(segments):
                nxt = await asyncio.to_thread(first_time, segments[i + 1].path)
                if nxt is not None and nxt < since_ns:
                    continue            # the whole segment is older than ``since``
            offset: int | None = 0
            while offset is not None:
                batch, offset = await asyncio.to_thread(read_chunk, seg, offset, keep)
                for event in batch:
                    yield event

    async def _live(self, sub: _Sub, until_ns: int | None,
                    filters: dict[str, list[str]]) -> AsyncIterator[Event]:
        while True:
            while not sub.pending and not sub.ended:
                sub.ready.clear()
                if until_ns is None:
                    await sub.ready.wait()
                    continue
                remaining = (until_ns - time.time_ns()) / 1e9
                if remaining <= 0:
                    return
                try:
                    await asyncio.wait_for(sub.ready.wait(), remaining)
                except TimeoutError:
                    return
            if sub.ended:
                return
            event = sub.pending.popleft()
            if until_ns is not None and event.time_nano > until_ns:
                return
            if matches(event, filters):
                yield event

    def close(self) -> None:
        """End every stream and flush the journal (the daemon is stopping)."""
        for sub in list(self._subs):
            self._end(sub)
        with self._lock:
            journal, self._journal = self._journal, None
        if journal is not None:
            journal.flush()
            journal.close()
