"""Go's ``time.ParseDuration`` (HEALTHCHECK flags are Go durations: ``30s``, ``1m30s``, ``500ms``)."""

from __future__ import annotations

import re

_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
          "m": 60_000_000_000, "h": 3_600_000_000_000}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)", re.ASCII)
_MAX_NS = (1 << 63) - 1  # a Go time.Duration is an int64


def parse_duration(text: str) -> int:
    """Nanoseconds; ValueError naming the text when it is not a Go duration."""
    s = text.strip()
    sign = -1 if s.startswith("-") else 1
    s = s.lstrip("+-")
    if s == "0":
        return 0
    pos, total = 0, 0.0
    while pos < len(s):
        m = _PART.match(s, pos)
        if not m:
            raise ValueError(f"time: invalid duration {text!r}")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos == 0 or not total <= _MAX_NS:  # also inf from a float of 400 digits
        raise ValueError(f"time: invalid duration {text!r}")
    return sign * round(total)
