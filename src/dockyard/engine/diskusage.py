"""``GET /system/df``: what images, containers and the build cache take on disk.

Sizes are measured on the snapshot directories (hardlinks counted once per layer). A layer shared by
several images counts once in ``LayersSize``; a build-cache entry whose layer an image also uses is
"in use" and its size is not reclaimable.

Unlike Docker, nothing the engine keeps is left out: ``LayersSize`` also holds the stored blobs
(compressed layers, configs, manifests) and unfinished pull ingests, and a container's ``SizeRw``
holds its log files (rotated ones too) besides its writable layer — a container with gigabytes of
logs shows them, and ``container prune`` reclaims them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.build.cache import BuildCache
from dockyard.engine.types import ContainerRecord, ImageSummary, VolumeRecord
from dockyard.errors import DockyardError
from dockyard.images.util import chain_ids


@dataclass
class CacheUsage:
    id: str
    parent: str
    description: str
    size: int
    in_use: bool
    created: float
    last_used: float


@dataclass
class DiskUsage:
    layers_size: int = 0
    images: list[ImageSummary] = field(default_factory=list)
    containers: list[tuple[ContainerRecord, int]] = field(default_factory=list)  # record, size rw
    build_cache: list[CacheUsage] = field(default_factory=list)
    volumes: list[tuple[VolumeRecord, tuple[int, int]]] = field(default_factory=list)  # (size, refs)


def _usage(snapshots: Any, key: str, memo: dict[str, int]) -> int:
    if key not in memo:
        try:
            memo[key] = int(snapshots.usage(key)[0])
        except DockyardError:
            memo[key] = 0
    return memo[key]


def log_bytes(rec: ContainerRecord) -> int:
    """The container's json-file log and its rotated siblings (``<log>.1`` …)."""
    if not rec.log_path:
        return 0
    log = Path(rec.log_path)
    total = 0
    try:
        with os.scandir(log.parent) as it:
            for e in it:
                if (e.name == log.name or e.name.startswith(log.name + ".")) and e.is_file(follow_symlinks=False):
                    total += e.stat(follow_symlinks=False).st_size
    except FileNotFoundError:
        pass
    return total


def stored_content_bytes(content: Any) -> int:
    """Blobs plus in-flight ingests: the compressed side of every image, kept for push and save."""
    return sum(b.size for b in content.walk()) + sum(size for _, size in content.ingests())


def disk_usage(engine: Any, types: set[str]) -> DiskUsage:
    out = DiskUsage()
    memo: dict[str, int] = {}
    records = list(engine.images.table.all())
    image_chains = {c for rec in records for c in rec.chains}
    if not types or "image" in types:
        users: dict[str, int] = {}
        for c in engine.store.all():
            users[c.image_id] = users.get(c.image_id, 0) + 1
        for summary in engine.images.list(all=True):
            summary.containers = users.get(summary.id, 0)
            out.images.append(summary)
        out.layers_size = (sum(_usage(engine.snapshots, c, memo) for c in image_chains)
                           + stored_content_bytes(engine.content))
    if not types or "container" in types:
        for c in engine.store.all():
            size = _usage(engine.snapshots, c.snapshot_key, memo) if c.snapshot_key else 0
            out.containers.append((c, size + log_bytes(c)))
    if not types or "volume" in types:
        out.volumes = [(v, engine.volumes.usage(v.name)) for v in engine.volumes.all()]
    if not types or "build-cache" in types:
        cache = BuildCache(engine.db, engine.content, engine.snapshots)
        for r in cache.records():
            state = cache.state(r.result)
            top = chain_ids(state.diff_ids)[-1] if state and state.diff_ids else None
            in_use = top is not None and top in image_chains
            out.build_cache.append(CacheUsage(r.key.split(":", 1)[-1][:25], r.parent.split(":", 1)[-1][:25],
                                              r.description, r.size, in_use, r.created, r.last_used))
    return out
