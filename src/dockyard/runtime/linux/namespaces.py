"""Entering ``linux.namespaces``: setns for entries with a ``path``, unshare for the others.

A user namespace comes between the two: namespaces joined by path are joined first (as host root we
may join any of them), then the user namespace is joined or created, then the new namespaces are
unshared so that it owns them (in-container root may then mount proc/sysfs or set the hostname). A
process inside a new user namespace cannot write its own multi-range id maps: the runtime, still host
root in the parent, writes them (``userns.write_id_maps``) while the child waits (``map_ids``).
"""

from __future__ import annotations

import os

from dockyard.errors import InvalidArgument
from dockyard.runtime.linux.syscalls import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    setns,
    unshare,
)

TYPE_CHECKING = False  # typing costs ~4 ms per runtime call; annotations are strings anyway
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

# spec type -> (clone flag, /proc/<pid>/ns name); order is the join order (mnt last: after it the
# host's /proc paths are gone). "user" is handled apart, between joins and unshares.
NAMESPACES: dict[str, tuple[int, str]] = {
    "ipc": (CLONE_NEWIPC, "ipc"),
    "uts": (CLONE_NEWUTS, "uts"),
    "network": (CLONE_NEWNET, "net"),
    "pid": (CLONE_NEWPID, "pid"),
    "cgroup": (CLONE_NEWCGROUP, "cgroup"),
    "mount": (CLONE_NEWNS, "mnt"),
}


def parse(namespaces: list[dict[str, Any]]) -> dict[str, str]:
    """type -> path ("" for a new namespace); rejects unknown types and duplicates."""
    out: dict[str, str] = {}
    for ns in namespaces:
        kind = ns.get("type", "")
        if kind not in NAMESPACES and kind != "user":
            raise InvalidArgument(f"unknown namespace type {kind!r}")
        if kind in out:
            raise InvalidArgument(f"duplicate namespace {kind!r}")
        out[kind] = ns.get("path") or ""
    return out


def become_root() -> None:
    """Switch to uid/gid 0 of the user namespace we just entered (our host ids are unmapped there, so
    files we create would fail with EOVERFLOW); our capabilities there are kept."""
    try:
        os.setgroups([])
    except PermissionError:
        pass  # a joined namespace may have setgroups "deny"
    try:
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    except OSError as exc:
        raise InvalidArgument(f"cannot become root in the user namespace (is id 0 mapped?): "
                              f"{exc.strerror}") from exc


# -- entering ----------------------------------------------------------------------------------

def _join(fds: list[tuple[int, int]], user_fd: int = -1, map_ids: Callable[[], None] | None = None) -> None:
    """setns into ``fds``, then into ``user_fd`` or a new user namespace (when ``map_ids`` is given),
    then retry the joins refused with EPERM before it (owned by that user namespace), as runc does."""
    has_user = user_fd >= 0 or map_ids is not None
    deferred = []
    for fd, flag in fds:
        try:
            setns(fd, flag)
        except PermissionError:
            if not has_user:
                raise
            deferred.append((fd, flag))
    if user_fd >= 0:
        setns(user_fd, CLONE_NEWUSER)
        become_root()
    elif map_ids is not None:
        unshare(CLONE_NEWUSER)
        map_ids()
        become_root()
    for fd, flag in deferred:
        setns(fd, flag)


def enter(wanted: dict[str, str], map_ids: Callable[[], None] | None = None) -> bool:
    """Join/create the namespaces; returns True when the pid namespace changes (caller must fork).

    ``map_ids`` is called in a new user namespace and returns once its id maps are written.
    """
    fds: list[tuple[int, int]] = []
    user_fd = -1
    try:
        for kind in (*NAMESPACES, "user"):
            path = wanted.get(kind)
            if path:
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                except OSError as exc:
                    raise InvalidArgument(f"cannot open {kind} namespace {path}: {exc.strerror}") from exc
                if kind == "user":
                    user_fd = fd
                else:
                    fds.append((fd, NAMESPACES[kind][0]))
        if "user" in wanted and user_fd < 0 and map_ids is None:
            raise InvalidArgument("a new user namespace needs its id maps written")
        _join(fds, user_fd, map_ids if user_fd < 0 and "user" in wanted else None)
    finally:
        for fd, _ in fds:
            os.close(fd)
        if user_fd >= 0:
            os.close(user_fd)
    new = 0
    for kind, (flag, _) in NAMESPACES.items():
        if kind in wanted and not wanted[kind]:
            new |= flag
    if new:
        unshare(new)
    if "network" in wanted and not wanted["network"]:
        loopback_up()  # a new network namespace starts with lo down; runc brings it up too
    return "pid" in wanted


def loopback_up() -> None:
    """Set IFF_UP on ``lo`` in the current network namespace (SIOCGIFFLAGS/SIOCSIFFLAGS)."""
    import fcntl
    import socket
    import struct

    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            req = fcntl.ioctl(sock, siocgifflags, struct.pack("16sh14x", b"lo", 0))
            flags = struct.unpack("16sh14x", req)[1]
            fcntl.ioctl(sock, siocsifflags, struct.pack("16sh14x", b"lo", flags | iff_up))
        except OSError as exc:
            raise InvalidArgument(f"cannot bring up the loopback interface: {exc.strerror}") from exc


def join_process(pid: int, kinds: list[str]) -> None:
    """setns into the namespaces of ``pid`` (exec), only those that differ from ours; its user
    namespace between the others as in ``enter`` (we become its root: finish_and_exec switches)."""
    fds: list[tuple[int, int]] = []
    user_fd = -1
    try:
        for kind, (flag, name) in (*NAMESPACES.items(), ("user", (CLONE_NEWUSER, "user"))):
            if kind not in kinds:
                continue
            target = f"/proc/{pid}/ns/{name}"
            if os.stat(target).st_ino == os.stat(f"/proc/self/ns/{name}").st_ino:
                continue
            fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
            if flag == CLONE_NEWUSER:
                user_fd = fd
            else:
                fds.append((fd, flag))
        _join(fds, user_fd)
    finally:
        for fd, _ in fds:
            os.close(fd)
        if user_fd >= 0:
            os.close(user_fd)
