"""Directory → layer tar: ``write_layer`` (overlay upper dir, whiteouts back to ``.wh.`` form) and
``tar_directory`` (a plain rootfs).

Output is reproducible for the same tree: entries in sorted order, directories before their
children, PAX format, integer mtimes, no user/group names, hardlinks found by inode.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Callable
from typing import BinaryIO, cast

from dockyard.diff.apply import OPAQUE_XATTR, WHITEOUT_OPAQUE, WHITEOUT_PREFIX
from dockyard.diff.streams import CHUNK, HashingWriter
from dockyard.errors import Internal
from dockyard.oci.digest import Digest

# Host-specific or overlay-internal attributes never go into an image.
_SKIP_XATTR_PREFIXES = ("trusted.overlay.", "security.selinux")


def _xattrs(path: str) -> dict[str, str]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out: dict[str, str] = {}
    for name in sorted(names):
        if name.startswith(_SKIP_XATTR_PREFIXES):
            continue
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
        out["SCHILY.xattr." + name] = value.decode("utf-8", "surrogateescape")
    return out


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


# host ids on disk → the ids the tar records (a user namespace container's own ids)
IdMap = Callable[[int, int], tuple[int, int]]


class _TreeWriter:
    def __init__(self, tf: tarfile.TarFile, overlay: bool, ids: IdMap | None) -> None:
        self.tf = tf
        self.overlay = overlay
        self.ids = ids
        self.links: dict[tuple[int, int], str] = {}

    def _info(self, name: str, st: os.stat_result) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.mode = stat.S_IMODE(st.st_mode)
        ti.uid, ti.gid = self.ids(st.st_uid, st.st_gid) if self.ids else (st.st_uid, st.st_gid)
        ti.uname = ti.gname = ""
        ti.mtime = int(st.st_mtime)
        return ti

    def _marker(self, name: str, st: os.stat_result, mode: int) -> None:
        ti = self._info(name, st)
        ti.type, ti.mode, ti.size = tarfile.REGTYPE, mode, 0
        self.tf.addfile(ti)

    def visit(self, dirpath: str, prefix: str) -> None:
        for name in sorted(os.listdir(dirpath)):
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            mode = st.st_mode
            rel = prefix + name
            if self.overlay and stat.S_ISCHR(mode) and st.st_rdev == 0:
                self._marker(prefix + WHITEOUT_PREFIX + name, st, 0o600)
                continue
            ti = self._info(rel, st)
            ti.pax_headers = _xattrs(full)
            if stat.S_ISDIR(mode):
                ti.type = tarfile.DIRTYPE
                self.tf.addfile(ti)
                if self.overlay and _is_opaque(full):
                    self._marker(rel + "/" + WHITEOUT_OPAQUE, st, stat.S_IMODE(mode) & 0o777)
                self.visit(full, rel + "/")
            elif stat.S_ISREG(mode):
                key = (st.st_dev, st.st_ino)
                first = self.links.get(key) if st.st_nlink > 1 else None
                if first is not None:
                    ti.type, ti.linkname = tarfile.LNKTYPE, first
                    self.tf.addfile(ti)
                    continue
                if st.st_nlink > 1:
                    self.links[key] = rel
                ti.type, ti.size = tarfile.REGTYPE, st.st_size
                with open(full, "rb", buffering=0) as f:
                    self.tf.addfile(ti, f)
            elif stat.S_ISLNK(mode):
                ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(full)
                self.tf.addfile(ti)
            elif special_node(ti, st):
                self.tf.addfile(ti)
            # sockets are not archived (as Docker does)


def special_node(ti: tarfile.TarInfo, st: os.stat_result) -> bool:
    """Make ``ti`` the entry of a device node or fifo; False for anything else."""
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        ti.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
        ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        return True
    if stat.S_ISFIFO(st.st_mode):
        ti.type = tarfile.FIFOTYPE
        return True
    return False


def _write_tree(top: str | os.PathLike[str], out: BinaryIO, overlay: bool, ids: IdMap | None) -> Digest:
    hw = HashingWriter(out)
    try:
        with tarfile.TarFile(fileobj=cast(BinaryIO, hw), mode="w", format=tarfile.PAX_FORMAT,
                             copybufsize=CHUNK) as tf:
            _TreeWriter(tf, overlay, ids).visit(os.fspath(top), "")
    except OSError as exc:
        raise Internal(f"cannot archive {top}: {exc.strerror or exc}") from exc
    return hw.digest()


def write_layer(upper: str | os.PathLike[str], out: BinaryIO, ids: IdMap | None = None) -> Digest:
    """Archive an overlay upper dir as a layer; returns its diff ID (sha256 of the tar)."""
    return _write_tree(upper, out, True, ids)


def tar_directory(path: str | os.PathLike[str], out: BinaryIO, ids: IdMap | None = None) -> Digest:
    """Archive a plain directory tree (e.g. a rootfs) as a tar; returns its sha256."""
    return _write_tree(path, out, False, ids)
