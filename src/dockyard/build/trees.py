"""File trees COPY and ADD read from: a directory (a stage's or image's rootfs, a heredoc dir) or
the build context kept as its tar with an index.

The context is never unpacked just to be looked at: one streaming pass over the tar records every
entry with its offset and the sha256 of its content, so source globbing and the cache key of a
COPY are answered from the index, and a fully cached build writes no context file at all. Data is
read straight from the tar when a COPY actually runs; a real directory is only made for
``RUN --mount=type=bind`` (``materialize``). Symlinks resolve inside the tree, as in a chroot.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from dockyard.errors import InvalidArgument, NotFound

_MAX_LINKS = 40
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Entry:
    kind: str           # "dir" | "file" | "symlink" | "other"
    mode: int           # permission bits
    uid: int = 0
    gid: int = 0
    size: int = 0
    mtime: float = 0.0
    linkname: str = ""


class Tree(Protocol):
    def entry(self, rel: str) -> Entry | None: ...          # rel as is, links not followed

    def listdir(self, rel: str) -> list[str]: ...           # sorted names

    def open(self, rel: str) -> BinaryIO: ...

    def file_digest(self, rel: str) -> str: ...             # sha256 hex of a file's content

    def path(self, rel: str) -> Path: ...                   # a real path (may unpack first)


def resolve(tree: Tree, rel: str, *, follow_last: bool = True) -> str:
    """``rel`` with symlinks resolved inside the tree ("" is its root)."""
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    done: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        cur = "/".join([*done, part])
        e = tree.entry(cur)
        if e is not None and e.kind == "symlink" and (parts or follow_last):
            links += 1
            if links > _MAX_LINKS:
                raise InvalidArgument(f"too many levels of symbolic links in {rel}")
            if e.linkname.startswith("/"):
                done = []
            parts = [p for p in e.linkname.split("/") if p not in ("", ".")] + parts
            continue
        done.append(part)
    return "/".join(done)


class DirTree:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _p(self, rel: str) -> Path:
        return self.root / rel if rel else self.root

    def entry(self, rel: str) -> Entry | None:
        try:
            st = os.lstat(self._p(rel))
        except (FileNotFoundError, NotADirectoryError):
            return None
        mode = st.st_mode
        kind = ("dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode)
                else "symlink" if stat.S_ISLNK(mode) else "other")
        link = os.readlink(self._p(rel)) if kind == "symlink" else ""
        return Entry(kind, stat.S_IMODE(mode), st.st_uid, st.st_gid, st.st_size, st.st_mtime, link)

    def listdir(self, rel: str) -> list[str]:
        try:
            return sorted(os.listdir(self._p(rel)))
        except (NotADirectoryError, FileNotFoundError):
            return []

    def open(self, rel: str) -> BinaryIO:
        return open(self._p(rel), "rb")

    def file_digest(self, rel: str) -> str:
        h = hashlib.sha256()
        with open(self._p(rel), "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        return h.hexdigest()

    def path(self, rel: str) -> Path:
        return self._p(rel)


@dataclass
class _Item:
    entry: Entry
    offset: int = -1
    digest: str = ""


class _Section(io.RawIOBase):
    """A read-only window on one member's data inside the tar (pread on the tree's one fd)."""

    def __init__(self, fd: int, offset: int, size: int) -> None:
        self.fd = fd
        self.pos = offset
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        if self.left <= 0:
            return 0
        view = memoryview(buf)[:min(len(buf), self.left)]
        n = os.preadv(self.fd, [view], self.pos)
        self.pos += n
        self.left -= n if n else self.left  # a short file ends the section
        return n


def _clean(name: str) -> str:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or ".." in parts:
        raise InvalidArgument(f"build context entry {name!r} points outside the context")
    return "/".join(parts)


class TarTree:
    """The context as an indexed, uncompressed tar file (owned: removed by ``close``)."""

    def __init__(self, tar_path: Path, workdir: Path, stream: BinaryIO | None = None) -> None:
        """Index ``tar_path``, or ``stream`` — the same bytes while they are still being written
        to ``tar_path`` (the API indexes an upload as it arrives)."""
        self.tar_path = tar_path
        self.workdir = workdir
        self.items: dict[str, _Item] = {"": _Item(Entry("dir", 0o755))}
        self.children: dict[str, set[str]] = {"": set()}
        self._unpacked: Path | None = None
        self.fd = -1
        if stream is not None:
            self._index(stream)
        else:
            with open(tar_path, "rb") as f:
                self._index(f)
        self.fd = os.open(tar_path, os.O_RDONLY | os.O_CLOEXEC)

    def _add(self, rel: str, item: _Item) -> None:
        parent = posixpath.dirname(rel)
        if parent not in self.items:
            self._add(parent, _Item(Entry("dir", 0o755)))
        elif self.items[parent].entry.kind != "dir":
            raise InvalidArgument(f"build context entry {rel!r} is below a non-directory")
        if rel in self.items and self.items[rel].entry.kind == "dir" and item.entry.kind == "dir":
            self.items[rel] = _Item(item.entry, item.offset, item.digest)
            return
        self.remove(rel)
        self.items[rel] = item
        self.children.setdefault(parent, set()).add(posixpath.basename(rel))
        if item.entry.kind == "dir":
            self.children.setdefault(rel, set())

    def _index(self, stream: BinaryIO) -> None:
        try:
            with tarfile.open(fileobj=stream, mode="r|") as tf:
                for m in tf:
                    rel = _clean(m.name)
                    if not rel:
                        continue
                    for i in range(1, rel.count("/") + 1):
                        up = self.items.get("/".join(rel.split("/")[:i]))
                        if up is not None and up.entry.kind == "symlink":
                            raise InvalidArgument(f"build context entry {m.name!r} goes through a symlink")
                    if m.isdir():
                        self._add(rel, _Item(Entry("dir", m.mode & 0o7777, 0, 0, 0, m.mtime)))
                    elif m.isreg():
                        h = hashlib.sha256()
                        src = tf.extractfile(m)
                        while src is not None and (chunk := src.read(_CHUNK)):
                            h.update(chunk)
                        self._add(rel, _Item(Entry("file", m.mode & 0o7777, 0, 0, m.size, m.mtime),
                                             m.offset_data, h.hexdigest()))
                    elif m.issym():
                        self._add(rel, _Item(Entry("symlink", 0o777, 0, 0, 0, m.mtime, m.linkname)))
                    elif m.islnk():
                        target = self.items.get(_clean(m.linkname))
                        if target is None or target.entry.kind != "file":
                            raise InvalidArgument(f"build context hard link {m.name!r} names no earlier file")
                        self._add(rel, _Item(target.entry, target.offset, target.digest))
        except tarfile.TarError as exc:
            raise InvalidArgument(f"the build context is not a valid tar archive: {exc}") from exc

    def remove(self, rel: str) -> None:
        if rel not in self.items or not rel:
            return
        for child in list(self.children.get(rel, ())):
            self.remove(f"{rel}/{child}")
        self.children.pop(rel, None)
        del self.items[rel]
        self.children.get(posixpath.dirname(rel), set()).discard(posixpath.basename(rel))

    def walk(self) -> list[str]:
        out: list[str] = []
        stack = [""]
        while stack:
            cur = stack.pop()
            for name in sorted(self.children.get(cur, ()), reverse=True):
                rel = f"{cur}/{name}" if cur else name
                out.append(rel)
                if self.items[rel].entry.kind == "dir":
                    stack.append(rel)
        return out

    def entry(self, rel: str) -> Entry | None:
        item = self.items.get(rel)
        return item.entry if item else None

    def listdir(self, rel: str) -> list[str]:
        return sorted(self.children.get(rel, ()))

    def open(self, rel: str) -> BinaryIO:
        item = self.items.get(rel)
        if item is None or item.entry.kind != "file":
            raise NotFound(f"{rel}: not a file in the build context")
        return io.BufferedReader(_Section(self.fd, item.offset, item.entry.size), _CHUNK)

    def file_digest(self, rel: str) -> str:
        return self.items[rel].digest

    def read_text(self, rel: str, limit: int = 16 << 20) -> str:
        with self.open(rel) as f:
            return f.read(limit).decode("utf-8", errors="replace")

    def path(self, rel: str) -> Path:
        """A real directory holding the context (unpacked on first use, for bind mounts)."""
        if self._unpacked is None:
            self._unpacked = Path(tempfile.mkdtemp(prefix="build-context-", dir=self.workdir))
            for name in self.walk():
                _write_entry(self, name, self._unpacked / name)
        return self._unpacked / rel if rel else self._unpacked

    def close_fd(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def close(self) -> None:
        self.close_fd()
        if self._unpacked is not None:
            shutil.rmtree(self._unpacked, ignore_errors=True)
        self.tar_path.unlink(missing_ok=True)


def _write_entry(tree: Tree, rel: str, target: Path) -> None:
    e = tree.entry(rel)
    if e is None:
        return
    if e.kind == "dir":
        target.mkdir(mode=0o755, exist_ok=True)
        os.chmod(target, e.mode | stat.S_IRWXU)
    elif e.kind == "file":
        with tree.open(rel) as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out, _CHUNK)
        os.chmod(target, e.mode)
        os.utime(target, (e.mtime, e.mtime))
    elif e.kind == "symlink":
        os.symlink(e.linkname, target)
