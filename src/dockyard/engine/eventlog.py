"""The events journal: append-only JSON-lines segments under ``<data-root>/events/``.

Disk use is bounded: a segment is closed once it reaches ``max_bytes`` and only the newest ``keep``
segments are kept. Events are best effort, so there is no fsync per event; a crash may leave a torn
last line, which readers skip and the next writer fences off with a newline. Not thread-safe on its
own: the ``EventBus`` serialises appends, flushes and ``position()`` under its lock.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from dockyard.engine.types import Event

log = logging.getLogger(__name__)

SEGMENT_BYTES = 4 << 20
SEGMENTS = 4
CHUNK = 1 << 20          # replay reads this much per step, so one step never parses a whole segment
_NAME = re.compile(r"^events-(\d{8,})\.jsonl$")


def encode(event: Event) -> bytes:
    """One journal line: Docker's events.Message shape, minus the legacy status/id/from."""
    return json.dumps({
        "Type": event.type, "Action": event.action,
        "Actor": {"ID": event.actor_id, "Attributes": event.attributes},
        "scope": event.scope, "timeNano": event.time_nano,
    }, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> Event | None:
    """The event of one journal line, or None for a torn or foreign line (never raises)."""
    try:
        rec = json.loads(line)
        actor = rec["Actor"]
        attrs = actor.get("Attributes") or {}
        if not isinstance(attrs, dict):
            return None
        return Event(type=str(rec["Type"]), action=str(rec["Action"]), actor_id=str(actor["ID"]),
                     attributes={str(k): str(v) for k, v in attrs.items()},
                     time_nano=int(rec["timeNano"]), scope=str(rec.get("scope") or "local"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


@dataclass(frozen=True)
class Segment:
    index: int
    path: Path
    limit: int | None = None     # read no further than this offset (the cut of the active segment)


class EventJournal:
    def __init__(self, root: Path, max_bytes: int = SEGMENT_BYTES, keep: int = SEGMENTS) -> None:
        if max_bytes <= 0 or keep < 1:
            raise ValueError("events journal: max_bytes must be > 0 and keep >= 1")
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.keep = keep
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)    # attributes carry names and labels: not for other users
        indexes = self._indexes()
        self._index = indexes[-1] if indexes else 1
        self._file: IO[bytes] = self._open(self._index)
        self._failing = False
        self._prune()

    def _indexes(self) -> list[int]:
        return sorted(int(m.group(1)) for p in self.root.iterdir() if (m := _NAME.match(p.name)))

    def path(self, index: int) -> Path:
        return self.root / f"events-{index:08d}.jsonl"

    def _open(self, index: int) -> IO[bytes]:
        f = open(self.path(index), "ab", buffering=64 << 10)  # noqa: SIM115 - lives until rotation
        self._size = f.tell()
        if self._size:
            with open(self.path(index), "rb") as r:
                r.seek(self._size - 1)
                torn = r.read(1) != b"\n"
            if torn:  # a crash cut the last line: end it so the next event starts a clean line
                f.write(b"\n")
                self._size += 1
        return f

    def append(self, event: Event) -> None:
        """Buffer one event (no syscall unless the buffer fills); rotates at ``max_bytes``."""
        line = encode(event)
        try:
            self._file.write(line)
            self._size += len(line)
            if self._size >= self.max_bytes:
                self._rotate()
            self._failing = False
        except OSError as exc:  # disk full or gone: the live stream goes on without the journal
            if not self._failing:
                log.warning("events journal %s: %s; events are not being journaled", self.root, exc)
            self._failing = True

    def _rotate(self) -> None:
        self._file.close()
        self._index += 1
        self._file = self._open(self._index)
        self._prune()

    def _prune(self) -> None:
        for index in self._indexes()[:-self.keep]:
            try:
                self.path(index).unlink()
            except FileNotFoundError:
                pass

    def flush(self) -> None:
        try:
            self._file.flush()
        except OSError as exc:
            if not self._failing:
                log.warning("events journal %s: %s", self.root, exc)
            self._failing = True

    def position(self) -> tuple[int, int]:
        """(active segment, its size) after a flush: every event appended so far lies before it."""
        self.flush()
        try:
            self._size = self._file.tell()   # the real end, should anything else have appended
        except OSError:
            pass
        return self._index, self._size

    def segments(self, cut: tuple[int, int]) -> list[Segment]:
        """The segments holding the events before ``cut``, oldest first."""
        index, size = cut
        return [Segment(i, self.path(i), size if i == index else None)
                for i in self._indexes() if i <= index]

    def close(self) -> None:
        try:
            self._file.close()
        except OSError as exc:
            log.warning("events journal %s: %s", self.root, exc)


def first_time(path: Path) -> int | None:
    """timeNano of a segment's first readable event (None if it has none or is gone)."""
    try:
        with open(path, "rb") as f:
            for line in f:
                event = decode(line)
                if event is not None:
                    return event.time_nano
    except OSError:
        pass
    return None


def read_chunk(seg: Segment, offset: int, keep: Callable[[Event], bool]) -> tuple[list[Event], int | None]:
    """Events kept by ``keep`` from about ``CHUNK`` bytes of ``seg`` at ``offset``, and the offset
    to go on from (None at the segment's end). Blocking: run it in a thread."""
    end = seg.limit
    try:
        with open(seg.path, "rb") as f:
            f.seek(offset)
            want = CHUNK if end is None else min(CHUNK, end - offset)
            data = f.read(max(want, 0))
    except OSError:
        return [], None     # rotated away while replaying: those events are gone
    if not data:
        return [], None
    at_end = len(data) < CHUNK or (end is not None and offset + len(data) >= end)
    if not at_end:
        cut = data.rfind(b"\n") + 1
        if cut == 0:        # one line longer than a chunk: nothing valid writes that, skip it
            return [], offset + len(data)
        data = data[:cut]
    out = [ev for line in data.splitlines() if line and (ev := decode(line)) is not None and keep(ev)]
    return out, None if at_end else offset + len(data)


def journal_stats(root: Path) -> dict[str, Any]:
    """Segments and bytes on disk (for docs, tests and debugging)."""
    files = sorted(p for p in Path(root).iterdir() if _NAME.match(p.name))
    return {"segments": len(files), "bytes": sum(p.stat().st_size for p in files)}
