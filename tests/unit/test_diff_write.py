"""write_layer / tar_directory output, empty layers and zstd."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import socket
import tarfile
from pathlib import Path

import pytest

from dockyard.diff import apply_layer, tar_directory, write_layer


def _tree(root: Path) -> None:
    (root / "b" / "c").mkdir(parents=True)
    (root / "a").write_text("a")
    (root / "b" / "c" / "f").write_bytes(b"f" * 5000)
    os.link(root / "b" / "c" / "f", root / "b" / "hl")
    (root / "z").symlink_to("/b/c/f")
    os.mkfifo(root / "fifo")
    for p in root.rglob("*"):
        os.utime(p, (1_500_000_000, 1_500_000_000), follow_symlinks=False)


def _members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return tf.getmembers()


def test_sorted_pax_with_hardlinks_and_no_names(tmp_path: Path) -> None:
    _tree(tmp_path)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))  # sockets are not archived
    try:
        out = io.BytesIO()
        dg = tar_directory(tmp_path, out)
    finally:
        sock.close()
    assert dg.hex == hashlib.sha256(out.getvalue()).hexdigest()
    members = _members(out.getvalue())
    assert [m.name for m in members] == ["a", "b", "b/c", "b/c/f", "b/hl", "fifo", "z"]
    by = {m.name: m for m in members}
    assert by["b/hl"].islnk() and by["b/hl"].linkname == "b/c/f"
    assert by["z"].issym() and by["z"].linkname == "/b/c/f"
    assert by["fifo"].isfifo()
    assert all(m.uname == "" and m.gname == "" for m in members)
    assert by["b/c/f"].mtime == 1_500_000_000


def test_reproducible(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for d in (one, two):
        d.mkdir()
        _tree(d)
    a, b = io.BytesIO(), io.BytesIO()
    assert write_layer(one, a) == write_layer(two, b)
    assert a.getvalue() == b.getvalue()


def test_user_xattrs_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    f = src / "f"
    f.write_text("x")
    try:
        os.setxattr(f, "user.dockyard.test", b"\xff\x00binary")
    except OSError:
        pytest.skip("filesystem without user xattrs")
    out = io.BytesIO()
    write_layer(src, out)
    (m,) = _members(out.getvalue())
    assert "SCHILY.xattr.user.dockyard.test" in m.pax_headers
    dest = tmp_path / "dest"
    dest.mkdir()
    apply_layer(io.BytesIO(out.getvalue()), dest)
    assert os.getxattr(dest / "f", "user.dockyard.test") == b"\xff\x00binary"


@pytest.mark.parametrize("data", [b"", b"\0" * 1024, gzip.compress(b"\0" * 1024)], ids=["empty", "zeros", "gz"])
def test_empty_layers(tmp_path: Path, data: bytes) -> None:
    res = apply_layer(io.BytesIO(data), tmp_path)
    raw = gzip.decompress(data) if data.startswith(b"\x1f\x8b") else data
    assert res.diff_id.hex == hashlib.sha256(raw).hexdigest()
    assert list(tmp_path.iterdir()) == []


def test_zstd_layer(tmp_path: Path) -> None:
    zstandard = pytest.importorskip("zstandard")
    src = tmp_path / "src"
    src.mkdir()
    _tree(src)
    out = io.BytesIO()
    dg = tar_directory(src, out)
    dest = tmp_path / "dest"
    dest.mkdir()
    res = apply_layer(io.BytesIO(zstandard.ZstdCompressor().compress(out.getvalue())), dest)
    assert res.diff_id == dg
    assert (dest / "b" / "hl").read_bytes() == b"f" * 5000
