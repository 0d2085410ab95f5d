"""Upgrades: a metadata.db written by an older dockyard (any earlier schema version, with rows in
it) opens at the current version with its rows intact; a newer one is refused untouched; a
migration that fails leaves the database at the version it had. Old container records, missing
every field added since, still load."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from dockyard.engine import records
from dockyard.engine.types import ContainerRecord
from dockyard.errors import FailedPrecondition, Internal
from dockyard.metadata import db as dbmod
from dockyard.metadata.db import Database, _split
from dockyard.metadata.schema import MIGRATIONS

IMAGE = "sha256:" + "a" * 64
CID = "c" * 64
# a container record as an early dockyard wrote it: none of the later fields (bundle, networks,
# mounts, id_range, devices, health, restart counts …)
OLD_RECORD = {
    "id": CID, "name": "old", "created": "2026-01-01T00:00:00.000000000Z", "image_id": IMAGE,
    "image_ref": "busybox", "config": {"image": "busybox", "cmd": ["true"]},
    "host_config": {"binds": [], "network_mode": "default"},
    "state": {"status": "exited", "exit_code": 3},
}


def old_database(path: Path, version: int) -> None:
    """A database as dockyard left it at schema ``version``, with an image, a tag, a container."""
    conn = sqlite3.connect(path, isolation_level=None)
    for number in range(version):
        for statement in _split(MIGRATIONS[number]):
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version={version}")
    conn.execute("INSERT INTO images (id, config, created_at) VALUES (?, ?, 0)", (IMAGE, b"{}"))
    conn.execute("INSERT INTO tags (name, image_id) VALUES (?, ?)", ("docker.io/library/busybox:latest", IMAGE))
    conn.execute("INSERT INTO containers (id, name, image_id, created, record) VALUES (?, ?, ?, 0, ?)",
                 (CID, "old", IMAGE, json.dumps(OLD_RECORD)))
    conn.close()


@pytest.mark.parametrize("version", range(1, len(MIGRATIONS)))
def test_every_older_schema_is_migrated_with_its_rows(tmp_path: Path, version: int) -> None:
    path = tmp_path / "metadata.db"
    old_database(path, version)
    db = Database(path)
    try:
        assert db.schema_version == len(MIGRATIONS)
        assert db.query_one("SELECT image_id FROM tags")[0] == IMAGE
        row = db.query_one("SELECT record FROM containers WHERE id = ?", (CID,))
        rec = records.loads(ContainerRecord, row[0])
        assert rec.name == "old" and rec.state.exit_code == 3
        assert rec.id_range is None and rec.host_config.devices == [] and rec.networks == {}
        # the tables later versions added exist
        tables = {r[0] for r in db.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"images", "tags", "containers", "build_cache", "networks", "volumes"} <= tables
    finally:
        db.close()
    Database(path).close()   # opening again is a no-op


def test_a_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    old_database(path, len(MIGRATIONS))
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(FailedPrecondition, match="newer than this dockyard understands"):
        Database(path)
    assert path.read_bytes() == before   # not even switched to WAL


def test_a_failing_migration_leaves_the_old_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "metadata.db"
    old_database(path, len(MIGRATIONS))
    broken = [*MIGRATIONS, "CREATE TABLE half (x INTEGER); INSERT INTO no_such_table VALUES (1)"]
    monkeypatch.setattr(dbmod, "MIGRATIONS", broken)
    with pytest.raises(Internal, match=f"from schema version {len(MIGRATIONS)}: no such table"):
        Database(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert not conn.execute("SELECT name FROM sqlite_master WHERE name = 'half'").fetchall()
    assert conn.execute("SELECT count(*) FROM containers").fetchone()[0] == 1
