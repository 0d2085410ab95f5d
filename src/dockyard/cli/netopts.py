"""Docker's parsers for networking values on the command line: IP and MAC addresses, port specs
(go-connections' nat.ParsePortSpec), ``--add-host``/``--dns``/``--dns-search``/``--link`` values,
the advanced ``--network`` syntax, endpoint settings, and the natural sort order docker prints
names and port lists in; also the pflag-style values every command shares (Go bools, KEY=VALUE
maps). Pure functions; the error texts are Docker's."""

from __future__ import annotations

import argparse
import functools
import re
from collections.abc import Callable, Iterable

from dockyard.cli.formatting import go_quote
from dockyard.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~3 ms to import on every CLI run
    from typing import Any, TypeVar

    T = TypeVar("T")
HOST_GATEWAY = "host-gateway"
_HEX = set("0123456789abcdefABCDEF")


class FlagError(InvalidArgument):
    """A flag value refused while parsing: docker exits 125 for these, whatever the command."""
    exit_code = 125


def flag_error(value: str, flag: str, message: str) -> FlagError:
    """pflag's wording for a value its validator refused."""
    return FlagError(f"invalid argument {go_quote(value)} for {go_quote(flag)} flag: {message}")


def parse_uint16(text: str) -> int:
    """strconv.ParseUint(text, 10, 16), raising ValueError with Go's text."""
    if not text or not text.isascii() or not text.isdigit():
        raise ValueError(f"strconv.ParseUint: parsing {go_quote(text)}: invalid syntax")
    if int(text) > 0xFFFF:
        raise ValueError(f"strconv.ParseUint: parsing {go_quote(text)}: value out of range")
    return int(text)


def parse_ip(text: str) -> str | None:
    """net.ParseIP(text).String(): the canonical form, or None where Go would not parse it."""
    if "%" in text or not text.isascii():  # Python takes IPv6 zones, Go's ParseIP does not
        return None
    import ipaddress  # here: `run` without address flags need not import it
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)  # Go prints v4-in-v6 addresses dotted
    return str(ip)


def valid_mac(text: str) -> bool:
    """net.ParseMAC: 6, 8 or 20 octets as aa:bb:.., aa-bb-.. or aabb.ccdd.eeff."""
    s = text.strip()
    for sep, width in ((":", 2), ("-", 2), (".", 4)):
        parts = s.split(sep)
        if len(parts) > 1 and all(len(p) == width and set(p) <= _HEX for p in parts):
            return len(parts) * width // 2 in (6, 8, 20)
    return False


def join_host_port(host: str, port: str) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# ---------------------------------------------------------------- ports (-p, --expose)


def parse_port_range(text: str) -> tuple[int, int]:
    if not text:
        raise ValueError("empty string specified for ports")
    if "-" not in text:
        port = parse_uint16(text)
        return port, port
    parts = text.split("-")  # like Go, anything after a second '-' is ignored
    start, end = parse_uint16(parts[0]), parse_uint16(parts[1])
    if end < start:
        raise ValueError(f"invalid range specified for port: {text}")
    return start, end


def split_proto_port(raw: str) -> tuple[str, str]:
    """``80/udp`` → (udp, 80); the protocol defaults to tcp; an empty port gives ("", "")."""
    parts = raw.split("/")
    if not raw or not parts[0]:
        return "", ""
    if len(parts) == 1 or not parts[1]:
        return "tcp", parts[0]
    return parts[1], parts[0]


def _unbracket(ip: str) -> str:
    """net.SplitHostPort(ip + ":") for ``[::1]``, with Go's errors."""
    hostport = ip + ":"
    end = hostport.find("]")
    if end < 0:
        problem = "missing ']' in address"
    elif end + 1 != len(hostport) - 1:
        problem = "too many colons in address" if hostport[end + 1] == ":" else "missing port in address"
    elif "[" in hostport[1:]:
        problem = "unexpected '[' in address"
    else:
        return hostport[1:end]
    raise InvalidArgument(f"invalid IP address {ip}: address {hostport}: {problem}")


