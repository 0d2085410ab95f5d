"""systemd's two daemon protocols, without libsystemd: socket activation and readiness notification.

Socket activation (sd_listen_fds(3)): the service manager passes already-bound listening sockets as
fds 3, 4, … and says so in ``LISTEN_FDS`` (how many) and ``LISTEN_PID`` (for whom: a child we
start must not take them). ``-H fd://`` serves every one of them, ``-H fd://N`` just fd N.

Readiness (sd_notify(3)): a datagram to the unix socket named by ``NOTIFY_SOCKET`` (a path, or
``@name`` in the abstract namespace) with ``READY=1``, ``RELOADING=1``, ``STOPPING=1``, ``STATUS=``.
``Type=notify`` units wait for ``READY=1``; ``dockyardd --detach`` reuses the same protocol to learn
when its child is up.
"""

from __future__ import annotations

import os
import socket
import time

from dockyard.errors import InvalidArgument

SD_LISTEN_FDS_START = 3
_notify_target = ""


def claim_environment() -> list[int]:
    """Take systemd's variables out of the environment — shims, runtimes and containers must not
    believe the sockets or the notify socket are theirs — and return the fds passed to us (none
    if they were meant for another process)."""
    global _notify_target
    _notify_target = os.environ.pop("NOTIFY_SOCKET", "") or _notify_target
    pid, count = os.environ.pop("LISTEN_PID", ""), os.environ.pop("LISTEN_FDS", "")
    os.environ.pop("LISTEN_FDNAMES", None)
    if not (pid.isdigit() and count.isdigit()) or int(pid) != os.getpid():
        return []
    return list(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(count)))


def activated_sockets(number: str, passed: list[int]) -> list[socket.socket]:
    """The listening sockets ``fd://`` (all) or ``fd://N`` names; they must be stream sockets."""
    if not passed:
        raise InvalidArgument("no sockets found via socket activation: make sure the service was started "
                              "by systemd (LISTEN_FDS/LISTEN_PID unset)")
    fds = passed if not number else [int(number)]
    if number and int(number) not in passed:
        raise InvalidArgument(f"too few sockets for fd://{number}: systemd passed fds {passed}")
    out = []
    for fd in fds:
        os.set_inheritable(fd, False)
        sock = socket.socket(fileno=fd)
        if sock.type != socket.SOCK_STREAM:
            raise InvalidArgument(f"fd://{fd} is not a stream socket")
        sock.setblocking(False)
        out.append(sock)
    return out


def is_loopback(sock: socket.socket) -> bool:
    """A unix socket, or TCP bound to a loopback address."""
    if sock.family == socket.AF_UNIX:
        return True
    import ipaddress
    try:
        return ipaddress.ip_address(sock.getsockname()[0]).is_loopback
    except ValueError:
        return False


def notify(*fields: str) -> bool:
    """Send ``fields`` (``READY=1`` …) to the service manager; False when there is none."""
    target = _notify_target or os.environ.get("NOTIFY_SOCKET", "")
    if not target:
        return False
    address = "\0" + target[1:] if target.startswith("@") else target
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.sendto("\n".join(fields).encode(), address)
        except OSError:
            return False
    return True


def monotonic_usec() -> str:
    """``MONOTONIC_USEC=``, which ``Type=notify-reload`` wants with ``RELOADING=1``."""
    return f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"
