"""IP address management for bridge networks: subnets from Docker's default pools, addresses within
them, persisted in ``metadata.db`` so nothing is handed out twice, also across daemon restarts.

A pool subnet is only taken when no route on the host overlaps it (``/proc/net/route``), so a
network never shadows a LAN, a VPN or another engine's bridge (dockyard and Docker can share a
machine). The gateway is the subnet's first address; container addresses follow it.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dockyard.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound

Net = ipaddress.IPv4Network | ipaddress.IPv6Network

# Docker's default-address-pools: 172.17.0.0/16 … 172.31.0.0/16, then 192.168.0.0/16 in /20s
DEFAULT_POOLS: list[tuple[str, int]] = [(f"172.{n}.0.0/16", 16) for n in range(17, 32)] + [("192.168.0.0/16", 20)]


def host_routes(path: Path = Path("/proc/net/route")) -> list[ipaddress.IPv4Network]:
    """The IPv4 destinations routed on the host (the default route excluded)."""
    out: list[ipaddress.IPv4Network] = []
    try:
        lines = path.read_text().splitlines()[1:]
    except OSError:
        return out
    for line in lines:
        fields = line.split()
        if len(fields) < 8 or fields[1] == "00000000":
            continue
        dest = socket.inet_ntoa(struct.pack("<I", int(fields[1], 16)))
        mask = socket.inet_ntoa(struct.pack("<I", int(fields[7], 16)))
        out.append(ipaddress.IPv4Network(f"{dest}/{mask}", strict=False))
    return out


def _subnet(text: str) -> Net:
    """A subnet as given; host bits set is Docker's "it should be ..." error."""
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        try:
            fixed = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise InvalidArgument(f"invalid subnet {text}: {exc}") from exc
        raise InvalidArgument(f"invalid subnet {text} : it should be {fixed}") from exc


def pool_subnets(pools: list[tuple[str, int]]) -> Iterator[ipaddress.IPv4Network]:
    for base, size in pools:
        net = ipaddress.IPv4Network(base)
        yield from net.subnets(new_prefix=size)


class IPAM:
    """Subnets and addresses per network, in the ``ipam_*`` tables of the metadata database."""

    def __init__(self, db: Any, pools: list[tuple[str, int]] | None = None,
                 routes: list[ipaddress.IPv4Network] | None = None) -> None:
        self.db = db
        self.pools = pools or DEFAULT_POOLS
        self._routes = routes

    def _taken(self) -> list[Net]:
        rows = self.db.query("SELECT subnet FROM ipam_subnets")
        return [ipaddress.ip_network(r["subnet"]) for r in rows]

    def allocate_subnet(self, network: str, subnet: str | None = None, gateway: str | None = None,
                        ip_range: str | None = None) -> tuple[str, str]:
        """(subnet, gateway) for a new network: the requested one, or the first free pool subnet."""
        taken = self._taken()
        net: Net | None
        routes = self._routes if self._routes is not None else host_routes()
        if subnet:
            net = _subnet(subnet)
            for other in taken:
                if other.version == net.version and other.overlaps(net):
                    raise AlreadyExists("Pool overlaps with other one on this address space")
        else:
            net = next((n for n in pool_subnets(self.pools)
                        if not any(n.overlaps(t) for t in taken if t.version == 4)
                        and not any(n.overlaps(r) for r in routes)), None)
            if net is None:
                raise FailedPrecondition("could not find an available, non-overlapping IPv4 address pool "
                                         "among the defaults to assign to the network")
        if ip_range:
            try:
                rng = ipaddress.ip_network(ip_range, strict=False)
            except ValueError as exc:
                raise InvalidArgument(f"invalid ip-range {ip_range}: {exc}") from exc
            if not rng.subnet_of(net):  # type: ignore[arg-type]
                raise InvalidArgument(f"ip-range {ip_range} is not within subnet {net}")
        gw = gateway or str(next(net.hosts()))
        if ipaddress.ip_address(gw) not in net:
            raise InvalidArgument(f"gateway {gw} is not within subnet {net}")
        with self.db.transaction() as conn:
            conn.execute("INSERT INTO ipam_subnets (network, subnet, gateway, ip_range) VALUES (?, ?, ?, ?)",
                         (network, str(net), gw, ip_range or ""))
        return str(net), gw

    def allocate_address(self, network: str, owner: str, requested: str | None = None,
                         reserved: set[str] | None = None) -> str:
        """A free address of the network's subnet (``--ip`` asks for one), never the gateway nor a
        ``reserved`` one (the network's AuxiliaryAddresses)."""
        row = self.db.query_one("SELECT subnet, gateway, ip_range FROM ipam_subnets WHERE network = ?",
                                (network,))
        if row is None:
            raise NotFound(f"network {network} has no address space")
        net = ipaddress.ip_network(row["subnet"])
        space = ipaddress.ip_network(row["ip_range"]) if row["ip_range"] else net
        with self.db.transaction() as conn:
            used = {r[0] for r in conn.execute("SELECT address FROM ipam_addresses WHERE network = ?",
                                               (network,))}
            used.add(row["gateway"])
            used |= reserved or set()
            if requested:
                addr = ipaddress.ip_address(requested)
                if addr not in net:
                    raise InvalidArgument(f"address {requested} is not within subnet {net}")
                if requested in used:
                    raise AlreadyExists(f"Address already in use: {requested}")
                choice = requested
            else:
                choice = next((str(a) for a in space.hosts() if str(a) not in used), "")
                if not choice:
                    raise FailedPrecondition(f"no available IP addresses on network {network}")
            conn.execute("INSERT INTO ipam_addresses (network, address, owner) VALUES (?, ?, ?)",
                         (network, choice, owner))
        return choice

    def release_address(self, network: str, address: str, owner: str) -> None:
        """Only the owner's: a late or repeated release never frees an address handed on since."""
        self.db.execute("DELETE FROM ipam_addresses WHERE network = ? AND address = ? AND owner = ?",
                        (network, address, owner))

    def release_network(self, network: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM ipam_addresses WHERE network = ?", (network,))
            conn.execute("DELETE FROM ipam_subnets WHERE network = ?", (network,))

    def addresses(self, network: str) -> dict[str, str]:
        """address → owner."""
        rows = self.db.query("SELECT address, owner FROM ipam_addresses WHERE network = ?", (network,))
        return {str(r["address"]): str(r["owner"]) for r in rows}
