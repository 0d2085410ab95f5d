"""Extracting an archive from the daemon below a local destination, as ``dockyard cp`` does.

Names with ``..`` above the destination are refused, every directory is opened ``O_NOFOLLOW`` from
the one above, and files are created with ``O_EXCL|O_NOFOLLOW``: the extraction never follows a
symlink below the destination, so a hostile container cannot make ``cp`` write outside it. Device
nodes are skipped; ownership is the invoking user's (moby's client extracts with NoLchown).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tarfile
from collections.abc import Callable
from typing import BinaryIO

from dockyard import errors

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
Rename = Callable[[str], "str | None"]  # a member's name below the destination; None: leave it out


def entry_parts(name: str, dest: str) -> tuple[str, ...]:
    """A member's name as components below ``dest``; refused if ``..`` climbs above it."""
    out: list[str] = []
    for p in name.split("/"):
        if p == "..":
            if not out:
                raise errors.InvalidArgument(f'"{name}" is outside of "{dest}"')
            out.pop()
        elif p not in ("", "."):
            out.append(p)
    return tuple(out)


class Extractor:
    """Untar below ``dest`` (moby's client options: NoLchown, NoOverwriteDirNonDir) without
    following any symlink below it."""

    def __init__(self, dest: str, rename: Rename) -> None:
        self.dest, self.rename = dest, rename
        self.root = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.dirs: list[tuple[tuple[str, ...], tarfile.TarInfo]] = []
        self.files = 0

    def close(self) -> None:
        os.close(self.root)

    def dirfd(self, parts: tuple[str, ...], create: bool) -> int:
        fd = os.dup(self.root)
        for i, p in enumerate(parts):
            try:
                try:
                    nfd = os.open(p, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(p, 0o755, dir_fd=fd)
                    nfd = os.open(p, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if isinstance(exc, FileNotFoundError):
                    raise
                where = os.path.join(self.dest, *parts[:i + 1])
                raise errors.InvalidArgument(f"cannot extract below {where}: not a directory "
                                             f"(symlinks there are not followed)") from exc
            finally:
                os.close(fd)
            fd = nfd
        return fd

    def run(self, src: BinaryIO, seen: Callable[[tarfile.TarInfo], None] | None = None) -> None:
        try:
            with tarfile.open(fileobj=src, mode="r|") as tf:
                for m in tf:
                    if seen is not None:
                        seen(m)
                    self.entry(tf, m)
        except tarfile.ReadError as exc:
            if "empty file" not in str(exc):
                raise errors.InvalidArgument(f"invalid tar archive: {exc}") from exc
        for parts, m in reversed(self.dirs):  # directory modes and times after their children
            with contextlib.suppress(OSError):
                fd = self.dirfd(parts, create=False)
                try:
                    os.fchmod(fd, m.mode & 0o7777)
                    os.utime(fd, (m.mtime, m.mtime))
                finally:
                    os.close(fd)

    def entry(self, tf: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        name = self.rename(m.name)
        if name is None or m.ischr() or m.isblk():
            return
        parts = entry_parts(name, self.dest)
        if not parts:
            return
        pfd = self.dirfd(parts[:-1], create=True)
        try:
            self._entry(tf, m, parts, pfd)
        finally:
            os.close(pfd)

    def _entry(self, tf: tarfile.TarFile, m: tarfile.TarInfo, parts: tuple[str, ...], pfd: int) -> None:
        leaf = parts[-1]
        try:
            st: os.stat_result | None = os.lstat(leaf, dir_fd=pfd)
        except FileNotFoundError:
            st = None
        if st is not None:
            is_dir = stat.S_ISDIR(st.st_mode)
            if is_dir != m.isdir():
                kinds = ("directory", "non-directory") if is_dir else ("non-directory", "directory")
                raise errors.InvalidArgument(f'cannot overwrite {kinds[0]} "{os.path.join(self.dest, *parts)}" '
                                             f'with {kinds[1]} "{self.dest}"')
            if not is_dir:
                os.unlink(leaf, dir_fd=pfd)
        if m.isdir():
            if st is None:
                os.mkdir(leaf, 0o700, dir_fd=pfd)
            self.dirs.append((parts, m))
        elif m.isreg():
            fd = os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=pfd)
            with os.fdopen(fd, "wb") as out:
                src = tf.extractfile(m)
                while src is not None and (chunk := src.read(1 << 20)):
                    out.write(chunk)
                out.flush()
                os.fchmod(fd, m.mode & 0o7777)
                os.utime(fd, (m.mtime, m.mtime))
            self.files += 1
        elif m.issym():
            os.symlink(m.linkname, leaf, dir_fd=pfd)
            os.utime(leaf, (m.mtime, m.mtime), dir_fd=pfd, follow_symlinks=False)
        elif m.islnk():
            target = self.rename(m.linkname) or m.linkname
            tparts = entry_parts(target, self.dest)
            tfd = self.dirfd(tparts[:-1], create=False)
            try:
                os.link(tparts[-1], leaf, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
            finally:
                os.close(tfd)
        elif m.isfifo():
            os.mkfifo(leaf, 0o600, dir_fd=pfd)
            os.chmod(leaf, m.mode & 0o7777, dir_fd=pfd, follow_symlinks=False)  # not the umask's
            os.utime(leaf, (m.mtime, m.mtime), dir_fd=pfd, follow_symlinks=False)
