"""Snapshotter conformance: every snapshotter must pass these (parametrized by ``SNAPSHOTTERS``).

Metadata behaviour runs without root; the mount checks are marked root.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dockyard.errors import AlreadyExists, FailedPrecondition, Internal, NotFound
from dockyard.mount import Mount, mount_all, unmount_all
from dockyard.snapshots import SnapshotInfo, Snapshotter

SNAPSHOTTERS: dict[str, Callable[[Path], Snapshotter]] = {"overlay": Snapshotter}


@pytest.fixture(params=sorted(SNAPSHOTTERS))
def factory(request: pytest.FixtureRequest) -> Callable[[Path], Snapshotter]:
    return SNAPSHOTTERS[request.param]


@pytest.fixture
def sn(factory: Callable[[Path], Snapshotter], tmp_path: Path) -> Iterator[Snapshotter]:
    s = factory(tmp_path / "snapshots")
    yield s
    s.close()


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Path]:
    """A mount point that is always unmounted afterwards."""
    t = tmp_path / f"mnt-{uuid.uuid4().hex[:8]}"
    t.mkdir()
    try:
        yield t
    finally:
        unmount_all(t, detach=True)


def _layer(sn: Snapshotter, name: str, parent: str | None, files: dict[str, str]) -> None:
    key = f"extract-{name}"
    sn.prepare(key, parent)
    for rel, text in files.items():
        p = sn.upper_dir(key) / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    sn.commit(name, key)


def test_prepare_commit_stat_walk(sn: Snapshotter) -> None:
    mounts = sn.prepare("k1", None, labels={"a": "b"})
    assert mounts == [Mount("bind", str(sn.upper_dir("k1")), ("rbind", "rw"))]
    assert sn.stat("k1").kind == "active"
    (sn.upper_dir("k1") / "f").write_text("1")
    sn.commit("layer1", "k1")
    assert not sn.exists("k1")
    info = sn.stat("layer1")
    assert (info.key, info.parent, info.kind) == ("layer1", None, "committed")
    assert info.labels == {"a": "b"}
    sn.prepare("k2", "layer1")
    assert sn.stat("k2") == SnapshotInfo("k2", "layer1", "active")
    assert [(i.key, i.parent, i.kind) for i in sn.walk()] == [
        ("layer1", None, "committed"), ("k2", "layer1", "active")]


def test_errors(sn: Snapshotter) -> None:
    sn.prepare("a", None)
    with pytest.raises(AlreadyExists):
        sn.prepare("a", None)
    with pytest.raises(NotFound):
        sn.prepare("b", "no-such-parent")
    with pytest.raises(FailedPrecondition):
        sn.prepare("b", "a")  # parent must be committed
    sn.commit("c", "a")
    with pytest.raises(FailedPrecondition):
        sn.commit("d", "c")  # only active snapshots commit
    sn.prepare("e", None)
    with pytest.raises(AlreadyExists):
        sn.commit("c", "e")
    for call in (sn.stat, sn.mounts, sn.remove, sn.upper_dir):
        with pytest.raises(NotFound):
            call("nope")
    assert not sn.exists("b")


def test_remove_refuses_parents(sn: Snapshotter) -> None:
    _layer(sn, "base", None, {"a": "1"})
    sn.prepare("child", "base")
    base_dir = sn.upper_dir("base").parent
    with pytest.raises(FailedPrecondition, match="children"):
        sn.remove("base")
    sn.remove("child")
    sn.remove("base")
    assert not base_dir.exists()
    assert list(sn.walk()) == []


def test_prepare_on_layer_is_prepare_fill_commit_prepare(sn: Snapshotter) -> None:
    _layer(sn, "l1", None, {"a": "1"})
    _layer(sn, "l2", "l1", {"b": "2"})
    seen: list[list[Path]] = []

    def fill(upper: Path, lowers: list[Path]) -> None:
        seen.append(lowers)
        (upper / "stub").write_text("")

    mounts = sn.prepare_on_layer("ctr", "ctr-init", "l2", fill)
    assert seen == [[sn.upper_dir("l2"), sn.upper_dir("l1")]]   # what an active snapshot on l2 lowers
    assert sn.stat("ctr-init") == SnapshotInfo("ctr-init", "l2", "committed")
    assert sn.stat("ctr") == SnapshotInfo("ctr", "ctr-init", "active")
    assert (sn.upper_dir("ctr-init") / "stub").exists()
    assert not (sn.upper_dir("ctr-init").parent / "work").exists()   # committed: read-only
    assert sn.mounts("ctr") == mounts
    opts = dict(o.split("=", 1) for o in mounts[0].options if "=" in o)
    assert opts["lowerdir"] == f"{sn.upper_dir('ctr-init')}:{sn.upper_dir('l2')}:{sn.upper_dir('l1')}"
    with pytest.raises(AlreadyExists):
        sn.prepare_on_layer("ctr", "other-init", "l2", fill)
    with pytest.raises(AlreadyExists):
        sn.prepare_on_layer("other", "ctr-init", "l2", fill)
    with pytest.raises(NotFound):
        sn.prepare_on_layer("other", "other-init", "missing", fill)
    assert sorted(i.key for i in sn.walk()) == ["ctr", "ctr-init", "l1", "l2"]


def test_prepare_on_layer_leaves_nothing_when_fill_fails(sn: Snapshotter) -> None:
    _layer(sn, "base", None, {})
    before = sorted(p.name for p in sn.root.iterdir())

    def fill(upper: Path, lowers: list[Path]) -> None:
        (upper / "half").write_text("")
        raise OSError(28, "No space left on device")

    with pytest.raises(Internal, match="No space"):
        sn.prepare_on_layer("ctr", "ctr-init", "base", fill)
    assert sorted(i.key for i in sn.walk()) == ["base"]
    assert sorted(p.name for p in sn.root.iterdir()) == before


def test_remove_all_children_first_skips_missing(sn: Snapshotter) -> None:
    _layer(sn, "base", None, {})
    sn.prepare_on_layer("ctr", "ctr-init", "base", lambda upper, lowers: None)
    dirs = [sn.upper_dir(k).parent for k in ("ctr", "ctr-init")]
    with pytest.raises(FailedPrecondition, match="children"):   # nothing removed: one transaction
        sn.remove_all(["ctr-init", "ctr"])
    assert sorted(i.key for i in sn.walk()) == ["base", "ctr", "ctr-init"]
    sn.remove_all(["ctr", "ctr-init", "ctr-init-rw"])
    assert [i.key for i in sn.walk()] == ["base"]
    assert not any(d.exists() for d in dirs)


def test_mount_shapes(sn: Snapshotter) -> None:
    _layer(sn, "l1", None, {})
    _layer(sn, "l2", "l1", {})
    m = sn.prepare("rw", "l2")
    assert len(m) == 1 and m[0].type == "overlay"
    opts = dict(o.split("=", 1) for o in m[0].options if "=" in o)
    assert opts["lowerdir"] == f"{sn.upper_dir('l2')}:{sn.upper_dir('l1')}"
    assert opts["upperdir"] == str(sn.upper_dir("rw"))
    assert "workdir" in opts
    assert sn.view("v1", "l1") == [Mount("bind", str(sn.upper_dir("l1")), ("rbind", "ro"))]
    v2 = sn.view("v2", "l2")
    assert v2[0].type == "overlay" and not any(o.startswith("upperdir") for o in v2[0].options)
    assert sn.mounts("rw") == m


def test_usage(sn: Snapshotter) -> None:
    sn.prepare("u", None)
    up = sn.upper_dir("u")
    (up / "a").write_bytes(b"x" * 1000)
    os.link(up / "a", up / "b")
    (up / "d").mkdir()
    size, inodes = sn.usage("u")
    assert size >= 1000 and inodes == 2


def test_crash_leftovers_cleaned_at_open(factory: Callable[[Path], Snapshotter], tmp_path: Path) -> None:
    root = tmp_path / "snapshots"
    sn = factory(root)
    _layer(sn, "kept", None, {"f": "1"})
    sn.close()
    (root / "new-deadbeef" / "fs").mkdir(parents=True)  # crashed before its row committed
    (root / "999" / "fs").mkdir(parents=True)  # renamed into place, transaction never committed
    (root / "rm-5").mkdir()  # removal interrupted
    sn = factory(root)
    try:
        assert sorted(p.name for p in root.iterdir() if p.is_dir()) == [
            str(sn.upper_dir("kept").parent.name)]
        assert (sn.upper_dir("kept") / "f").read_text() == "1"
    finally:
        sn.close()


@pytest.mark.root
def test_active_mount_writes_to_upper_and_view_sees_commit(sn: Snapshotter, target: Path) -> None:
    _layer(sn, "base", None, {"etc/base": "base\n"})
    mount_all(sn.prepare("work", "base"), target)
    try:
        assert (target / "etc" / "base").read_text() == "base\n"
        (target / "etc" / "new").write_text("new\n")
    finally:
        unmount_all(target)
    assert (sn.upper_dir("work") / "etc" / "new").read_text() == "new\n"
    sn.commit("top", "work")
    mount_all(sn.view("look", "top"), target)
    try:
        assert sorted(os.listdir(target / "etc")) == ["base", "new"]
        with pytest.raises(OSError):
            (target / "etc" / "x").write_text("read-only")
    finally:
        unmount_all(target)


@pytest.mark.root
def test_single_layer_view_is_read_only_bind(sn: Snapshotter, target: Path) -> None:
    _layer(sn, "only", None, {"a": "A"})
    mount_all(sn.view("v", "only"), target)
    try:
        assert (target / "a").read_text() == "A"
        with pytest.raises(OSError):
            (target / "b").write_text("no")
    finally:
        unmount_all(target)
