"""A tar of a path in a container's files, written from O_PATH descriptors (``docker cp`` GET).

Every entry is reached through ``ContainerFS.child`` (one name under its parent's descriptor, never
a host path), and file contents are read through ``/proc/self/fd`` reopens of those descriptors.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tarfile
from collections.abc import Iterator
from typing import BinaryIO, cast

from dockyard.diff.archive import IdMap, special_node
from dockyard.engine.ctrfs import ContainerFS, Frame, reopen


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


class TarWriter:
    """moby's tarballer over descriptors: PAX, whole-second mtimes, no user names, hardlinks by
    inode, the security.capability xattr, sockets left out."""

    def __init__(self, fs: ContainerFS, tf: tarfile.TarFile,
                 ids: IdMap | None = None) -> None:
        self.fs, self.tf, self.ids = fs, tf, ids
        self.links: dict[tuple[int, int], str] = {}

    def run(self, frame: Frame, top: str) -> None:
        stack: list[tuple[Frame, str, Iterator[str]]] = []
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

    def _add(self, frame: Frame, name: str, stack: list[tuple[Frame, str, Iterator[str]]]) -> bool:
        """Write one entry; a directory is pushed (and its frame kept): returns True then."""
        st = os.fstat(frame.fd)
        mode = st.st_mode
        ti = tarfile.TarInfo(name)
        ti.mode, ti.mtime = stat.S_IMODE(mode), int(st.st_mtime)
        ti.uid, ti.gid = self.ids(st.st_uid, st.st_gid) if self.ids else (st.st_uid, st.st_gid)
        ti.uname = ti.gname = ""
        if stat.S_ISDIR(mode):
            ti.type = tarfile.DIRTYPE
            self.tf.addfile(ti)
            dfd = reopen(frame.fd, os.O_RDONLY | os.O_DIRECTORY)
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
            with os.fdopen(reopen(frame.fd, os.O_RDONLY), "rb", buffering=0) as f:
                with contextlib.suppress(OSError):
                    cap = os.getxattr(f.fileno(), "security.capability")
                    ti.pax_headers = {"SCHILY.xattr.security.capability":
                                      cap.decode("utf-8", "surrogateescape")}
                ti.size = st.st_size
                self.tf.addfile(ti, cast(BinaryIO, _Exactly(cast(BinaryIO, f), st.st_size)))
        elif stat.S_ISLNK(mode):
            ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink("", dir_fd=frame.fd)
            self.tf.addfile(ti)
        elif special_node(ti, st):
            self.tf.addfile(ti)
        return False
