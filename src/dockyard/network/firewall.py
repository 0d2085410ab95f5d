"""The nftables side of bridge networking: masquerade, isolation and published ports, in ONE table of
dockyard's own (``table inet dockyard``); nothing is written to any other table, and no iptables.

Every change is one ``nft -f -`` script, which nftables applies as one atomic transaction: a change
is all or nothing, and packets see either the old rules or the new ones. Layout::

    set   bridges     ifnames of the networks' bridges (for isolation between them)
    map   fwd-jumps   ifname : jump fwd/<bridge>     (filter)
    map   nat-jumps   ifname : jump nat/<bridge>     (nat)
    chain forward     hook forward:     iifname vmap @fwd-jumps; oifname vmap @fwd-jumps
    chain postrouting hook postrouting: iifname vmap @nat-jumps; oifname vmap @nat-jumps
    chain prerouting  hook prerouting:  fib daddr type local jump portmaps
    chain output      hook output:      fib daddr type local jump portmaps
    chain portmaps    one ``jump ports/<owner>/<bridge>`` per owner chain
    chain fwd/<bridge>, nat/<bridge>      a network's rules
    chain ports/<owner>/<bridge>          an owner's DNAT rules towards one bridge

A network's chains are reached through verdict maps keyed by interface name, so adding or removing a
network is "chains + map elements" and the base chains never change; its rules name ``iifname`` /
``oifname`` explicitly, so being reached twice (in and out of the same bridge) is harmless.
DNAT cannot be keyed like that (two owners may share a port on different host addresses), so the
owners' chains hang off ``portmaps``, which every ports change rewrites whole from the chain list
(no rule handles to track, and it repairs itself). Names carry the state: ``bridges()`` and
``owners()`` read the chain names back, which is what a restarted daemon needs for clean-up.

nft 1.0.6 takes no quoted chain names, so names are bare identifiers (letters, digits, ``/-_.``);
bridge names and owners are validated to that alphabet, and "/" (never in an ifname) separates parts.

Masquerade is keyed on the bridge the packet came in by (plus the source subnet), so host-originated
packets bound to a gateway address are not masqueraded. IPv6 loopback (``::1``) cannot be DNATed to
a container (the kernel has no ``route_localnet`` for IPv6); Docker uses its userland proxy there.
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import threading
from dataclasses import dataclass, field

from dockyard.errors import Internal, InvalidArgument, PermissionDenied, Unavailable

_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_TABLE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_PROTOS = ("tcp", "udp", "sctp")
_WILDCARD = ("", "0.0.0.0", "::")
# read-modify-write of portmaps (list chains, then rewrite) must not interleave between threads
_LOCK = threading.Lock()


@dataclass(frozen=True)
class NetworkRules:
    bridge: str                 # bridge device name, e.g. "dy0" or "br-1a2b3c4d5e6f"
    subnets: tuple[str, ...]    # IPv4 and/or IPv6 CIDRs of the network
    masquerade: bool = True     # com.docker.network.bridge.enable_ip_masquerade
    icc: bool = True            # com.docker.network.bridge.enable_icc
    internal: bool = False      # --internal: no traffic in or out except among its containers


@dataclass(frozen=True)
class PortMapping:
    proto: str                  # "tcp" | "udp" | "sctp"
    host_ip: str                # "" / "0.0.0.0" / "::" = every host address of the container's family
    host_port: int              # first host port
    container_ip: str           # v4 or v6; the mapping's family
    container_port: int         # first container port
    count: int = 1              # host_port..+count-1 -> container_port..+count-1, one rule
    bridge: str = field(kw_only=True)  # the container's bridge


def _check_bridge(name: str, field: str = "bridge") -> str:
    # IFNAMSIZ is 16 with the NUL; the alphabet keeps it a bare nft identifier and a quotable string
    if not isinstance(name, str) or len(name) > 15 or not _NAME.fullmatch(name) or name in (".", ".."):
        raise InvalidArgument(f"{field}: invalid bridge name {name!r} (1-15 of A-Z a-z 0-9 _ . -)")
    return name


def _check_owner(owner: str) -> str:
    if not isinstance(owner, str) or len(owner) > 128 or not _NAME.fullmatch(owner):
        raise InvalidArgument(f"owner: invalid owner {owner!r} (1-128 of A-Z a-z 0-9 _ . -)")
    return owner


def _check_port(value: int, count: int, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise InvalidArgument(f"{field}: port {value!r} out of range 1-65535")
    if value + count - 1 > 65535:
        raise InvalidArgument(f"{field}: range {value}-{value + count - 1} goes past 65535")


def _check_mapping(m: PortMapping) -> None:
    if m.proto not in _PROTOS:
        raise InvalidArgument(f"proto: unsupported protocol {m.proto!r} (tcp, udp or sctp)")
    if isinstance(m.count, bool) or not isinstance(m.count, int) or m.count < 1:
        raise InvalidArgument(f"count: {m.count!r} must be at least 1")
    _check_port(m.host_port, m.count, "host_port")
    _check_port(m.container_port, m.count, "container_port")
    try:
        cip = ipaddress.ip_address(m.container_ip)
    except ValueError as exc:
        raise InvalidArgument(f"container_ip: invalid address {m.container_ip!r}") from exc
    if cip.is_unspecified or cip.is_multicast:
        raise InvalidArgument(f"container_ip: {m.container_ip} is not a unicast address")
    if m.host_ip not in _WILDCARD:
        try:
            hip = ipaddress.ip_address(m.host_ip)
        except ValueError as exc:
            raise InvalidArgument(f"host_ip: invalid address {m.host_ip!r}") from exc
        if hip.version != cip.version:  # DNAT cannot translate between families
            raise InvalidArgument(f"host_ip: {m.host_ip} and container_ip {m.container_ip} "
                                  "are of different IP families")
    _check_bridge(m.bridge)


def _port_rule(m: PortMapping) -> str:
    """One DNAT rule for a (validated) mapping, ranges included."""
    cip = ipaddress.ip_address(m.container_ip)
    fam = "ip" if cip.version == 4 else "ip6"
    where = f"meta nfproto ipv{cip.version}" if m.host_ip in _WILDCARD else \
        f"{fam} daddr {ipaddress.ip_address(m.host_ip)}"
    target = str(cip) if cip.version == 4 else f"[{cip}]"
    if m.count == 1:
        return f"{where} {m.proto} dport {m.host_port} dnat {fam} to {target}:{m.container_port}"
    dport = f"{m.proto} dport {m.host_port}-{m.host_port + m.count - 1}"
    if m.host_port == m.container_port:  # no port given: NAT keeps it
        return f"{where} {dport} dnat {fam} to {cip}"
    pairs = ", ".join(f"{m.host_port + i} : {m.container_port + i}" for i in range(m.count))
    return f"{where} {dport} dnat {fam} to {target}:{m.proto} dport map {{ {pairs} }}"


def _network_rules(r: NetworkRules) -> tuple[list[str], list[str]]:
    """(fwd chain rules, nat chain rules) of a network."""
    br = f'"{r.bridge}"'
    fwd: list[str] = []
    if r.internal:
        fwd += [f"iifname {br} oifname != {br} drop", f"oifname {br} iifname != {br} drop"]
    else:  # isolation: no forwarding between two dockyard bridges, either way
        fwd += [f"iifname {br} oifname != {br} oifname @bridges drop",
                f"oifname {br} iifname != {br} iifname @bridges drop"]
    if not r.icc:  # bridged traffic reaches here through br_netfilter; hairpin to a published port stays
        fwd += [f"iifname {br} oifname {br} ct status dnat accept", f"iifname {br} oifname {br} drop"]
    fwd += [f"oifname {br} ct state established,related accept",
            f"oifname {br} ct status dnat accept"]  # published ports
    nat: list[str] = []
    if r.masquerade and not r.internal:
        for version, fam in ((4, "ip"), (6, "ip6")):
            nets = [str(n) for n in (ipaddress.ip_network(s) for s in r.subnets) if n.version == version]
            if nets:
                nat.append(f"iifname {br} oifname != {br} {fam} saddr {{ {', '.join(nets)} }} masquerade")
    # the host's own connections to 127.0.0.1:<published> leave by the bridge with a loopback source
    # (allowed by route_localnet); the container must see one it can answer
    nat.append(f"oifname {br} ip saddr 127.0.0.0/8 masquerade")
    # hairpin: a container reaching a published port on its own bridge must get the reply via us
    nat.append(f"iifname {br} oifname {br} ct status dnat masquerade")
    return fwd, nat


class Firewall:
    """dockyard's nftables table; every method is synchronous (run it in a worker thread)."""

    def __init__(self, table: str = "dockyard", nft: str = "nft") -> None:
        if not _TABLE.fullmatch(table):
            raise InvalidArgument(f"table: invalid nftables table name {table!r}")
        self.table = table
        self.nft = nft
        self._t = f"inet {table}"

    # -- public -----------------------------------------------------------------------------
    def ensure(self) -> None:
        """The table, its maps and base chains; idempotent (one nft run, repairs a damaged table)."""
        with _LOCK:
            self._apply(self._base())

    def add_network(self, rules: NetworkRules) -> None:
        """Install (or replace) the rules of ``rules.bridge``."""
        br = _check_bridge(rules.bridge)
        for s in rules.subnets:
            try:
                ipaddress.ip_network(s)
            except ValueError as exc:
                raise InvalidArgument(f"subnets: invalid subnet {s!r}") from exc
        fwd, nat = _network_rules(rules)
        t = self._t
        lines = self._base()
        for chain, body in ((f"fwd/{br}", fwd), (f"nat/{br}", nat)):
            lines += [f"add chain {t} {chain}", f"flush chain {t} {chain}"]
            lines += [f"add rule {t} {chain} {rule}" for rule in body]
        lines += [f'add element {t} fwd-jumps {{ "{br}" : jump fwd/{br} }}',
                  f'add element {t} nat-jumps {{ "{br}" : jump nat/{br} }}',
                  f'add element {t} bridges {{ "{br}" }}']
        with _LOCK:
            self._apply(lines)

    def remove_network(self, bridge: str) -> None:
        """Remove the network's rules and every port rule towards its bridge; absent is fine."""
        br = _check_bridge(bridge)
        t = self._t
        with _LOCK:
            chains = self._chains()
            if chains is None:
                return
            gone = {c for c in chains if (_port_chain(c) or ("", ""))[1] == br}
            lines = self._base() + self._portmaps(chains - gone) + [f"delete chain {t} {c}" for c in gone]
            # add-then-delete: deleting what may be absent, without an error (nft 1.0.6 has no destroy)
            lines += [f"add chain {t} fwd/{br}", f"add chain {t} nat/{br}",
                      f'add element {t} fwd-jumps {{ "{br}" : jump fwd/{br} }}',
                      f'add element {t} nat-jumps {{ "{br}" : jump nat/{br} }}',
                      f'add element {t} bridges {{ "{br}" }}',
                      f'delete element {t} fwd-jumps {{ "{br}" }}',
                      f'delete element {t} nat-jumps {{ "{br}" }}',
                      f'delete element {t} bridges {{ "{br}" }}',
                      f"flush chain {t} fwd/{br}", f"delete chain {t} fwd/{br}",
                      f"flush chain {t} nat/{br}", f"delete chain {t} nat/{br}"]
            self._apply(lines)

    def add_ports(self, owner: str, maps: list[PortMapping]) -> None:
        """Publish ``maps`` for ``owner``, replacing its previous mappings; all or nothing."""
        _check_owner(owner)
        for i, m in enumerate(maps):
            try:
                _check_mapping(m)
            except InvalidArgument as exc:
                raise InvalidArgument(f"port mapping {i}: {exc}") from exc
        by_chain: dict[str, list[str]] = {}
        # a specific host address before "every address", so it wins when both match
        for m in sorted(maps, key=lambda m: m.host_ip in _WILDCARD):
            by_chain.setdefault(f"ports/{owner}/{m.bridge}", []).append(_port_rule(m))
        t = self._t
        with _LOCK:
            chains = self._chains() or set()
            old = {c for c in chains if (_port_chain(c) or ("", ""))[0] == owner}
            lines = self._base()
            for chain, rules in by_chain.items():  # chains first: a jump needs its target
                lines += [f"add chain {t} {chain}", f"flush chain {t} {chain}"]
                lines += [f"add rule {t} {chain} {rule}" for rule in rules]
            lines += self._portmaps((chains - old) | set(by_chain))
            lines += [f"delete chain {t} {c}" for c in old - set(by_chain)]  # unreferenced by now
            self._apply(lines)

    def remove_ports(self, owner: str) -> None:
        """Remove every port rule of ``owner``; absent is fine."""
        if _check_owner(owner) in self.owners():
            self.add_ports(owner, [])

    def owners(self) -> set[str]:
        """Owners with port rules (a restarted daemon removes those of containers that are gone)."""
        return {p[0] for c in (self._chains() or ()) if (p := _port_chain(c)) is not None}

    def bridges(self) -> set[str]:
        """Bridges with network rules."""
        return {c[4:] for c in (self._chains() or ()) if c.startswith("fwd/")}

    def destroy(self) -> None:
        """Delete the whole table; absent is fine."""
        with _LOCK:
            self._apply([f"add table {self._t}", f"delete table {self._t}"])

    # -- internals --------------------------------------------------------------------------
    def _base(self) -> list[str]:
        """Script lines that create what is missing and reset the base chains' fixed rules."""
        t = self._t
        lines = [f"add table {t}",
                 f"add set {t} bridges {{ type ifname; }}",
                 f"add map {t} fwd-jumps {{ type ifname : verdict; }}",
                 f"add map {t} nat-jumps {{ type ifname : verdict; }}",
                 f"add chain {t} portmaps"]
        base = {
            "forward": ("filter hook forward priority filter",
                        ["iifname vmap @fwd-jumps", "oifname vmap @fwd-jumps"]),
            "prerouting": ("nat hook prerouting priority dstnat", ["fib daddr type local jump portmaps"]),
            "output": ("nat hook output priority -100", ["fib daddr type local jump portmaps"]),
            "postrouting": ("nat hook postrouting priority srcnat",
                            ["iifname vmap @nat-jumps", "oifname vmap @nat-jumps"]),
        }
        for name, (hook, rules) in base.items():
            lines += [f"add chain {t} {name} {{ type {hook}; policy accept; }}", f"flush chain {t} {name}"]
            lines += [f"add rule {t} {name} {rule}" for rule in rules]
        return lines

    def _portmaps(self, chains: set[str]) -> list[str]:
        """Rewrite ``portmaps`` to jump to exactly the given owner chains."""
        t = self._t
        owned = sorted(c for c in chains if _port_chain(c) is not None)
        return [f"flush chain {t} portmaps"] + [f"add rule {t} portmaps jump {c}" for c in owned]

    def _chains(self) -> set[str] | None:
        """Names of the table's chains; None when the table does not exist."""
        out = self._run(["-j", "list", "chains", "inet"], None)
        try:
            items = json.loads(out)["nftables"]
            chains = {i["chain"]["name"] for i in items
                      if "chain" in i and i["chain"]["table"] == self.table and i["chain"]["family"] == "inet"}
        except (ValueError, KeyError, TypeError) as exc:
            raise Internal(f"nft: unexpected JSON from 'list chains': {exc}") from exc
        return chains or None  # the table always has its base chains

    def _apply(self, lines: list[str]) -> None:
        """Run a script as one transaction."""
        self._run(["-f", "-"], "\n".join(lines) + "\n")

    def _run(self, args: list[str], script: str | None) -> str:
        try:
            res = subprocess.run([self.nft, *args], input=script, capture_output=True, text=True,
                                 check=True, timeout=60)
        except FileNotFoundError as exc:
            raise Unavailable(f"nftables: {self.nft} not found (install the nftables package)") from exc
        except subprocess.TimeoutExpired as exc:
            raise Unavailable(f"nftables: {self.nft} {' '.join(args)} timed out") from exc
        except subprocess.CalledProcessError as exc:
            err = (exc.stderr or "").strip()[-4000:]
            if "Operation not permitted" in err:
                raise PermissionDenied(f"nftables: {err}") from exc
            raise Internal(f"nftables: {self.nft} {' '.join(args)} failed: {err}") from exc
        except OSError as exc:
            raise Unavailable(f"nftables: cannot run {self.nft}: {exc}") from exc
        return res.stdout


def _port_chain(name: str) -> tuple[str, str] | None:
    """(owner, bridge) of a ``ports/<owner>/<bridge>`` chain name."""
    parts = name.split("/")
    if len(parts) == 3 and parts[0] == "ports":
        return parts[1], parts[2]
    return None
