"""``docker cp`` on the engine side: stat, archive and extract a path inside a container.

The container's files are its rootfs (the running container's merged mount, or the snapshot
mounted for the call) plus its mounts, which are not under the host's view of the rootfs: a path is
resolved one component at a time, and where the resolved container path reaches a mount's
destination the walk goes on in the mount's source. The container may swap any directory for a
symlink at any moment, so no host path below the root ever reaches the kernel: each lookup is one
name under its parent's O_PATH descriptor (openat2 RESOLVE_IN_ROOT|RESOLVE_NO_SYMLINKS|
RESOLVE_NO_MAGICLINKS), links are read and re-walked here from the container's root, and every
create, link, chown, chmod and utime is an ``*at`` call on such a descriptor that does not follow
the final name. docs/cp.md has the rules and the differences from dockerd.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import stat
import tarfile
import tempfile
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from dockyard.diff.streams import CHUNK, decompressed
from dockyard.engine.commit import _Cancelled, _QueueWriter
from dockyard.engine.rootfs import resolve_user
from dockyard.engine.types import ContainerRecord
from dockyard.errors import Conflict, DockyardError, Internal, InvalidArgument, NotFound, PermissionDenied
from dockyard.mount import mount_all, unmount_all
from dockyard.runtime.linux import syscalls

RO_ROOTFS = "container rootfs is marked read-only"
RO_VOLUME = "mounted volume is marked read-only"
_MAX_LINKS = 40
_MAX_CACHED = 256
_ONE = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_CONFINED = syscalls.RESOLVE_IN_ROOT | syscalls.RESOLVE_NO_SYMLINKS | syscalls.RESOLVE_NO_MAGICLINKS
_have_openat2 = True


@dataclass(frozen=True)
class PathStat:
    name: str
    size: int
    mode: int            # st_mode
    mtime_ns: int
    link_target: str = ""  # for a symlink: where it leads, resolved inside the container


@dataclass
class _Frame:
    """An O_PATH descriptor of a resolved container path; ``ro``: why it may not be written."""
    names: tuple[str, ...]
    fd: int
    ro: str

    @property
    def path(self) -> str:
        return "/" + "/".join(self.names)


def _open_one(dirfd: int, name: str) -> int:
    global _have_openat2
    if _have_openat2:
        try:
            return syscalls.openat2(dirfd, name, _ONE, resolve=_CONFINED)
        except OSError as exc:
            if exc.errno != errno.ENOSYS:
                raise
            _have_openat2 = False  # before Linux 5.6: one plain name under O_NOFOLLOW is as safe
    return os.open(name, _ONE, dir_fd=dirfd)


def _reopen(fd: int, flags: int) -> int:
    """A readable descriptor of the inode an O_PATH one pins (files and directories only)."""
    return os.open(f"/proc/self/fd/{fd}", flags | os.O_CLOEXEC)


def _lexical(names: Sequence[str], rest: Sequence[str]) -> tuple[str, ...]:
    out = list(names)
    for p in rest:
        if p == "..":
            if out:
                out.pop()
        elif p not in ("", "."):
            out.append(p)
    return tuple(out)


class ContainerFS:
    """A container's files as the container sees them, resolved in its root. Not thread-safe."""

    def __init__(self, root_fd: int, readonly: bool) -> None:
        self.root = _Frame((), root_fd, RO_ROOTFS if readonly else "")
        self.mounts: dict[tuple[str, ...], tuple[int, str]] = {}

    def close(self) -> None:
        for fd, _ in self.mounts.values():
            os.close(fd)
        self.mounts.clear()
        os.close(self.root.fd)

    def add_mount(self, dest: str, fd: int, ro: bool) -> None:
        """Mounts go in the runtime's order: the destination resolves through the ones before."""
        names = self.resolve_names(dest)
        old = self.mounts.pop(names, None)
        if old is not None:
            os.close(old[0])
        self.mounts[names] = (fd, RO_VOLUME if ro else "")

    def child(self, parent: _Frame, name: str) -> _Frame:
        """``name`` in directory ``parent``, not followed if a link; the caller closes it."""
        names = (*parent.names, name)
        mount = self.mounts.get(names)
        if mount is not None:
            return _Frame(names, os.dup(mount[0]), mount[1])
        return _Frame(names, _open_one(parent.fd, name), parent.ro)

    def _dup(self, f: _Frame) -> _Frame:
        return _Frame(f.names, os.dup(f.fd), f.ro)

    def walk(self, parts: Sequence[str], *, base: _Frame | None = None, follow: bool = True,
             mkdirs: bool = False, partial: bool = False) -> tuple[_Frame, list[str]]:
        """Resolve ``parts`` below ``base`` (default: the root); the caller closes the frame.
        ``mkdirs`` creates missing directories; ``partial`` stops at a missing component and
        returns the components left instead of raising FileNotFoundError."""
        stack = [self._dup(base or self.root)]
        todo = list(reversed(parts))
        hops = 0
        try:
            while todo:
                name = todo.pop()
                if name in ("", "."):
                    continue
                if name == "..":
                    if len(stack) > 1:
                        os.close(stack.pop().fd)
                    elif stack[0].names:  # above the base: its parent, from the root
                        up, _ = self.walk(stack[0].names[:-1])
                        os.close(stack[0].fd)
                        stack[0] = up
                    continue
                top = stack[-1]
                try:
                    nxt = self.child(top, name)
                except FileNotFoundError:
                    if partial:
                        return stack.pop(), [name, *reversed(todo)]
                    hops += 1
                    if not mkdirs or hops > _MAX_LINKS:
                        raise
                    _writable(top)
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(name, 0o755, dir_fd=top.fd)
                    todo.append(name)  # look again: whatever raced in is walked like the rest
                    continue
                st = os.fstat(nxt.fd)
                if stat.S_ISLNK(st.st_mode) and (todo or follow):
                    try:
                        target = os.readlink("", dir_fd=nxt.fd)
                    finally:
                        os.close(nxt.fd)
                    hops += 1
                    if hops > _MAX_LINKS:
                        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), nxt.path)
                    if target.startswith("/"):
                        for f in stack:
                            os.close(f.fd)
                        stack[:] = [self._dup(self.root)]
                    todo.extend(reversed(target.split("/")))
                    continue
                if todo and not stat.S_ISDIR(st.st_mode):
                    os.close(nxt.fd)
                    raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), nxt.path)
                stack.append(nxt)
            return stack.pop(), []
        finally:
            for f in stack:
                os.close(f.fd)

    def resolve_names(self, path: str) -> tuple[str, ...]:
        """``path`` with every link followed as far as it exists; the rest taken lexically."""
        frame, rest = self.walk(path.split("/"), partial=True)
        os.close(frame.fd)
        return _lexical(frame.names, rest)

    def read_text(self, path: str, limit: int = 4 << 20) -> str:
        """A regular file's text ("" when there is none)."""
        try:
            frame, _ = self.walk(path.split("/"))
        except OSError:
            return ""
        try:
            if not stat.S_ISREG(os.fstat(frame.fd).st_mode):
                return ""
            with os.fdopen(_reopen(frame.fd, os.O_RDONLY), "rb") as f:
                return f.read(limit).decode("utf-8", "replace")
        finally:
            os.close(frame.fd)


