"""Entering ``linux.namespaces``: setns for entries with a ``path``, unshare for the others."""

from __future__ import annotations

import os

from dockyard.errors import InvalidArgument
from dockyard.runtime.linux.syscalls import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUTS,
    setns,
    unshare,
)

TYPE_CHECKING = False  # typing costs ~4 ms per runtime call; annotations are strings anyway
if TYPE_CHECKING:
    from typing import Any

# spec type -> (clone flag, /proc/<pid>/ns name); order is the join order (mnt last: after it the
# host's /proc paths are gone)
NAMESPACES: dict[str, tuple[int, str]] = {
    "ipc": (CLONE_NEWIPC, "ipc"),
    "uts": (CLONE_NEWUTS, "uts"),
    "network": (CLONE_NEWNET, "net"),
    "pid": (CLONE_NEWPID, "pid"),
    "cgroup": (CLONE_NEWCGROUP, "cgroup"),
    "mount": (CLONE_NEWNS, "mnt"),
}


def parse(namespaces: list[dict[str, Any]]) -> dict[str, str]:
    """type -> path ("" for a new namespace); rejects unknown or unsupported types."""
    out: dict[str, str] = {}
    for ns in namespaces:
        kind = ns.get("type", "")
        if kind == "user":
            raise InvalidArgument("user namespaces are not supported by dockyard-runtime")
        if kind not in NAMESPACES:
            raise InvalidArgument(f"unknown namespace type {kind!r}")
        if kind in out:
            raise InvalidArgument(f"duplicate namespace {kind!r}")
        out[kind] = ns.get("path") or ""
    return out


def enter(wanted: dict[str, str]) -> bool:
    """Join/create the namespaces; returns True when the pid namespace changes (caller must fork)."""
    fds: list[tuple[int, int]] = []
    try:
        for kind, (flag, _) in NAMESPACES.items():
            path = wanted.get(kind)
            if path:
                try:
                    fds.append((os.open(path, os.O_RDONLY | os.O_CLOEXEC), flag))
                except OSError as exc:
                    raise InvalidArgument(f"cannot open {kind} namespace {path}: {exc.strerror}") from exc
        for fd, flag in fds:
            setns(fd, flag)
    finally:
        for fd, _ in fds:
            os.close(fd)
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
    """setns into the namespaces of ``pid`` (exec); only those that differ from ours."""
    fds: list[tuple[int, int]] = []
    try:
        for kind, (flag, name) in NAMESPACES.items():
            if kind not in kinds:
                continue
            target = f"/proc/{pid}/ns/{name}"
            if os.stat(target).st_ino == os.stat(f"/proc/self/ns/{name}").st_ino:
                continue
            fds.append((os.open(target, os.O_RDONLY | os.O_CLOEXEC), flag))
        for fd, flag in fds:
            setns(fd, flag)
    finally:
        for fd, _ in fds:
            os.close(fd)
