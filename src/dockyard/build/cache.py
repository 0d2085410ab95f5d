"""The build cache: (state before a step, the step) → state after it.

A step's key is the sha256 of its parent state ID and a cache string that holds everything the step
depends on (the expanded instruction, the build args it sees, the checksum of COPY sources). The
result state's config is a blob in the content store; its layers are blobs too, and their chain is a
committed snapshot. A hit is only used while all of those still exist: an ``rmi`` that took a layer
away turns the entry into a miss, never into a broken image.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from dockyard.build.state import State
from dockyard.errors import InvalidArgument, NotFound
from dockyard.images.util import chain_ids, load_json
from dockyard.oci.digest import Digest


def step_key(parent: str, cache_string: str) -> str:
    return "sha256:" + hashlib.sha256(f"{parent}\x00{cache_string}".encode()).hexdigest()


@dataclass(frozen=True)
class CacheRecord:
    key: str
    parent: str
    result: str
    description: str
    size: int
    created: float
    last_used: float


class BuildCache:
    def __init__(self, db: Any, content: Any, snapshots: Any) -> None:
        self.db = db
        self.content = content
        self.snapshots = snapshots

    def lookup(self, parent: str, cache_string: str) -> State | None:
        key = step_key(parent, cache_string)
        row = self.db.query_one("SELECT result FROM build_cache WHERE key = ?", (key,))
        if row is None:
            return None
        state = self._load(str(row["result"]))
        if state is None:
            self.db.execute("DELETE FROM build_cache WHERE key = ?", (key,))
            return None
        self.db.execute("UPDATE build_cache SET last_used = ? WHERE key = ?", (time.time(), key))
        return state

    def state(self, state_id: str) -> State | None:
        """A cached state's config, whatever of its layers is left (for pruning)."""
        try:
            digest = Digest.parse(state_id)
            if not self.content.exists(digest):
                return None
            return State(load_json(self.content.read_bytes(digest), "cached build state"))
        except (NotFound, ValueError, OSError, InvalidArgument):
            return None

    def _load(self, state_id: str) -> State | None:
        """The state if its config, layer blobs and top snapshot are all still here."""
        state = self.state(state_id)
        if state is None:
            return None
        diff_ids = state.diff_ids
        if any(not self.content.exists(Digest.parse(d)) for d in diff_ids):
            return None
        if diff_ids and not self.snapshots.exists(chain_ids(diff_ids)[-1]):
            return None
        return state

    def store(self, parent: str, cache_string: str, result: State, description: str, size: int) -> None:
        self.content.put_bytes(result.blob())
        now = time.time()
        self.db.execute(
            "INSERT OR REPLACE INTO build_cache (key, parent, result, description, size, created, last_used) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (step_key(parent, cache_string), parent, result.id, description[:500], size, now, now))

    def records(self) -> list[CacheRecord]:
        rows = self.db.query("SELECT key, parent, result, description, size, created, last_used "
                             "FROM build_cache ORDER BY created")
        return [CacheRecord(str(r["key"]), str(r["parent"]), str(r["result"]), str(r["description"]),
                            int(r["size"]), float(r["created"]), float(r["last_used"])) for r in rows]

    def forget(self, keys: list[str]) -> None:
        for key in keys:
            self.db.execute("DELETE FROM build_cache WHERE key = ?", (key,))