def _standard_notation(spec: str) -> str:
    """``published=8080,target=80,protocol=udp`` → ``8080:80/udp``."""
    if "=" not in spec:
        return spec
    params = {"protocol": "tcp"}
    for param in spec.split(","):
        key, sep, value = param.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"invalid publish opts format (should be name=value but got '{param}')")
        params[key] = value
    return f"{params.get('published', '')}:{params.get('target', '')}/{params['protocol']}"


def parse_port_spec(raw: str) -> list[tuple[str, dict[str, str]]]:
    """One ``-p`` value → [(``80/tcp``, {"HostIp", "HostPort"})], a range giving one entry per port."""
    parts = raw.split(":")  # [[ip:]host:]ctr, where only the ip may hold further colons
    ip, host_port = ":".join(parts[:-2]), parts[-2] if len(parts) > 1 else ""
    proto, ctr = split_proto_port(parts[-1])
    if ip.startswith("["):
        ip = _unbracket(ip)
    if ip and parse_ip(ip) is None:
        raise InvalidArgument(f"invalid IP address: {ip}")
    if not ctr:
        raise InvalidArgument(f"no port specified: {raw}<empty>")
    try:
        start, end = parse_port_range(ctr)
    except ValueError:
        raise InvalidArgument(f"invalid containerPort: {ctr}") from None
    host_start = host_end = 0
    if host_port:
        try:
            host_start, host_end = parse_port_range(host_port)
        except ValueError:
            raise InvalidArgument(f"invalid hostPort: {host_port}") from None
        # a host range for a single container port is allowed: the daemon picks one port in it
        if end - start != host_end - host_start and end != start:
            raise InvalidArgument(f"invalid ranges specified for container and host Ports: {ctr} and {host_port}")
    if proto.lower() not in ("tcp", "udp", "sctp"):
        raise InvalidArgument(f"invalid proto: {proto}")
    proto = proto.lower()
    out = []
    for i in range(end - start + 1):
        hp = str(host_start + i) if host_port else ""
        if start == end and host_start != host_end:
            hp = f"{hp}-{host_end}"
        out.append((f"{start + i}/{proto}", {"HostIp": ip, "HostPort": hp}))
    return out


def port_specs(publish: Iterable[str], expose: Iterable[str]) -> tuple[
        dict[str, dict[str, Any]], dict[str, list[dict[str, str]]]]:
    """``-p`` and ``--expose`` values → (Config.ExposedPorts, HostConfig.PortBindings), keys sorted
    as Go encodes maps."""
    exposed: dict[str, dict[str, Any]] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in publish:
        for key, binding in parse_port_spec(_standard_notation(spec)):
            exposed.setdefault(key, {})
            bindings.setdefault(key, []).append(binding)
    for item in expose:
        if ":" in item:
            raise InvalidArgument(f"invalid port format for --expose: {item}")
        proto, port = split_proto_port(item)  # --expose keeps the protocol as typed (docker does)
        try:
            start, end = parse_port_range(port)
        except ValueError as exc:
            raise InvalidArgument(f"invalid range format for --expose: {item}, error: {exc}") from None
        for p in range(start, end + 1):
            exposed.setdefault(f"{p}/{proto}", {})
    return dict(sorted(exposed.items())), dict(sorted(bindings.items()))


# ---------------------------------------------------------------- --add-host, --dns, --link


def extra_host(value: str) -> str:
    """``host:ip``, ``host=ip``, ``host=[v6]`` or ``host:host-gateway`` → ``host:ip`` for the API."""
    name, sep, addr = value.partition("=")
    if not sep:
        name, sep, addr = value.partition(":")  # only the first ':' so IPv6 addresses survive
    if not sep or not name or ":" in name:
        raise flag_error(value, "--add-host", f"bad format for add-host: {go_quote(value)}")
    if addr != HOST_GATEWAY:
        if len(addr) > 2 and addr[0] == "[" and addr[-1] == "]":
            addr = addr[1:-1]
        if parse_ip(addr.strip()) is None:
            raise flag_error(value, "--add-host", f"invalid IP address in add-host: {go_quote(addr)}")
    return f"{name}:{addr}"


def dns_server(value: str) -> str:
    ip = parse_ip(value.strip())
    if ip is None:
        raise flag_error(value, "--dns", f"IP address is not correctly formatted: {value}")
    return ip