def _writable(frame: _Frame) -> None:
    if frame.ro:
        raise InvalidArgument(frame.ro)  # dockerd answers these with 400 (errdefs.InvalidParameter)


# -- paths as dockerd cleans and names them ---------------------------------------------------

def go_clean(path: str) -> str:
    """Go's ``path.Clean`` of an absolute path."""
    return "/" + "/".join(_lexical((), path.split("/")))


def go_base(path: str) -> str:
    """Go's ``filepath.Base``."""
    stripped = path.rstrip("/")
    return (stripped.rsplit("/", 1)[-1] if stripped else "/") if path else "."


def preserve_trailing(cleaned: str, original: str) -> str:
    """moby's ``PreserveTrailingDotOrSeparator``."""
    if go_base(cleaned) != "." and go_base(original) == ".":
        cleaned = (cleaned if cleaned.endswith("/") else cleaned + "/") + "."
    if not cleaned.endswith("/") and original.endswith("/"):
        cleaned += "/"
    return cleaned


# -- stat and archive -------------------------------------------------------------------------

def _stat(fs: ContainerFS, frame: _Frame, path: str) -> PathStat:
    st = os.fstat(frame.fd)
    target = ""
    if stat.S_ISLNK(st.st_mode):  # docker: FollowSymlinkInScope, as far as the links exist
        target = "/" + "/".join(fs.resolve_names(frame.path))
    return PathStat(go_base(path), st.st_size, st.st_mode, st.st_mtime_ns, target)


