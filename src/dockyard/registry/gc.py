"""Garbage collection: mark every blob a manifest of any repository refers to (tagged or not, index
children, configs, layers, subjects), sweep the rest, expire stale upload sessions.

Blobs committed less than ``min_age`` seconds ago are kept even when unreferenced: they are most
likely layers of a push whose manifest has not arrived yet."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from dockyard.content import BlobInfo
from dockyard.oci.digest import Digest
from dockyard.registry.errors import RegistryError
from dockyard.registry.manifests import parse_manifest
from dockyard.registry.storage import RegistryStorage


@dataclass
class GcResult:
    marked: set[Digest] = field(default_factory=set)
    swept: list[BlobInfo] = field(default_factory=list)
    kept_recent: list[BlobInfo] = field(default_factory=list)
    expired_uploads: list[str] = field(default_factory=list)

    @property
    def freed(self) -> int:
        return sum(b.size for b in self.swept)


def mark(storage: RegistryStorage) -> set[Digest]:
    marked: set[Digest] = set()
    for name in storage.repositories():
        pending = list(storage.manifest_digests(name))
        while pending:
            digest = pending.pop()
            if digest in marked:
                continue
            marked.add(digest)
            found = storage.read_manifest(name, digest)
            if found is None:
                continue
            try:
                manifest = parse_manifest(found[0], found[1])
            except RegistryError:
                continue  # stored before a stricter parser; keep the manifest, nothing more to mark
            marked.update(manifest.blobs)
            if manifest.subject is not None:
                marked.add(manifest.subject)
            pending.extend(manifest.children)
    return marked


def collect(storage: RegistryStorage, *, dry_run: bool = False, min_age: float = 3600.0,
            upload_ttl: float = 24 * 3600.0) -> GcResult:
    result = GcResult(marked=mark(storage))
    now = time.time()
    for blob in storage.walk_blobs():
        if blob.info.digest in result.marked:
            continue
        if now - blob.mtime < min_age:
            result.kept_recent.append(blob.info)
        else:
            result.swept.append(blob.info)
    if not dry_run:
        storage.delete_blobs(b.digest for b in result.swept)
    result.expired_uploads = storage.expire_uploads(upload_ttl, dry_run=dry_run)
    return result
