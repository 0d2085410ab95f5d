"""Docker's container list / prune filters."""

from __future__ import annotations

import re
import time
from typing import Any

from dockyard.engine.containers import parse_rfc3339
from dockyard.engine.types import ContainerRecord
from dockyard.errors import InvalidArgument

_KNOWN = {"id", "name", "label", "label!", "status", "exited", "ancestor", "before", "since",
          "health", "isolation", "network", "volume", "publish", "expose", "is-task", "until"}
_STATUSES = {"created", "restarting", "running", "removing", "paused", "exited", "dead"}
_HEALTHS = ("none", "starting", "healthy", "unhealthy")


def label_match(labels: dict[str, str], wanted: list[str], unwanted: list[str] | None = None) -> bool:
    def has(spec: str) -> bool:
        key, sep, value = spec.partition("=")
        return key in labels and (not sep or labels[key] == value)
    return all(has(w) for w in wanted) and not any(has(u) for u in unwanted or [])


def labels_match(labels: dict[str, str], filters: dict[str, list[str]]) -> bool:
    """The ``label`` and ``label!`` filters of a list or prune request."""
    return label_match(labels, filters.get("label", []), filters.get("label!", []))


def _duration_or_time(value: str) -> float:
    """``until``/``since`` values: unix seconds, RFC 3339, or a Go duration ago (``10m``, ``1h30m``)."""
    try:
        return float(value)
    except ValueError:
        pass
    m = re.fullmatch(r"((?:\d+(?:\.\d+)?(?:h|m|s|ms))+)", value)
    if m:
        total = 0.0
        for num, unit in re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s)", value):
            total += float(num) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
        return time.time() - total
    try:
        return parse_rfc3339(value)
    except ValueError as exc:
        raise InvalidArgument(f"invalid filter 'until={value}'") from exc


def until_match(created: float, values: list[str]) -> bool:
    return all(created < _duration_or_time(v) for v in values)


def filter_containers(recs: list[ContainerRecord], filters: dict[str, list[str]],
                      images: Any) -> list[ContainerRecord]:
    for key in filters:
        if key not in _KNOWN:
            raise InvalidArgument(f"invalid filter '{key}'")
    for status in filters.get("status", []):
        if status not in _STATUSES:
            raise InvalidArgument(f"invalid filter 'status={status}'")
    for health in filters.get("health", []):
        if health not in _HEALTHS:
            raise InvalidArgument(f"invalid filter 'health={health}': invalid value for health ({health}): "
                                  f"must be one of {', '.join(_HEALTHS)}")
    by_ref = {r.id: r for r in recs}
    before = [_lookup(recs, v) for v in filters.get("before", [])]
    since = [_lookup(recs, v) for v in filters.get("since", [])]
    ancestors: set[str] = set()
    for ref in filters.get("ancestor", []):
        try:
            ancestors.add(images.resolve(ref))
        except Exception:
            continue
    out = []
    for rec in recs:
        if filters.get("id") and not any(rec.id.startswith(v) for v in filters["id"]):
            continue
        if filters.get("name") and not any(re.search(v.lstrip("/"), rec.name) for v in filters["name"]):
            continue
        if not label_match(rec.config.labels, filters.get("label", []), filters.get("label!", [])):
            continue
        if filters.get("status") and rec.state.status not in filters["status"]:
            continue
        if filters.get("health") and (rec.state.health.status if rec.state.health else "none") \
                not in filters["health"]:
            continue
        if filters.get("exited") and (rec.state.running or rec.state.status == "created" or \
                    str(rec.state.exit_code) not in filters["exited"]):
            continue
        if filters.get("ancestor") and rec.image_id not in ancestors:
            continue
        if any(rec.created >= b.created for b in before):
            continue
        if any(rec.created <= s.created for s in since):
            continue
        if filters.get("expose") and not _ports_match(rec.config.exposed_ports, filters["expose"]):
            continue
        if filters.get("publish") and not _ports_match(rec.host_config.port_bindings, filters["publish"]):
            continue
        if filters.get("network") and not any(
                name in filters["network"] or any(ep.network_id.startswith(v) for v in filters["network"])
                for name, ep in rec.networks.items()):
            continue
        if filters.get("until") and not until_match(parse_rfc3339(rec.created), filters["until"]):
            continue
        out.append(rec)
    del by_ref
    return out


def _ports_match(ports: Any, wanted: list[str]) -> bool:
    """``80``, ``80/udp`` or ``8000-8100[/tcp]`` against ``{"80/tcp": ...}`` keys (tcp by default)."""
    have = set()
    for key in ports:
        number, _, proto = key.partition("/")
        have.add((int(number), proto or "tcp"))
    for spec in wanted:
        rng, _, proto = spec.partition("/")
        lo, _, hi = rng.partition("-")
        try:
            a, b = int(lo), int(hi or lo)
        except ValueError:
            raise InvalidArgument(f"invalid filter value '{spec}'") from None
        if any(a <= n <= b and p == (proto or "tcp") for n, p in have):
            return True
    return False


def _lookup(recs: list[ContainerRecord], ref: str) -> ContainerRecord:
    for rec in recs:
        if rec.id == ref or rec.name == ref.lstrip("/"):
            return rec
    matches = [r for r in recs if r.id.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    raise InvalidArgument(f"No such container: {ref}")
