"""``docker images --filter``: dangling, reference, label, before, since (and until for prune)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from dockyard.engine.types import ImageSummary
from dockyard.errors import InvalidArgument
from dockyard.images.util import glob_match

LIST_FILTERS = {"dangling", "reference", "label", "before", "since"}
PRUNE_FILTERS = {"dangling", "label", "label!", "until"}
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(h|m|s|ms))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|m|s|ms)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def values(filters: dict[str, Sequence[str] | str], key: str) -> list[str]:
    v = filters.get(key)
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    if isinstance(v, dict):  # Docker's legacy {"value": true} map form
        return [k for k, on in v.items() if on]
    return list(v)


def check_keys(filters: dict[str, Sequence[str] | str], allowed: set[str]) -> None:
    for key in filters:
        if key not in allowed:
            raise InvalidArgument(f"invalid filter '{key}'")


def dangling_value(filters: dict[str, Sequence[str] | str]) -> bool | None:
    vals = values(filters, "dangling")
    if not vals:
        return None
    out = None
    for v in vals:
        if v.lower() in ("true", "1"):
            out = True
        elif v.lower() in ("false", "0"):
            out = False
        else:
            raise InvalidArgument(f"invalid filter 'dangling={v}'")
    return out


def labels_match(labels: dict[str, str], wanted: list[str]) -> bool:
    for w in wanted:
        key, sep, value = w.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def reference_match(pattern: str, familiar_tag: str) -> bool:
    """Docker's FamiliarMatch: the pattern against ``repo:tag``, then against ``repo`` alone."""
    if glob_match(pattern, familiar_tag):
        return True
    repo = familiar_tag.rsplit(":", 1)[0] if ":" in familiar_tag.rsplit("/", 1)[-1] else familiar_tag
    return glob_match(pattern, repo)


def parse_until(text: str) -> float:
    """A unix timestamp, an RFC 3339 time, or a Go duration ("24h", "1h30m") before now."""
    try:
        return float(text)
    except ValueError:
        pass
    if _DURATION.match(text):
        return time.time() - sum(float(n) * _UNIT[u] for n, u in _DURATION_PART.findall(text))
    from dockyard.images.util import parse_created
    ts = parse_created(text)
    if ts:
        return float(ts)
    raise InvalidArgument(f"invalid filter 'until={text}': not a timestamp or duration")


def filter_images(images: list[ImageSummary], filters: dict[str, Sequence[str] | str],
                  created_of: Callable[[str], int]) -> list[ImageSummary]:
    check_keys(filters, LIST_FILTERS)
    dangling = dangling_value(filters)
    patterns = values(filters, "reference")
    labels = values(filters, "label")
    before = [created_of(r) for r in values(filters, "before")]
    since = [created_of(r) for r in values(filters, "since")]
    out = []
    for img in images:
        if dangling is True and img.repo_tags:
            continue
        if dangling is False and not img.repo_tags:
            continue
        if labels and not labels_match(img.labels, labels):
            continue
        if any(img.created >= b for b in before) or any(img.created <= s for s in since):
            continue
        if patterns:
            tags = [t for t in img.repo_tags if any(reference_match(p, t) for p in patterns)]
            if not tags:
                continue
            img = replace(img, repo_tags=tags)
        out.append(img)
    return out
