"""The builder's storage through real overlayfs and SQLite: layers from a mutated mount and from an
adopted upper dir, read-only views, the build cache and its validity checks."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.build.cache import BuildCache
from dockyard.build.layers import LayerStore, next_chain
from dockyard.build.state import State
from dockyard.content import ContentStore
from dockyard.metadata.db import Database
from dockyard.oci.digest import Digest
from dockyard.snapshots import Snapshotter

pytestmark = pytest.mark.root


class Parts:
    def __init__(self, base: Path) -> None:
        self.db = Database(base / "metadata.db")
        self.db.migrate()
        self.snaps = Snapshotter(base / "snapshots")
        self.content = ContentStore(base / "content")
        self.layers = LayerStore(self.snaps, self.content, base / "tmp")
        self.cache = BuildCache(self.db, self.content, self.snaps)


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[Parts]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    p = Parts(tmp_path)
    yield p
    p.snaps.close()
    p.db.close()
    assert not [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
                if str(tmp_path) in line], "a build mount was left behind"


def test_mutate_stacks_layers_and_records_deletions(parts: Parts) -> None:
    def first(root: Path) -> None:
        (root / "etc").mkdir()
        (root / "etc" / "a").write_text("a\n")
        (root / "etc" / "b").write_text("b\n")

    d1 = parts.layers.mutate(None, first)
    c1 = next_chain(None, d1)
    assert parts.snaps.exists(c1) and parts.content.exists(Digest.parse(d1))

    def second(root: Path) -> None:
        assert (root / "etc" / "a").read_text() == "a\n"  # the parent is visible
        (root / "etc" / "b").unlink()
        (root / "etc" / "c").write_text("c\n")

    d2 = parts.layers.mutate(c1, second)
    c2 = next_chain(c1, d2)
    with parts.layers.view(c2) as root:
        assert sorted(os.listdir(root / "etc")) == ["a", "c"]
    # the layer blob itself carries the whiteout for b
    import tarfile
    with parts.content.open(Digest.parse(d2)) as f, tarfile.open(fileobj=f) as tf:
        assert "etc/.wh.b" in tf.getnames() and "etc/c" in tf.getnames()
    # the same change on the same parent again: same diff id, the existing chain is reused
    d1_again = parts.layers.mutate(None, first)
    assert d1_again == d1
    assert [s.key for s in parts.snaps.walk() if s.key.startswith("build-")] == []


def test_mutate_failure_leaves_nothing(parts: Parts) -> None:
    def boom(root: Path) -> None:
        (root / "x").write_text("x")
        raise RuntimeError("copy failed")

    before = {s.key for s in parts.snaps.walk()}
    with pytest.raises(RuntimeError):
        parts.layers.mutate(None, boom)
    assert {s.key for s in parts.snaps.walk()} == before


def test_adopt_moves_an_upper_dir(parts: Parts, tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "srv").mkdir(parents=True)
    (upper / "srv" / "f").write_text("f\n")
    d = parts.layers.adopt(None, upper)
    assert os.listdir(upper) == []
    with parts.layers.view(next_chain(None, d)) as root:
        assert (root / "srv" / "f").read_text() == "f\n"


def test_cache_hits_only_while_everything_is_there(parts: Parts) -> None:
    base = State.scratch()
    d = parts.layers.mutate(None, lambda root: (root / "f").write_text("1"))
    after = base.copy()
    after.add_layer(d)
    after.add_history("/bin/sh -c echo", empty_layer=False)
    parts.cache.store(base.id, "run:echo", after, "RUN echo", 1)
    hit = parts.cache.lookup(base.id, "run:echo")
    assert hit is not None and hit.id == after.id
    assert parts.cache.lookup(base.id, "run:other") is None
    assert parts.cache.lookup(State.scratch().id, "run:echo") is not None  # same parent id: same key
    parts.snaps.remove(next_chain(None, d))  # an rmi took the layer away
    assert parts.cache.lookup(base.id, "run:echo") is None
    assert parts.cache.records() == []  # the stale entry is gone
