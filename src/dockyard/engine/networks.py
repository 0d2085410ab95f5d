"""Networks: the records (``networks`` table), the built-in ``bridge``/``host``/``none``, and
create / inspect / list / remove / prune with Docker's rules and texts.

A bridge network owns an IPAM pool (``network/ipam``), a bridge device and its nftables rules
(``network/firewall``); creating one makes all three or none, removing one removes all three.
Which containers are attached lives in the container records (``EndpointSettings``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import secrets
from collections.abc import Callable

from dockyard.engine import records
from dockyard.engine.containers import now_rfc3339, parse_rfc3339
from dockyard.engine.filters import labels_match, until_match
from dockyard.engine.types import IPAMPool, NetworkCreateOptions, NetworkRecord
from dockyard.errors import (
    AlreadyExists,
    DockyardError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from dockyard.metadata import Database
from dockyard.network import links
from dockyard.network.firewall import Firewall, NetworkRules
from dockyard.network.ipam import IPAM

OPT_PREFIX = "com.docker.network."
OPT_BRIDGE_NAME = OPT_PREFIX + "bridge.name"
OPT_ICC = OPT_PREFIX + "bridge.enable_icc"
OPT_MASQ = OPT_PREFIX + "bridge.enable_ip_masquerade"
OPT_MTU = OPT_PREFIX + "driver.mtu"
ULA = "ula"                     # placeholder: --ipv6 without an IPv6 subnet gets ula_subnet()
BRIDGE_PREFIX = "dy-"           # user networks' bridges: dy-<id12> (Docker's are br-<id12>)


def _bool_opt(options: dict[str, str], key: str, default: bool) -> bool:
    value = options.get(key)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "t", "true"):
        return True
    if value.lower() in ("0", "f", "false"):
        return False
    raise InvalidArgument(f"invalid value {value!r} for option {key}: expected true or false")


def _mtu(options: dict[str, str]) -> int:
    value = options.get(OPT_MTU, "")
    if not value:
        return 0
    try:
        mtu = int(value)
    except ValueError:
        raise InvalidArgument(f"invalid MTU {value!r} in option {OPT_MTU}: not a number") from None
    if not 68 <= mtu <= 65535:
        raise InvalidArgument(f"invalid MTU {mtu} in option {OPT_MTU}: must be between 68 and 65535")
    return mtu


def ula_subnet(network_id: str) -> str:
    """An IPv6 /64 for ``--ipv6`` without ``--subnet``: a ULA (fd00::/8) derived from the id."""
    raw = bytes.fromhex(network_id[:14])
    return str(ipaddress.IPv6Network((b"\xfd" + raw[:7] + bytes(8), 64)))


class NetworkStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def all(self) -> list[NetworkRecord]:
        rows = self.db.query("SELECT record FROM networks ORDER BY created")
        return [records.loads(NetworkRecord, r["record"]) for r in rows]

    def insert(self, rec: NetworkRecord) -> None:
        try:
            self.db.execute("INSERT INTO networks (id, name, created, record) VALUES (?, ?, ?, ?)",
                            (rec.id, rec.name, parse_rfc3339(rec.created), records.dumps(rec)))
        except Exception as exc:
            if "UNIQUE" in str(exc):
                raise AlreadyExists(f"network with name {rec.name} already exists") from exc
            raise

    def delete(self, network_id: str) -> None:
        self.db.execute("DELETE FROM networks WHERE id = ?", (network_id,))

    def get(self, ref: str) -> NetworkRecord:
        """By full id, exact name, or unique id prefix (Docker's order)."""
        if not ref:
            raise NotFound("network  not found")
        row = self.db.query_one("SELECT record FROM networks WHERE id = ?", (ref,)) or \
            self.db.query_one("SELECT record FROM networks WHERE name = ?", (ref,))
        if row is None:
            rows = self.db.query("SELECT record FROM networks WHERE id LIKE ?", (ref.lower() + "%",))
            if len(rows) > 1:
                raise InvalidArgument(f"network {ref} is ambiguous ({len(rows)} matches found based on ID "
                                      "prefix)")
            row = rows[0] if rows else None
        if row is None:
            raise NotFound(f"network {ref} not found")
        return records.loads(NetworkRecord, row["record"])


class NetworkService:
    """Networks and their devices; ``in_use(id)`` tells which containers hold endpoints."""

    def __init__(self, db: Database, *, bridge_name: str, firewall: Firewall,
                 in_use: Callable[[str], list[str]], emit: Callable[[NetworkRecord, str, dict[str, str]], None],
                 ipam: IPAM | None = None) -> None:
        self.store = NetworkStore(db)
        self.ipam = ipam or IPAM(db)
        self.bridge_name = bridge_name
        self.firewall = firewall
        self.in_use = in_use
        self.emit = emit
        self._lock = asyncio.Lock()

    # -- start-up ---------------------------------------------------------------------------
    async def open(self) -> None:
        """The built-in networks exist, and every bridge network has its device and rules."""
        await asyncio.to_thread(self.firewall.ensure)
        names = {n.name for n in self.store.all()}
        if "bridge" not in names:
            opts = {OPT_PREFIX + "bridge.default_bridge": "true", OPT_ICC: "true", OPT_MASQ: "true",
                    OPT_PREFIX + "bridge.host_binding_ipv4": "0.0.0.0", OPT_BRIDGE_NAME: self.bridge_name,
                    OPT_MTU: "1500"}
            await self._create(NetworkCreateOptions(name="bridge", options=opts), builtin=True)
        for name, driver in (("host", "host"), ("none", "null")):
            if name not in names:
                self.store.insert(NetworkRecord(id=secrets.token_hex(32), name=name, driver=driver,
                                                created=now_rfc3339(), enable_ipv4=False))
        if any(n.enable_ipv6 for n in self.store.all()):
            links.enable_forwarding(ipv6=True)
        for rec in self.store.all():
            if rec.driver == "bridge":
                await self._plumb(rec)
        await self._collect()

    async def _collect(self) -> None:
        """What a crash in the middle of ``network rm`` or ``create`` left: rules of bridges no
        network has, and address pools of networks that do not exist."""
        known = {n.bridge for n in self.store.all() if n.bridge}
        for bridge in await asyncio.to_thread(self.firewall.bridges) - known:
            with contextlib.suppress(DockyardError):
                await asyncio.to_thread(self.firewall.remove_network, bridge)
        ids = {n.id for n in self.store.all()}
        for row in self.ipam.db.query("SELECT network FROM ipam_subnets"):
            if str(row["network"]).split("/")[0] not in ids:
                self.ipam.release_network(str(row["network"]))

    async def close(self, containers_running: bool) -> None:
        """Daemon stop: with no container left running nothing of ours stays on the host (bridges,
        rules); with running ones everything stays, for them and for the next daemon."""
        if containers_running:
            return
        for rec in self.store.all():
            if rec.bridge and rec.own_bridge:
                await links.delete_link(rec.bridge)
        await asyncio.to_thread(self.firewall.destroy)

    def gateway_ip(self) -> str:
        """The default bridge's gateway: what ``--add-host x:host-gateway`` resolves to."""
        try:
            rec = self.store.get("bridge")
        except NotFound:
            return ""
        pools = [p for p in rec.ipam_config if ipaddress.ip_network(p.subnet).version == 4]
        return pools[0].gateway if pools else ""

    # -- create -----------------------------------------------------------------------------
    async def create(self, opts: NetworkCreateOptions) -> tuple[str, str]:
        """(id, warning) of a new network."""
        if not opts.name:
            raise InvalidArgument("invalid name: name is empty")
        if opts.name in ("bridge", "host", "none", "default") or opts.driver in ("host", "null"):
            kind = opts.driver if opts.driver in ("host", "null") else opts.name
            raise PermissionDenied(f"{kind} is a pre-defined network and cannot be created"
                                   if opts.name in ("bridge", "host", "none", "default")
                                   else f"only one instance of \"{kind}\" network is allowed")
        if opts.driver != "bridge":
            raise NotFound(f"plugin \"{opts.driver}\" not found")
        if opts.ipam_driver not in ("", "default"):
            raise NotFound(f"plugin \"{opts.ipam_driver}\" not found")
        if opts.config_only or opts.config_from:
            raise InvalidArgument("config-only networks are not supported")
        async with self._lock:
            rec = await self._create(opts, builtin=False)
        return rec.id, ""

    async def _create(self, opts: NetworkCreateOptions, builtin: bool) -> NetworkRecord:
        if any(n.name == opts.name for n in self.store.all()):
            raise AlreadyExists(f"network with name {opts.name} already exists")
        nid = secrets.token_hex(32)
        options = dict(opts.options)
        bridge = links.check_ifname(options.get(OPT_BRIDGE_NAME) or BRIDGE_PREFIX + nid[:12])
        if any(n.bridge == bridge for n in self.store.all()):
            raise AlreadyExists(f"bridge name {bridge} is already used by another network")
        rec = NetworkRecord(id=nid, name=opts.name, driver="bridge", created=now_rfc3339(),
                            enable_ipv6=opts.enable_ipv6, internal=opts.internal,
                            attachable=opts.attachable, ingress=opts.ingress, labels=dict(opts.labels),
                            options=options, ipam_driver="default", ipam_options=dict(opts.ipam_options),
                            bridge=bridge, mtu=_mtu(options), icc=_bool_opt(options, OPT_ICC, True),
                            masquerade=_bool_opt(options, OPT_MASQ, True))
        rec.own_bridge = builtin or not await links.link_exists(bridge)
        pools = self._check_pools(opts.ipam_config, opts.enable_ipv6)
        allocated: list[str] = []
        inserted = False
        try:
            for pool in pools:
                wanted = ula_subnet(nid) if pool.subnet == ULA else pool.subnet
                version = ipaddress.ip_network(wanted).version if wanted else 4
                key = self.pool_key(nid, version)
                subnet, gateway = self.ipam.allocate_subnet(key, wanted or None, pool.gateway or None,
                                                            pool.ip_range or None)
                allocated.append(key)
                rec.ipam_config.append(IPAMPool(subnet=subnet, gateway=gateway, ip_range=pool.ip_range,
                                                aux_addresses=dict(pool.aux_addresses)))
            if opts.enable_ipv6:
                links.enable_forwarding(ipv6=True)
            # the record first: a daemon killed before the bridge exists makes it at the next
            # start (open plumbs every network); bridge first would leave a device no record owns
            self.store.insert(rec)
            inserted = True
            await self._plumb(rec)
        except BaseException:
            if inserted:
                self.store.delete(rec.id)
            for key in allocated:
                self.ipam.release_network(key)
            await self._unplumb(rec)
            raise
        if not builtin:
            self.emit(rec, "create", {})
        return rec

    @staticmethod
    def pool_key(network_id: str, version: int) -> str:
        return network_id if version == 4 else f"{network_id}/v6"

    def _check_pools(self, config: list[IPAMPool], ipv6: bool) -> list[IPAMPool]:
        pools: dict[int, IPAMPool] = {}
        for pool in config:
            if not pool.subnet:
                if pool.gateway or pool.ip_range:
                    raise InvalidArgument("ip-range and gateway need a subnet (--subnet)")
                continue
            try:
                version = ipaddress.ip_network(pool.subnet, strict=False).version
            except ValueError as exc:
                raise InvalidArgument(f"invalid subnet {pool.subnet}: {exc}") from exc
            if version in pools:
                raise InvalidArgument(f"only one IPv{version} subnet per network is supported "
                                      f"({pools[version].subnet}, {pool.subnet})")
            if version == 6 and not ipv6:
                raise InvalidArgument(f"IPv6 subnet {pool.subnet} given but IPv6 is not enabled "
                                      "(--ipv6)")
            pools[version] = pool
        out = [pools.get(4, IPAMPool())]
        if ipv6:
            out.append(pools.get(6) or IPAMPool(subnet=ULA))
        return out

    async def _plumb(self, rec: NetworkRecord) -> None:
        """The bridge device with its gateways, and the network's firewall rules."""
        gateways = [f"{p.gateway}/{ipaddress.ip_network(p.subnet).prefixlen}" for p in rec.ipam_config]
        if rec.enable_ipv6:
            gateways.append("fe80::1/64")
        await links.ensure_bridge(rec.bridge, gateways, rec.mtu)
        rules = NetworkRules(bridge=rec.bridge, subnets=tuple(p.subnet for p in rec.ipam_config),
                             masquerade=rec.masquerade, icc=rec.icc, internal=rec.internal)
        await asyncio.to_thread(self.firewall.add_network, rules)
        if not rec.internal:
            links.enable_forwarding()

    async def _unplumb(self, rec: NetworkRecord) -> None:
        if not rec.bridge:
            return
        with contextlib.suppress(DockyardError):
            await asyncio.to_thread(self.firewall.remove_network, rec.bridge)
        if rec.own_bridge:   # a bridge the user named and we found existing stays
            with contextlib.suppress(Exception):
                await links.delete_link(rec.bridge)

    # -- remove / prune ---------------------------------------------------------------------
    async def remove(self, ref: str) -> None:
        rec = self.store.get(ref)
        if rec.builtin:
            raise PermissionDenied(f"{rec.name} is a pre-defined network and cannot be removed")
        async with self._lock:
            users = self.in_use(rec.id)
            if users:
                raise PermissionDenied(f"error while removing network: network {rec.name} id {rec.id} "
                                       "has active endpoints")
            self.store.delete(rec.id)
            self.ipam.release_network(self.pool_key(rec.id, 4))
            self.ipam.release_network(self.pool_key(rec.id, 6))
            await self._unplumb(rec)   # best effort; open() collects what a failure leaves
        self.emit(rec, "destroy", {})

    async def prune(self, filters: dict[str, list[str]]) -> list[str]:
        removed = []
        for rec in self.store.all():
            if rec.builtin or self.in_use(rec.id) or not labels_match(rec.labels, filters):
                continue
            if not until_match(parse_rfc3339(rec.created), filters.get("until", [])):
                continue
            try:
                await self.remove(rec.id)
            except DockyardError:
                continue
            removed.append(rec.name)
        return removed

    # -- list -------------------------------------------------------------------------------
    def list(self, filters: dict[str, list[str]]) -> list[NetworkRecord]:
        bad = set(filters) - {"driver", "id", "label", "name", "scope", "type", "dangling"}
        if bad:
            raise InvalidArgument(f"invalid filter '{sorted(bad)[0]}'")
        out = []
        for rec in self.store.all():
            if "driver" in filters and rec.driver not in filters["driver"]:
                continue
            if "id" in filters and not any(rec.id.startswith(v) for v in filters["id"]):
                continue
            if "name" in filters and not any(v in rec.name for v in filters["name"]):
                continue
            if "scope" in filters and rec.scope not in filters["scope"]:
                continue
            if "type" in filters:
                kinds = set(filters["type"])
                if kinds - {"custom", "builtin"}:
                    raise InvalidArgument(f"invalid filter: 'type'='{sorted(kinds)[0]}'")
                if ("builtin" if rec.builtin else "custom") not in kinds:
                    continue
            if "dangling" in filters:
                want = filters["dangling"][0].lower() in ("1", "true")
                if want != (not rec.builtin and not self.in_use(rec.id)):
                    continue
            if not labels_match(rec.labels, filters):
                continue
            out.append(rec)
        return out
