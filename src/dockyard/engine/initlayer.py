"""The init layer between a container's image and its writable layer, as Docker's overlay2 has.

The runtime mounts ``/proc``, ``/sys``, ``/dev/pts``, ``/dev/shm`` and bind-mounts ``/etc/hosts``,
``/etc/hostname`` and ``/etc/resolv.conf``; when the image lacks those paths their mount points
would be created in the container's own upper dir, and every ``commit``, ``diff`` and build step
would carry empty stubs. Docker creates them in a read-only ``<id>-init`` layer instead, so the
container's upper dir holds only what its processes changed. We do the same.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from dockyard.errors import Internal

# Docker's list (daemon/initlayer): directories, empty files, and the /etc/mtab symlink.
_DIRS = ("dev/pts", "dev/shm", "proc", "sys")
_FILES = (".dockerenv", "etc/resolv.conf", "etc/hosts", "etc/hostname", "dev/console")
_SYMLINKS = (("etc/mtab", "/proc/mounts"),)


def init_key(container_key: str) -> str:
    return f"{container_key}-init"


def prepare(snapshots: Any, container_key: str, parent: str | None) -> None:
    """Create the committed init layer on ``parent`` and the container's active snapshot on it
    (one metadata transaction: both exist afterwards, or neither)."""
    snapshots.prepare_on_layer(container_key, init_key(container_key), parent, populate)


def remove(snapshots: Any, container_key: str) -> None:
    """Remove the container's snapshot and its init layer (either may already be gone; a
    ``-init-rw`` work snapshot is what older versions left when a crash cut ``prepare`` short)."""
    snapshots.remove_all([container_key, init_key(container_key), f"{init_key(container_key)}-rw"])


def _lookup(lowers: list[Path], rel: str) -> os.stat_result | None:
    """stat of ``rel`` as the merged lower layers show it (None when absent or whited out)."""
    for layer in lowers:
        path = layer / rel
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        except NotADirectoryError:
            return None
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:  # overlay whiteout
            return None
        return st
    return None


def populate(upper: Path, lowers: list[Path]) -> None:
    """Create the stubs the image lacks in ``upper``; parents copied up keep the lower's metadata."""
    copied: dict[str, os.stat_result] = {}
    try:
        for rel in _DIRS:
            if _lookup(lowers, rel) is None:
                _parents(upper, lowers, rel, copied)
                (upper / rel).mkdir(mode=0o755, exist_ok=True)
        for rel in _FILES:
            if _lookup(lowers, rel) is None:
                _parents(upper, lowers, rel, copied)
                fd = os.open(upper / rel, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o755)
                os.close(fd)
        for rel, target in _SYMLINKS:
            if _lookup(lowers, rel) is None and not os.path.lexists(upper / rel):
                _parents(upper, lowers, rel, copied)
                os.symlink(target, upper / rel)
        for rel, st in sorted(copied.items(), reverse=True):  # after their children were made
            os.utime(upper / rel, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    except OSError as exc:
        raise Internal(f"cannot create the container's init layer: {exc}") from exc


def _parents(upper: Path, lowers: list[Path], rel: str, copied: dict[str, os.stat_result]) -> None:
    parts = rel.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        sub = "/".join(parts[:i])
        target = upper / sub
        if target.is_dir():
            continue
        st = _lookup(lowers, sub)
        if st is not None and not stat.S_ISDIR(st.st_mode):
            raise Internal(f"/{sub} in the image is not a directory")
        target.mkdir(mode=0o755)
        if st is not None:  # a copied-up directory must look like the lower one
            os.chmod(target, stat.S_IMODE(st.st_mode))
            os.chown(target, st.st_uid, st.st_gid)
            copied[sub] = st
