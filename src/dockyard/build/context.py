"""The build context on the daemon side: the POST /build body as an indexed tar (``TarTree``).

The body is a tar (plain or compressed; a compressed one is decompressed once into a private
file) or a bare Dockerfile (``docker build - < Dockerfile``) with an empty context. Nothing is
unpacked here: entries are indexed (hostile names refused), ``.dockerignore`` (or
``<Dockerfile>.dockerignore``) drops entries from the index, and the Dockerfile is read from it.
"""

from __future__ import annotations

import io
import os
import queue
import shutil
import tarfile
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from dockyard.build.trees import TarTree, resolve
from dockyard.diff.streams import decompressed, is_compressed
from dockyard.dockerignore import Matcher, read_patterns
from dockyard.errors import InvalidArgument

_MAX_DOCKERFILE = 16 << 20


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


def context_from_file(body: Path, workdir: Path, dockerfile: str = "Dockerfile",
                      indexed: TarTree | None = None) -> BuildContext:
    """Index the context in ``body`` (which this takes over: it is gone after ``close``);
    ``indexed`` is ``body`` already indexed while it was uploaded (``StreamIndexer``)."""
    tar_path = body
    if indexed is not None:
        return _with_dockerfile(indexed, dockerfile)
    try:
        with open(body, "rb") as raw:
            compressed = is_compressed(raw.read(6))
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
    return _with_dockerfile(tree, dockerfile)


def _with_dockerfile(tree: TarTree, dockerfile: str) -> BuildContext:
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


class _QueueReader(io.RawIOBase):
    def __init__(self, chunks: queue.SimpleQueue[bytes | None]) -> None:
        self.chunks = chunks
        self.buf = b""
        self.eof = False
        self.taken = 0

    def readable(self) -> bool:
        return True

    def readinto(self, out: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self.buf and not self.eof:
            chunk = self.chunks.get()
            if chunk is None:
                self.eof = True
            else:
                self.buf = chunk
                self.taken += len(chunk)
        n = min(len(out), len(self.buf))
        out[:n] = self.buf[:n]
        self.buf = self.buf[n:]
        return n


class StreamIndexer:
    """Indexes an uncompressed context tar in a thread while its bytes are written to ``path``,
    so indexing overlaps the upload. Anything unusual (compression, a bare Dockerfile, a broken or
    truncated tar, more than ``MAX_PENDING`` bytes queued) gives up quietly: ``result()`` is then
    None and the body is indexed from the file afterwards, as without the indexer."""

    MAX_PENDING = 64 << 20

    def __init__(self, path: Path, workdir: Path) -> None:
        self.path, self.workdir = path, workdir
        self.chunks: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self.reader = _QueueReader(self.chunks)
        self.fed = 0
        self.started = False
        self.stopped = False
        self.tree: TarTree | None = None
        self.failed = False
        self.thread = threading.Thread(target=self._run, name="context-indexer", daemon=True)

    def _run(self) -> None:
        try:
            self.tree = TarTree(self.path, self.workdir, cast(BinaryIO, io.BufferedReader(self.reader, 1 << 20)))
        except Exception:
            self.failed = True
            while not self.reader.eof and self.chunks.get() is not None:  # let feed() go on
                pass

    def feed(self, data: bytes) -> None:
        if self.stopped:
            return
        if not self.started:
            if is_compressed(data) or len(data) < 512 or not _is_tar(data[:512]):
                self.stopped = True
                return
            self.started = True
            self.thread.start()
        self.fed += len(data)
        if self.fed - self.reader.taken > self.MAX_PENDING:  # indexing fell far behind: let go
            self._stop()
            return
        self.chunks.put(data)

    def _stop(self) -> None:
        self.stopped = True
        self.failed = True
        self.chunks.put(None)

    def result(self) -> TarTree | None:
        if not self.started:
            return None
        if not self.stopped:
            self.stopped = True
            self.chunks.put(None)
        self.thread.join()
        if self.failed or self.tree is None:
            if self.tree is not None:
                self.tree.close_fd()
            return None
        return self.tree
