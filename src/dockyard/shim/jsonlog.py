"""Docker's json-file log format: the shim writes it, the engine reads it back.

One JSON object per line: ``{"log":"hello\\n","stream":"stdout","time":"2026-...Z"}`` with the time in
RFC 3339 nano UTC (Go's RFC3339Nano: trailing zeros of the fraction trimmed). A line of output becomes
one entry; lines longer than 16 KiB are split into 16 KiB pieces (only the last piece carries "\\n").
Rotation: ``<file>`` → ``<file>.1`` → … → ``<file>.<max_file-1>``, so at most ``max_file`` files exist.

Only the stdlib is imported at module level: the shim imports this on the container start path.
"""

from __future__ import annotations

import os
import time
from _json import encode_basestring as _encode_str  # what json.encoder uses, minus json's imports

TYPE_CHECKING = False

if TYPE_CHECKING:  # the reader's imports stay out of the shim's start-up path
    from collections.abc import AsyncIterator, Callable, Iterator
    from pathlib import Path
    from typing import BinaryIO

    from dockyard.engine.types import LogEntry

MAX_LINE = 16 * 1024
DEFAULT_MAX_SIZE = 20 * 1000 * 1000
DEFAULT_MAX_FILE = 5


def format_time(ns: int) -> str:
    """RFC 3339 nano in UTC, formatted as Go's time.RFC3339Nano (fraction without trailing zeros)."""
    secs, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    if frac == 0:
        return base + "Z"
    return f"{base}.{frac:09d}".rstrip("0") + "Z"


def parse_time(text: str) -> float:
    """Inverse of format_time (also accepts offsets like +00:00); unix seconds as float."""
    if text.endswith("Z"):
        body, offset = text[:-1], 0
    else:
        body, sign, tz = text[:-6], text[-6], text[-5:]
        offset = (int(tz[:2]) * 3600 + int(tz[3:]) * 60) * (1 if sign == "+" else -1)
    import calendar
    whole, _, frac = body.partition(".")
    secs = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) - offset
    return secs + (int(frac[:9].ljust(9, "0")) / 1e9 if frac else 0.0)


class JSONLogWriter:
    """Line-buffers each stream and appends json-file entries, rotating by size.

    Writes go straight to the fd (no userspace buffer) so a reader following the file, or a crash of
    the shim, never misses a completed line. ``max_size <= 0`` disables rotation. A write the disk
    has no room for raises OSError and leaves the file as it was (no torn entry); the caller
    decides what to do with the lost output, and the next write tries again.
    """

    def __init__(self, path: str | Path, max_size: int = DEFAULT_MAX_SIZE,
                 max_file: int = DEFAULT_MAX_FILE) -> None:
        self.path = str(path)
        self.max_size = max_size
        self.max_file = max(1, max_file)
        self._partial: dict[str, bytes] = {}
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._size = os.fstat(self._fd).st_size

    def write(self, stream: str, data: bytes, ns: int | None = None) -> None:
        """Log ``data`` read from ``stream``; incomplete last lines wait for more (or for flush)."""
        if not data:
            return
        stamp = format_time(time.time_ns() if ns is None else ns)
        lines = (self._partial.pop(stream, b"") + data).split(b"\n")
        rest = lines.pop()  # after the last newline: incomplete
        pieces: list[bytes] = []
        for line in lines:
            while len(line) >= MAX_LINE:
                pieces.append(line[:MAX_LINE])
                line = line[MAX_LINE:]
            pieces.append(line + b"\n")
        while len(rest) >= MAX_LINE:
            pieces.append(rest[:MAX_LINE])
            rest = rest[MAX_LINE:]
        if rest:
            self._partial[stream] = rest
        self._emit(stream, pieces, stamp)

    def flush(self, stream: str | None = None) -> None:
        """Write out pending partial lines (at EOF of a stream, or of all streams)."""
        streams = [stream] if stream is not None else list(self._partial)
        stamp = format_time(time.time_ns())
        for name in streams:
            rest = self._partial.pop(name, b"")
            if rest:
                self._emit(name, [rest], stamp)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def _emit(self, stream: str, pieces: list[bytes], stamp: str) -> None:
        # Hand-assembled (same bytes as json.dumps(..., ensure_ascii=False)): ~5x faster, and a
        # chatty container is CPU spent in the shim.
        suffix = f',"stream":{_encode_str(stream)},"time":"{stamp}"}}\n'
        out: list[str] = []
        size = 0
        for piece in pieces:
            line = '{"log":' + _encode_str(piece.decode("utf-8", "replace")) + suffix
            n = len(line) if line.isascii() else len(line.encode())
            if self.max_size > 0 and self._size + size + n > self.max_size and self._size + size > 0:
                self._write_all("".join(out).encode())
                out, size = [], 0
                self._rotate()
            out.append(line)
            size += n
        if out:
            self._write_all("".join(out).encode())

    def _write_all(self, data: bytes) -> None:
        """All of ``data`` or nothing: when the disk is full the part that went out is cut off
        again, so the file always ends with a complete entry and the next write starts a clean line."""
        if self._fd < 0:   # a rotation that could not create the new file: try again
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
            self._size = os.fstat(self._fd).st_size
        view = memoryview(data)
        try:
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        except OSError:
            if len(view) < len(data):
                try:
                    os.ftruncate(self._fd, self._size)
                except OSError:
                    pass
            raise
        self._size += len(data)

    def _rotate(self) -> None:
        os.close(self._fd)
        self._fd = -1
        if self.max_file > 1:
            for i in range(self.max_file - 1, 1, -1):
                try:
                    os.replace(f"{self.path}.{i - 1}", f"{self.path}.{i}")
                except FileNotFoundError:
                    pass
            os.replace(self.path, f"{self.path}.1")
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        else:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_TRUNC
        self._fd = os.open(self.path, flags, 0o640)
        self._size = 0


