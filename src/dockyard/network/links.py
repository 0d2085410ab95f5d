"""Bridges and veth pairs over netlink (pyroute2), in the host's and in containers' namespaces.

The daemon never forks into a namespace (DESIGN §2): to talk netlink inside a container's network
namespace, a short-lived thread ``setns``-es into it just long enough to open a netlink socket,
which stays bound to that namespace; pyroute2 then drives the socket from the event loop. The
container side of a veth pair is created straight into the namespace (``net_ns_fd``), so a pair
is never half-visible, and it vanishes with the namespace when the container's last process exits.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import secrets
import socket
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.errors import AlreadyExists, Internal, InvalidArgument, NotFound

CLONE_NEWNET = 0x40000000
IFA_F_NODAD = 0x02
VETH_PREFIX = "dyv"             # host ends of dockyard's veth pairs: dyv + 8 hex (cleanup finds them)


def _setns(fd: int) -> None:
    from dockyard.runtime.linux.syscalls import setns
    setns(fd, CLONE_NEWNET)


def netns_socket(ns_path: str, family: int = socket.AF_NETLINK, kind: int = socket.SOCK_DGRAM,
                 proto: int = 0) -> socket.socket:
    """A socket created inside the network namespace at ``ns_path`` (e.g. ``/proc/PID/ns/net``)."""
    result: dict[str, Any] = {}

    def enter() -> None:
        try:
            target = os.open(ns_path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            result["error"] = exc
            return
        own = -1
        try:
            own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            _setns(target)
            try:
                result["sock"] = socket.socket(family, kind, proto)
            finally:
                _setns(own)
        except Exception as exc:
            sock = result.pop("sock", None)
            if sock is not None:
                sock.close()   # an open socket would keep the namespace alive
            result["error"] = exc
        finally:
            os.close(target)
            if own >= 0:
                os.close(own)

    # a thread of its own: the namespace switch must never leak into a pooled worker
    t = threading.Thread(target=enter, name="netns-socket")
    t.start()
    t.join()
    if "error" in result:
        exc = result["error"]
        raise NotFound(f"network namespace {ns_path}: {exc}") from exc
    return result["sock"]


@contextlib.asynccontextmanager
async def rtnl(ns_path: str | None = None) -> AsyncIterator[Any]:
    """An rtnetlink handle in the host's namespace, or in the one at ``ns_path``."""
    from pyroute2 import AsyncIPRoute
    sock = netns_socket(ns_path, proto=0) if ns_path else None
    try:
        ipr = AsyncIPRoute(use_socket=sock) if sock is not None else AsyncIPRoute()
        async with ipr:
            yield ipr
    finally:
        if sock is not None:
            sock.close()  # an open socket would keep the namespace alive


def _nl_error(exc: Exception, what: str) -> Exception:
    code = getattr(exc, "code", None)
    if code == errno.EEXIST:
        return AlreadyExists(f"{what}: already exists")
    if code == errno.ENODEV:
        return NotFound(f"{what}: no such device")
    if code == errno.EINVAL:
        return InvalidArgument(f"{what}: invalid argument ({exc})")
    return Internal(f"{what}: {exc}")


async def _index(ipr: Any, name: str) -> int | None:
    found = await ipr.link_lookup(ifname=name)
    return int(found[0]) if found else None


def check_ifname(name: str) -> str:
    if not name or len(name) > 15 or any(c in name for c in "/ \t\n:") or name in (".", ".."):
        raise InvalidArgument(f"invalid interface name {name!r}: at most 15 characters, no '/', ':' "
                              "or spaces")
    return name


async def ensure_bridge(name: str, addresses: list[str], mtu: int = 0) -> None:
    """The bridge ``name`` up with ``addresses`` (CIDR, the networks' gateways); idempotent."""
    check_ifname(name)
    async with rtnl() as ipr:
        idx = await _index(ipr, name)
        if idx is not None:
            found = await ipr.link("get", index=idx)
            kind = found[0].get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") if found else None
            if kind != "bridge":
                raise InvalidArgument(f"device {name} exists and is not a bridge ({kind or 'no kind'})")
        if idx is None:
            try:
                await ipr.link("add", ifname=name, kind="bridge", **({"mtu": mtu} if mtu else {}))
            except Exception as exc:
                raise _nl_error(exc, f"create bridge {name}") from exc
            idx = await _index(ipr, name)
            if idx is None:
                raise Internal(f"bridge {name} vanished after creation")
        have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) async for a in await ipr.addr("dump", index=idx)}
        for cidr in addresses:
            iface = ipaddress.ip_interface(cidr)
            if (str(iface.ip), iface.network.prefixlen) in have:
                continue
            try:
                await ipr.addr("add", index=idx, address=str(iface.ip), prefixlen=iface.network.prefixlen)
            except Exception as exc:
                if getattr(exc, "code", None) != errno.EEXIST:
                    raise _nl_error(exc, f"address {cidr} on {name}") from exc
        await ipr.link("set", index=idx, state="up")
    # the kernel accepts loopback-sourced packets routed out of the bridge only with this set:
    # it is what lets the host reach a published port on 127.0.0.1 without a proxy process
    _sysctl(f"net/ipv4/conf/{name}/route_localnet", "1")