# docker's own pattern, "(:?" typos included, so the same strings pass
_DOMAIN = (r"(:?(:?[a-zA-Z0-9]|(:?[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9]))"
           r"(:?\.(:?[a-zA-Z0-9]|(:?[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])))*)\.?\s*\Z")  # compiled on use


def dns_search(value: str) -> str:
    domain = value.strip(" ")
    if domain == ".":
        return domain
    m = re.match(_DOMAIN, domain, re.ASCII) if re.search("[a-zA-Z]", domain) else None
    if m is None or len(m.group(1)) >= 255:
        raise flag_error(value, "--dns-search", f"{domain} is not a valid domain")
    return m.group(1)


def localhost_dns_warning(servers: Iterable[str]) -> str:
    """The warning docker's create adds for a loopback --dns (resolved in the container, not the host)."""
    for server in servers:
        import ipaddress  # here: no --dns, no import
        if parse_ip(server) is not None and ipaddress.ip_address(server).is_loopback:
            return f"Localhost DNS ({server}) may fail in containers."
    return ""


def check_link(value: str) -> str:
    if not value:
        raise flag_error(value, "--link", "empty string specified for links")
    if value.count(":") > 1:
        raise flag_error(value, "--link", f"bad format for links: {value}")
    return value


# ---------------------------------------------------------------- --network and endpoints


def is_user_defined(mode: str) -> bool:
    return mode not in ("default", "bridge", "host", "none") and not mode.startswith("container:")


class Attachment:
    """One ``--network`` value (``name`` or ``name=n,alias=a,ip=...``) plus the flags applied to it.
    (A plain class, not a dataclass: importing ``dataclasses`` costs `run` ~5 ms.)"""

    def __init__(self, target: str) -> None:
        self.target = target
        self.aliases: list[str] = []
        self.links: list[str] = []
        self.ipv4 = ""
        self.ipv6 = ""
        self.mac = ""
        self.link_local: list[str] = []
        self.driver_opts: dict[str, str] = {}
        self.gw_priority = 0

    def __repr__(self) -> str:
        return f"Attachment({vars(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Attachment) and vars(self) == vars(other)


_LONG_SYNTAX = r"\w+=\w+(,\w+=\w+)*"  # compiled on first use (re caches it), not on import


def parse_network(value: str) -> Attachment:
    if not re.search(_LONG_SYNTAX, value, re.ASCII):
        return Attachment(value)
    import csv  # here: only the long --network syntax needs it
    att = Attachment("")
    for item in next(csv.reader([value]), []):
        key, sep, val = item.lower().partition("=")  # docker lower-cases the whole field
        if not sep or not key:
            raise flag_error(value, "--network", f"invalid field {item}")
        key, val = key.strip(), val.strip()
        if key == "name":
            att.target = val
        elif key == "alias":
            att.aliases.append(val)
        elif key == "ip":
            att.ipv4 = val
        elif key == "ip6":
            att.ipv6 = val
        elif key == "mac-address":
            att.mac = val
        elif key == "link-local-ip":
            att.link_local.append(val)
        elif key == "driver-opt":
            k, sep, v = val.partition("=")
            if not sep or not k:
                raise flag_error(value, "--network", "invalid key value pair format in driver options")
            att.driver_opts[k.strip()] = v.strip()
        elif key == "gw-priority":
            if not re.fullmatch(r"[+-]?[0-9]+", val):
                raise flag_error(value, "--network", f"invalid gw-priority ({val}): invalid syntax")
            att.gw_priority = int(val)
        else:
            raise flag_error(value, "--network", f"invalid field key {key}")
    if not att.target:
        raise flag_error(value, "--network", "network name/id is not specified")
    return att


