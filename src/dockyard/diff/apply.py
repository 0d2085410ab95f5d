"""Apply a layer tar to an (empty) overlay upper directory, safely.

Python 3.11.2 has no tarfile extraction filters, so extraction is done here entry by entry:

* names are cleaned; absolute names and any ``..`` component are refused (InvalidArgument);
* parent directories are walked with ``openat(O_NOFOLLOW)`` from a descriptor of ``dest``; a symlink
  met on the way is resolved *inside* dest (an absolute target is rooted at dest, as it would be
  in the container) and one whose relative target climbs above dest is refused, so nothing is ever
  created outside dest;
* every final component is created relative to its parent's descriptor without following it;
* hardlinks must name an entry already inside dest;
* char/block device nodes (other than whiteouts) are skipped: the runtime provides /dev and a layer
  has no business creating host devices; fifos are created.
Whiteouts become overlay whiteouts: ``.wh.x`` → char device 0:0 ``x``, ``.wh..wh..opq`` → xattr
``trusted.overlay.opaque=y``. The diff ID is the sha256 of the uncompressed tar, computed while
applying.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from dockyard.diff.streams import CHUNK, ForwardReader, HashingReader, decompressed
from dockyard.errors import Internal, InvalidArgument, PermissionDenied, is_no_space, no_space
from dockyard.oci.digest import Digest

WHITEOUT_PREFIX = ".wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_XATTR_PAX = "SCHILY.xattr."
_MAX_SYMLINKS = 40
_MAX_CACHED_FDS = 256
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_IGNORED_XATTR_ERRORS = {errno.EPERM, errno.ENOTSUP, errno.EACCES}


@dataclass(frozen=True)
class ApplyResult:
    diff_id: Digest
    size: int  # bytes of the uncompressed tar stream


def clean_name(name: str, what: str = "entry") -> tuple[str, ...]:
    """Split a tar name into components; refuse absolute names and ``..``."""
    if name.startswith("/"):
        raise InvalidArgument(f"layer {what} {name!r}: absolute path not allowed")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise InvalidArgument(f"layer {what} {name!r}: path leads outside the layer ('..')")
    if any("\x00" in p for p in parts):
        raise InvalidArgument(f"layer {what} {name!r}: NUL in path")
    return parts


def _mtime_ns(member: tarfile.TarInfo) -> int:
    return int(member.mtime * 1_000_000_000) if isinstance(member.mtime, float) else member.mtime * 1_000_000_000


def _check_header(m: tarfile.TarInfo) -> None:
    """Refuse numbers no file can have (pax records are free text: ``size=-1``, ``mtime=1e400``,
    ``uid=2**64``), as Go's archive/tar does, before they reach a syscall."""
    if m.size < 0:
        raise InvalidArgument(f"layer entry {m.name!r}: negative size {m.size}")
    if not (0 <= m.uid <= 0xFFFFFFFF and 0 <= m.gid <= 0xFFFFFFFF):
        raise InvalidArgument(f"layer entry {m.name!r}: uid/gid {m.uid}:{m.gid} out of range")
    try:
        ns: int | None = _mtime_ns(m)
    except (OverflowError, ValueError):  # inf, nan
        ns = None
    if ns is None or not -(1 << 63) <= ns < 1 << 63:
        raise InvalidArgument(f"layer entry {m.name!r}: invalid mtime {m.mtime!r}")


