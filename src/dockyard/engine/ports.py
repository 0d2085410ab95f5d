"""Published ports: ``PortBindings``/``PublishAllPorts`` → host ports held by the daemon, and the
DNAT mappings the firewall installs for them.

Traffic never passes through a proxy process: nftables rewrites it to the container. The daemon
still binds every published host port (a socket that never accepts), because that is what makes
a port already used by another program, or by another container, fail loudly at ``start`` — as
Docker's proxy does — and what keeps the kernel from handing the port out as an ephemeral one.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from dockyard.errors import Internal, InvalidArgument
from dockyard.network.firewall import PortMapping

PROTOS = ("tcp", "udp", "sctp")


@dataclass(frozen=True)
class Binding:
    proto: str
    container_port: int
    host_ip: str                    # "" = every address
    host_port_lo: int               # 0 = any free port
    host_port_hi: int


def _port(text: str, what: str) -> tuple[int, int]:
    lo, sep, hi = text.partition("-")
    try:
        a = int(lo)
        b = int(hi) if sep else a
    except ValueError:
        raise InvalidArgument(f"invalid {what}: {text}") from None
    if not (0 <= a <= 65535 and 0 <= b <= 65535) or b < a:
        raise InvalidArgument(f"invalid {what}: {text}")
    return a, b


def parse_bindings(port_bindings: dict[str, list[dict[str, str]]], publish_all: bool,
                   exposed: Mapping[str, object]) -> list[Binding]:
    """Docker's ``PortBindings`` (``"80/tcp": [{"HostIp": "", "HostPort": "8080"}]``) plus, with
    ``PublishAllPorts``, every exposed port without a binding on a random host port."""
    out: list[Binding] = []
    keys = dict(port_bindings)
    if publish_all:
        for key in exposed:
            keys.setdefault(key, [{"HostIp": "", "HostPort": ""}])
    for key, entries in keys.items():
        number, _, proto = key.partition("/")
        proto = (proto or "tcp").lower()
        if proto not in PROTOS:
            raise InvalidArgument(f"invalid proto: {proto}")
        ctr_lo, ctr_hi = _port(number, "containerPort")
        if ctr_lo == 0 or ctr_lo != ctr_hi:
            raise InvalidArgument(f"invalid containerPort: {number}")
        for entry in entries or [{}]:
            host_ip = (entry.get("HostIp") or "").strip("[]")
            if host_ip:
                try:
                    ipaddress.ip_address(host_ip)
                except ValueError:
                    raise InvalidArgument(f"invalid IP address: {host_ip}") from None
            lo, hi = _port(entry.get("HostPort") or "0", "hostPort")
            out.append(Binding(proto, ctr_lo, host_ip, lo, hi))
    return out


@dataclass
class Reservation:
    """The sockets holding one container's host ports."""
    sockets: list[socket.socket] = field(default_factory=list)

    def close(self) -> None:
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.close()
        self.sockets.clear()


def _bind(proto: str, host_ip: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if host_ip and ipaddress.ip_address(host_ip).version == 6 else socket.AF_INET
    kind = {"tcp": socket.SOCK_STREAM, "udp": socket.SOCK_DGRAM}.get(proto)
    if kind is None:  # sctp: nothing to hold without the sctp module; the rule alone serves it
        raise OSError(errno.EPROTONOSUPPORT, "no socket for sctp")
    s = socket.socket(family, kind | socket.SOCK_CLOEXEC)
    try:
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((host_ip or "0.0.0.0", port))
    except OSError:
        s.close()
        raise
    return s


def reserve(bindings: list[Binding], endpoint: str) -> tuple[Reservation, list[tuple[Binding, int]]]:
    """Bind every host port; returns the reservation and (binding, actual host port) pairs.
    All or nothing: on a conflict the ports bound so far are released."""
    res = Reservation()
    chosen: list[tuple[Binding, int]] = []
    try:
        for b in bindings:
            port = _reserve_one(b, res, endpoint)
            chosen.append((b, port))
    except BaseException:
        res.close()
        raise
    return res, chosen


def _reserve_one(b: Binding, res: Reservation, endpoint: str) -> int:
    shown = f"{b.host_ip or '0.0.0.0'}"
    candidates = range(b.host_port_lo, b.host_port_hi + 1) if b.host_port_lo else [0]
    last: OSError | None = None
    for port in candidates:
        try:
            s = _bind(b.proto, b.host_ip, port)
        except OSError as exc:
            if exc.errno == errno.EPROTONOSUPPORT:
                if not port:
                    raise InvalidArgument(f"a host port is required to publish {b.proto} port "
                                          f"{b.container_port}") from exc
                return port
            last = exc
            continue
        res.sockets.append(s)
        return int(s.getsockname()[1])
    span = f"{b.host_port_lo}-{b.host_port_hi}" if b.host_port_hi != b.host_port_lo else str(b.host_port_lo)
    if last is not None and last.errno == errno.EADDRINUSE:
        raise Internal(f"driver failed programming external connectivity on endpoint {endpoint}: "
                       f"Bind for {shown}:{span} failed: port is already allocated")
    raise Internal(f"driver failed programming external connectivity on endpoint {endpoint}: "
                   f"Bind for {shown}:{span} failed: {last.strerror if last else 'no port'}")


def mappings(chosen: list[tuple[Binding, int]], container_ip: str, bridge: str) -> list[PortMapping]:
    """DNAT mappings, consecutive ports folded into one ranged mapping (one rule for a range)."""
    rows = sorted((b.proto, b.host_ip, port, b.container_port) for b, port in chosen)
    out: list[PortMapping] = []
    for proto, host_ip, hport, cport in rows:
        if out:
            last = out[-1]
            if (last.proto, last.host_ip) == (proto, host_ip) and \
                    last.host_port + last.count == hport and last.container_port + last.count == cport:
                out[-1] = PortMapping(proto=proto, host_ip=host_ip, host_port=last.host_port,
                                      container_ip=container_ip, container_port=last.container_port,
                                      count=last.count + 1, bridge=bridge)
                continue
        out.append(PortMapping(proto=proto, host_ip=host_ip, host_port=hport, container_ip=container_ip,
                               container_port=cport, count=1, bridge=bridge))
    return out


def shown_ports(chosen: list[tuple[Binding, int]]) -> dict[str, list[dict[str, str]]]:
    """``NetworkSettings.Ports`` entries for the bound ports."""
    out: dict[str, list[dict[str, str]]] = {}
    for b, port in chosen:
        out.setdefault(f"{b.container_port}/{b.proto}", []).append(
            {"HostIp": b.host_ip or "0.0.0.0", "HostPort": str(port)})
    return out