# ---------------------------------------------------------------------------------------------- reading

def log_files(path: str | Path) -> list[Path]:
    """The log and its rotated predecessors, oldest first."""
    from pathlib import Path
    base = Path(path)
    rotated: list[tuple[int, Path]] = []
    for p in base.parent.glob(base.name + ".*"):
        suffix = p.name[len(base.name) + 1:]
        if suffix.isdigit():
            rotated.append((int(suffix), p))
    files = [p for _, p in sorted(rotated, reverse=True)]
    if base.exists():
        files.append(base)
    return files


def _decode(line: bytes) -> LogEntry | None:
    import json

    from dockyard.engine.types import LogEntry
    try:
        obj = json.loads(line)
        return LogEntry(stream=obj["stream"], data=obj["log"].encode(), time=obj["time"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None  # a torn or foreign line; json-file readers skip those


def _last_lines(files: list[Path], n: int, limit: int | None) -> list[bytes]:
    """The last ``n`` complete lines across ``files`` (oldest first), reading backwards in blocks."""
    from collections import deque
    found: deque[bytes] = deque()
    for p in reversed(files):
        try:
            f = p.open("rb")
        except FileNotFoundError:
            continue
        with f:
            end = f.seek(0, os.SEEK_END)
            if limit is not None and p == files[-1]:
                end = min(end, limit)
            pos, tail = end, b""
            while pos > 0 and len(found) < n:
                step = min(65536, pos)
                pos -= step
                f.seek(pos)
                chunk = f.read(step) + tail
                lines = chunk.split(b"\n")
                tail = lines[0]  # may be incomplete until we read further back
                for line in reversed(lines[1:]):
                    if line and len(found) < n:
                        found.appendleft(line)
            if tail and len(found) < n and pos == 0:
                found.appendleft(tail)
        if len(found) >= n:
            break
    return list(found)


def _in_window(entry: LogEntry, since: float, until: float) -> bool:
    if since <= 0 and until <= 0:
        return True
    t = parse_time(entry.time)
    return (since <= 0 or t >= since) and (until <= 0 or t <= until)


class _Follower:
    """Reads new complete lines appended to the live log, following it across rotations."""

    def __init__(self, path: str | Path, start_at_end: bool) -> None:
        self.path = str(path)
        self._file: BinaryIO | None = None
        self._ino = -1
        self._partial = b""
        self.offset: int | None = 0  # where following starts in the live file
        self._open(start_at_end)

    def _open(self, at_end: bool) -> None:
        try:
            f = open(self.path, "rb")  # noqa: SIM115 - kept open across polls
        except FileNotFoundError:
            return
        self._ino = os.fstat(f.fileno()).st_ino
        if at_end:
            self.offset = f.seek(0, os.SEEK_END)
        self._file = f

    def poll(self) -> list[bytes]:
        if self._file is None:
            self._open(False)
            if self._file is None:
                return []
        try:
            rotated = os.stat(self.path).st_ino != self._ino
        except FileNotFoundError:
            rotated = False  # between rename and re-create: drain and look again next poll
        lines = self._drain()
        if rotated:
            self._file.close()
            self._file = None
            self._partial = b""
            self._open(False)
            lines += self._drain()
        return lines

    def _drain(self) -> list[bytes]:
        if self._file is None:
            return []
        data = self._partial + self._file.read()
        parts = data.split(b"\n")
        self._partial = parts.pop()
        return [p for p in parts if p]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _initial(path: str | Path, since: float, until: float, tail: int,
             limit: int | None) -> Iterator[LogEntry]:
    """Entries already written; ``limit`` bounds how much of the live file is read (a follower
    takes over from that offset, so no line is reported twice)."""
    files = log_files(path)
    if tail == 0:
        return
    if tail > 0:
        lines: Iterator[bytes] = iter(_last_lines(files, tail, limit))
    else:
        lines = (ln for p in files
                 for ln in _read_lines(p, limit if p == files[-1] else None))
    for line in lines:
        entry = _decode(line)
        if entry is not None and _in_window(entry, since, until):
            yield entry


def _read_lines(p: Path, limit: int | None) -> Iterator[bytes]:
    try:
        with p.open("rb") as f:
            data = f if limit is None else f.read(limit).splitlines(keepends=True)
            for line in data:
                if line.endswith(b"\n"):
                    yield line[:-1]
    except FileNotFoundError:
        return


def read_log(path: str | Path, since: float = 0.0, until: float = 0.0, tail: int = -1,
             follow: bool = False, stop: Callable[[], bool] | None = None,
             poll_interval: float = 0.1) -> Iterator[LogEntry]:
    """Entries of the json-file log at ``path`` and its rotations, oldest first.

    ``since``/``until`` are unix seconds (0 = unbounded); ``tail`` counts lines from the end across
    files (-1 = all). With ``follow`` the generator keeps polling for new lines (blocking) until
    ``stop()`` returns true and the file is drained, or ``until`` has passed.
    """
    follower = _Follower(path, start_at_end=True) if follow else None
    try:
        yield from _initial(path, since, until, tail, follower.offset if follower else None)
        if follower is None:
            return
        while True:
            done = (stop is not None and stop()) or (until > 0 and time.time() > until)
            for line in follower.poll():
                entry = _decode(line)
                if entry is not None and _in_window(entry, since, until):
                    yield entry
            if done:
                return
            time.sleep(poll_interval)
    finally:
        if follower is not None:
            follower.close()


async def follow_log(path: str | Path, since: float = 0.0, until: float = 0.0, tail: int = -1,
                     stop: Callable[[], bool] | None = None,
                     poll_interval: float = 0.1) -> AsyncIterator[LogEntry]:
    """Asyncio variant of ``read_log(follow=True)``: existing entries, then new ones as they are
    written, until ``stop()`` returns true and the file is drained (or ``until`` has passed)."""
    import asyncio  # not at module level: the shim imports this module and must start fast
    follower = _Follower(path, start_at_end=True)
    try:
        for entry in _initial(path, since, until, tail, follower.offset):
            yield entry
        while True:
            done = (stop is not None and stop()) or (until > 0 and time.time() > until)
            for line in follower.poll():
                new = _decode(line)
                if new is not None and _in_window(new, since, until):
                    yield new
            if done:
                return
            await asyncio.sleep(poll_interval)
    finally:
        follower.close()