class _Applier:
    def __init__(self, dest: Path, src: ForwardReader) -> None:
        self.dest = dest
        self.src = src
        self.root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.is_root = os.geteuid() == 0
        self.cache: dict[tuple[str, ...], int] = {}
        self.stale: list[int] = []
        self.dirs: list[tuple[tuple[str, ...], tarfile.TarInfo]] = []
        self.skipped_devices = 0

    def close(self) -> None:
        self._invalidate()
        self._close_stale()
        os.close(self.root_fd)

    # -- descriptors of directories inside dest --------------------------------------------------

    def _invalidate(self) -> None:
        """Something was removed: cached parent descriptors may no longer match their path."""
        self.stale.extend(self.cache.values())
        self.cache.clear()

    def _close_stale(self) -> None:
        for fd in self.stale:
            os.close(fd)
        self.stale.clear()

    def dir_fd(self, parts: tuple[str, ...], entry: str, create: bool = True) -> int:
        """Descriptor of directory ``parts`` (resolved inside dest); owned by the cache."""
        if not parts:
            return self.root_fd
        fd = self.cache.get(parts)
        if fd is not None:
            return fd
        fd = self._walk(parts, entry, create)
        if len(self.cache) >= _MAX_CACHED_FDS:
            self._invalidate()
        self.cache[parts] = fd
        return fd

    def _walk(self, parts: tuple[str, ...], entry: str, create: bool) -> int:
        stack: list[int] = []  # descriptors of resolved components below the root
        todo = list(reversed(parts))
        hops = 0
        try:
            while todo:
                comp = todo.pop()
                if comp in ("", "."):
                    continue
                if comp == "..":
                    if not stack:
                        raise InvalidArgument(f"layer entry {entry!r}: a symlink in its path leads "
                                              f"outside the layer")
                    os.close(stack.pop())
                    continue
                cur = stack[-1] if stack else self.root_fd
                try:
                    stack.append(os.open(comp, _DIR_FLAGS, dir_fd=cur))
                    continue
                except FileNotFoundError:
                    if not create:
                        raise InvalidArgument(f"layer entry {entry!r}: {comp!r} does not exist in the "
                                              f"layer") from None
                    os.mkdir(comp, 0o755, dir_fd=cur)
                    stack.append(os.open(comp, _DIR_FLAGS, dir_fd=cur))
                    continue
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                st = os.stat(comp, dir_fd=cur, follow_symlinks=False)
                if not stat.S_ISLNK(st.st_mode):
                    raise InvalidArgument(f"layer entry {entry!r}: {comp!r} in its path is not a directory")
                hops += 1
                if hops > _MAX_SYMLINKS:
                    raise InvalidArgument(f"layer entry {entry!r}: too many symlinks in its path")
                target = os.readlink(comp, dir_fd=cur)
                if target.startswith("/"):
                    for fd in stack:  # absolute symlink: rooted at dest, as inside the container
                        os.close(fd)
                    stack.clear()
                todo.extend(reversed(target.split("/")))
            if not stack:  # resolved to dest itself
                return os.dup(self.root_fd)
            result = stack.pop()
            return result
        finally:
            for fd in stack:
                os.close(fd)

    def _clear(self, pfd: int, base: str, keep_dir: bool) -> bool:
        """Remove whatever is at ``base``; returns True if an existing directory was kept."""
        try:
            st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return True
            self._invalidate()
            shutil.rmtree(base, dir_fd=pfd)
        else:
            self._invalidate()
            os.unlink(base, dir_fd=pfd)
        return False

    # -- entries ----------------------------------------------------------------------------------

    def apply(self, tf: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = clean_name(member.name)
        _check_header(member)
        try:
            self._apply(tf, member, parts)
        except PermissionError as exc:
            if not self.is_root:
                raise PermissionDenied(f"layer entry {member.name!r}: {exc.strerror} (applying layers "
                                       f"needs root)") from exc
            raise Internal(f"layer entry {member.name!r}: {exc.strerror}") from exc
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:  # a name component over 255 bytes
                raise InvalidArgument(f"layer entry {member.name!r}: {exc.strerror}") from exc
            if is_no_space(exc):
                raise no_space(f"cannot apply layer entry {member.name!r}", exc) from exc
            raise Internal(f"cannot apply layer entry {member.name!r}: {exc.strerror or exc}") from exc
        finally:
            self._close_stale()

    def _apply(self, tf: tarfile.TarFile, m: tarfile.TarInfo, parts: tuple[str, ...]) -> None:
        if not parts:
            if m.isdir():
                self.dirs.append(((), m))
            return
        base = parts[-1]
        parent = parts[:-1]
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(m, parent, base)
            return
        if m.ischr() or m.isblk():
            self.skipped_devices += 1
            return
        pfd = self.dir_fd(parent, m.name)
        if m.isdir():
            if not self._clear(pfd, base, keep_dir=True):
                os.mkdir(base, 0o700, dir_fd=pfd)
            self._chown(pfd, base, m)
            if self._xattrs(m):
                fd = os.open(base, _DIR_FLAGS, dir_fd=pfd)
                try:
                    self._set_xattrs(fd, m)
                finally:
                    os.close(fd)
            self.dirs.append((parts, m))  # mode and times once its children are in
        elif m.isreg():
            self._clear(pfd, base, keep_dir=False)
            self._file(tf, m, pfd, base)
        elif m.issym():
            if not m.linkname:  # symlink(2) refuses it (ENOENT)
                raise InvalidArgument(f"layer symlink {m.name!r}: empty target")
            self._clear(pfd, base, keep_dir=False)
            os.symlink(m.linkname, base, dir_fd=pfd)
            self._chown(pfd, base, m)
            t = _mtime_ns(m)
            os.utime(base, ns=(t, t), dir_fd=pfd, follow_symlinks=False)
        elif m.islnk():
            self._hardlink(m, pfd, base)
        elif m.isfifo():
            self._clear(pfd, base, keep_dir=False)
            os.mkfifo(base, m.mode & 0o7777, dir_fd=pfd)
            self._chown(pfd, base, m)
            os.chmod(base, m.mode & 0o7777, dir_fd=pfd)  # just created by us: not a symlink
        # other types (GNU volume headers, …) carry no file

    def _file(self, tf: tarfile.TarFile, m: tarfile.TarInfo, pfd: int, base: str) -> None:
        fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=pfd)
        try:
            if m.issparse():
                self._copy(cast(BinaryIO, tf.extractfile(m)), fd, m.size)
            elif m.size:
                # Plain members are contiguous: read them straight off the stream.
                self.src.seek(m.offset_data)
                self._copy(cast(BinaryIO, self.src), fd, m.size)
            if self.is_root:
                os.fchown(fd, m.uid, m.gid)  # before chmod: chown clears set-id bits
            os.fchmod(fd, m.mode & 0o7777)
            if self._xattrs(m):
                self._set_xattrs(fd, m)
            t = _mtime_ns(m)
            os.utime(fd, ns=(t, t))
        finally:
            os.close(fd)

    def _copy(self, src: BinaryIO, fd: int, size: int) -> None:
        left = size
        while left > 0:
            chunk = src.read(min(CHUNK, left))
            if not chunk:
                raise InvalidArgument("layer is truncated")
            left -= len(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]

    def _hardlink(self, m: tarfile.TarInfo, pfd: int, base: str) -> None:
        target = clean_name(m.linkname, what=f"hardlink {m.name!r} target")
        if not target:
            raise InvalidArgument(f"layer hardlink {m.name!r}: target is the layer root")
        tfd = self.dir_fd(target[:-1], m.name, create=False)
        try:
            st = os.stat(target[-1], dir_fd=tfd, follow_symlinks=False)
        except FileNotFoundError:
            raise InvalidArgument(f"layer hardlink {m.name!r}: target {m.linkname!r} is not in the "
                                  f"layer") from None
        if stat.S_ISDIR(st.st_mode):
            raise InvalidArgument(f"layer hardlink {m.name!r}: target {m.linkname!r} is a directory")
        if target == clean_name(m.name):
            return  # a link to itself: the file is already there
        self._clear(pfd, base, keep_dir=False)
        # _clear may have invalidated the cache: re-resolve both parents.
        pfd = self.dir_fd(clean_name(m.name)[:-1], m.name)
        tfd = self.dir_fd(target[:-1], m.name, create=False)
        os.link(target[-1], base, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)

    def _whiteout(self, m: tarfile.TarInfo, parent: tuple[str, ...], base: str) -> None:
        if base == WHITEOUT_OPAQUE:
            fd = self.dir_fd(parent, m.name)
            self._need_root(m, "opaque directory")
            os.setxattr(fd, OPAQUE_XATTR, b"y")
            return
        if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            return  # other aufs metadata (.wh..wh.plnk, …): nothing to do in overlay
        name = base[len(WHITEOUT_PREFIX):]
        if name in ("", ".", ".."):
            raise InvalidArgument(f"layer entry {m.name!r}: invalid whiteout")
        self._need_root(m, "whiteout")
        pfd = self.dir_fd(parent, m.name)
        self._clear(pfd, name, keep_dir=False)
        pfd = self.dir_fd(parent, m.name)
        os.mknod(name, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=pfd)
        self._chown(pfd, name, m)
        # the marker's mtime, so that writing this layer out again gives the same diff ID
        t = _mtime_ns(m)
        os.utime(name, ns=(t, t), dir_fd=pfd, follow_symlinks=False)

    def _need_root(self, m: tarfile.TarInfo, what: str) -> None:
        if not self.is_root:
            raise PermissionDenied(f"layer entry {m.name!r}: creating an overlay {what} needs root")

    def _chown(self, pfd: int, base: str, m: tarfile.TarInfo) -> None:
        if self.is_root:
            os.chown(base, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)

    @staticmethod
    def _xattrs(m: tarfile.TarInfo) -> bool:
        return any(k.startswith(_XATTR_PAX) for k in m.pax_headers)

    @staticmethod
    def _set_xattrs(fd: int, m: tarfile.TarInfo) -> None:
        for key, value in m.pax_headers.items():
            if not key.startswith(_XATTR_PAX):
                continue
            name = key[len(_XATTR_PAX):]
            if name.startswith("trusted.overlay."):
                continue  # overlay's own state comes only from whiteout entries
            try:
                os.setxattr(fd, name, value.encode("utf-8", "surrogateescape"))
            except OSError as exc:
                if exc.errno in (errno.EINVAL, errno.ERANGE, errno.E2BIG):  # a name or value the kernel refuses
                    raise InvalidArgument(f"layer entry {m.name!r}: xattr {name!r}: {exc.strerror}") from exc
                if exc.errno not in _IGNORED_XATTR_ERRORS:
                    raise

    def finish_dirs(self) -> None:
        """Directory modes and times last: creating children changes a directory's mtime."""
        for parts, m in reversed(self.dirs):
            try:
                if parts:
                    pfd = self.dir_fd(parts[:-1], m.name, create=False)
                    fd = os.open(parts[-1], _DIR_FLAGS, dir_fd=pfd)
                else:
                    fd = os.dup(self.root_fd)
            except (OSError, InvalidArgument):
                continue  # replaced by a later entry
            try:
                if not parts and self.is_root:
                    os.fchown(fd, m.uid, m.gid)
                os.fchmod(fd, m.mode & 0o7777)
                t = _mtime_ns(m)
                os.utime(fd, ns=(t, t))
            finally:
                os.close(fd)
            self._close_stale()


def apply_layer(stream: BinaryIO, dest: Path) -> ApplyResult:
    """Unpack the layer ``stream`` (gzip/zstd/bzip2/xz/plain tar) into ``dest``."""
    reader = HashingReader(decompressed(stream))
    fwd = ForwardReader(reader)
    head = fwd.read(tarfile.BLOCKSIZE)
    if head.strip(b"\0"):
        fwd.unread(head)
        try:
            applier = _Applier(Path(dest), fwd)
        except OSError as exc:
            raise Internal(f"cannot open layer destination {dest}: {exc.strerror}") from exc
        try:
            try:
                with tarfile.open(fileobj=cast(BinaryIO, fwd), mode="r:") as tf:
                    for member in tf:
                        applier.apply(tf, member)
            except (tarfile.TarError, OSError) as exc:  # OSError: ForwardReader refusing to seek back
                raise InvalidArgument(f"layer is not a valid tar archive: {exc}") from exc
            applier.finish_dirs()
        finally:
            applier.close()
    # else: an empty layer (no bytes, or only end-of-archive zeros) changes nothing
    reader.drain()  # the diff ID covers the whole stream, end-of-archive padding included
    return ApplyResult(reader.digest(), reader.size)