def endpoint_settings(*, ipam: dict[str, Any] | None = None, links: list[str] | None = None,
                      aliases: list[str] | None = None, mac: str = "",
                      driver_opts: dict[str, str] | None = None, gw_priority: int = 0) -> dict[str, Any]:
    """EndpointSettings the way the docker CLI serialises it: every field, zero values included."""
    return {"IPAMConfig": ipam, "Links": links, "Aliases": aliases, "MacAddress": mac,
            "DriverOpts": dict(sorted(driver_opts.items())) if driver_opts is not None else None,
            "GwPriority": gw_priority, "NetworkID": "", "EndpointID": "", "Gateway": "", "IPAddress": "",
            "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "DNSNames": None}


def ipam_config(ipv4: str, ipv6: str, link_local: list[str]) -> dict[str, Any]:
    pairs = (("IPv4Address", ipv4), ("IPv6Address", ipv6), ("LinkLocalIPs", link_local))
    return {k: v for k, v in pairs if v}


def attachment_endpoint(att: Attachment) -> dict[str, Any] | None:
    """The EndpointSettings for one attachment; None when it carries no settings at all."""
    if not att.target.strip():
        raise InvalidArgument("no name set for network")
    if not is_user_defined(att.target):
        if att.aliases:
            raise InvalidArgument("network-scoped aliases are only supported for user-defined networks")
        if att.links:
            raise InvalidArgument("links are only supported for user-defined networks")
    if att.mac and not valid_mac(att.mac):
        raise InvalidArgument(f"{att.mac} is not a valid mac address")
    if not (att.aliases or att.links or att.ipv4 or att.ipv6 or att.link_local or att.mac
            or att.driver_opts or att.gw_priority):
        return None
    ipam = ipam_config(att.ipv4, att.ipv6, att.link_local) or None
    return endpoint_settings(ipam=ipam, links=att.links or None, aliases=att.aliases or None, mac=att.mac,
                             driver_opts=att.driver_opts or None, gw_priority=att.gw_priority)


# ---------------------------------------------------------------- natural order (fvbommel/sortorder)


def _natural_cmp(x: str, y: str) -> int:
    """Digit runs compare as numbers (fewer leading zeros first), digits sort before other
    bytes, everything else bytewise."""
    a, b = x.encode(), y.encode()
    i = j = 0

    def digit(c: int) -> bool:
        return 48 <= c <= 57

    while i < len(a) and j < len(b):
        da, db = digit(a[i]), digit(b[j])
        if da != db:
            return -1 if da else 1
        if not da:
            if a[i] != b[j]:
                return -1 if a[i] < b[j] else 1
            i, j = i + 1, j + 1
            continue
        while i < len(a) and a[i] == 48:
            i += 1
        while j < len(b) and b[j] == 48:
            j += 1
        si, sj = i, j
        while i < len(a) and digit(a[i]):
            i += 1
        while j < len(b) and digit(b[j]):
            j += 1
        na, nb = a[si:i], b[sj:j]
        if len(na) != len(nb):
            return -1 if len(na) < len(nb) else 1
        if na != nb:
            return -1 if na < nb else 1
        if si != sj:
            return -1 if si < sj else 1
    return (len(a) > len(b)) - (len(a) < len(b))


def natural_sorted(items: Iterable[T], key: Callable[[T], str] = str) -> list[T]:
    cmp = functools.cmp_to_key(_natural_cmp)
    return sorted(items, key=lambda item: cmp(key(item)))


# ---------------------------------------------------------------- pflag-style values shared by the commands

GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def go_bool(text: str) -> bool:
    """strconv.ParseBool; ValueError for anything else."""
    if text in GO_TRUE:
        return True
    if text in GO_FALSE:
        return False
    raise ValueError(text)


class GoBoolFlag(argparse.Action):
    """A pflag bool: ``--x`` or ``--x=false``; unlike ``nargs='?'`` it never eats the next word."""

    def __init__(self, option_strings: list[str], dest: str, **kw: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, **kw)

    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        setattr(ns, self.dest, not (option_string or "").endswith(tuple("=" + f for f in GO_FALSE)))


def add_bool_flag(p: argparse.ArgumentParser, name: str, default: bool | None = False) -> None:
    # argparse matches a whole registered option string before splitting at '=', so each
    # spelling of "--x=<bool>" is registered as an option of its own
    dest = name.lstrip("-").replace("-", "_")
    p.add_argument(name, action=GoBoolFlag, dest=dest, default=default)
    p.add_argument(*(f"{name}={v}" for v in GO_TRUE + GO_FALSE), action=GoBoolFlag, dest=dest,
                   default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def kv_map(items: list[str]) -> dict[str, str]:
    """pflag MapOpts: KEY=VALUE, a bare KEY meaning an empty value; keys sorted as Go encodes a map."""
    out: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = value
    return dict(sorted(out.items()))
