"""``run``/``create`` flags and their translation into the POST /containers/create body,
field for field what the docker CLI sends."""

from __future__ import annotations

import argparse
import os
import re

from dockyard.cli.mountopts import add_storage_flags, storage_fields
from dockyard.cli.netopts import (
    Attachment,
    attachment_endpoint,
    check_link,
    dns_search,
    dns_server,
    endpoint_settings,
    extra_host,
    is_user_defined,
    kv_map,
    parse_network,
    port_specs,
)
from dockyard.cli.securityopts import add_security_flags, security_fields
from dockyard.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~3 ms to import on every CLI run
    from typing import Any

_UNITS = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def ram_in_bytes(text: str) -> int:
    """go-units RAMInBytes: binary units, suffix b/k/m/g/t/p with optional 'b'/'ib'."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtpb]?)(?:i?b)?\s*", text.lower())
    if not m:
        raise InvalidArgument(f"invalid size: '{text}'")
    return int(float(m.group(1)) * _UNITS[m.group(2) or "b"])


def add_resource_flags(p: argparse.ArgumentParser) -> None:
    """The resource limits ``run``/``create`` and ``update`` share."""
    p.add_argument("-m", "--memory")
    p.add_argument("--memory-swap")
    p.add_argument("--cpus")
    p.add_argument("-c", "--cpu-shares", type=int, default=0)
    p.add_argument("--cpuset-cpus", default="")
    p.add_argument("--cpuset-mems", default="")
    p.add_argument("--cpu-period", type=int, default=0)
    p.add_argument("--cpu-quota", type=int, default=0)
    p.add_argument("--memory-reservation")
    p.add_argument("--blkio-weight", type=int, default=0)
    p.add_argument("--pids-limit", type=int)


def resource_fields(a: argparse.Namespace) -> dict[str, Any]:
    """HostConfig's resource fields for the limits given on the command line (as ``update`` sends)."""
    fields: dict[str, Any] = {}
    if a.memory:
        fields["Memory"] = ram_in_bytes(a.memory)
    if a.memory_swap:
        fields["MemorySwap"] = -1 if a.memory_swap == "-1" else ram_in_bytes(a.memory_swap)
    if a.cpus:
        fields["NanoCpus"] = nano_cpus(a.cpus)
    for attr, key in (("cpu_shares", "CpuShares"), ("cpuset_cpus", "CpusetCpus"), ("cpuset_mems", "CpusetMems"),
                      ("cpu_period", "CpuPeriod"), ("cpu_quota", "CpuQuota"), ("blkio_weight", "BlkioWeight")):
        if getattr(a, attr):  # given as is; unset (0, "") is left out, as update needs
            fields[key] = getattr(a, attr)
    if a.memory_reservation:
        fields["MemoryReservation"] = ram_in_bytes(a.memory_reservation)
    if a.pids_limit is not None:
        fields["PidsLimit"] = a.pids_limit
    return fields


def add_run_flags(p: argparse.ArgumentParser, *, create: bool = False) -> None:
    if not create:
        p.add_argument("-d", "--detach", action="store_true")
        p.add_argument("--sig-proxy", default="true")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("--rm", action="store_true")
    p.add_argument("--name")
    p.add_argument("--pull", default="missing")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress the pull output")
    p.add_argument("--platform")
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("--env-file", action="append", default=[])
    p.add_argument("-w", "--workdir", default="")
    p.add_argument("-u", "--user", default="")
    p.add_argument("--entrypoint")
    p.add_argument("-h", "--hostname", default="")
    add_resource_flags(p)
    from dockyard.cli.hostopts import add_host_flags
    add_host_flags(p)
    p.add_argument("--init", action="store_true")
    add_network_flags(p)
    add_storage_flags(p)
    add_security_flags(p)
    from dockyard.cli.containers import add_health_flags  # here: containers imports this module
    add_health_flags(p)
    p.add_argument("--runtime", default="")
    p.add_argument("-l", "--label", action="append", default=[])
    p.add_argument("--restart", default="no")
    p.add_argument("--stop-signal")
    p.add_argument("--stop-timeout", type=int)
    p.add_argument("--detach-keys")
    p.add_argument("-a", "--attach", action="append", default=[])
    p.add_argument("--help", action="help")


