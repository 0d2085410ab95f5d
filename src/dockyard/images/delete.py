"""``docker rmi`` and ``docker image prune`` with Docker's conflict rules and texts.

Conflicts (moby's image_delete.go): a running container is a hard conflict (force does not help);
several references, or a stopped container, are soft ones (force overrides).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dockyard.engine.types import DeleteResponseItem, PruneReport
from dockyard.errors import Conflict, InvalidArgument, NotFound
from dockyard.images.filters import (
    PRUNE_FILTERS,
    check_keys,
    dangling_value,
    labels_match,
    parse_until,
    values,
)
from dockyard.images.util import familiar, parse_created, short_id
from dockyard.oci import reference

if TYPE_CHECKING:
    from dockyard.images.service import ImageService, Users

RUNNING = 1
ACTIVE_REFERENCE = 2
STOPPED = 4
HARD = RUNNING
SOFT = ACTIVE_REFERENCE | STOPPED


@dataclass
class _Conflict:
    hard: bool
    used: bool
    message: str

    def error(self, image_id: str) -> Conflict:
        how = "cannot be forced" if self.hard else "must be forced"
        return Conflict(f"conflict: unable to delete {short_id(image_id)} ({how}) - {self.message}")


def _users(svc: ImageService, users: Users | None, image_id: str) -> list[tuple[str, bool]]:
    if users is None:
        return []
    out = []
    for u in users(image_id):
        out.append((u, _running_in_db(svc, u)) if isinstance(u, str) else (str(u[0]), bool(u[1])))
    return out


def _running_in_db(svc: ImageService, container_id: str) -> bool:
    """For plain ids: the container's state from its stored record (``ContainerRecord`` as JSON)."""
    row = svc.db.query_one("SELECT record FROM containers WHERE id = ?", (container_id,))
    if row is None:
        return False
    try:
        status = json.loads(row["record"])["state"]["status"]
    except (ValueError, KeyError, TypeError):
        return False
    return status in ("running", "paused", "restarting")


def _check(mask: int, containers: list[tuple[str, bool]], has_refs: bool) -> _Conflict | None:
    if mask & RUNNING:
        running = [c for c, r in containers if r]
        if running:
            return _Conflict(True, True, f"image is being used by running container {running[0][:12]}")
    if mask & ACTIVE_REFERENCE and has_refs:
        return _Conflict(False, False, "image is referenced in multiple repositories")
    if mask & STOPPED:
        stopped = [c for c, r in containers if not r]
        if stopped:
            return _Conflict(False, True, f"image is being used by stopped container {stopped[0][:12]}")
    return None


def _repo(name: str) -> str:
    """Repository of a stored name: tag after the last ':' past the last '/', or digest after '@'."""
    if "@" in name:
        return name.split("@", 1)[0]
    head, _, tail = name.rpartition("/")
    return f"{head}/{tail.split(':', 1)[0]}" if head else tail.split(":", 1)[0]


def _single_reference(tags: list[str], digests: list[str]) -> bool:
    """At most one tag, and every reference within one repository (moby's isSingleReference)."""
    if len(tags) > 1:
        return False
    refs = tags + digests
    if not refs:
        return False
    return len({_repo(r) for r in refs}) == 1


def _is_id_ref(name: str, image_id: str) -> bool:
    return image_id.startswith(name) or image_id.partition(":")[2].startswith(name)


def _untag(svc: ImageService, names: list[str], items: list[DeleteResponseItem]) -> None:
    with svc.db.transaction() as conn:
        for n in names:
            conn.execute("DELETE FROM tags WHERE name = ?", (n,))
            conn.execute("DELETE FROM repo_digests WHERE name = ?", (n,))
    items.extend(DeleteResponseItem(untagged=familiar(n)) for n in names)


def remove(svc: ImageService, name: str, force: bool, users: Users | None) -> list[DeleteResponseItem]:
    with svc.lock:
        image_id = svc.resolve(name)
        rec = svc.table.get(image_id)
        if rec is None:
            raise NotFound(f"No such image: {name}")
        containers = _users(svc, users, image_id)
        tags, digests = svc.table.tags(image_id), svc.table.digests(image_id)
        items: list[DeleteResponseItem] = []
        quiet = False
        if not _is_id_ref(name, image_id):
            if not force and _single_reference(tags, digests) and containers:
                raise Conflict(
                    f'conflict: unable to remove repository reference "{name}" (must force) - container '
                    f"{containers[0][0][:12]} is using its referenced image {short_id(image_id)}")
            ref = reference.parse(name, default_tag=False)
            stored = f"{ref.name}@{ref.digest}" if ref.digest else str(ref.tagged_or_default())
            removed = [stored]
            if not ref.digest:
                # Digest references of the same repository go with its last tag.
                repo = ref.name
                if not any(_repo(t) == repo for t in tags if t != stored):
                    removed += [d for d in digests if _repo(d) == repo]
            _untag(svc, removed, items)
            if svc.table.tags(image_id) or svc.table.digests(image_id):
                return items
            quiet = True
        elif _single_reference(tags, digests):
            mask = HARD if force else HARD | (SOFT & ~ACTIVE_REFERENCE)
            conflict = _check(mask, containers, False)
            if conflict is not None:
                raise conflict.error(image_id)
            _untag(svc, tags + digests, items)
        tags, digests = svc.table.tags(image_id), svc.table.digests(image_id)
        conflict = _check(HARD if force else HARD | SOFT, containers, bool(tags or digests))
        if conflict is not None:
            if quiet and conflict.used:
                return items  # untagged; the image stays for the container using it
            raise conflict.error(image_id)
        _untag(svc, tags + digests, items)
        svc.delete_image(rec)
        items.append(DeleteResponseItem(deleted=image_id))
        return items


def prune(svc: ImageService, all: bool, filters: dict[str, Sequence[str] | str], users: Users | None) -> PruneReport:
    check_keys(filters, PRUNE_FILTERS)
    if dangling_value(filters) is False:
        all = True
    until = [parse_until(v) for v in values(filters, "until")]
    labels = values(filters, "label")
    not_labels = values(filters, "label!")
    report = PruneReport()
    with svc.lock:
        all_tags = svc.table.all_tags()
        for rec in svc.table.all():
            if not all and all_tags.get(rec.id):
                continue
            created = parse_created(rec.config.get("created"))
            if until and any(created >= u for u in until):
                continue
            inner = rec.config.get("config") or {}
            img_labels = dict(inner.get("Labels") or {}) if isinstance(inner, dict) else {}
            if labels and not labels_match(img_labels, labels):
                continue
            if not_labels and any(labels_match(img_labels, [w]) for w in not_labels):
                continue
            if _users(svc, users, rec.id):
                continue
            try:
                report.space_reclaimed += svc.delete_image(rec)
            except (NotFound, InvalidArgument):
                continue
            report.deleted.append(rec.id)
    report.deleted.sort()
    return report
