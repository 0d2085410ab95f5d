"""Extracting a tar into a container's files with ``*at`` calls (``docker cp`` PUT).

Every parent is resolved in the container's root (``ContainerFS.walk``), and every create, link,
chown, chmod and utime is an ``*at`` call on its O_PATH descriptor that does not follow the final
name, so a container that swaps a directory for a symlink meanwhile cannot redirect a write.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile

from dockyard.diff.archive import IdMap
from dockyard.diff.streams import CHUNK
from dockyard.engine.ctrfs import ContainerFS, Frame, check_writable, reopen
from dockyard.errors import Conflict, InvalidArgument

_MAX_CACHED = 256


def entry_parts(name: str, dest: str) -> tuple[str, ...]:
    """A tar name below the extraction directory (absolute names count from it, as in moby)."""
    out: list[str] = []
    for p in name.split("/"):
        if p == "..":
            if not out:
                raise InvalidArgument(f'"{name}" is outside of "{dest}"')
            out.pop()
        elif p not in ("", "."):
            out.append(p)
    return tuple(out)


class TarExtractor:
    """Untar below ``target`` (moby's rules for what is there already; ``owner`` is copyUIDGID's)."""

    def __init__(self, fs: ContainerFS, target: Frame, no_overwrite: bool,
                 owner: tuple[int, int] | None,
                 ids: IdMap | None = None) -> None:
        self.fs, self.target, self.no_overwrite, self.owner = fs, target, no_overwrite, owner
        self.ids = ids   # container ids → host ids for a user namespace container
        self.dest = target.path
        self.parents: dict[tuple[str, ...], Frame] = {}
        self.stale: list[Frame] = []
        self.dirs: list[tuple[tuple[str, ...], tarfile.TarInfo]] = []

    def close(self) -> None:
        self._forget()
        self._close_stale()

    def _forget(self) -> None:
        """Something was removed: cached parents may no longer be where their names say."""
        self.stale.extend(self.parents.values())
        self.parents.clear()

    def _close_stale(self) -> None:
        for f in self.stale:
            os.close(f.fd)
        self.stale.clear()

    def _parent(self, rel: tuple[str, ...]) -> Frame:
        frame = self.parents.get(rel)
        if frame is None:
            frame, _ = self.fs.walk(rel, base=self.target, mkdirs=True)
            if not stat.S_ISDIR(os.fstat(frame.fd).st_mode):
                os.close(frame.fd)
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), frame.path)
            if len(self.parents) >= _MAX_CACHED:
                self._forget()
            self.parents[rel] = frame
        return frame

    def entry(self, tf: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        rel = entry_parts(m.name, self.dest)
        if not rel or m.ischr() or m.isblk():
            return
        if not (m.isdir() or m.isreg() or m.issym() or m.islnk() or m.isfifo()):
            raise InvalidArgument(f"unhandled tar header type {m.type!r}")
        try:
            self._entry(tf, m, rel)
        finally:
            self._close_stale()

    def _entry(self, tf: tarfile.TarFile, m: tarfile.TarInfo, rel: tuple[str, ...]) -> None:
        parent = self._parent(rel[:-1])
        base = rel[-1]
        try:
            cur: Frame | None = self.fs.child(parent, base)
        except FileNotFoundError:
            cur = None
        try:
            kept, is_dir = None, False
            if cur is not None:  # moby's rules for what is already there
                is_dir = stat.S_ISDIR(os.fstat(cur.fd).st_mode)
                if self.no_overwrite and is_dir != m.isdir():
                    kinds = ("directory", "non-directory") if is_dir else ("non-directory", "directory")
                    raise Conflict(f'cannot overwrite {kinds[0]} "{cur.path}" with {kinds[1]} "{self.dest}"')
                kept = cur if is_dir and m.isdir() else None
            check_writable(kept or parent)
            if cur is not None and kept is None:
                self._remove(parent, base, cur.names, is_dir)
            self._create(tf, m, rel, parent, kept)
        finally:
            if cur is not None:
                os.close(cur.fd)

    def _create(self, tf: tarfile.TarFile, m: tarfile.TarInfo, rel: tuple[str, ...], parent: Frame,
                kept: Frame | None) -> None:
        uid, gid = self.owner or (m.uid, m.gid)
        if self.ids:
            uid, gid = self.ids(uid, gid)
        pfd, base = parent.fd, rel[-1]
        mtime = int(m.mtime * 1_000_000_000)
        if m.isdir():
            if kept is None:
                os.mkdir(base, 0o700, dir_fd=pfd)
                dfd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
            else:
                dfd = reopen(kept.fd, os.O_RDONLY | os.O_DIRECTORY)  # may be a mount's root
            try:
                os.fchown(dfd, uid, gid)
                _set_xattrs(dfd, m)
            finally:
                os.close(dfd)
            self.dirs.append((rel, m))  # mode and times once its children are in
        elif m.isreg():
            fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=pfd)
            try:
                src = tf.extractfile(m)
                while src is not None and (chunk := src.read(CHUNK)):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view):]
                os.fchown(fd, uid, gid)  # before chmod: chown clears set-id bits
                _set_xattrs(fd, m)
                os.fchmod(fd, m.mode & 0o7777)
                os.utime(fd, ns=(mtime, mtime))
            finally:
                os.close(fd)
        elif m.islnk():
            trel = entry_parts(m.linkname, self.dest)
            if not trel:
                raise InvalidArgument(f'invalid hardlink "{m.name}" -> "{m.linkname}"')
            tparent, _ = self.fs.walk(trel[:-1], base=self.target)
            try:
                check_writable(tparent)  # no second, writable name for a file on a read-only mount
                os.link(trel[-1], base, src_dir_fd=tparent.fd, dst_dir_fd=pfd, follow_symlinks=False)
            finally:
                os.close(tparent.fd)
            os.chown(base, uid, gid, dir_fd=pfd, follow_symlinks=False)
        else:
            if m.issym():
                os.symlink(m.linkname, base, dir_fd=pfd)
            else:
                os.mkfifo(base, 0o600, dir_fd=pfd)
            os.chown(base, uid, gid, dir_fd=pfd, follow_symlinks=False)
            if m.isfifo():
                os.chmod(base, m.mode & 0o7777, dir_fd=pfd, follow_symlinks=False)
            os.utime(base, ns=(mtime, mtime), dir_fd=pfd, follow_symlinks=False)

    def _remove(self, parent: Frame, base: str, names: tuple[str, ...], is_dir: bool) -> None:
        if any(k[:len(names)] == names for k in self.fs.mounts):
            raise Conflict(f"unlinkat /{'/'.join(names)}: device or resource busy")
        self._forget()
        if is_dir:
            shutil.rmtree(base, dir_fd=parent.fd)
        else:
            os.unlink(base, dir_fd=parent.fd)

    def finish(self) -> None:
        """Directory modes and times last: creating children changes a directory's mtime."""
        for rel, m in reversed(self.dirs):
            try:
                frame, _ = self.fs.walk(rel, base=self.target, follow=False)
            except OSError:
                continue  # replaced by a later entry
            try:
                if stat.S_ISDIR(os.fstat(frame.fd).st_mode):
                    dfd = reopen(frame.fd, os.O_RDONLY | os.O_DIRECTORY)
                    try:
                        os.fchmod(dfd, m.mode & 0o7777)
                        mtime = int(m.mtime * 1_000_000_000)
                        os.utime(dfd, ns=(mtime, mtime))
                    finally:
                        os.close(dfd)
            finally:
                os.close(frame.fd)


def _set_xattrs(fd: int, m: tarfile.TarInfo) -> None:
    for key, value in m.pax_headers.items():
        if key.startswith("SCHILY.xattr.") and not key.startswith("SCHILY.xattr.trusted.overlay."):
            try:
                os.setxattr(fd, key[len("SCHILY.xattr."):], value.encode("utf-8", "surrogateescape"))
            except OSError as exc:  # as moby: a filesystem without xattrs loses them
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EACCES):
                    raise
