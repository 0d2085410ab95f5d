"""Container records in ``metadata.db`` (table ``containers``, JSON of ContainerRecord) and lookup."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from dockyard.engine import records
from dockyard.engine.types import ContainerRecord
from dockyard.errors import AlreadyExists, InvalidArgument, NotFound
from dockyard.metadata import Database


def now_rfc3339() -> str:
    """RFC 3339 with nanoseconds, UTC, as Docker prints times."""
    ns = time.time_ns()
    dt = datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % 1_000_000_000:09d}Z"


def parse_rfc3339(value: str) -> float:
    """Unix seconds of an RFC 3339 timestamp (nanoseconds kept to microseconds)."""
    if not value or value.startswith("0001-"):
        return 0.0
    main, _, frac = value.rstrip("Z").partition(".")
    base = datetime.strptime(main, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    return base + (float("0." + frac) if frac else 0.0)


def name_conflict(name: str, owner: str) -> AlreadyExists:
    return AlreadyExists(
        f'Conflict. The container name "/{name}" is already in use by container "{owner}". '
        "You have to remove (or rename) that container to be able to reuse that name.")


class ContainerStore:
    """Rows are the source of truth; an in-memory cache keeps lookups cheap."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: dict[str, ContainerRecord] = {}
        for row in db.query("SELECT record FROM containers"):
            rec = records.loads(ContainerRecord, row["record"])
            self._cache[rec.id] = rec

    def all(self) -> list[ContainerRecord]:
        return sorted(self._cache.values(), key=lambda r: r.created, reverse=True)

    def name_owner(self, name: str) -> str | None:
        for rec in self._cache.values():
            if rec.name == name:
                return rec.id
        return None

    def insert(self, rec: ContainerRecord) -> None:
        owner = self.name_owner(rec.name)
        if owner is not None:
            raise name_conflict(rec.name, owner)
        with self.db.transaction() as conn:
            conn.execute("INSERT INTO containers (id, name, image_id, created, record) VALUES (?,?,?,?,?)",
                         (rec.id, rec.name, rec.image_id, parse_rfc3339(rec.created), records.dumps(rec)))
        self._cache[rec.id] = rec

    def save(self, rec: ContainerRecord) -> None:
        with self.db.transaction() as conn:
            conn.execute("UPDATE containers SET name=?, record=? WHERE id=?",
                         (rec.name, records.dumps(rec), rec.id))
        self._cache[rec.id] = rec

    def delete(self, container_id: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM containers WHERE id=?", (container_id,))
        self._cache.pop(container_id, None)

    def get(self, ref: str) -> ContainerRecord:
        """Full id, name (with or without '/'), or unique id prefix — Docker's lookup order."""
        if not ref:
            raise NotFound("No such container: ")
        if ref in self._cache:
            return self._cache[ref]
        name = ref.lstrip("/")
        for rec in self._cache.values():
            if rec.name == name:
                return rec
        matches = [rec for rec in self._cache.values() if rec.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidArgument(f"Multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def image_users(self, image_id: str) -> list[str]:
        return [rec.id for rec in self._cache.values() if rec.image_id == image_id]
