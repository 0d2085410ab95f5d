"""Local content store specifics: on-disk layout, permissions, ingest recovery."""

from __future__ import annotations

import stat
from pathlib import Path

from dockyard.content import ContentStore


def test_layout_and_read_only_blobs(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    dg = store.put_bytes(b"layout")
    p = tmp_path / "blobs" / "sha256" / dg.hex
    assert store.path(dg) == p
    assert stat.S_IMODE(p.stat().st_mode) == 0o444


def test_ingest_files_while_writing(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    w = store.writer("docker.io/library/x:layer")
    w.write(b"abc")
    dirs = list((tmp_path / "ingest").iterdir())
    assert len(dirs) == 1
    assert (dirs[0] / "ref").read_text() == "docker.io/library/x:layer"
    assert (dirs[0] / "data").read_bytes() == b"abc"
    assert (dirs[0] / "startedat").exists()
    w.abort()
    assert list((tmp_path / "ingest").iterdir()) == []


def test_reopened_store_resumes_and_prunes(tmp_path: Path) -> None:
    w = ContentStore(tmp_path).writer("left-behind")
    w.write(b"half")
    w.close()
    store = ContentStore(tmp_path)  # e.g. after a daemon restart
    assert list(store.ingests()) == [("left-behind", 4)]
    live = store.writer("held")
    store.prune_ingests()
    assert [r for r, _ in store.ingests()] == ["held"]  # a held ingest survives pruning
    live.abort()
    assert list(store.ingests()) == []