def add_network_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--network", "--net", action="append", default=[])
    p.add_argument("--network-alias", action="append", default=[])
    p.add_argument("--ip", default="")
    p.add_argument("--ip6", default="")
    p.add_argument("--link-local-ip", action="append", default=[])
    p.add_argument("--mac-address", default="")
    p.add_argument("--link", action="append", default=[])
    p.add_argument("-p", "--publish", action="append", default=[])
    p.add_argument("-P", "--publish-all", action="store_true")
    p.add_argument("--expose", action="append", default=[])
    p.add_argument("--add-host", action="append", default=[])
    p.add_argument("--dns", action="append", default=[])
    p.add_argument("--dns-search", action="append", default=[])
    p.add_argument("--dns-option", "--dns-opt", action="append", default=[])


def _apply_endpoint_flags(att: Attachment, a: argparse.Namespace) -> None:
    """The plain flags (--ip, --network-alias, ...) describe the first network's endpoint."""
    for given, flag, what in ((att.aliases and a.network_alias, "--network-alias", "per-network alias"),
                              (att.ipv4 and a.ip, "--ip", "per-network IPv4 address"),
                              (att.ipv6 and a.ip6, "--ip6", "per-network IPv6 address"),
                              (att.mac and a.mac_address, "--mac-address", "per-network MAC address"),
                              (att.link_local and a.link_local_ip, "--link-local-ip",
                               "per-network link-local IP addresses")):
        if given:
            raise InvalidArgument(f"conflicting options: cannot specify both {flag} and {what}")
    att.aliases = list(a.network_alias) or att.aliases
    if a.link and is_user_defined(att.target):  # on the default bridge a link is a legacy link only
        att.links = list(a.link)
    att.ipv4 = a.ip or att.ipv4
    att.ipv6 = a.ip6 or att.ipv6
    att.mac = a.mac_address or att.mac
    att.link_local = list(a.link_local_ip) or att.link_local


