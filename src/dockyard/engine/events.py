"""In-memory event bus: publish, subscribe with filters, and a bounded history ring for ``since``."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator

from dockyard.engine.types import Event

HISTORY = 1024


def matches(event: Event, filters: dict[str, list[str]]) -> bool:
    """Docker's events filters: type, event, container, image, label (key or key=value)."""
    def one_of(key: str, values: list[str]) -> bool:
        wanted = filters.get(key)
        return not wanted or any(v in wanted for v in values)

    name = event.attributes.get("name", "")
    if not one_of("type", [event.type]):
        return False
    # "event" filters may name "exec_start" while the action is "exec_start: sh -c …"
    actions = [event.action, event.action.split(":", 1)[0]]
    if not one_of("event", actions):
        return False
    if filters.get("container") and (
            event.type != "container" or not _match_id(event.actor_id, name, filters["container"])):
        return False
    if filters.get("image"):
        image = event.attributes.get("image", "")
        ids = [event.actor_id] if event.type == "image" else []
        if not any(v in (image, event.actor_id) or (ids and event.actor_id.startswith(v))
                   or image == v.split(":", 1)[0] for v in filters["image"]):
            return False
    for label in filters.get("label", []):
        key, sep, value = label.partition("=")
        if key not in event.attributes or (sep and event.attributes[key] != value):
            return False
    return True


def _match_id(actor: str, name: str, wanted: list[str]) -> bool:
    return any(w == name or w.lstrip("/") == name or (len(w) >= 1 and actor.startswith(w))
               for w in wanted)


class EventBus:
    def __init__(self, history: int = HISTORY) -> None:
        self._history: deque[Event] = deque(maxlen=history)
        self._subscribers: set[asyncio.Queue[Event]] = set()

    def publish(self, type_: str, action: str, actor_id: str,
                attributes: dict[str, str] | None = None) -> Event:
        event = Event(type=type_, action=action, actor_id=actor_id,
                      attributes=dict(attributes or {}), time_nano=time.time_ns())
        self._history.append(event)
        for queue in list(self._subscribers):
            queue.put_nowait(event)
        return event

    def history(self) -> list[Event]:
        return list(self._history)

    async def subscribe(self, since: float | None, until: float | None,
                        filters: dict[str, list[str]]) -> AsyncIterator[Event]:
        """Past events from ``since`` (from the ring), then live ones until ``until`` (if given)."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._subscribers.add(queue)  # subscribe first so nothing falls between history and live
        try:
            last = 0
            if since is not None:
                since_ns = int(since * 1e9)
                until_ns = int(until * 1e9) if until is not None else None
                for event in list(self._history):
                    if event.time_nano < since_ns or (until_ns is not None and event.time_nano > until_ns):
                        continue
                    if matches(event, filters):
                        last = max(last, event.time_nano)
                        yield event
            while True:
                if until is not None:
                    remaining = until - time.time()
                    if remaining <= 0:
                        return
                    try:
                        event = await asyncio.wait_for(queue.get(), remaining)
                    except TimeoutError:
                        return
                else:
                    event = await queue.get()
                if event.time_nano <= last:
                    continue  # already sent from history
                if until is not None and event.time_nano > until * 1e9:
                    return
                if matches(event, filters):
                    yield event
        finally:
            self._subscribers.discard(queue)
