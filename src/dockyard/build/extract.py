"""Unpack a build context tar into a fresh private directory, safely and fast.

A context is not a layer: there are no whiteouts and no diff ID to compute, ownership does not
matter (COPY sets it), so this is a single streaming pass, ~3x faster than the layer applier. The
directory starts empty and only this code writes to it, so safety reduces to: names must be
relative without ``..``; no entry may go *through* a symlink an earlier entry created; the final
component is never followed (``O_NOFOLLOW``, and an existing link is replaced, not written through);
hard links must name a regular file unpacked before; devices, fifos and sockets are skipped.
"""

from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path
from typing import BinaryIO

from dockyard.errors import InvalidArgument

_CHUNK = 1 << 20


def _clean(name: str) -> str:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or ".." in parts:
        raise InvalidArgument(f"build context entry {name!r} points outside the context")
    return "/".join(parts)


def extract_context(stream: BinaryIO, root: Path) -> None:
    links: set[str] = set()
    files: set[str] = set()
    dirs: list[tuple[str, int, int]] = []
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tf:
            for m in tf:
                name = _clean(m.name)
                if not name:
                    continue
                parts = name.split("/")
                for i in range(1, len(parts)):
                    if "/".join(parts[:i]) in links:
                        raise InvalidArgument(f"build context entry {m.name!r} goes through a symlink")
                path = os.path.join(root, name)
                parent = os.path.dirname(path)
                if not os.path.isdir(parent):
                    os.makedirs(parent, exist_ok=True)
                if m.isdir():
                    if not os.path.isdir(path) or os.path.islink(path):
                        _remove(path)
                        os.mkdir(path, 0o700)
                    dirs.append((path, m.mode & 0o7777, int(m.mtime)))
                    links.discard(name)
                    continue
                _remove(path)
                links.discard(name)
                if m.isreg():
                    src = tf.extractfile(m)
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                                 0o600)
                    try:
                        while src is not None and (chunk := src.read(_CHUNK)):
                            os.write(fd, chunk)
                        os.fchmod(fd, m.mode & 0o7777)
                        os.utime(fd, (m.mtime, m.mtime))
                    finally:
                        os.close(fd)
                    files.add(name)
                elif m.issym():
                    os.symlink(m.linkname, path)
                    links.add(name)
                elif m.islnk():
                    target = _clean(m.linkname)
                    if target not in files:
                        raise InvalidArgument(f"build context hard link {m.name!r} names no earlier file")
                    os.link(os.path.join(root, target), path, follow_symlinks=False)
                    files.add(name)
                # devices, fifos and sockets have no place in a context
    except tarfile.TarError as exc:
        raise InvalidArgument(f"the build context is not a valid tar archive: {exc}") from exc
    except OSError as exc:
        raise InvalidArgument(f"cannot unpack the build context: {exc}") from exc
    for path, mode, mtime in reversed(dirs):  # children first changed their parents' mtimes
        os.chmod(path, mode | stat.S_IRWXU)
        os.utime(path, (mtime, mtime))


def _remove(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        import shutil
        shutil.rmtree(path)
    else:
        os.unlink(path)