async def delete_link(name: str) -> None:
    """Remove a link of the host's namespace (a bridge, a veth end); absent is fine."""
    async with rtnl() as ipr:
        idx = await _index(ipr, name)
        if idx is not None:
            with contextlib.suppress(Exception):
                await ipr.link("del", index=idx)


async def link_exists(name: str) -> bool:
    async with rtnl() as ipr:
        return await _index(ipr, name) is not None


async def host_links(prefixes: tuple[str, ...]) -> list[str]:
    async with rtnl() as ipr:
        names = [link.get_attr("IFLA_IFNAME") async for link in await ipr.link("dump")]
    return [n for n in names if n and n.startswith(prefixes)]


@dataclass
class Endpoint:
    """One interface of a container: what to configure inside its namespace."""
    bridge: str
    ifname: str                                     # eth0, eth1, …
    mac: str
    addresses: list[str] = field(default_factory=list)   # CIDRs, v4 and v6
    gateway4: str = ""                              # default routes (empty: none, e.g. --internal)
    gateway6: str = ""
    mtu: int = 0
    host_ifname: str = ""                           # filled in by attach()


async def attach(ns_path: str, ep: Endpoint) -> str:
    """Create a veth pair between the bridge and the namespace and configure the inner end;
    returns the host end's name. On failure nothing is left behind."""
    host_if = VETH_PREFIX + secrets.token_hex(4)
    tmp_if = "dyc" + host_if[len(VETH_PREFIX):]    # unique in the namespace until renamed
    mtu = {"mtu": ep.mtu} if ep.mtu else {}
    ns_fd = os.open(ns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        async with rtnl() as ipr:
            br = await _index(ipr, ep.bridge)
            if br is None:
                raise NotFound(f"bridge {ep.bridge} does not exist")
            try:
                await ipr.link("add", ifname=host_if, kind="veth", **mtu,
                               peer={"ifname": tmp_if, "net_ns_fd": ns_fd, **mtu})
            except Exception as exc:
                raise _nl_error(exc, f"create veth pair for {ep.ifname}") from exc
            try:
                idx = await _index(ipr, host_if)
                await ipr.link("set", index=idx, master=br, state="up")
                await _configure_inner(ns_path, tmp_if, ep)
            except BaseException:
                with contextlib.suppress(Exception):
                    await ipr.link("del", ifname=host_if)
                raise
    finally:
        os.close(ns_fd)
    ep.host_ifname = host_if
    return host_if


async def _configure_inner(ns_path: str, tmp_if: str, ep: Endpoint) -> None:
    async with rtnl(ns_path) as ipr:
        idx = await _index(ipr, tmp_if)
        if idx is None:
            raise Internal(f"veth end {tmp_if} missing in {ns_path}")
        try:
            await ipr.link("set", index=idx, ifname=ep.ifname, address=ep.mac)
            for cidr in ep.addresses:
                iface = ipaddress.ip_interface(cidr)
                # IPv6 addresses are usable at once, not after duplicate address detection
                nodad = {"flags": IFA_F_NODAD} if iface.version == 6 else {}
                await ipr.addr("add", index=idx, address=str(iface.ip), prefixlen=iface.network.prefixlen,
                               **nodad)
            await ipr.link("set", index=idx, state="up")
            if ep.gateway4:
                await ipr.route("replace", dst="0.0.0.0/0", gateway=ep.gateway4)
            if ep.gateway6:
                await ipr.route("replace", dst="::/0", gateway=ep.gateway6, family=socket.AF_INET6)
        except Exception as exc:
            raise _nl_error(exc, f"configure {ep.ifname} in the container") from exc


async def detach(ns_path: str, ifname: str) -> None:
    """Remove a container's interface (``network disconnect`` of a running container)."""
    async with rtnl(ns_path) as ipr:
        idx = await _index(ipr, ifname)
        if idx is not None:
            await ipr.link("del", index=idx)


async def next_ifname(ns_path: str) -> str:
    """The first free ``ethN`` in a namespace."""
    async with rtnl(ns_path) as ipr:
        names = {link.get_attr("IFLA_IFNAME") async for link in await ipr.link("dump")}
    n = 0
    while f"eth{n}" in names:
        n += 1
    return f"eth{n}"


def _sysctl(key: str, value: str) -> None:
    try:
        Path("/proc/sys", key).write_text(value)
    except OSError as exc:
        raise Internal(f"sysctl {key.replace('/', '.')}={value}: {exc.strerror}") from exc


def enable_forwarding(ipv6: bool = False) -> None:
    """Routing between bridges and out of the host needs forwarding on (Docker sets it too)."""
    _sysctl("net/ipv4/ip_forward", "1")
    if ipv6:
        _sysctl("net/ipv6/conf/all/forwarding", "1")


def mac_for(ip: str) -> str:
    """Docker's MAC for an IPv4 address: 02:42 followed by the address's four bytes."""
    raw = ipaddress.IPv4Address(ip).packed
    return "02:42:" + ":".join(f"{b:02x}" for b in raw)
