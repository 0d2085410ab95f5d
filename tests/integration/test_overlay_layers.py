"""Layers through real overlayfs: apply_layer into snapshots, stack them, mount, and diff back."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.diff import apply_layer, write_layer
from dockyard.mount import mount_all, unmount_all
from dockyard.snapshots import Snapshotter

pytestmark = pytest.mark.root


def _tar(*entries: tuple[str, bytes, bytes | None]) -> bytes:
    """entries: (name, type, data); data None for non-files."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, data in entries:
            ti = tarfile.TarInfo(name)
            ti.type = kind
            ti.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
            ti.mtime = 1_600_000_000
            ti.size = len(data) if data is not None else 0
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


D, F = tarfile.DIRTYPE, tarfile.REGTYPE

LAYER1 = _tar(("a/", D, None), ("a/x", F, b"x1"), ("a/y", F, b"y1"), ("deleted.txt", F, b"gone"),
              ("opq/", D, None), ("opq/old", F, b"old"), ("opq/sub/", D, None), ("opq/sub/deep", F, b"d"))
LAYER2 = _tar(("a/", D, None), ("a/z", F, b"z2"), (".wh.deleted.txt", F, b""),
              ("opq/", D, None), ("opq/.wh..wh..opq", F, b""), ("opq/new", F, b"new"))
LAYER3 = _tar(("a/", D, None), ("a/.wh.x", F, b""), ("top.txt", F, b"top"))


@pytest.fixture
def sn(tmp_path: Path) -> Iterator[Snapshotter]:
    s = Snapshotter(tmp_path / "snapshots")
    yield s
    s.close()


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Path]:
    t = tmp_path / f"mnt-{uuid.uuid4().hex[:8]}"
    t.mkdir()
    try:
        yield t
    finally:
        unmount_all(t, detach=True)


def _unpack(sn: Snapshotter, layers: list[bytes]) -> str | None:
    parent: str | None = None
    for i, layer in enumerate(layers):
        key = f"extract-{i}-{uuid.uuid4().hex[:6]}"
        sn.prepare(key, parent)
        apply_layer(io.BytesIO(layer), sn.upper_dir(key))
        name = f"layer-{i}"
        sn.commit(name, key)
        parent = name
    return parent


def test_three_layers_stack_with_whiteouts_and_opaque_dir(sn: Snapshotter, target: Path) -> None:
    top = _unpack(sn, [LAYER1, LAYER2, LAYER3])
    up2 = sn.upper_dir("layer-1")
    wh = (up2 / "deleted.txt").lstat()
    assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == 0
    assert os.getxattr(up2 / "opq", "trusted.overlay.opaque") == b"y"
    mount_all(sn.view("rootfs-view", top), target)
    try:
        assert sorted(os.listdir(target)) == ["a", "opq", "top.txt"]
        assert not (target / "deleted.txt").exists()  # whited out by layer 2
        assert sorted(os.listdir(target / "a")) == ["y", "z"]  # x whited out by layer 3
        assert sorted(os.listdir(target / "opq")) == ["new"]  # opaque: layer 1's content hidden
        assert (target / "a" / "z").read_bytes() == b"z2"
    finally:
        unmount_all(target)


def test_whiteouts_round_trip_apply_then_write_layer(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    upper.mkdir()
    apply_layer(io.BytesIO(LAYER2), upper)
    out = io.BytesIO()
    diff_id = write_layer(upper, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tf:
        names = tf.getnames()
        for m in tf.getmembers():
            assert not any(k.startswith("SCHILY.xattr.trusted.overlay") for k in m.pax_headers)
    assert names == ["a", "a/z", ".wh.deleted.txt", "opq", "opq/.wh..wh..opq", "opq/new"]
    # and the result applies to the same overlay form again, with the same diff ID when re-written
    again = tmp_path / "again"
    again.mkdir()
    time.sleep(1.1)  # whiteout nodes made a second later must still carry the layer's mtimes
    assert apply_layer(io.BytesIO(out.getvalue()), again).diff_id == diff_id
    assert write_layer(again, io.BytesIO()) == diff_id


def test_changes_made_through_overlay_become_a_layer(sn: Snapshotter, target: Path) -> None:
    base = _unpack(sn, [LAYER1])
    mount_all(sn.prepare("container", base), target)
    try:
        (target / "deleted.txt").unlink()
        for p in ("opq/sub/deep", "opq/old"):
            (target / p).unlink()
        (target / "opq" / "sub").rmdir()
        (target / "opq").rmdir()
        (target / "opq").mkdir()  # overlay marks a re-created directory opaque
        (target / "opq" / "fresh").write_text("fresh")
        (target / "a" / "x").write_text("changed")
    finally:
        unmount_all(target)
    out = io.BytesIO()
    write_layer(sn.upper_dir("container"), out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tf:
        names = tf.getnames()
    assert ".wh.deleted.txt" in names
    assert "opq/.wh..wh..opq" in names and "opq/fresh" in names
    assert "a/x" in names and "a/y" not in names
    # stacking the produced layer reproduces the container's view
    sn.commit("container-layer", "container")
    key = "replay"
    sn.prepare(key, base)
    apply_layer(io.BytesIO(out.getvalue()), sn.upper_dir(key))
    sn.commit("replayed", key)
    mount_all(sn.view("replay-view", "replayed"), target)
    try:
        assert not (target / "deleted.txt").exists()
        assert sorted(os.listdir(target / "opq")) == ["fresh"]
        assert (target / "a" / "x").read_text() == "changed"
    finally:
        unmount_all(target)


def test_ownership_and_capabilities_survive_apply_and_write(tmp_path: Path) -> None:
    # security.capability v2 blob granting cap_net_raw (bit 13) permitted+effective
    cap = bytes.fromhex("01000002") + (1 << 13).to_bytes(4, "little") + bytes(4) + bytes(8)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        ti = tarfile.TarInfo("bin/ping")
        ti.size, ti.mode, ti.uid, ti.gid = 4, 0o4755, 1234, 5678
        ti.pax_headers = {"SCHILY.xattr.security.capability": cap.decode("utf-8", "surrogateescape")}
        tf.addfile(ti, io.BytesIO(b"ping"))
        sl = tarfile.TarInfo("bin/link")
        sl.type, sl.linkname, sl.uid, sl.gid = tarfile.SYMTYPE, "ping", 42, 43
        tf.addfile(sl)
    dest = tmp_path / "dest"
    dest.mkdir()
    apply_layer(io.BytesIO(buf.getvalue()), dest)
    st = (dest / "bin" / "ping").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o4755)  # set-id kept after chown
    assert os.getxattr(dest / "bin" / "ping", "security.capability") == cap
    lst = (dest / "bin" / "link").lstat()
    assert (lst.st_uid, lst.st_gid) == (42, 43)  # lchown, not the target
    out = io.BytesIO()
    write_layer(dest, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tf:
        ping = tf.getmember("bin/ping")
    assert (ping.uid, ping.gid, ping.mode) == (1234, 5678, 0o4755)
    assert ping.pax_headers["SCHILY.xattr.security.capability"].encode("utf-8", "surrogateescape") == cap