class _Exactly:
    """Exactly ``size`` bytes of a file that may shrink while it is archived (zeros pad it)."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self.f, self.left = f, size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = b""
        while len(data) < n and (more := self.f.read(n - len(data))):
            data += more
        self.left -= n
        return data + bytes(n - len(data))


class _TarWriter:
    """moby's tarballer over descriptors: PAX, whole-second mtimes, no user names, hardlinks by
    inode, the security.capability xattr, sockets left out."""

    def __init__(self, fs: ContainerFS, tf: tarfile.TarFile) -> None:
        self.fs, self.tf = fs, tf
        self.links: dict[tuple[int, int], str] = {}

    def run(self, frame: _Frame, top: str) -> None:
        stack: list[tuple[_Frame, str, Iterator[str]]] = []
        try:
            self._add(frame, top, stack)
            while stack:
                parent, pname, names = stack[-1]
                name = next(names, None)
                if name is None:
                    stack.pop()
                    if parent is not frame:
                        os.close(parent.fd)
                    continue
                try:
                    child = self.fs.child(parent, name)
                except FileNotFoundError:
                    continue  # removed while we walk
                if not self._add(child, f"{pname}/{name}", stack):
                    os.close(child.fd)
        finally:
            for parent, _, _ in stack:
                if parent is not frame:
                    os.close(parent.fd)

    def _add(self, frame: _Frame, name: str, stack: list[tuple[_Frame, str, Iterator[str]]]) -> bool:
        """Write one entry; a directory is pushed (and its frame kept): returns True then."""
        st = os.fstat(frame.fd)
        mode = st.st_mode
        ti = tarfile.TarInfo(name)
        ti.mode, ti.uid, ti.gid, ti.mtime = stat.S_IMODE(mode), st.st_uid, st.st_gid, int(st.st_mtime)
        ti.uname = ti.gname = ""
        if stat.S_ISDIR(mode):
            ti.type = tarfile.DIRTYPE
            self.tf.addfile(ti)
            dfd = _reopen(frame.fd, os.O_RDONLY | os.O_DIRECTORY)
            try:  # a mount whose mount point the rootfs lacks (not started yet) is listed too
                names = sorted({*os.listdir(dfd), *(k[-1] for k in self.fs.mounts if k[:-1] == frame.names)})
            finally:
                os.close(dfd)
            stack.append((frame, name, iter(names)))
            return True
        if st.st_nlink > 1 and not stat.S_ISSOCK(mode):
            first = self.links.setdefault((st.st_dev, st.st_ino), name)
            if first != name:
                ti.type, ti.linkname = tarfile.LNKTYPE, first
                self.tf.addfile(ti)
                return False
        if stat.S_ISREG(mode):
            with os.fdopen(_reopen(frame.fd, os.O_RDONLY), "rb", buffering=0) as f:
                with contextlib.suppress(OSError):
                    cap = os.getxattr(f.fileno(), "security.capability")
                    ti.pax_headers = {"SCHILY.xattr.security.capability":
                                      cap.decode("utf-8", "surrogateescape")}
                ti.size = st.st_size
                self.tf.addfile(ti, cast(BinaryIO, _Exactly(cast(BinaryIO, f), st.st_size)))
        elif stat.S_ISLNK(mode):
            ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink("", dir_fd=frame.fd)
            self.tf.addfile(ti)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            ti.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            self.tf.addfile(ti)
        elif stat.S_ISFIFO(mode):
            ti.type = tarfile.FIFOTYPE
            self.tf.addfile(ti)
        return False


# -- extract ----------------------------------------------------------------------------------

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


class _Extractor:
    def __init__(self, fs: ContainerFS, target: _Frame, no_overwrite: bool,
                 owner: tuple[int, int] | None) -> None:
        self.fs, self.target, self.no_overwrite, self.owner = fs, target, no_overwrite, owner
        self.dest = target.path
        self.parents: dict[tuple[str, ...], _Frame] = {}
        self.stale: list[_Frame] = []
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

    def _parent(self, rel: tuple[str, ...]) -> _Frame:
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
            cur: _Frame | None = self.fs.child(parent, base)
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
            _writable(kept or parent)
            if cur is not None and kept is None:
                self._remove(parent, base, cur.names, is_dir)
            self._create(tf, m, rel, parent, kept)
        finally:
            if cur is not None:
                os.close(cur.fd)

    def _create(self, tf: tarfile.TarFile, m: tarfile.TarInfo, rel: tuple[str, ...], parent: _Frame,
                kept: _Frame | None) -> None:
        uid, gid = self.owner or (m.uid, m.gid)
        pfd, base = parent.fd, rel[-1]
        mtime = int(m.mtime * 1_000_000_000)
        if m.isdir():
            if kept is None:
                os.mkdir(base, 0o700, dir_fd=pfd)
                dfd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
            else:
                dfd = _reopen(kept.fd, os.O_RDONLY | os.O_DIRECTORY)  # may be a mount's root
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
                _writable(tparent)  # no second, writable name for a file on a read-only mount
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

    def _remove(self, parent: _Frame, base: str, names: tuple[str, ...], is_dir: bool) -> None:
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
                    dfd = _reopen(frame.fd, os.O_RDONLY | os.O_DIRECTORY)
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


# -- the service ------------------------------------------------------------------------------

class ArchiveService:
    """``HEAD``/``GET``/``PUT /containers/{id}/archive`` over a container's filesystem."""

    def __init__(self, containers: Any) -> None:  # engine.lifecycle.ContainerService
        self.containers = containers
        self.store = containers.store
        self.snapshots = containers.snapshots
        self.tmp = Path(containers.config.data_root) / "tmp"

    async def stat(self, ref: str, path: str) -> PathStat:
        _need_path(path)
        async with self._opened(ref) as (_, fs):
            return await asyncio.to_thread(self._stat_sync, fs, ref, path, path)

    def _stat_sync(self, fs: ContainerFS, ref: str, path: str, name: str) -> PathStat:
        with _os_errors(ref, path):
            frame, _ = fs.walk(path.split("/"), follow=False)
            try:
                return _stat(fs, frame, name)
            finally:
                os.close(frame.fd)

    async def get(self, ref: str, path: str) -> AsyncIterator[PathStat | bytes]:
        """The path's stat first (errors come before any byte), then its tar in chunks."""
        _need_path(path)
        abs_path = preserve_trailing(go_clean(path), path)
        top = go_base(abs_path)
        top = "" if top == "/" else top  # the root's entries are "/", "/etc", … (moby)
        async with self._opened(ref) as (rec, fs):
            def resolve() -> tuple[_Frame, PathStat]:
                with _os_errors(ref, path):
                    frame, _ = fs.walk(abs_path.split("/"), follow=False)
                    try:
                        return frame, _stat(fs, frame, abs_path)
                    except BaseException:
                        os.close(frame.fd)
                        raise

            frame, st = await asyncio.to_thread(resolve)
            try:
                self.containers.emit(rec, "archive-path")
                yield st

                def produce(out: Any) -> None:
                    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
                        _TarWriter(fs, tf).run(frame, top)

                chunks = _stream(produce)
                try:
                    async for chunk in chunks:
                        yield chunk
                finally:
                    await chunks.aclose()  # the producer thread is done with the fds before they close
            finally:
                os.close(frame.fd)

    async def put(self, ref: str, path: str, body: Path, no_overwrite_dir_non_dir: bool = False,
                  copy_uid_gid: bool = False) -> None:
        """Extract the tar (optionally compressed) in ``body`` into directory ``path``."""
        _need_path(path)
        async with self._opened(ref) as (rec, fs):
            await asyncio.to_thread(self._put_sync, fs, rec, ref, path, body, no_overwrite_dir_non_dir,
                                    copy_uid_gid)
            self.containers.emit(rec, "extract-to-dir")

    def _put_sync(self, fs: ContainerFS, rec: ContainerRecord, ref: str, path: str, body: Path,
                  no_overwrite: bool, copy_uid_gid: bool) -> None:
        with _os_errors(ref, path):
            target, _ = fs.walk(go_clean(path).split("/"))
        try:
            if not stat.S_ISDIR(os.fstat(target.fd).st_mode):
                raise InvalidArgument("extraction point is not a directory")
            _writable(target)
            owner = _owner(fs, rec.config.user, self.tmp) if copy_uid_gid and rec.config.user else None
            ex = _Extractor(fs, target, no_overwrite, owner)
            try:
                with open(body, "rb") as raw:
                    if os.fstat(raw.fileno()).st_size == 0:
                        return
                    try:
                        with tarfile.open(fileobj=decompressed(raw), mode="r|") as tf:
                            for member in tf:
                                ex.entry(tf, member)
                    except tarfile.TarError as exc:
                        raise InvalidArgument(f"invalid tar archive: {exc}") from exc
                ex.finish()
            except PermissionError as exc:
                raise PermissionDenied(f"{exc.filename or path}: {exc.strerror}") from exc
            except OSError as exc:
                raise Internal(f"cannot extract to {path}: {exc.strerror or exc}") from exc
            finally:
                ex.close()
        finally:
            os.close(target.fd)

    # -- opening a container's filesystem --------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _opened(self, ref: str) -> AsyncIterator[tuple[ContainerRecord, ContainerFS]]:
        rec: ContainerRecord = self.store.get(ref)
        if rec.state.status in ("removing", "dead"):
            raise Conflict(f"container {rec.id} is marked for removal")
        if rec.state.running and (fs := await asyncio.to_thread(self._open_running, rec)) is not None:
            try:
                yield rec, fs
            finally:
                fs.close()
            return
        # stopped: its snapshot is mounted for the call, under the container lock so that start
        # (which mounts the same upper dir) waits until we are done
        async with self.containers.lock(rec.id):
            rec = self.store.get(rec.id)
            if not rec.snapshot_key or not self.snapshots.exists(rec.snapshot_key):
                raise Conflict(f"container {rec.id} has no filesystem")
            self.tmp.mkdir(mode=0o700, parents=True, exist_ok=True)
            mnt = Path(tempfile.mkdtemp(prefix="archive-", dir=self.tmp))
            try:
                fs = await asyncio.to_thread(self._open_stopped, rec, mnt)
                try:
                    yield rec, fs
                finally:
                    fs.close()
            finally:
                with contextlib.suppress(DockyardError):
                    unmount_all(mnt, detach=True)
                with contextlib.suppress(OSError):
                    os.rmdir(mnt)  # never rmtree: a mount that did not go away would lose its files

    def _open_running(self, rec: ContainerRecord) -> ContainerFS | None:
        """The merged rootfs the engine mounted for the running container; None if it is gone."""
        if not rec.bundle:
            return None
        root = Path(rec.bundle) / "rootfs"
        try:
            fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return None
        if os.fstat(fd).st_dev == os.stat(root.parent).st_dev:  # not a mount (any more)
            os.close(fd)
            return None
        return self._with_mounts(rec, fd, running=True)

    def _open_stopped(self, rec: ContainerRecord, mnt: Path) -> ContainerFS:
        try:
            mount_all(self.snapshots.mounts(rec.snapshot_key), mnt)
        except DockyardError as exc:
            raise Internal(f"cannot mount the container's filesystem: {exc}") from exc
        return self._with_mounts(rec, os.open(mnt, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC), running=False)

    def _with_mounts(self, rec: ContainerRecord, root_fd: int, running: bool) -> ContainerFS:
        host = rec.host_config
        fs = ContainerFS(root_fd, host.readonly_rootfs)
        try:
            binds: list[tuple[str, str, bool]] = [
                (src, dest, host.readonly_rootfs) for src, dest in (
                    (rec.resolv_conf_path, "/etc/resolv.conf"), (rec.hostname_path, "/etc/hostname"),
                    (rec.hosts_path, "/etc/hosts")) if src]
            tmpfs: list[tuple[str, bool]] = [(d, "ro" in o.split(",")) for d, o in host.tmpfs.items()]
            for mp in rec.mounts:
                if mp.type == "tmpfs":
                    tmpfs.append((mp.destination, not mp.rw))
                else:
                    binds.append((mp.source, mp.destination, not mp.rw))
            for src, dest, ro in binds:
                with contextlib.suppress(OSError):  # a source not there (yet): the rootfs shows
                    _add_mount(fs, dest, os.open(src, os.O_PATH | os.O_CLOEXEC), ro)
            if running and tmpfs and rec.state.pid:
                self._add_tmpfs(fs, rec.state.pid, tmpfs)
        except BaseException:
            fs.close()
            raise
        return fs

    @staticmethod
    def _add_tmpfs(fs: ContainerFS, pid: int, tmpfs: list[tuple[str, bool]]) -> None:
        """A tmpfs lives only in the container's mount namespace: reach it from the container's
        root, and only if that root is still this container's (the pid may have been reused)."""
        try:
            croot = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            a, b = os.fstat(croot), os.fstat(fs.root.fd)
            if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino):
                return
            for dest, ro in tmpfs:
                with contextlib.suppress(OSError):
                    _add_mount(fs, dest, syscalls.openat2(
                        croot, dest, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC,
                        resolve=syscalls.RESOLVE_IN_ROOT | syscalls.RESOLVE_NO_MAGICLINKS), ro)
        finally:
            os.close(croot)


