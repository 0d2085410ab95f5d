"""apply_layer: content, metadata, compression, diff IDs, and hostile archives."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from dockyard.diff import apply_layer, tar_directory
from dockyard.errors import InvalidArgument


def entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", mode: int | None = None,
          linkname: str = "", mtime: int = 1_600_000_000, **extra: object) -> tuple[tarfile.TarInfo, bytes]:
    ti = tarfile.TarInfo(name)
    if mode is None:
        mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    ti.type, ti.mode, ti.mtime, ti.linkname = kind, mode, mtime, linkname
    ti.size = len(data) if kind == tarfile.REGTYPE else 0
    for k, v in extra.items():
        setattr(ti, k, v)
    return ti, data


def make_tar(*entries: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti, data in entries:
            tf.addfile(ti, io.BytesIO(data) if ti.isreg() else None)
    return buf.getvalue()


@pytest.fixture
def sandbox(tmp_path: Path) -> tuple[Path, Path]:
    """dest plus a sentinel dir beside it that no hostile archive may touch."""
    dest = tmp_path / "dest"
    outside = tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (outside / "keep").write_text("original")
    return dest, outside


def assert_outside_untouched(outside: Path) -> None:
    assert sorted(p.name for p in outside.iterdir()) == ["keep"]
    assert (outside / "keep").read_text() == "original"


def test_apply_files_dirs_links_and_metadata(tmp_path: Path) -> None:
    tar = make_tar(
        entry("etc/", tarfile.DIRTYPE, mode=0o750, mtime=1_500_000_000),
        entry("etc/conf", data=b"conf\n", mode=0o4755, mtime=1_400_000_000),
        entry("etc/link", tarfile.SYMTYPE, linkname="conf"),
        entry("etc/abs", tarfile.SYMTYPE, linkname="/nowhere/at/all"),
        entry("etc/hard", tarfile.LNKTYPE, linkname="etc/conf"),
        entry("implicit/parent/file", data=b"x"),
        entry("fifo", tarfile.FIFOTYPE, mode=0o600),
    )
    res = apply_layer(io.BytesIO(tar), tmp_path)
    assert res.diff_id.hex == hashlib.sha256(tar).hexdigest()
    assert res.size == len(tar)
    conf = tmp_path / "etc" / "conf"
    assert conf.read_bytes() == b"conf\n"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o4755
    assert conf.stat().st_mtime == 1_400_000_000
    assert stat.S_IMODE((tmp_path / "etc").stat().st_mode) == 0o750
    assert (tmp_path / "etc").stat().st_mtime == 1_500_000_000  # set after its children
    assert os.readlink(tmp_path / "etc" / "link") == "conf"
    assert os.readlink(tmp_path / "etc" / "abs") == "/nowhere/at/all"
    assert (tmp_path / "etc" / "hard").stat().st_ino == conf.stat().st_ino
    assert (tmp_path / "implicit" / "parent" / "file").read_bytes() == b"x"
    assert stat.S_ISFIFO((tmp_path / "fifo").lstat().st_mode)


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lambda b: b], ids=["gzip", "bzip2", "plain"])
def test_compression_detected_and_diff_id_is_uncompressed(
        tmp_path: Path, compress: Callable[[bytes], bytes]) -> None:
    tar = make_tar(entry("a", data=b"a" * 100_000))
    res = apply_layer(io.BytesIO(compress(tar)), tmp_path)
    assert res.diff_id.hex == hashlib.sha256(tar).hexdigest()
    assert (tmp_path / "a").read_bytes() == b"a" * 100_000


def test_zstd_without_module_is_invalid_argument(tmp_path: Path) -> None:
    try:
        import zstandard  # noqa: F401
    except ImportError:
        with pytest.raises(InvalidArgument, match="zstandard"):
            apply_layer(io.BytesIO(b"\x28\xb5\x2f\xfd" + b"\0" * 100), tmp_path)
    else:
        pytest.skip("zstandard is installed")


def test_garbage_is_invalid_argument(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument):
        apply_layer(io.BytesIO(b"not a tar at all" * 64), tmp_path)
    with pytest.raises(InvalidArgument):
        apply_layer(io.BytesIO(gzip.compress(b"x" * 1000)[:-20]), tmp_path)


def test_later_entry_replaces_earlier(tmp_path: Path) -> None:
    tar = make_tar(
        entry("x/", tarfile.DIRTYPE), entry("x/inner", data=b"1"),
        entry("x", data=b"now a file"),
        entry("y", data=b"file"), entry("y/", tarfile.DIRTYPE), entry("y/z", data=b"z"),
        entry("d/", tarfile.DIRTYPE), entry("d/keep", data=b"k"), entry("d/", tarfile.DIRTYPE, mode=0o700),
    )
    apply_layer(io.BytesIO(tar), tmp_path)
    assert (tmp_path / "x").read_bytes() == b"now a file"
    assert (tmp_path / "y" / "z").read_bytes() == b"z"
    assert (tmp_path / "d" / "keep").read_bytes() == b"k"


def test_device_nodes_are_skipped(sandbox: tuple[Path, Path]) -> None:
    dest, outside = sandbox
    assert_outside_untouched(outside)
    tar = make_tar(entry("dev/sda", tarfile.BLKTYPE, devmajor=8, devminor=0),
                   entry("dev/mem", tarfile.CHRTYPE, devmajor=1, devminor=1),
                   entry("ok", data=b"fine"))
    apply_layer(io.BytesIO(tar), dest)
    assert not (dest / "dev" / "sda").exists() and not (dest / "dev" / "mem").exists()
    assert (dest / "ok").read_bytes() == b"fine"
    assert_outside_untouched(outside)


@pytest.mark.parametrize("hostile", [
    [entry("/abs-escape", data=b"evil")],
    [entry("../escape", data=b"evil")],
    [entry("a/../../escape", data=b"evil")],
    [entry("hl", tarfile.LNKTYPE, linkname="/etc/passwd")],
    [entry("hl", tarfile.LNKTYPE, linkname="../outside/keep")],
], ids=["absolute", "dotdot", "nested-dotdot", "hardlink-abs", "hardlink-dotdot"])
def test_hostile_names_refused(sandbox: tuple[Path, Path], hostile: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    dest, outside = sandbox
    with pytest.raises(InvalidArgument, match=repr(hostile[0][0].name).strip("'")[:5]):
        apply_layer(io.BytesIO(make_tar(*hostile)), dest)
    assert_outside_untouched(outside)


def test_symlink_to_root_then_file_through_it_stays_inside(sandbox: tuple[Path, Path]) -> None:
    dest, outside = sandbox
    tar = make_tar(entry("evil", tarfile.SYMTYPE, linkname="/"),
                   entry(f"evil{outside}/keep", data=b"pwned"),
                   entry("evil2", tarfile.SYMTYPE, linkname=str(outside)),
                   entry("evil2/new", data=b"pwned"))
    apply_layer(io.BytesIO(tar), dest)
    assert_outside_untouched(outside)
    # an absolute symlink is rooted at dest, as it would be inside the container
    assert (dest / str(outside).lstrip("/") / "keep").read_bytes() == b"pwned"
    assert (dest / str(outside).lstrip("/") / "new").read_bytes() == b"pwned"
    assert os.readlink(dest / "evil") == "/"


def test_relative_symlink_escape_refused(sandbox: tuple[Path, Path]) -> None:
    dest, outside = sandbox
    tar = make_tar(entry("up", tarfile.SYMTYPE, linkname="../outside"),
                   entry("up/keep", data=b"pwned"))
    with pytest.raises(InvalidArgument, match="up/keep"):
        apply_layer(io.BytesIO(tar), dest)
    assert_outside_untouched(outside)


def test_hardlink_through_symlink_to_outside_refused(sandbox: tuple[Path, Path]) -> None:
    dest, outside = sandbox
    tar = make_tar(entry("out", tarfile.SYMTYPE, linkname="../outside"),
                   entry("steal", tarfile.LNKTYPE, linkname="out/keep"))
    with pytest.raises(InvalidArgument):
        apply_layer(io.BytesIO(tar), dest)
    assert not (dest / "steal").exists()
    assert (outside / "keep").stat().st_nlink == 1
    tar = make_tar(entry("hostetc", tarfile.SYMTYPE, linkname="/etc"),
                   entry("passwd", tarfile.LNKTYPE, linkname="hostetc/passwd"))
    with pytest.raises(InvalidArgument, match="does not exist in the layer"):
        apply_layer(io.BytesIO(tar), dest)


def test_symlink_final_component_is_replaced_not_followed(sandbox: tuple[Path, Path]) -> None:
    dest, outside = sandbox
    tar = make_tar(entry("target", tarfile.SYMTYPE, linkname=str(outside / "keep")),
                   entry("target", data=b"replaced"))
    apply_layer(io.BytesIO(tar), dest)
    assert (dest / "target").read_bytes() == b"replaced"
    assert not (dest / "target").is_symlink()
    assert_outside_untouched(outside)


def test_roundtrip_through_tar_directory(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "d" / "e").mkdir(parents=True)
    (src / "d" / "f").write_bytes(b"data")
    os.chmod(src / "d" / "f", 0o600)
    os.link(src / "d" / "f", src / "d" / "e" / "g")
    (src / "l").symlink_to("d/f")
    buf = io.BytesIO()
    dg = tar_directory(src, buf)
    assert dg.hex == hashlib.sha256(buf.getvalue()).hexdigest()
    out = tmp_path / "out"
    out.mkdir()
    assert apply_layer(io.BytesIO(buf.getvalue()), out).diff_id == dg
    assert (out / "d" / "e" / "g").stat().st_ino == (out / "d" / "f").stat().st_ino
    assert stat.S_IMODE((out / "d" / "f").stat().st_mode) == 0o600
    assert os.readlink(out / "l") == "d/f"
    again = io.BytesIO()
    assert tar_directory(out, again) == dg  # reproducible
