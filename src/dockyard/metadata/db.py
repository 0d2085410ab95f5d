"""SQLite access: one connection per process, WAL, migrations on open, short transactions.

The daemon calls this from its event loop; every statement is a point lookup or a small scan,
so it runs inline. ``transaction()`` is the unit of atomicity for multi-row changes.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from dockyard.errors import FailedPrecondition, Internal, no_space
from dockyard.metadata.schema import MIGRATIONS

_SQLITE_FULL = 13


class Database:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False,
                                        timeout=10.0)
        except sqlite3.Error as exc:
            raise Internal(f"cannot open metadata database {self.path}: {exc}") from exc
        self.conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        try:
            self._check_version()   # before anything (even the journal mode) is written
        except BaseException:
            self.conn.close()
            raise
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        try:
            self.migrate()
        except sqlite3.Error as exc:   # the failed step was rolled back: the old version stays
            self.conn.close()
            raise Internal(f"cannot migrate metadata database {self.path} from schema version "
                           f"{self.schema_version_of(self.path)}: {exc}") from exc

    @property
    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    @staticmethod
    def schema_version_of(path: Path) -> int:
        conn = sqlite3.connect(str(path))
        try:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])
        finally:
            conn.close()

    def _check_version(self) -> None:
        version = self.schema_version
        if version > len(MIGRATIONS):
            raise FailedPrecondition(
                f"metadata database {self.path} has schema version {version}, newer than this dockyard "
                f"understands ({len(MIGRATIONS)}); upgrade dockyard")

    def migrate(self) -> None:
        self._check_version()
        for number in range(self.schema_version, len(MIGRATIONS)):
            with self.transaction() as conn:
                for statement in _split(MIGRATIONS[number]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version={number + 1}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, rolled back on any exception (a failed COMMIT too: on a full
        disk SQLite may leave the transaction open, and the next BEGIN would fail forever)."""
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
                self.conn.execute("COMMIT")
            except BaseException as exc:
                if self.conn.in_transaction:
                    with suppress(sqlite3.Error):
                        self.conn.execute("ROLLBACK")
                if is_full(exc):
                    raise no_space(f"cannot write {self.path}") from exc
                raise

    def query(self, sql: str, params: tuple[object, ...] | dict[str, object] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self.conn.execute(sql, params))

    def query_one(self, sql: str, params: tuple[object, ...] | dict[str, object] = ()) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self.conn.execute(sql, params).fetchone()
            return row

    def execute(self, sql: str, params: tuple[object, ...] | dict[str, object] = ()) -> int:
        """Run one statement in its own transaction; returns the number of rows changed."""
        with self._lock:
            try:
                return self.conn.execute(sql, params).rowcount
            except sqlite3.Error as exc:
                if is_full(exc):
                    raise no_space(f"cannot write {self.path}") from exc
                raise

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the database and truncate it: after a prune, the disk
        goes back to what is stored (SQLite otherwise keeps a grown -wal file at its size)."""
        with self._lock:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        with self._lock:
            self.conn.close()


def is_full(exc: BaseException) -> bool:
    """SQLITE_FULL ("database or disk is full"): the file system under the database is full."""
    return isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", 0) & 0xFF == _SQLITE_FULL


def _split(script: str) -> Iterator[str]:
    """Split a migration into statements (they contain no ';' inside strings or triggers)."""
    for part in script.split(";"):
        lines = [ln.split("--", 1)[0] for ln in part.splitlines()]
        stmt = "\n".join(lines).strip()
        if stmt:
            yield stmt