def _owner(fs: ContainerFS, user: str, tmp_root: Path) -> tuple[int, int]:
    """copyUIDGID: everything goes to the container's user (moby's tarCopyOptions), as the
    container's own passwd and group files (copied out safely) say."""
    tmp = Path(tempfile.mkdtemp(prefix="cp-user-", dir=tmp_root))
    try:
        (tmp / "etc").mkdir()
        for name in ("passwd", "group"):
            (tmp / "etc" / name).write_text(fs.read_text(f"/etc/{name}"))
        found = resolve_user(tmp, user)
        return found.uid, found.gid
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _add_mount(fs: ContainerFS, dest: str, fd: int, ro: bool) -> None:
    try:
        fs.add_mount(dest, fd, ro)
    except BaseException:
        os.close(fd)
        raise


def _need_path(path: str) -> None:
    if not path:
        raise InvalidArgument("bad parameter: path cannot be empty")
    if "\x00" in path:
        raise InvalidArgument("bad parameter: path contains a NUL byte")


@contextlib.contextmanager
def _os_errors(ref: str, path: str) -> Iterator[None]:
    """dockerd's answers: a missing path is NotFound with its text, the rest name the path."""
    try:
        yield
    except FileNotFoundError as exc:
        raise NotFound(f"Could not find the file {path} in container {ref}") from exc
    except OSError as exc:
        why = (exc.strerror or str(exc)).lower()  # Go's lower-case errno texts
        if exc.errno in (errno.ENOTDIR, errno.ELOOP):
            raise InvalidArgument(f"lstat {path}: {why}") from exc
        raise Internal(f"{path}: {why}") from exc


async def _stream(produce: Callable[[Any], None]) -> AsyncGenerator[bytes, None]:
    """Run ``produce(writer)`` in a thread and yield what it writes, with backpressure."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=4)
    cancel = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        writer = _QueueWriter(loop, queue, cancel)
        try:
            produce(writer)
            writer.close()
        except _Cancelled:
            pass
        except BaseException as exc:
            errors.append(exc)
            with contextlib.suppress(_Cancelled):
                writer._put(None)

    task = loop.run_in_executor(None, run)
    try:
        while (chunk := await queue.get()) is not None:
            yield chunk
        await task
        if errors:
            raise errors[0]
    finally:
        cancel.set()
        with contextlib.suppress(BaseException):
            await asyncio.shield(task)
