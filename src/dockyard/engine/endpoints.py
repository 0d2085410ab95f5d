"""Containers on networks: endpoints chosen at create, addresses at start, interfaces, published
ports and the embedded DNS while running, all of it released when the container stops.

Order at start (``lifecycle``): ``prepare`` allocates addresses and writes /etc/hosts and
/etc/resolv.conf before the runtime runs; ``plumb`` wires the namespace of the created (not yet
started) init — veth pairs, port rules, DNS sockets — so the process starts with its network
ready. ``teardown`` undoes both, also for a start that failed half-way.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.engine.containers import ContainerStore
from dockyard.engine.create import atomic_write, hosts_file, resolv_conf
from dockyard.engine.networks import NetworkService
from dockyard.engine.ports import Reservation, mappings, parse_bindings, reserve, shown_ports
from dockyard.engine.types import ContainerRecord, EndpointSettings, HostConfig, NetworkRecord
from dockyard.errors import DockyardError, Internal, InvalidArgument, NotFound, PermissionDenied
from dockyard.network import links
from dockyard.network.dns import EmbeddedDNS

log = logging.getLogger(__name__)
DNS_ADDRESS = "127.0.0.11"
HOST_RESOLV = Path("/etc/resolv.conf")
BUILTIN_NETWORKS = ("bridge", "host", "none")
SHARED = "Container sharing network namespace with another container or host cannot be connected " \
         "to any other network"


def primary_network(host: HostConfig) -> str:
    mode = host.network_mode
    return "bridge" if mode in ("", "default") else mode


@dataclass
class _Live:
    """A running container's name records on one network (the DNS index)."""
    names: set[str] = field(default_factory=set)
    addresses: list[str] = field(default_factory=list)
    ptr: str = ""


