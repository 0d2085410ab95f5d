"""The build context on the daemon side: the POST /build body as an indexed tar (``TarTree``).

The body is a tar (plain or compressed; a compressed one is decompressed once into a private
file) or a bare Dockerfile (``docker build - < Dockerfile``) with an empty context. Nothing is
unpacked here: entries are indexed (hostile names refused), ``.dockerignore`` (or
``<Dockerfile>.dockerignore``) drops entries from the index, and the Dockerfile is read from it.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dockyard.build.trees import TarTree, resolve
from dockyard.diff.streams import decompressed
from dockyard.dockerignore import Matcher, read_patterns
from dockyard.errors import InvalidArgument

_MAX_DOCKERFILE = 16 << 20
_COMPRESSED = (b"\x1f\x8b", b"\x28\xb5\x2f\xfd", b"BZh", b"\xfd7zXZ\x00")


@dataclass
class BuildContext:
    tree: TarTree
    dockerfile_text: str
    dockerfile_name: str

    def close(self) -> None:
        self.tree.close()


def _is_tar(head: bytes) -> bool:
    return (len(head) >= 262 and head[257:262] == b"ustar") or (len(head) >= 512 and not head.strip(b"\0"))


def context_from_tar(stream: BinaryIO, workdir: Path, dockerfile: str = "Dockerfile") -> BuildContext:
    """From a stream: copied into a private file first (see ``context_from_file``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="build-context-", suffix=".tar", dir=workdir)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(stream, out, 1 << 20)
    return context_from_file(Path(name), workdir, dockerfile)


def context_from_file(body: Path, workdir: Path, dockerfile: str = "Dockerfile") -> BuildContext:
    """Index the context in ``body`` (which this takes over: it is gone after ``close``)."""
    tar_path = body
    try:
        with open(body, "rb") as raw:
            compressed = raw.read(6).startswith(_COMPRESSED)
            raw.seek(0)
            plain = decompressed(raw) if compressed else raw
            head = plain.read(512)
            if head and not _is_tar(head):
                text = (head + plain.read(_MAX_DOCKERFILE)).decode("utf-8", errors="replace")
                with open(body, "wb") as f:  # the body was the Dockerfile: the context is empty
                    f.write(b"\0" * 1024)
                return BuildContext(TarTree(body, workdir), text, "Dockerfile")
            if compressed:
                tar_path = _spill(head, plain, workdir)
        if tar_path is not body:
            body.unlink(missing_ok=True)
        _complete(tar_path)
        tree = TarTree(tar_path, workdir)
    except BaseException:
        for p in {body, tar_path}:
            p.unlink(missing_ok=True)
        raise
    try:
        name = dockerfile or "Dockerfile"
        rel = resolve(tree, name)
        entry = tree.entry(rel)
        if entry is None or entry.kind != "file":
            raise InvalidArgument(f"Cannot locate specified Dockerfile: {name}")
        text = tree.read_text(rel)
        _apply_ignore(tree, name)
        return BuildContext(tree, text, name)
    except BaseException:
        tree.close()
        raise


def _spill(head: bytes, plain: BinaryIO, workdir: Path) -> Path:
    """Decompress into a private file (so members can be read at their offsets later)."""
    fd, name = tempfile.mkstemp(prefix="build-context-", suffix=".tar", dir=workdir)
    with os.fdopen(fd, "wb") as out:
        out.write(head)
        shutil.copyfileobj(plain, out, 1 << 20)
    return Path(name)


def _complete(tar_path: Path) -> None:
    """Add the padding and end-of-archive blocks a tar lacks if it stops right after its last
    member's data (the docker CLI sends that for ``build -f - DIR``; dockerd accepts it). Any
    other truncation stays an error."""
    size = tar_path.stat().st_size
    if size % 512 == 0:
        return
    last_end = 0
    try:
        with tarfile.open(tar_path, mode="r:") as tf:
            for member in tf:
                last_end = member.offset_data + (member.size if member.isreg() else 0)
    except tarfile.TarError:
        pass
    if last_end == size:
        with open(tar_path, "ab") as f:
            f.write(b"\0" * (-size % 512) + b"\0" * 1024)


def _apply_ignore(tree: TarTree, dockerfile: str) -> None:
    ignore = None
    for candidate in (f"{dockerfile}.dockerignore", ".dockerignore"):
        entry = tree.entry(resolve(tree, candidate))
        if entry is not None and entry.kind == "file":
            ignore = resolve(tree, candidate)
            break
    if ignore is None:
        return
    matcher = Matcher(read_patterns(tree.read_text(ignore)))
    for rel in tree.walk():
        if rel not in tree.items or not matcher.excluded(rel):
            continue
        entry = tree.entry(rel)
        if entry is not None and entry.kind == "dir" and matcher.may_have_exceptions_below(rel):
            continue  # its children are judged one by one
        tree.remove(rel)

