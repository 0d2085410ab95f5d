"""``network create|ls|inspect|rm|connect|disconnect|prune`` and ``port``: flags, request bodies
and output as the docker CLI has them."""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import sys
from typing import Any

from dockyard import errors
from dockyard.cli import formatting as fmt
from dockyard.cli.containers import _daemon_err, confirm, parse_filters
from dockyard.cli.netopts import (
    add_bool_flag,
    check_link,
    endpoint_settings,
    flag_error,
    ipam_config,
    join_host_port,
    kv_map,
    natural_sorted,
    parse_ip,
    parse_uint16,
)
from dockyard.client.api import Client


def _csv_values(items: list[str]) -> list[str]:
    """pflag StringSlice: repeatable, and each value may hold several, comma-separated."""
    return [v for item in items if item for v in item.split(",")]


# ---------------------------------------------------------------- create


def add_create(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", "--driver", default="bridge")
    p.add_argument("-o", "--opt", action="append", default=[])
    p.add_argument("-l", "--label", action="append", default=[])
    add_bool_flag(p, "--internal")
    add_bool_flag(p, "--ipv4", None)
    add_bool_flag(p, "--ipv6", None)
    add_bool_flag(p, "--attachable")
    add_bool_flag(p, "--ingress")
    add_bool_flag(p, "--config-only")
    p.add_argument("--scope", default="")
    p.add_argument("--config-from", default="")
    p.add_argument("--ipam-driver", default="default")
    p.add_argument("--ipam-opt", action="append", default=[])
    p.add_argument("--subnet", action="append", default=[])
    p.add_argument("--ip-range", action="append", default=[])
    p.add_argument("--gateway", action="append", default=[])
    p.add_argument("--aux-address", action="append", default=[])
    p.add_argument("name", metavar="NETWORK")
    p.set_defaults(fn=cmd_create)


def _network_label(value: str) -> str:
    key = value.partition("=")[0].lstrip(" \t")
    if not key:
        raise flag_error(value, "--label", f"invalid label '{value}': empty name")
    if " " in key or "\t" in key:
        raise flag_error(value, "--label", f"label '{key}' contains whitespaces")
    return value


def _cidr(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """net.ParseCIDR's network (host bits allowed)."""
    addr, sep, bits = text.partition("/")
    if sep and parse_ip(addr) is not None and bits.isascii() and bits.isdigit():
        try:
            return ipaddress.ip_network(f"{parse_ip(addr)}/{int(bits)}", strict=False)
        except ValueError:
            pass
    raise errors.InvalidArgument(f"invalid CIDR address: {text}")


def _subnet_matches(subnet: str, data: str) -> bool:
    """Whether data (an address, or a CIDR's own address) lies in subnet."""
    try:
        net = _cidr(subnet)
    except errors.InvalidArgument as exc:
        raise errors.InvalidArgument(f"invalid subnet: {exc}") from None
    if "/" in data:
        _cidr(data)
    addr = parse_ip(data.partition("/")[0])
    if addr is None:
        return False
    ip = ipaddress.ip_address(addr)
    return ip.version == net.version and ip in net


def ipam_pools(subnets: list[str], ranges: list[str], gateways: list[str],
               aux: dict[str, str]) -> list[dict[str, Any]]:
    """Group --subnet/--ip-range/--gateway/--aux-address into IPAM.Config entries by subnet, in
    the order the subnets were given (docker's order is its map's, i.e. random)."""
    if len(subnets) < len(ranges) or len(subnets) < len(gateways):
        raise errors.InvalidArgument("every ip-range or gateway must have a corresponding subnet")
    pools: dict[str, dict[str, Any]] = {}
    for s in subnets:
        if any(_subnet_matches(s, k) or _subnet_matches(k, s) for k in pools):
            raise errors.InvalidArgument("multiple overlapping subnet configuration is not supported")
        pools[s] = {"Subnet": s, "AuxiliaryAddresses": {}}
    for field, values, what in (("IPRange", ranges, "range"), ("Gateway", gateways, "gateway")):
        for value in values:
            match = False
            for s in subnets:
                if field == "IPRange":
                    _cidr(value)
                if not _subnet_matches(s, value):
                    continue
                if field in pools[s]:
                    plural = "ranges" if field == "IPRange" else "gateways"
                    how = "on" if field == "IPRange" else "for"
                    raise errors.InvalidArgument(f"cannot configure multiple {plural} ({value}, {pools[s][field]}) "
                                                 f"{how} the same subnet ({s})")
                pools[s][field] = value
                match = True
            if not match:
                raise errors.InvalidArgument(f"no matching subnet for {what} {value}")
    for key, addr in aux.items():
        hits = [s for s in subnets if _subnet_matches(s, addr)]
        if not hits:
            raise errors.InvalidArgument(f"no matching subnet for aux-address {addr}")
        for s in hits:
            pools[s]["AuxiliaryAddresses"][key] = addr
    order = ("Subnet", "IPRange", "Gateway", "AuxiliaryAddresses")
    return [{k: pool[k] for k in order if pool.get(k)} for pool in pools.values()]


def create_network_body(a: argparse.Namespace) -> dict[str, Any]:
    """POST /networks/create as docker 25+ sends it at API >= 1.44 (no CheckDuplicate)."""
    labels = [_network_label(v) for v in a.label]
    pools = ipam_pools(_csv_values(a.subnet), _csv_values(a.ip_range), _csv_values(a.gateway),
                       kv_map(a.aux_address))
    body: dict[str, Any] = {"Driver": a.driver, "Scope": a.scope}
    if a.ipv4 is not None:
        body["EnableIPv4"] = a.ipv4
    if a.ipv6 is not None:
        body["EnableIPv6"] = a.ipv6
    body.update({
        "IPAM": {"Driver": a.ipam_driver, "Options": kv_map(a.ipam_opt),
                 "Config": pools},
        "Internal": a.internal, "Attachable": a.attachable, "Ingress": a.ingress,
        "ConfigOnly": a.config_only, "ConfigFrom": {"Network": a.config_from} if a.config_from else None,
        "Options": kv_map(a.opt),
        "Labels": kv_map(labels),
        "Name": a.name,
    })
    return body


def cmd_create(c: Client, a: argparse.Namespace) -> int:
    print(c.create_network(create_network_body(a)).get("Id", ""))
    return 0


# ---------------------------------------------------------------- ls


_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv4": "IPV4",
            "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT"}


def go_time_string(text: str) -> str:
    """Go's time.Time.String() for an RFC 3339 time as Go parses it: ``2024-01-02 10:00:00.5 +0000 UTC``."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text or "")
    if not m:
        return "0001-01-01 00:00:00 +0000 UTC"
    frac = (m.group(3) or "")[:9].rstrip("0")
    offset = m.group(4).replace(":", "")
    zone = "+0000 UTC" if offset in ("Z", "+0000", "-0000") else f"{offset} {offset}"
    return f"{m.group(1)} {m.group(2)}{'.' + frac if frac else ''} {zone}"


class NetworkRow:
    """docker/cli's networkContext: the fields ``network ls --format`` can use."""

    def __init__(self, n: dict[str, Any], trunc: bool) -> None:
        self.n = n
        self.trunc = trunc

    @property
    def ID(self) -> str:
        nid = str(self.n.get("Id", ""))
        return nid[:12] if self.trunc else nid

    @property
    def Name(self) -> str:
        return str(self.n.get("Name", ""))

    @property
    def Driver(self) -> str:
        return str(self.n.get("Driver", ""))

    @property
    def Scope(self) -> str:
        return str(self.n.get("Scope", ""))

    @property
    def IPv4(self) -> str:
        return "true" if self.n.get("EnableIPv4") else "false"

    @property
    def IPv6(self) -> str:
        return "true" if self.n.get("EnableIPv6") else "false"

    @property
    def Internal(self) -> str:
        return "true" if self.n.get("Internal") else "false"

    @property
    def Labels(self) -> str:
        # docker walks a Go map (random order); sorted is one of its orders and stable
        return ",".join(f"{k}={v}" for k, v in sorted((self.n.get("Labels") or {}).items()))

    def Label(self, name: str) -> str:
        return str((self.n.get("Labels") or {}).get(name, ""))

    @property
    def CreatedAt(self) -> str:
        return go_time_string(str(self.n.get("Created") or ""))

    def to_json(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in sorted(_HEADERS)}


def add_ls(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("--format")
    p.add_argument("-f", "--filter", action="append", default=[])
    p.set_defaults(fn=cmd_ls)


def render_networks(networks: list[dict[str, Any]], template: str | None, quiet: bool, trunc: bool) -> str:
    rows = [NetworkRow(n, trunc) for n in natural_sorted(networks, key=lambda n: str(n.get("Name", "")))]
    template = template or "table"
    if template == "table":
        template = "{{.ID}}" if quiet else "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
    elif template == "raw":
        template = "network_id: {{.ID}}" if quiet else \
            "network_id: {{.ID}}\nname: {{.Name}}\ndriver: {{.Driver}}\nscope: {{.Scope}}\n"
    return fmt.render_list(template, rows, _HEADERS)


def cmd_ls(c: Client, a: argparse.Namespace) -> int:
    networks = c.list_networks(parse_filters(a.filter))
    sys.stdout.write(render_networks(networks, a.format, a.quiet, not a.no_trunc))
    return 0


# ---------------------------------------------------------------- inspect / rm


def add_inspect(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--format")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--scope", default="")
    p.add_argument("names", nargs="+", metavar="NETWORK")
    p.set_defaults(fn=cmd_inspect)


def cmd_inspect(c: Client, a: argparse.Namespace) -> int:
    found: list[Any] = []
    failures: list[errors.DockyardError] = []
    for ref in a.names:
        try:
            found.append(c.inspect_network(ref, a.verbose, a.scope))
        except errors.NotFound as exc:
            failures.append(exc)
    if a.format:
        sys.stdout.write(fmt.render_each(a.format, found))
    else:
        sys.stdout.write(json.dumps(found, indent=4, ensure_ascii=False) + "\n")
    for failure in failures:  # docker reports the misses after the output
        _daemon_err(failure)
    return 1 if failures else 0


def add_rm(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("names", nargs="+", metavar="NETWORK")
    p.set_defaults(fn=cmd_rm)


def cmd_rm(c: Client, a: argparse.Namespace) -> int:
    failed = False
    for ref in a.names:
        try:
            c.remove_network(ref)
        except errors.DockyardError as exc:
            if a.force and isinstance(exc, errors.NotFound):
                continue
            _daemon_err(exc)
            failed = True
            continue
        print(ref)
    return 1 if failed else 0


# ---------------------------------------------------------------- connect / disconnect / prune


def add_connect(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ip", default="")
    p.add_argument("--ip6", default="")
    p.add_argument("--link", action="append", default=[])
    p.add_argument("--alias", action="append", default=[])
    p.add_argument("--link-local-ip", action="append", default=[])
    p.add_argument("--driver-opt", action="append", default=[])
    p.add_argument("--gw-priority", type=int, default=0)
    p.add_argument("network")
    p.add_argument("container")
    p.set_defaults(fn=cmd_connect)


def connect_body(a: argparse.Namespace) -> dict[str, Any]:
    """POST /networks/{id}/connect as docker sends it: IPAMConfig always an object, no aliases an
    empty list, no links null."""
    links = [check_link(v) for v in a.link]
    driver_opts: dict[str, str] = {}
    for item in _csv_values(a.driver_opt):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise errors.InvalidArgument("invalid key/value pair format in driver options")
        driver_opts[key.strip()] = value.strip()
    endpoint = endpoint_settings(ipam=ipam_config(a.ip, a.ip6, _csv_values(a.link_local_ip)),
                                 links=links or None, aliases=_csv_values(a.alias),
                                 driver_opts=driver_opts, gw_priority=a.gw_priority)
    return {"Container": a.container, "EndpointConfig": endpoint}


def cmd_connect(c: Client, a: argparse.Namespace) -> int:
    c.connect_network(a.network, connect_body(a))
    return 0


def add_disconnect(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("network")
    p.add_argument("container")
    p.set_defaults(fn=cmd_disconnect)


def cmd_disconnect(c: Client, a: argparse.Namespace) -> int:
    c.disconnect_network(a.network, a.container, a.force)
    return 0


def add_prune(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("--filter", action="append", default=[])
    p.set_defaults(fn=cmd_prune)


def cmd_prune(c: Client, a: argparse.Namespace) -> int:
    filters = parse_filters(a.filter)
    if not confirm("WARNING! This will remove all custom networks not used by at least one container.", a.force):
        return 0
    deleted = c.prune_networks(filters).get("NetworksDeleted") or []
    if deleted:
        sys.stdout.write("Deleted Networks:\n" + "".join(n + "\n" for n in deleted) + "\n")
    return 0


# ---------------------------------------------------------------- port


def add_port(p: argparse.ArgumentParser) -> None:
    p.add_argument("container")
    p.add_argument("port", nargs="?", metavar="PRIVATE_PORT[/PROTO]")
    p.set_defaults(fn=cmd_port)


def port_lines(ports: dict[str, Any] | None, container: str, port: str | None = None) -> list[str]:
    """``docker port`` output for NetworkSettings.Ports: all mappings, or one private port's."""
    ports = ports or {}
    if port:
        number, _, proto = port.partition("/")
        try:
            parse_uint16(number)
        except ValueError as exc:
            raise errors.InvalidArgument(f"invalid port ({number}): {exc}") from None
        frontends = ports.get(f"{number}/{proto or 'tcp'}")
        if not frontends:
            raise errors.InvalidArgument(f"No public port '{port}' published for {container}")
        out = [join_host_port(f.get("HostIp", ""), f.get("HostPort", "")) for f in frontends]
    else:
        out = [f"{key} -> {join_host_port(f.get('HostIp', ''), f.get('HostPort', ''))}"
               for key, frontends in ports.items() for f in frontends or []]
    return natural_sorted(out)


def cmd_port(c: Client, a: argparse.Namespace) -> int:
    info = c.inspect_container(a.container)
    lines = port_lines((info.get("NetworkSettings") or {}).get("Ports"), a.container, a.port)
    sys.stdout.write("".join(line + "\n" for line in lines))
    return 0
