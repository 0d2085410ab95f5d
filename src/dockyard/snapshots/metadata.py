"""The snapshotter's own SQLite database (``snapshots/metadata.db``).

One row per snapshot: a numeric id (its directory name), its key, its parent's id and its kind.
Every change is one transaction; the directory work that goes with it happens inside the transaction
so that a failure rolls the row back (see ``overlay.py`` for the crash ordering).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.errors import Internal, no_space

_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    key       TEXT NOT NULL UNIQUE,
    parent_id INTEGER REFERENCES snapshots(id) ON DELETE RESTRICT,
    kind      TEXT NOT NULL CHECK (kind IN ('active', 'view', 'committed')),
    labels    TEXT NOT NULL DEFAULT '{}',
    created   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent_id);
"""


@dataclass(frozen=True)
class SnapshotInfo:
    key: str
    parent: str | None
    kind: str  # "active" | "view" | "committed"
    labels: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    created: float = field(default=0.0, compare=False)


@dataclass(frozen=True)
class Row:
    id: int
    key: str
    parent_id: int | None
    kind: str
    labels: dict[str, str]
    created: float


class MetaStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                                        timeout=10.0)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise Internal(f"cannot open snapshot metadata {path}: {exc}") from exc
        self._lock = threading.RLock()

    def close(self) -> None:
        self.conn.close()

    def checkpoint(self) -> None:
        """Fold the write-ahead log in and truncate it (after a prune: disk back to what is kept)."""
        with self._lock:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self.conn
                    self.conn.execute("COMMIT")
                except BaseException:
                    # a failed COMMIT too: on a full disk SQLite may leave the transaction open
                    if self.conn.in_transaction:
                        with suppress(sqlite3.Error):
                            self.conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                if getattr(exc, "sqlite_errorcode", 0) & 0xFF == 13:   # SQLITE_FULL
                    raise no_space(f"cannot write {self.path}") from exc
                raise Internal(f"snapshot metadata: {exc}") from exc

    @staticmethod
    def _row(r: tuple[int, str, int | None, str, str, float] | None) -> Row | None:
        if r is None:
            return None
        return Row(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5])

    def get(self, key: str, conn: sqlite3.Connection | None = None) -> Row | None:
        c = conn or self.conn
        with self._lock:
            return self._row(c.execute(
                "SELECT id, key, parent_id, kind, labels, created FROM snapshots WHERE key = ?",
                (key,)).fetchone())

    def get_id(self, sid: int, conn: sqlite3.Connection | None = None) -> Row | None:
        c = conn or self.conn
        with self._lock:
            return self._row(c.execute(
                "SELECT id, key, parent_id, kind, labels, created FROM snapshots WHERE id = ?",
                (sid,)).fetchone())

    def chain(self, row: Row, conn: sqlite3.Connection | None = None) -> list[Row]:
        """``row`` and its ancestors, nearest first."""
        out = [row]
        while out[-1].parent_id is not None:
            parent = self.get_id(out[-1].parent_id, conn)
            if parent is None:
                raise Internal(f"snapshot {out[-1].key}: parent id {out[-1].parent_id} is missing")
            out.append(parent)
        return out

    def insert(self, conn: sqlite3.Connection, key: str, parent_id: int | None, kind: str,
               labels: dict[str, str]) -> int:
        cur = conn.execute(
            "INSERT INTO snapshots (key, parent_id, kind, labels, created) VALUES (?, ?, ?, ?, ?)",
            (key, parent_id, kind, json.dumps(labels, sort_keys=True), time.time()))
        assert cur.lastrowid is not None
        return int(cur.lastrowid)

    def has_children(self, conn: sqlite3.Connection, sid: int) -> bool:
        return conn.execute("SELECT 1 FROM snapshots WHERE parent_id = ? LIMIT 1", (sid,)).fetchone() \
            is not None

    def all_ids(self) -> set[int]:
        with self._lock:
            return {r[0] for r in self.conn.execute("SELECT id FROM snapshots")}

    def walk(self) -> Iterator[SnapshotInfo]:
        with self._lock:
            rows = self.conn.execute(
                "SELECT s.key, p.key, s.kind, s.labels, s.created FROM snapshots s "
                "LEFT JOIN snapshots p ON p.id = s.parent_id ORDER BY s.id").fetchall()
        for key, parent, kind, labels, created in rows:
            yield SnapshotInfo(key, parent, kind, json.loads(labels), created)
