"""Docker's time renderings: RFC 3339 parsing and the human "Up 5 minutes" status strings."""

from __future__ import annotations

import time
from datetime import datetime

from dockyard.engine.types import ContainerState
from dockyard.errors import InvalidArgument

ZERO_TIME = "0001-01-01T00:00:00Z"


def unix_seconds(rfc3339: str) -> float:
    """RFC 3339 with up to nanosecond fractions → unix seconds (Docker's zero time → 0)."""
    if not rfc3339 or rfc3339.startswith("0001-01-01"):
        return 0.0
    text = rfc3339.replace("Z", "+00:00")
    frac = 0.0
    if "." in text:
        head, _, rest = text.partition(".")
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        frac = float("0." + digits) if digits else 0.0
        text = head + rest
    return datetime.fromisoformat(text).timestamp() + frac


def parse_time_param(value: str, name: str) -> float:
    """Docker's ``since``/``until`` query values: unix seconds with optional fraction, or RFC 3339."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return unix_seconds(value)
    except ValueError as exc:
        raise InvalidArgument(f"invalid value for {name}: {value!r} is not a timestamp") from exc


def human_duration(seconds: float) -> str:
    """go-units HumanDuration."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def human_status(state: ContainerState, now: float | None = None) -> str:
    """The ``Status`` column of ``docker ps``."""
    now = time.time() if now is None else now
    status = state.status
    if status in ("running", "paused"):
        up = "Up " + human_duration(now - unix_seconds(state.started_at))
        if status == "paused":
            return up + " (Paused)"
        if state.health is not None:
            return f"{up} ({'health: starting' if state.health.status == 'starting' else state.health.status})"
        return up
    if status == "restarting":
        ago = human_duration(now - unix_seconds(state.finished_at))
        return f"Restarting ({state.exit_code}) {ago} ago"
    if status == "removing":
        return "Removal In Progress"
    if status == "dead":
        return "Dead"
    if status == "exited" and unix_seconds(state.finished_at):
        ago = human_duration(now - unix_seconds(state.finished_at))
        return f"Exited ({state.exit_code}) {ago} ago"
    if status == "exited":
        return f"Exited ({state.exit_code})"
    return "Created"