def networking(a: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """(HostConfig.NetworkMode, NetworkingConfig.EndpointsConfig) as docker's CLI builds them for
    API >= 1.44, where the MAC address and the endpoint flags live in the endpoint."""
    nets = [parse_network(v) for v in a.network]
    endpoints: dict[str, Any] = {}
    if not nets:
        att = Attachment("default")
        _apply_endpoint_flags(att, a)
        endpoints["default"] = attachment_endpoint(att) or endpoint_settings()  # sent even when empty
    for i, att in enumerate(nets):
        if i == 0:
            _apply_endpoint_flags(att, a)
        ep = attachment_endpoint(att)
        if att.target in endpoints:
            raise InvalidArgument(f'network "{att.target}" is specified multiple times')
        if ep is None and len(nets) == 1:
            continue
        endpoints[att.target] = ep or endpoint_settings()
    if len({is_user_defined(n.target) for n in nets}) > 1:
        raise InvalidArgument("conflicting options: cannot attach both user-defined and non-user-defined "
                              "network-modes")
    return (nets[0].target if nets else "default"), dict(sorted(endpoints.items()))


def parse_env_file(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise InvalidArgument(f"open {path}: {exc.strerror}") from exc
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        key, eq, _ = line.partition("=")
        if not key or (" " in key.strip() and not eq):
            raise InvalidArgument(f"invalid environment variable at {path}:{n}: {raw!r}")
        out.append(_env(line if eq else key))
    return out


def _env(item: str) -> str:
    # "KEY" without a value takes the value from the client's environment, as docker does
    if "=" in item:
        return item
    return f"{item}={os.environ[item]}" if item in os.environ else item


def restart_policy(text: str) -> dict[str, Any]:
    name, _, count = text.partition(":")
    if name not in ("no", "always", "unless-stopped", "on-failure", ""):
        raise InvalidArgument(f"invalid restart policy '{text}'")
    if count and name != "on-failure":
        raise InvalidArgument(f"invalid restart policy format: maximum retry count cannot be used with restart policy '{name}'")
    try:
        retries = int(count) if count else 0
    except ValueError as exc:
        raise InvalidArgument(f"invalid restart policy format: maximum retry count must be an integer: {count}") from exc
    return {"Name": name or "no", "MaximumRetryCount": retries}


def nano_cpus(text: str) -> int:
    try:
        value = float(text)
    except ValueError as exc:
        raise InvalidArgument(f'invalid argument "{text}" for "--cpus" flag: failed to parse {text} as a rational number') from exc
    return round(value * 1e9)


# HostConfig fields docker sends as null when unset (the others that are None are left out)
_SENT_AS_NULL = ("Binds", "VolumesFrom")


def create_body(a: argparse.Namespace, image: str, cmd: list[str],
                console_size: tuple[int, int] | None = None) -> dict[str, Any]:
    """The exact JSON the docker CLI posts for these flags."""
    detach = getattr(a, "detach", False)
    attach = {s.lower() for s in a.attach}
    bad = attach - {"stdin", "stdout", "stderr"}
    if bad:
        raise InvalidArgument(f"invalid argument \"{sorted(bad)[0]}\" for \"-a, --attach\" flag: valid streams are STDIN, STDOUT and STDERR")
    if detach and attach:
        raise InvalidArgument("Conflicting options: -a and -d")
    if a.rm and a.restart not in ("no", ""):
        raise InvalidArgument("Conflicting options: cannot specify both --restart and --rm")
    if attach:
        att_in, att_out, att_err = "stdin" in attach, "stdout" in attach, "stderr" in attach
    else:
        att_in, att_out, att_err = (a.interactive and not detach), not detach, not detach
    env = [e for f in a.env_file for e in parse_env_file(f)] + [_env(e) for e in a.env]
    links = [check_link(v) for v in a.link]
    extra_hosts = [extra_host(v) for v in a.add_host]
    dns = [dns_server(v) for v in a.dns]
    search = [dns_search(v) for v in a.dns_search]
    exposed, bindings = port_specs(a.publish, a.expose)
    from dockyard.cli.hostopts import file_labels, host_fields
    network_mode, endpoints = networking(a)
    volumes, storage = storage_fields(a)
    host_config: dict[str, Any] = {  # in the order of docker's HostConfig fields
        "Binds": storage["Binds"],
        "NetworkMode": network_mode,
        "PortBindings": bindings,
        "RestartPolicy": restart_policy(a.restart),
        "AutoRemove": a.rm,
        "VolumeDriver": storage["VolumeDriver"],
        "VolumesFrom": storage["VolumesFrom"],
        "Dns": dns, "DnsOptions": list(a.dns_option), "DnsSearch": search,
        "ExtraHosts": extra_hosts or None,
        "Links": links or None,
        "PublishAllPorts": a.publish_all,
        "ReadonlyRootfs": storage["ReadonlyRootfs"],
        "Tmpfs": storage["Tmpfs"],
        "Mounts": storage["Mounts"],
        "Init": True if a.init else None,
        "Runtime": a.runtime or None,
        # create sends every resource field, zero when not given
        "Memory": 0, "MemorySwap": 0, "NanoCpus": 0, "CpuShares": 0, "CpusetCpus": "", "PidsLimit": None,
        **resource_fields(a),
        **host_fields(a),
        **security_fields(a),
        "ConsoleSize": list(console_size) if console_size else [0, 0],
    }
    body: dict[str, Any] = {
        "Hostname": a.hostname,
        "Domainname": a.domainname,
        "User": a.user,
        "AttachStdin": att_in,
        "AttachStdout": att_out,
        "AttachStderr": att_err,
        **({"ExposedPorts": exposed} if exposed else {}),
        "Tty": a.tty,
        "OpenStdin": a.interactive,
        "StdinOnce": a.interactive and not detach and att_in,
        "Env": env,
        "Cmd": cmd or None,
        "Image": image,
        "Volumes": volumes,  # docker sends {} when there are none
        "WorkingDir": a.workdir,
        "Entrypoint": [a.entrypoint] if a.entrypoint is not None else None,
        "OnBuild": None,
        "Labels": kv_map([*file_labels(a.label_file), *a.label]),
        "HostConfig": {k: v for k, v in host_config.items() if v is not None or k in _SENT_AS_NULL},
        "NetworkingConfig": {"EndpointsConfig": endpoints},
    }
    if a.stop_signal:
        body["StopSignal"] = a.stop_signal
    if a.stop_timeout is not None:
        body["StopTimeout"] = a.stop_timeout
    return body


def split_interspersed(parser: argparse.ArgumentParser, args: list[str], npos: int = 1) -> tuple[
        list[str], list[str]]:
    """Split ``[OPTIONS] IMAGE [COMMAND...]``: options stop at the first positional (docker's
    SetInterspersed(false)). Returns (options + first npos positionals, rest)."""
    takes_value: set[str] = set()
    for action in parser._actions:
        if action.nargs != 0:
            takes_value.update(action.option_strings)
    i = 0
    seen = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return args[:i] + args[i + 1:i + 1 + npos - seen], args[i + 1 + npos - seen:]
        if arg.startswith("--") and len(arg) > 2:
            if "=" not in arg and arg in takes_value:
                i += 1
        elif arg.startswith("-") and len(arg) > 1:
            for k in range(1, len(arg)):
                if "-" + arg[k] in takes_value:
                    if k == len(arg) - 1:
                        i += 1
                    break
        else:
            seen += 1
            if seen == npos:
                return args[:i + 1], args[i + 1:]
        i += 1
    return args, []
