"""Progress on a terminal, nothing in a pipe: the pieces pull, push, build, load, save and
``system prune`` share.

The rules (docker's, with ``NO_COLOR``):

- Redrawing (cursor movement, erasing a line) happens only when the stream it is written to is a
  terminal; in a pipe or a file the same command writes plain lines or nothing at all.
- Colour or other SGR attributes only on a terminal, and never when ``NO_COLOR`` is set to a
  non-empty value (https://no-color.org) or ``TERM=dumb``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO, Any, TextIO

CLEAR_LINE = "\r\x1b[2K"


def is_terminal(stream: IO[Any]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def color_enabled(stream: IO[Any]) -> bool:
    """SGR attributes (colour, dim, bold) may be written to ``stream``."""
    return is_terminal(stream) and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def sgr(stream: IO[Any], code: str, text: str) -> str:
    """``text`` wrapped in ``ESC[<code>m … ESC[0m`` when colour is allowed on ``stream``."""
    return f"\x1b[{code}m{text}\x1b[0m" if color_enabled(stream) else text


def bar(current: int, total: int, width: int = 50) -> str:
    """docker's progress bar (jsonmessage.JSONProgress): ``[====>    ]  1.2MB/3.4MB``; without a
    total just the size so far."""
    from dockyard.cli.formatting import human_size
    if total <= 0:
        return f"{human_size(current):>8}"
    done = min(width, width * current // total)
    arrow = "=" * done + (">" if done < width else "") + " " * max(0, width - done - 1)
    return f"[{arrow}] {human_size(current):>8}/{human_size(total)}"


class StatusLine:
    """One line on a terminal that is rewritten in place and erased at the end. On anything but
    a terminal it writes nothing at all."""

    def __init__(self, out: TextIO, enabled: bool | None = None) -> None:
        self.out = out
        self.enabled = is_terminal(out) if enabled is None else enabled
        self.shown = False
        self.last = 0.0
        self.lock = threading.Lock()

    def show(self, text: str, force: bool = True) -> None:
        """Draw ``text``; with ``force=False`` at most ten times a second."""
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self.last < 0.1:
            return
        with self.lock:
            self.last = now
            self.out.write(CLEAR_LINE + text)
            self.out.flush()
            self.shown = True

    def clear(self) -> None:
        if not self.enabled or not self.shown:
            return
        with self.lock:
            self.out.write(CLEAR_LINE)
            self.out.flush()
            self.shown = False


class CountingReader:
    """A binary reader that reports how much was read (an upload's progress)."""

    def __init__(self, raw: IO[bytes], report: Callable[[int], None]) -> None:
        self.raw = raw
        self.report = report
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.count += len(data)
        self.report(self.count)
        return data


def size_of(f: IO[bytes]) -> int:
    """The size of a regular file behind ``f`` (0 when it is a pipe or unknown)."""
    import stat
    try:
        st = os.fstat(f.fileno())
    except (OSError, ValueError, AttributeError):
        return 0
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


class CountingChunks:
    """A streaming response whose ``iter_chunks`` reports the bytes received so far."""

    def __init__(self, resp: Any, report: Callable[[int], None]) -> None:
        self.resp = resp
        self.report = report

    def iter_chunks(self, size: int = 65536) -> Iterator[bytes]:
        count = 0
        for chunk in self.resp.iter_chunks(size):
            count += len(chunk)
            self.report(count)
            yield chunk