class Endpoints:
    def __init__(self, networks: NetworkService, store: ContainerStore) -> None:
        self.networks = networks
        self.store = store
        self.dns = EmbeddedDNS(self._lookup, self._reverse, self._upstreams)
        self._ports: dict[str, Reservation] = {}
        self._dns_keys: dict[str, list[str]] = {}          # served containers → their --dns servers
        self._named: set[str] = set()                      # networks whose names resolve (user-defined)
        self._starting: dict[str, set[str]] = {}          # network id → containers between prepare and stop
        self._index: dict[str, dict[str, _Live]] = {}     # network id → container id → names

    # -- create -----------------------------------------------------------------------------
    def initial(self, host: HostConfig, requested: dict[str, EndpointSettings]) -> dict[str, EndpointSettings]:
        """The endpoints a new container gets: its NetworkMode's, plus others asked for in
        NetworkingConfig (API ≥ 1.44)."""
        mode = primary_network(host)
        if mode.startswith("container:"):
            if requested:
                raise InvalidArgument(SHARED)
            return {}
        net = self.networks.store.get(mode)
        # the docker CLI keys the primary endpoint by NetworkMode as typed ("default" included)
        primary = {mode, host.network_mode, net.id, net.name}
        extra = {k: v for k, v in requested.items() if k not in primary}
        if net.driver in ("host", "null") and extra:
            raise InvalidArgument(SHARED)
        first = next((requested[k] for k in primary if k in requested), EndpointSettings())
        out = {net.name: self._endpoint(net, first, host)}
        for ref, ep in extra.items():
            other = self.networks.store.get(ref)
            if other.driver in ("host", "null"):
                raise InvalidArgument(SHARED)
            out[other.name] = self._endpoint(other, ep, host)
        return out

    def _endpoint(self, net: NetworkRecord, ep: EndpointSettings, host: HostConfig) -> EndpointSettings:
        user_defined = net.driver == "bridge" and net.name != "bridge"
        if ep.ipv4_requested or ep.ipv6_requested:
            if not user_defined:
                raise InvalidArgument("user specified IP address is supported on user defined networks only")
            if not any(p.subnet for p in net.ipam_config if not net.builtin):
                raise InvalidArgument("user specified IP address is supported only when connecting to "
                                      "networks with user configured subnets")
            for addr in (ep.ipv4_requested, ep.ipv6_requested):
                if addr:
                    try:
                        ipaddress.ip_address(addr)
                    except ValueError:
                        raise InvalidArgument(f"invalid IP address: {addr}") from None
        if ep.aliases and not user_defined:
            raise InvalidArgument("network-scoped alias is supported only for containers in user "
                                  "defined networks")
        if host.links and user_defined and net.name == primary_network(host):
            ep.links = list(host.links)   # on user networks links are DNS aliases (Docker)
        return EndpointSettings(network_id=net.id, aliases=list(ep.aliases), links=list(ep.links),
                                ipv4_requested=ep.ipv4_requested, ipv6_requested=ep.ipv6_requested,
                                mac_requested=ep.mac_requested, driver_opts=dict(ep.driver_opts))

    # -- start ------------------------------------------------------------------------------
    def prepare(self, rec: ContainerRecord) -> None:
        """Addresses for the container's bridge endpoints, then /etc/hosts and /etc/resolv.conf."""
        try:
            for name, ep in rec.networks.items():
                net = self._network(name, ep)
                if net.driver == "bridge":
                    self._allocate(rec.id, net, ep)
                    self._starting.setdefault(net.id, set()).add(rec.id)
            self._write_files(rec)
        except BaseException:
            self._release(rec.id, rec.networks)
            self._unmark(rec.id)
            raise

    def _network(self, name: str, ep: EndpointSettings) -> NetworkRecord:
        try:
            return self.networks.store.get(ep.network_id or name)
        except NotFound:
            raise NotFound(f"network {name} not found") from None

    def _allocate(self, cid: str, net: NetworkRecord, ep: EndpointSettings) -> None:
        ipam, key = self.networks.ipam, self.networks.pool_key
        aux = {a for p in net.ipam_config for a in p.aux_addresses.values()}
        for pool in net.ipam_config:
            subnet = ipaddress.ip_network(pool.subnet)
            if subnet.version == 4:
                ep.ip_address = ipam.allocate_address(key(net.id, 4), cid, ep.ipv4_requested or None, aux)
                ep.prefix_len, ep.gateway = subnet.prefixlen, pool.gateway
            else:
                ep.ipv6_address = ipam.allocate_address(key(net.id, 6), cid, ep.ipv6_requested or None, aux)
                ep.ipv6_prefix_len, ep.ipv6_gateway = subnet.prefixlen, pool.gateway
        ep.mac_address = ep.mac_requested or (links.mac_for(ep.ip_address) if ep.ip_address
                                              else "02:42:" + ":".join(secrets.token_hex(4)[i:i + 2]
                                                                       for i in range(0, 8, 2)))
        ep.endpoint_id = secrets.token_hex(32)

    def _write_files(self, rec: ContainerRecord) -> None:
        """Written before every start (never fsynced: a power loss cannot leave a container to
        read a torn file, as the next start writes them again before it runs)."""
        host = rec.host_config
        mode = primary_network(host)
        if mode.startswith("container:"):   # the joined container's files, as Docker does
            target = self.store.get(mode.split(":", 1)[1])
            for src, dst in ((target.hosts_path, rec.hosts_path), (target.resolv_conf_path, rec.resolv_conf_path)):
                if src and dst:
                    atomic_write(Path(dst), Path(src).read_text(), durable=False)
            return
        own = [ep.ip_address for ep in rec.networks.values() if ep.ip_address][:1] + \
              [ep.ipv6_address for ep in rec.networks.values() if ep.ipv6_address][:1]
        hostname = rec.config.hostname + (f".{rec.config.domainname}" if rec.config.domainname else "")
        names = f"{hostname} {rec.config.hostname}" if rec.config.domainname else hostname
        link_lines = self._link_lines(rec) if mode == "bridge" else []
        if rec.hosts_path:
            atomic_write(Path(rec.hosts_path), hosts_file(names, host.extra_hosts, own or None,
                                                          self.networks.gateway_ip(), link_lines),
                         durable=False)
        if rec.resolv_conf_path:
            atomic_write(Path(rec.resolv_conf_path), self._resolv(rec), durable=False)

    def _link_lines(self, rec: ContainerRecord) -> list[str]:
        """``--link name:alias`` on the default bridge: the target's address under both names."""
        out = []
        for link in rec.host_config.links:
            target_ref, _, alias = link.lstrip("/").partition(":")
            alias = alias.rsplit("/", 1)[-1] or target_ref
            try:
                target = self.store.get(target_ref)
            except NotFound:
                raise InvalidArgument(f"could not get container for {target_ref}") from None
            ep = target.networks.get("bridge")
            if not target.state.running or ep is None or not ep.ip_address:
                raise InvalidArgument(f"Cannot link to a non running container: /{target.name} AS "
                                      f"/{rec.name}/{alias}")
            names = " ".join(dict.fromkeys([alias, target.id[:12], target.name]))
            out.append(f"{ep.ip_address}\t{names}")
        return out

    def _resolv(self, rec: ContainerRecord) -> str:
        host = rec.host_config
        if not self._embedded_dns(rec):
            return resolv_conf(HOST_RESOLV, host.dns, host.dns_search, host.dns_options)
        # the embedded server answers for the network and forwards the rest to the real servers
        base = resolv_conf(HOST_RESOLV, [], host.dns_search, host.dns_options)
        lines = [f"nameserver {DNS_ADDRESS}"] + [ln for ln in base.splitlines()
                                                 if ln.split()[:1] != ["nameserver"]]
        if not host.dns_options:
            lines = [ln for ln in lines if ln.split()[:1] != ["options"]] + ["options ndots:0"]
        return "\n".join(lines) + "\n"

    def _embedded_dns(self, rec: ContainerRecord) -> bool:
        nets = [self._maybe(n, ep) for n, ep in rec.networks.items()]
        return any(n is not None and n.driver == "bridge" and not n.builtin for n in nets)

    def _maybe(self, name: str, ep: EndpointSettings) -> NetworkRecord | None:
        try:
            return self._network(name, ep)
        except NotFound:
            return None

    async def plumb(self, rec: ContainerRecord, pid: int) -> None:
        """Interfaces, published ports and DNS in the namespace of the created init ``pid``."""
        try:
            await self._plumb(rec, pid)
        except OSError as exc:   # a dead init, a port 53 the image already uses, …
            raise Internal(f"failed to set up the network of container {rec.id[:12]}: {exc}") from exc

    async def _plumb(self, rec: ContainerRecord, pid: int) -> None:
        ns = f"/proc/{pid}/ns/net"
        bridged = [(n, ep, self._network(n, ep)) for n, ep in rec.networks.items()]
        bridged = [(n, ep, net) for n, ep, net in bridged if net.driver == "bridge"]
        if not bridged:
            return
        route_set = False
        for i, (_, ep, net) in enumerate(bridged):
            gateway = not net.internal and not route_set
            route_set = route_set or gateway
            cidrs = ([f"{ep.ip_address}/{ep.prefix_len}"] if ep.ip_address else []) + \
                    ([f"{ep.ipv6_address}/{ep.ipv6_prefix_len}"] if ep.ipv6_address else [])
            spec = links.Endpoint(bridge=net.bridge, ifname=f"eth{i}", mac=ep.mac_address, addresses=cidrs,
                                  gateway4=ep.gateway if gateway else "",
                                  gateway6=ep.ipv6_gateway if gateway else "", mtu=net.mtu)
            ep.host_ifname = await links.attach(ns, spec)
            ep.ifname = spec.ifname
        _, first, first_net = bridged[0]
        await self._publish(rec, first, first_net, restore=False)
        if self._embedded_dns(rec):
            await self._serve_dns(rec, ns)
        self._index_add(rec)

    async def _publish(self, rec: ContainerRecord, ep: EndpointSettings, net: NetworkRecord,
                       restore: bool) -> None:
        host = rec.host_config
        if restore:  # the ports it had: the same numbers again
            bindings = parse_bindings({k: [{"HostIp": b["HostIp"] if b["HostIp"] not in ("0.0.0.0",) else "",
                                            "HostPort": b["HostPort"]} for b in v]
                                       for k, v in rec.ports.items()}, False, {})
        else:
            bindings = parse_bindings(host.port_bindings, host.publish_all_ports, rec.config.exposed_ports)
        if not bindings or not ep.ip_address:
            return
        res, chosen = reserve(bindings, f"{rec.name} ({ep.endpoint_id[:12]})")
        try:   # also on restore: rules flushed while the daemon was away come back
            await asyncio.to_thread(self.networks.firewall.add_ports, rec.id,
                                    mappings(chosen, ep.ip_address, net.bridge))
        except BaseException:
            res.close()
            raise
        self._ports[rec.id] = res
        rec.ports = shown_ports(chosen)

    async def _serve_dns(self, rec: ContainerRecord, ns: str) -> None:
        cid = rec.id
        udp = links.netns_socket(ns, socket.AF_INET, socket.SOCK_DGRAM)
        tcp = links.netns_socket(ns, socket.AF_INET, socket.SOCK_STREAM)
        try:
            udp.bind((DNS_ADDRESS, 53))
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((DNS_ADDRESS, 53))
            tcp.listen(64)
        except OSError:
            udp.close()
            tcp.close()
            raise
        await self.dns.add(cid, udp, tcp)
        self._dns_keys[cid] = list(rec.host_config.dns)

    # -- stop -------------------------------------------------------------------------------
    async def teardown(self, rec: ContainerRecord) -> None:
        """Everything ``prepare``/``plumb`` made, gone; safe to call twice and after a crash."""
        if rec.id in self._dns_keys:
            self._dns_keys.pop(rec.id, None)
            with contextlib.suppress(Exception):
                await self.dns.remove(rec.id)
        res = self._ports.pop(rec.id, None)
        if res is not None:
            res.close()
        host = rec.host_config
        # only a container with ports to publish can have rules (``_publish``): the others skip
        # running nft on every exit
        if res is not None or rec.ports or host.port_bindings or host.publish_all_ports:
            with contextlib.suppress(DockyardError):
                await asyncio.to_thread(self.networks.firewall.remove_ports, rec.id)
        self._index_remove(rec.id)
        self._unmark(rec.id)
        for ep in rec.networks.values():
            if ep.host_ifname:  # gone with the namespace anyway; do not wait for that
                with contextlib.suppress(Exception):
                    await links.delete_link(ep.host_ifname)
        self._release(rec.id, rec.networks)
        rec.ports = {}

    def _release(self, cid: str, endpoints: dict[str, EndpointSettings]) -> None:
        for name, ep in endpoints.items():
            net = self._maybe(name, ep)
            if net is not None:
                for addr, version in ((ep.ip_address, 4), (ep.ipv6_address, 6)):
                    if addr:
                        self.networks.ipam.release_address(self.networks.pool_key(net.id, version), addr, cid)
            _clear(ep)

    # -- connect / disconnect ---------------------------------------------------------------
    async def connect(self, rec: ContainerRecord, net: NetworkRecord, ep: EndpointSettings) -> None:
        """Attach ``rec`` (running: at once; stopped: from its next start) and record it."""
        mode = primary_network(rec.host_config)
        if mode in ("host", "none") or mode.startswith("container:") or net.driver in ("host", "null"):
            raise InvalidArgument(SHARED)
        if net.name in rec.networks:
            raise PermissionDenied(f"endpoint with name {rec.name} already exists in network {net.name}")
        new = self._endpoint(net, ep, rec.host_config)
        if not (rec.state.running and rec.state.pid):
            rec.networks[net.name] = new
            return
        ns = f"/proc/{rec.state.pid}/ns/net"
        self._allocate(rec.id, net, new)
        self._starting.setdefault(net.id, set()).add(rec.id)
        try:
            spec = links.Endpoint(bridge=net.bridge, ifname=await links.next_ifname(ns), mac=new.mac_address,
                                  mtu=net.mtu, addresses=[f"{new.ip_address}/{new.prefix_len}"] +
                                  ([f"{new.ipv6_address}/{new.ipv6_prefix_len}"] if new.ipv6_address else []))
            new.host_ifname = await links.attach(ns, spec)
            new.ifname = spec.ifname
            rec.networks[net.name] = new
            if rec.id not in self._dns_keys and self._embedded_dns(rec):
                await self._serve_dns(rec, ns)
                # first user-defined network (it ran on the default bridge): its resolver becomes
                # the embedded server, as Docker rebuilds resolv.conf on such a connect
                self._rewrite_resolv(rec)
        except BaseException:
            rec.networks.pop(net.name, None)
            if new.host_ifname:
                with contextlib.suppress(Exception):
                    await links.delete_link(new.host_ifname)
            self._release(rec.id, {net.name: new})
            self._starting.get(net.id, set()).discard(rec.id)
            raise
        self._index_add(rec)

    def _rewrite_resolv(self, rec: ContainerRecord) -> None:
        """In place, not by rename: the running container's /etc/resolv.conf is a bind mount of
        this very inode."""
        if rec.resolv_conf_path:
            with open(rec.resolv_conf_path, "w") as f:
                f.write(self._resolv(rec))

    async def disconnect(self, rec: ContainerRecord, net: NetworkRecord) -> None:
        ep = rec.networks.get(net.name)
        if ep is None:
            raise PermissionDenied(f"container {rec.id} is not connected to network {net.name}")
        if rec.state.running and rec.state.pid and ep.ifname:
            with contextlib.suppress(Exception):
                await links.detach(f"/proc/{rec.state.pid}/ns/net", ep.ifname)
        if rec.ports and ep.ip_address and self._published_via(rec) is ep:
            # the published ports point at the address going away: they go with it
            res = self._ports.pop(rec.id, None)
            if res is not None:
                res.close()
            with contextlib.suppress(DockyardError):
                await asyncio.to_thread(self.networks.firewall.remove_ports, rec.id)
            rec.ports = {}
        self._release(rec.id, {net.name: ep})
        del rec.networks[net.name]
        self._starting.get(net.id, set()).discard(rec.id)
        self._index_remove(rec.id)
        if rec.state.running:
            self._index_add(rec)

    def _published_via(self, rec: ContainerRecord) -> EndpointSettings | None:
        """The endpoint published ports lead to: the first one on a bridge network."""
        for name, ep in rec.networks.items():
            net = self._maybe(name, ep)
            if net is not None and net.driver == "bridge":
                return ep
        return None

    # -- daemon restart ---------------------------------------------------------------------
    async def restore_one(self, rec: ContainerRecord) -> None:
        """A container found running after a restart: its ports held (and their rules back), its
        DNS served, its names indexed. Called before its exit can be handled."""
        if not any(ep.ip_address or ep.ipv6_address for ep in rec.networks.values()):
            return
        first = self._published_via(rec)
        if first is not None and rec.ports:
            with contextlib.suppress(DockyardError, OSError):
                name = next(n for n, e in rec.networks.items() if e is first)
                await self._publish(rec, first, self._network(name, first), restore=True)
        if self._embedded_dns(rec) and rec.state.pid:
            with contextlib.suppress(DockyardError, OSError):
                await self._serve_dns(rec, f"/proc/{rec.state.pid}/ns/net")
        self._index_add(rec)

    async def collect(self, busy: Callable[[str], bool]) -> None:
        """After a restart: port rules and addresses whose container is not running (and is not
        being started right now, ``busy``) are released; rule chains of deleted networks go."""
        def idle(cid: str) -> bool:
            try:
                rec = self.store.get(cid)
            except NotFound:
                return True
            return not rec.state.running and rec.state.status != "restarting" and not busy(rec.id)
        fw = self.networks.firewall
        for owner in await asyncio.to_thread(fw.owners):
            if idle(owner):
                with contextlib.suppress(DockyardError):
                    await asyncio.to_thread(fw.remove_ports, owner)
        ipam = self.networks.ipam
        for net in self.networks.store.all():
            for version in (4, 6):
                key = self.networks.pool_key(net.id, version)
                for addr, owner in ipam.addresses(key).items():
                    if idle(owner):
                        ipam.release_address(key, addr, owner)

    async def close(self) -> None:
        await self.dns.close()
        self._dns_keys.clear()
        for res in self._ports.values():
            res.close()
        self._ports.clear()

    def users(self, network_id: str) -> list[str]:
        """Containers with a live endpoint on the network, or being wired to it."""
        return list(dict.fromkeys([*self._index.get(network_id, {}), *self._starting.get(network_id, ())]))

    def _unmark(self, cid: str) -> None:
        for members in self._starting.values():
            members.discard(cid)

    # -- the DNS index ----------------------------------------------------------------------
    def refresh(self, rec: ContainerRecord) -> None:
        """Re-register a running container's names (after a rename)."""
        self._index_remove(rec.id)
        self._index_add(rec)

    def _index_add(self, rec: ContainerRecord) -> None:
        for name, ep in rec.networks.items():
            addrs = [a for a in (ep.ip_address, ep.ipv6_address) if a]
            if not ep.network_id or not addrs:
                continue
            names = {rec.name, rec.id[:12], rec.id, *ep.aliases}
            names |= {f"{n}.{name}" for n in list(names)}
            names |= {link.partition(":")[2] or link.partition(":")[0] for link in ep.links}
            if name not in BUILTIN_NETWORKS:
                self._named.add(ep.network_id)
            self._index.setdefault(ep.network_id, {})[rec.id] = _Live(
                names={n.lower() for n in names if n}, addresses=addrs, ptr=f"{rec.name}.{name}")

    def _index_remove(self, cid: str) -> None:
        for members in self._index.values():
            members.pop(cid, None)

    def _lookup(self, cid: str, name: str) -> list[str] | None:
        found: list[str] = []
        known = False
        for net_id, members in self._index.items():
            if cid not in members or net_id not in self._named:
                continue
            for member in members.values():
                if name in member.names:
                    known = True
                    found += member.addresses
        return found if known else None

    def _reverse(self, cid: str, address: str) -> str | None:
        for members in self._index.values():
            if cid in members:
                for member in members.values():
                    if address in member.addresses:
                        return member.ptr
        return None

    def _upstreams(self, cid: str) -> list[tuple[str, int]]:
        dns = self._dns_keys.get(cid, [])
        if not dns:   # read each time: the host's resolvers may change while containers run
            with contextlib.suppress(OSError):
                dns = [ln.split()[1] for ln in HOST_RESOLV.read_text().splitlines()
                       if ln.split()[:1] == ["nameserver"] and len(ln.split()) > 1]
        return [(d, 53) for d in dns]


def _clear(ep: EndpointSettings) -> None:
    ep.endpoint_id = ep.mac_address = ep.ip_address = ep.gateway = ""
    ep.ipv6_address = ep.ipv6_gateway = ep.ifname = ep.host_ifname = ""
    ep.prefix_len = ep.ipv6_prefix_len = 0
