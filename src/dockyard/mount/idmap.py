"""Idmapped mounts (Linux ≥ 5.12 new mount API): share one copy of the image layers with
containers that run in different user namespaces.

A layer directory is cloned as a detached mount (``open_tree``) and given the container's user
namespace id mapping (``mount_setattr(MOUNT_ATTR_IDMAP)``): a file owned by 0 on disk then shows
as the container's root (a host id like 100000), so root inside owns the image's files while
nothing on disk is chowned. The overlay takes the detached trees through ``/proc/self/fd`` paths;
its upper dir is *not* idmapped, so what the container writes belongs on disk to its unprivileged
host ids.
"""

from __future__ import annotations

import ctypes
import os
import platform
from pathlib import Path

from dockyard.errors import Internal, InvalidArgument
from dockyard.mount.mount import Mount, sys_mount

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long

# syscall numbers are the same on every architecture for these (unified table since 5.x)
_SYS_OPEN_TREE = 428
_SYS_MOUNT_SETATTR = 442
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
MOUNT_ATTR_IDMAP = 0x00100000


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _check(rc: int, what: str) -> int:
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return rc


def idmapped_tree(path: str, userns_fd: int) -> int:
    """A detached, idmapped clone of the mount tree at ``path``; the caller closes the fd."""
    if platform.machine() not in ("x86_64", "aarch64"):
        raise InvalidArgument(f"idmapped mounts are not supported on {platform.machine()}")
    fd = _check(_libc.syscall(_SYS_OPEN_TREE, -100, path.encode(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC),
                f"open_tree {path}")
    attr = _MountAttr(MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
    try:
        _check(_libc.syscall(_SYS_MOUNT_SETATTR, fd, b"", AT_EMPTY_PATH, ctypes.byref(attr),
                             ctypes.sizeof(attr)), f"mount_setattr idmap {path}")
    except OSError:
        os.close(fd)
        raise
    return fd


def mount_idmapped_overlay(m: Mount, target: str | Path, userns_fd: int) -> None:
    """Mount the overlay ``m`` at ``target`` with each lower layer idmapped into ``userns_fd``."""
    if m.type != "overlay":
        raise InvalidArgument(f"an idmapped root file system needs an overlay mount, not {m.type}")
    fds: list[int] = []
    options: list[str] = []
    try:
        for opt in m.options:
            if opt.startswith("lowerdir="):
                paths = []
                for layer in opt.removeprefix("lowerdir=").split(":"):
                    fds.append(idmapped_tree(layer, userns_fd))
                    paths.append(f"/proc/self/fd/{fds[-1]}")
                opt = "lowerdir=" + ":".join(paths)
            options.append(opt)
        flags, data = Mount(m.type, m.source, tuple(options)).split_options()
        sys_mount(m.source, str(target), m.type, flags, data or None)
    except OSError as exc:
        raise Internal(f"cannot mount the idmapped root file system at {target}: {exc.strerror}") from exc
    finally:
        for fd in fds:   # the overlay keeps its own references to the layers
            os.close(fd)
