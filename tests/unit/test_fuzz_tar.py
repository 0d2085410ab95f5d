"""Property-based tests of the layer applier (``dockyard.diff.apply``) and the image-archive loader.

Issue 8, fuzzing: hostile layer tars (``..`` and absolute names, symlinks leading outside and files
written through them, hardlinks to outside or missing targets, device nodes, duplicates, whiteouts
in odd places, truncated streams, huge or negative sizes, absurd pax values, non-UTF-8 names,
corrupted header fields) either apply with nothing written outside the target directory, or raise
the project's clear error (``InvalidArgument``; ``PermissionDenied`` for what needs root when not
root), never another exception. ``apply_layer`` applies in place (the unpacker applies into a
throw-away ``extract-`` snapshot and removes it on failure), so the promise checked for the applier
is "nothing outside the target"; the no-half-state promise is checked one level up, through
``ImageService.load``: a rejected docker-archive / OCI layout (hostile manifest.json / index.json,
missing blobs, digest mismatches, traversal, hostile layers) records no image, tag or snapshot, and
one rejected while planning stores no blob either.

Deterministic (``derandomize``); ``DOCKYARD_FUZZ_EXAMPLES=<n>`` raises the example count locally.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import io
import json
import lzma
import os
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dockyard.content import ContentStore
from dockyard.diff import apply_layer
from dockyard.errors import DockyardError, InvalidArgument, PermissionDenied
from dockyard.images import ImageService
from dockyard.images import load as image_load
from dockyard.images.archive import Archive
from dockyard.metadata.db import Database
from dockyard.snapshots import Snapshotter
from tests.unit.test_images_archives import (
    Image,
    docker_archive_old,
    layer,
    oci_layout,
    read_tar,
    sha,
    tar_bytes,
)

_EXAMPLES = int(os.environ.get("DOCKYARD_FUZZ_EXAMPLES", "0")) or None
IS_ROOT = os.geteuid() == 0


def fuzz(default: int) -> settings:
    return settings(max_examples=_EXAMPLES or default, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large])


def _allowed(exc: BaseException) -> bool:
    if isinstance(exc, InvalidArgument):
        return True
    return isinstance(exc, PermissionDenied) and not IS_ROOT


# -- a sandbox: target dir, with a sentinel tree beside and above it ----------------------------------
# <box>/outer/sentinel/{file,dir/inner}   watched
# <box>/outer/root/target/                where the layer goes
# <box>/outer/root/sibling/file           watched
# Everything under <box> except target/ must be byte-for-byte unchanged by any apply.

@contextlib.contextmanager
def sandbox(base: Path) -> Iterator[tuple[Path, Path]]:
    with tempfile.TemporaryDirectory(dir=base, ignore_cleanup_errors=True) as box:
        outer = Path(box) / "outer"
        (outer / "sentinel" / "dir").mkdir(parents=True)
        (outer / "sentinel" / "file").write_bytes(b"sentinel")
        (outer / "sentinel" / "dir" / "inner").write_bytes(b"inner")
        (outer / "root" / "sibling").mkdir(parents=True)
        (outer / "root" / "sibling" / "file").write_bytes(b"sibling")
        target = outer / "root" / "target"
        target.mkdir()
        yield Path(box), target


def snapshot(box: Path, skip: Path) -> dict[str, tuple[Any, ...]]:
    """Type, mode, owner, size, mtime, content or link target of everything under ``box`` but ``skip``."""
    out: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(box):
        if Path(dirpath) == skip.parent:
            dirnames[:] = [d for d in dirnames if Path(dirpath, d) != skip]
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st_ = p.lstat()
            extra: Any = None
            if stat.S_ISREG(st_.st_mode):
                extra = p.read_bytes()
            elif stat.S_ISLNK(st_.st_mode):
                extra = os.readlink(p)
            out[str(p.relative_to(box))] = (stat.S_IFMT(st_.st_mode), st_.st_mode, st_.st_uid, st_.st_gid,
                                            st_.st_size, st_.st_mtime_ns, st_.st_nlink, extra)
    st_ = skip.lstat()
    out["<target itself>"] = (stat.S_IFMT(st_.st_mode), st_.st_ino)  # replaced, or swapped for a link?
    return out


def assert_inside(target: Path) -> None:
    """Every hardlinked file in target links only within target (no link to a sentinel file)."""
    for dirpath, _, filenames in os.walk(target):
        for name in filenames:
            p = Path(dirpath, name)
            st_ = p.lstat()
            if stat.S_ISREG(st_.st_mode) and st_.st_nlink > 1:
                assert p.read_bytes() not in (b"sentinel", b"inner", b"sibling"), p


# -- hostile layer tars ---------------------------------------------------------------------------------
_COMPONENTS = ["a", "b", "dir", "..", ".", "", "sentinel", "sibling", "target", ".wh.a", ".wh.dir", ".wh..wh..opq",
               ".wh.", ".wh..", ".wh...", ".wh..wh.plnk", "\udcff\udcfe", "caf\u00e9", "x" * 300, "lnk", "l2", "\\",
               "a\x00b"]
_LINKNAMES = ["a", "dir", "dir/a", "..", "../..", "../sentinel", "../../sentinel", "../../sentinel/dir",
              "../../../outer/sentinel/file", "/", "/..", "/../sentinel", "/a", "/etc", "lnk", "lnk/a", "l2", ".",
              "", "a/../..", "dir/../../sentinel", "\udcff\udcfe", "x" * 5000]
_KINDS = [tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE,
          tarfile.BLKTYPE, tarfile.FIFOTYPE, tarfile.CONTTYPE, b"V", b"Z", b"7"]
_PAX = {"mtime": ["1e400", "-1e400", "1e30", "-5", "nan", "1.5", "x"], "uid": ["4294967295", "99999999999999999999", "-1"],
        "gid": ["4294967296"], "size": ["-1", "-100000", "1099511627776", "0"], "path": ["../escape", "/abs", "ok"],
        "linkpath": ["../../sentinel/file", "/"], "SCHILY.xattr.user.x": ["v"],
        "SCHILY.xattr.trusted.overlay.opaque": ["y"], "SCHILY.xattr.security.capability": ["\x00garbage"],
        "SCHILY.xattr.": ["v"], "uname": ["\udcff"], "hdrcharset": ["BINARY"]}


@st.composite
def entries(draw: st.DrawFn) -> dict[str, Any]:
    parts = draw(st.lists(st.sampled_from(_COMPONENTS), min_size=1, max_size=4))
    name = ("/" if draw(st.integers(0, 9)) == 0 else "") + "/".join(parts)
    kind = draw(st.sampled_from(_KINDS))
    pax = {}
    if draw(st.integers(0, 3)) == 0:
        key = draw(st.sampled_from(sorted(_PAX)))
        pax[key] = draw(st.sampled_from(_PAX[key]))
    return {"name": name, "kind": kind, "linkname": draw(st.sampled_from(_LINKNAMES)),
            "data": draw(st.sampled_from([b"", b"payload", b"x" * 1500])),
            "mode": draw(st.sampled_from([0o644, 0o755, 0o000, 0o7777, 0o4755])),
            "uid": draw(st.sampled_from([0, 1000, 65534])), "mtime": draw(st.sampled_from([0, 1_700_000_000, -1])),
            "devmajor": draw(st.sampled_from([0, 1, 8])), "pax": pax}


def build_tar(specs: list[dict[str, Any]], fmt: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, encoding="utf-8", errors="surrogateescape") as tf:
        for s in specs:
            ti = tarfile.TarInfo(s["name"])
            ti.type, ti.linkname, ti.mode, ti.uid, ti.mtime = s["kind"], s["linkname"], s["mode"], s["uid"], s["mtime"]
            ti.devmajor = s["devmajor"]
            data = s["data"] if s["kind"] in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE) else b""
            ti.size = len(data)
            if fmt == tarfile.PAX_FORMAT:
                ti.pax_headers = dict(s["pax"])
            try:
                tf.addfile(ti, io.BytesIO(data))
            except (ValueError, UnicodeError, tarfile.TarError):
                continue  # tarfile will not write this one (name too long for the format, NUL, ...)
    return buf.getvalue()


def _header_offsets(data: bytes) -> list[int]:
    """Offsets of 512-byte blocks whose checksum field is right: the tar headers."""
    out = []
    for off in range(0, len(data) - 511, 512):
        block = data[off:off + 512]
        if not block.strip(b"\0"):
            continue
        try:
            stored = int(block[148:156].strip(b"\0 ") or b"-1", 8)
        except ValueError:
            continue
        if stored == _checksum(block):
            out.append(off)
    return out


def _checksum(block: bytes | bytearray) -> int:
    """The ustar header checksum: byte sum with the checksum field counted as spaces."""
    return sum(block[:148]) + 8 * 0x20 + sum(block[156:512])


_FIELDS = {"name": (0, 100), "mode": (100, 8), "uid": (108, 8), "size": (124, 12), "mtime": (136, 12),
           "type": (156, 1), "linkname": (157, 100), "magic": (257, 8), "devmajor": (329, 8), "prefix": (345, 155)}
_FIELD_VALUES = [b"", b"\xff" * 12, b"\x80" + b"\x00" * 3 + b"\x01" * 8, b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x00",
                 b"77777777777\x00", b"-1", b"../../sentinel/file\x00", b"/", b"\x00", b"5", b"x", b"99999999999\x00"]


def corrupt(data: bytes, header: int, field: str, value: bytes) -> bytes:
    """Overwrite one field of one header and give it a valid checksum again."""
    heads = _header_offsets(data)
    if not heads:
        return data
    off = heads[header % len(heads)]
    start, length = _FIELDS[field]
    block = bytearray(data[off:off + 512])
    block[start:start + length] = value[:length].ljust(length, b"\0")
    block[148:156] = b"%06o\0 " % _checksum(block)
    return data[:off] + bytes(block) + data[off + 512:]


@st.composite
def layer_streams(draw: st.DrawFn) -> tuple[bytes, bool]:
    """(stream, whether it is the uncompressed tar as built): hostile tars, maybe corrupted, truncated,
    compressed."""
    specs = draw(st.lists(entries(), min_size=1, max_size=8))
    fmt = draw(st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT]))
    data = build_tar(specs, fmt)
    for _ in range(draw(st.integers(0, 2))):
        data = corrupt(data, draw(st.integers(0, 20)), draw(st.sampled_from(sorted(_FIELDS))),
                       draw(st.sampled_from(_FIELD_VALUES)))
    if draw(st.integers(0, 4)) == 0:
        data = data[:draw(st.integers(0, len(data)))]
    plain = True
    comp = draw(st.sampled_from(["none", "none", "none", "gzip", "bz2", "xz"]))
    if comp != "none":
        data = {"gzip": lambda d: gzip.compress(d, mtime=0), "bz2": bz2.compress, "xz": lzma.compress}[comp](data)
        plain = False
        if draw(st.booleans()):
            data = data[:draw(st.integers(0, len(data)))]
    return data, plain


def _sentinel_target(box: Path) -> str:
    return str(box / "outer" / "sentinel")


def apply_and_check(stream: bytes, plain: bool, base: Path, absolute_links: bool = False) -> None:
    with sandbox(base) as (box, target):
        if absolute_links:  # links with the *host* path of the sentinel: only safe if rooted at target
            stream = stream.replace(b"/ABSOLUTE_SENTINEL", _sentinel_target(box).encode())
        before = snapshot(box, target)
        try:
            result = apply_layer(io.BytesIO(stream), target)
        except DockyardError as exc:
            assert _allowed(exc), f"{type(exc).__name__}: {exc}"
        else:
            if plain:
                assert str(result.diff_id) == "sha256:" + hashlib.sha256(stream).hexdigest()
                assert result.size == len(stream)
            assert_inside(target)
        assert snapshot(box, target) == before


# -- properties: the applier ----------------------------------------------------------------------------

@fuzz(500)
@given(layer_streams())
def test_hostile_layers_never_write_outside_the_target(tmp_path: Path, case: tuple[bytes, bool]) -> None:
    apply_and_check(*case, tmp_path)


_THROUGH = st.sampled_from([
    # symlink, then something written through it
    [("lnk", tarfile.SYMTYPE, "../../sentinel"), ("lnk/file", tarfile.REGTYPE, ""), ("lnk/new", tarfile.REGTYPE, "")],
    [("lnk", tarfile.SYMTYPE, "/ABSOLUTE_SENTINEL"), ("lnk/file", tarfile.REGTYPE, ""),
     ("lnk/dir/inner", tarfile.REGTYPE, "")],
    [("lnk", tarfile.SYMTYPE, "/ABSOLUTE_SENTINEL/file"), ("lnk", tarfile.REGTYPE, "")],
    [("lnk", tarfile.SYMTYPE, "../sibling"), ("lnk/.wh.file", tarfile.REGTYPE, "")],
    [("lnk", tarfile.SYMTYPE, "../sibling"), ("lnk/.wh..wh..opq", tarfile.REGTYPE, "")],
    [("d", tarfile.DIRTYPE, ""), ("d/l", tarfile.SYMTYPE, "../../../outer"), ("d/l/sentinel/x", tarfile.DIRTYPE, "")],
    [("lnk", tarfile.SYMTYPE, "."), ("lnk/lnk/lnk/../../sibling/file", tarfile.REGTYPE, "")],
    [("a", tarfile.SYMTYPE, "b"), ("b", tarfile.SYMTYPE, "a"), ("a/x", tarfile.REGTYPE, "")],
    [("lnk", tarfile.SYMTYPE, "/ABSOLUTE_SENTINEL/file"), ("hard", tarfile.LNKTYPE, "lnk")],
    [("lnk", tarfile.SYMTYPE, "../../sentinel"), ("hard", tarfile.LNKTYPE, "lnk/file")],
    [("hard", tarfile.LNKTYPE, "../sibling/file")],
    [("hard", tarfile.LNKTYPE, "/ABSOLUTE_SENTINEL/file")],
    [("hard", tarfile.LNKTYPE, "missing")],
    [("dev", tarfile.CHRTYPE, ""), ("dev", tarfile.BLKTYPE, ""), ("dev/x", tarfile.REGTYPE, "")],
    [("f", tarfile.REGTYPE, ""), ("f", tarfile.DIRTYPE, ""), ("f", tarfile.REGTYPE, ""), ("f", tarfile.FIFOTYPE, ""),
     ("f", tarfile.SYMTYPE, "/ABSOLUTE_SENTINEL/file"), ("f", tarfile.REGTYPE, "")],
    [(".wh..wh..opq", tarfile.REGTYPE, ""), (".wh.target", tarfile.REGTYPE, ""), (".wh...", tarfile.REGTYPE, "")],
    [("lnk", tarfile.SYMTYPE, "/ABSOLUTE_SENTINEL"), ("lnk/.wh.file", tarfile.REGTYPE, ""),
     ("lnk/.wh.dir", tarfile.DIRTYPE, "")],
    [("dir", tarfile.DIRTYPE, ""), ("dir/x", tarfile.REGTYPE, ""), (".wh.dir", tarfile.REGTYPE, ""),
     ("dir/x", tarfile.LNKTYPE, "dir/x")],
    [("x", tarfile.REGTYPE, ""), ("x/y", tarfile.REGTYPE, "")],
    [("fifo", tarfile.FIFOTYPE, ""), ("fifo/y", tarfile.REGTYPE, ""), ("hard", tarfile.LNKTYPE, "fifo")],
])


@fuzz(150)
@given(st.lists(_THROUGH, min_size=1, max_size=3), st.permutations(range(3)), st.booleans())
@example([[("lnk", tarfile.SYMTYPE, "/ABSOLUTE_SENTINEL"), ("lnk/file", tarfile.REGTYPE, "")]], [0, 1, 2], False)
def test_links_out_of_the_target_are_never_followed(tmp_path: Path, groups: list[list[tuple[str, bytes, str]]],
                                                    order: list[int], pax: bool) -> None:
    specs = [{"name": n, "kind": k, "linkname": ln, "data": b"evil", "mode": 0o644, "uid": 0, "mtime": 0,
              "devmajor": 0, "pax": {}} for group in groups for (n, k, ln) in group]
    if order[0] == 2:  # sometimes shuffle whole groups against each other
        specs.reverse()
    data = build_tar(specs, tarfile.PAX_FORMAT if pax else tarfile.GNU_FORMAT)
    apply_and_check(data, True, tmp_path, absolute_links=True)


@pytest.mark.parametrize("case", ["huge-size", "negative-size", "pax-mtime-inf", "pax-uid-huge", "pax-mtime-huge",
                                  "truncated-header", "junk", "zeros-then-junk"])
def test_specific_hostile_streams(case: str, tmp_path: Path) -> None:
    def one(pax: dict[str, str], size: int = 0) -> bytes:
        ti = tarfile.TarInfo("f")
        ti.size = size
        ti.pax_headers = pax
        return ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    if case == "huge-size":
        data = one({}, 1 << 40) + b"x" * 1000
    elif case == "negative-size":
        data = one({"size": "-100000"}) + one({}) + b"\0" * 1024
    elif case == "pax-mtime-inf":
        data = one({"mtime": "1e400"}) + b"\0" * 1024
    elif case == "pax-uid-huge":
        data = one({"uid": "99999999999999999999", "gid": "4294967296"}) + b"\0" * 1024
    elif case == "pax-mtime-huge":
        data = one({"mtime": "1e30"}) + b"\0" * 1024
    elif case == "truncated-header":
        data = one({}, 3)[:700]
    elif case == "junk":
        data = b"\x01" * 2000
    else:
        data = b"\0" * 512 + b"junk" * 300
    apply_and_check(data, True, tmp_path)


# -- properties: the image-archive loader -----------------------------------------------------------------

@contextlib.contextmanager
def image_service(base: Path) -> Iterator[ImageService]:
    with tempfile.TemporaryDirectory(dir=base, ignore_cleanup_errors=True) as root:
        db = Database(Path(root) / "metadata.db")
        snaps = Snapshotter(Path(root) / "snapshots")
        try:
            yield ImageService(db, ContentStore(Path(root) / "content"), snaps, Path(root) / "tmp")
        finally:
            snaps.close()
            db.close()


def store_state(svc: ImageService) -> tuple[Any, ...]:
    blobs = sorted(str(p.relative_to(svc.content.root)) for p in svc.content.root.rglob("*")
                   if p.is_file() and "ingest" not in p.parts)
    return (svc.db.query("SELECT id FROM images"), svc.db.query("SELECT name FROM tags"),
            sorted((i.key, i.kind) for i in svc.snapshots.walk()), blobs)


def _good_image(n: int) -> Image:
    return Image([layer({"etc/os-release": b"ID=fuzz\n"}), layer({f"app/{n}": b"payload\n"})],
                 tags=[f"dy-fuzz-{n}:latest"])


_JSON_VALUES = [None, True, 0, -1, 1 << 70, 1.5, "", "x", "../../etc/passwd", "/etc/passwd", "blobs/sha256/../../x",
                "sha256:" + "0" * 64, "sha256:short", [], [None], ["../x"], {}, {"a": 1}, "Busybox:latest",
                "a" * 300, "dy-fuzz-x:" + "t" * 129, "x@sha256:" + "0" * 64]


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, (*prefix, i))


def _set(doc: Any, path: tuple[Any, ...], value: Any, delete: bool) -> Any:
    if not path:
        return value
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


@st.composite
def hostile_archives(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["docker", "oci"]))
    images = [_good_image(i) for i in range(draw(st.integers(1, 2)))]
    members = read_tar(docker_archive_old(images) if kind == "docker" else oci_layout(images))
    json_names = sorted(n for n in members if n.endswith(".json") or n == "oci-layout"
                        or (n.startswith("blobs/") and members[n].startswith(b"{")))
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["json", "json", "json", "drop", "bytes", "layer", "rename"]))
        names = sorted(members)
        if action == "json":
            name = draw(st.sampled_from(json_names))
            try:
                doc = json.loads(members[name])
            except (KeyError, ValueError):  # dropped or already mangled by an earlier action
                continue
            path = draw(st.sampled_from(list(_paths(doc))))
            doc = _set(doc, path, draw(st.sampled_from(_JSON_VALUES)), delete=bool(path) and draw(st.booleans()))
            members[name] = json.dumps(doc).encode()
        elif action == "drop":
            members.pop(draw(st.sampled_from(names)))
        elif action == "bytes":
            name = draw(st.sampled_from(names))
            data = members[name]
            cut = draw(st.integers(0, len(data)))
            members[name] = data[:cut] + draw(st.sampled_from([b"", b"\x00", b"{", b"]", b"\xff"])) + data[cut + 1:]
        elif action == "layer":  # a hostile layer, named where a real layer was (digests then lie, too)
            name = draw(st.sampled_from([n for n in names if n.endswith("layer.tar") or n.startswith("blobs/")]
                                        or names))
            stream, _ = draw(layer_streams())
            members[name] = stream
        elif action == "rename":
            name = draw(st.sampled_from(names))
            new = draw(st.sampled_from(["../" + name, "/" + name, name + "/", "./" + name, name.upper(), "a\\b"]))
            members[new] = members.pop(name)
    return tar_bytes(list(members.items()))


@fuzz(400)
@given(hostile_archives())
def test_hostile_archives_leave_the_store_unchanged(tmp_path: Path, data: bytes) -> None:
    with image_service(tmp_path) as svc:
        before = store_state(svc)
        planned = True
        try:  # does the plan (no writes) already refuse it?
            spool = Path(svc.tmp_dir.parent) / "spool.tar"
            spool.write_bytes(data)
            with Archive(spool) as archive:
                image_load.plan(archive)
        except InvalidArgument:
            planned = False
        try:
            svc.load(io.BytesIO(data))
        except DockyardError as exc:
            assert _allowed(exc), f"{type(exc).__name__}: {exc}"
            after = store_state(svc)
            assert after[:3] == before[:3]  # no image, tag or snapshot
            if not planned:
                assert after == before  # refused while planning: no blob either


@pytest.mark.parametrize("case", ["manifest-not-list", "config-not-str", "layers-traversal", "layers-abs",
                                  "index-wrong-type", "blob-missing", "digest-mismatch", "size-mismatch",
                                  "huge-size", "nested-index-loop", "tag-uppercase", "layer-symlink-out",
                                  "annotations-list", "annotation-int"])
def test_specific_hostile_archives(case: str, tmp_path: Path) -> None:
    img = _good_image(0)
    if case.startswith(("manifest", "config", "layers", "tag")):
        members = read_tar(docker_archive_old([img]))
        doc = json.loads(members["manifest.json"])
        if case == "manifest-not-list":
            doc = {"Config": doc[0]["Config"]}
        elif case == "config-not-str":
            doc[0]["Config"] = ["x"]
        elif case == "layers-traversal":
            doc[0]["Layers"][0] = "../" + doc[0]["Layers"][0]
        elif case == "layers-abs":
            doc[0]["Layers"][0] = "/etc/passwd"
        else:
            doc[0]["RepoTags"] = ["Dy-Fuzz:latest"]
        members["manifest.json"] = json.dumps(doc).encode()
    else:
        members = read_tar(oci_layout([img]))
        index = json.loads(members["index.json"])
        man = index["manifests"][0]
        man_name = "blobs/sha256/" + man["digest"].split(":")[1]
        if case == "index-wrong-type":
            index["manifests"] = {"a": man}
        elif case == "blob-missing":
            del members[man_name]
        elif case == "digest-mismatch":
            members[man_name] = members[man_name].replace(b"schemaVersion", b"schemaversion")
        elif case == "size-mismatch":
            man["size"] += 1
        elif case == "huge-size":
            man["size"] = 1 << 62
        elif case == "annotations-list":
            man["annotations"] = ["io.containerd.image.name"]
        elif case == "annotation-int":
            man["annotations"] = {"io.containerd.image.name": 1}
        elif case == "nested-index-loop":
            loop = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}
            loop_bytes = json.dumps(loop).encode()
            loop["manifests"] = [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": sha(loop_bytes),
                                  "size": len(loop_bytes)}]
            members["blobs/sha256/" + sha(loop_bytes).split(":")[1]] = loop_bytes
            index["manifests"] = loop["manifests"]
        else:  # a symlinked layer member that leads out of the archive
            layer_name = "blobs/sha256/" + sha(img.layers[0].blob).split(":")[1]
            del members[layer_name]
        members["index.json"] = json.dumps(index).encode()
    data = tar_bytes(list(members.items()))
    if case == "layer-symlink-out":
        buf = io.BytesIO(data[:-1024])  # drop end-of-archive, append a symlink member
        ti = tarfile.TarInfo("blobs/sha256/" + sha(img.layers[0].blob).split(":")[1])
        ti.type, ti.linkname = tarfile.SYMTYPE, "../../../etc/passwd"
        buf.seek(0, 2)
        buf.write(ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape") + b"\0" * 1024)
        data = buf.getvalue()
    with image_service(tmp_path) as svc:
        before = store_state(svc)
        with pytest.raises(InvalidArgument):
            svc.load(io.BytesIO(data))
        assert store_state(svc) == before
