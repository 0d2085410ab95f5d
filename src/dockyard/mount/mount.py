"""mount(2)/umount2(2) through ctypes, and the Mount record snapshotters hand out.

A ``Mount`` is the same shape as an OCI runtime-spec mount entry (type, source, options) so the
engine can put it straight into ``config.json`` or mount it itself.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.errors import Internal, NotFound

# Load glibc by soname: find_library() would run ldconfig, ~10 ms per process start.
_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MNT_DETACH = 0x2

_FLAG_OPTIONS = {
    "ro": MS_RDONLY, "rw": 0, "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC,
    "bind": MS_BIND, "rbind": MS_BIND | MS_REC, "remount": MS_REMOUNT,
    "private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC, "slave": MS_SLAVE,
    "rslave": MS_SLAVE | MS_REC, "shared": MS_SHARED, "rshared": MS_SHARED | MS_REC,
}


def sys_mount(source: str, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    rc = _libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                     data.encode() if data else None)
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target} ({fstype}, {data or ''}): {os.strerror(err)}")


def sys_umount(target: str, flags: int = 0) -> None:
    rc = _libc.umount2(target.encode(), flags)
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount {target}: {os.strerror(err)}")


@dataclass(frozen=True)
class Mount:
    type: str
    source: str
    options: tuple[str, ...] = field(default_factory=tuple)

    def split_options(self) -> tuple[int, str]:
        flags = 0
        data: list[str] = []
        for opt in self.options:
            if opt in _FLAG_OPTIONS:
                flags |= _FLAG_OPTIONS[opt]
            else:
                data.append(opt)
        return flags, ",".join(data)

    def mount(self, target: str | Path) -> None:
        """Mount onto ``target``; a read-only bind is done in two steps as the kernel requires."""
        flags, data = self.split_options()
        try:
            if flags & MS_BIND:
                sys_mount(self.source, str(target), None, flags & (MS_BIND | MS_REC))
                if flags & ~(MS_BIND | MS_REC):
                    sys_mount("", str(target), None, flags | MS_REMOUNT)
            else:
                sys_mount(self.source, str(target), self.type, flags, data or None)
        except OSError as exc:
            raise Internal(f"cannot mount {self.type} at {target}: {exc.strerror}") from exc

    def to_spec(self, destination: str) -> dict[str, object]:
        return {"destination": destination, "type": self.type, "source": self.source,
                "options": list(self.options)}


def mount_all(mounts: list[Mount], target: str | Path) -> None:
    for m in mounts:
        m.mount(target)


def unmount_all(target: str | Path, *, detach: bool = False) -> None:
    """Unmount every mount stacked on ``target``; a target that is not mounted is fine."""
    while True:
        try:
            sys_umount(str(target), MNT_DETACH if detach else 0)
        except OSError as exc:
            if exc.errno == 22:  # EINVAL: nothing (more) mounted there
                return
            if exc.errno == 2:
                raise NotFound(f"mount target {target} does not exist") from exc
            raise Internal(f"cannot unmount {target}: {exc.strerror}") from exc
