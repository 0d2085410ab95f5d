"""``dockyardd`` configuration: flags, the JSON config file (daemon.json style), and their merge."""

from __future__ import annotations

import argparse
import grp
import ipaddress
import json
import logging
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dockyard.errors import InvalidArgument

DEFAULT_HOST = "unix:///run/dockyard/dockyard.sock"
# read when it exists and no --config-file is given (dockerd: /etc/docker/daemon.json)
DEFAULT_CONFIG_FILE = "/etc/dockyard/daemon.json"
DEFAULT_DATA_ROOT = "/var/lib/dockyard"
DEFAULT_EXEC_ROOT = "/run/dockyard"
DEFAULT_RUNTIME = "dockyard-runtime"
# group given the API socket (root:<group> 0660) when it exists on the host; else root only
DEFAULT_GROUP = "dockyard"
LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")
_LEVEL_NUMBERS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
                  "error": logging.ERROR, "fatal": logging.CRITICAL}


def apply_log_level(level: str) -> None:
    """The root logger at ``level``; third-party libraries that log every netlink message at
    debug stay at warnings (at start and on every reload)."""
    logging.getLogger().setLevel(_LEVEL_NUMBERS[level])
    for noisy in ("pyroute2", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, _LEVEL_NUMBERS[level]))

# config-file key → argparse dest; everything else in the file is refused.
_FILE_KEYS = {
    "hosts": "hosts", "data-root": "data_root", "exec-root": "exec_root", "pidfile": "pidfile",
    "default-runtime": "default_runtime", "runtimes": "runtimes", "log-level": "log_level",
    "log-opts": "log_opts", "tls": "tls", "tlsverify": "tlsverify", "tlscacert": "tlscacert",
    "tlscert": "tlscert", "tlskey": "tlskey", "insecure-registries": "insecure_registries",
    "registry-mirrors": "registry_mirrors", "default-registry": "default_registry",
    "bridge": "bridge", "firewall-table": "firewall_table", "group": "group",
    "userns-remap": "userns_remap", "log-driver": "log_driver",
    "default-address-pools": "address_pools", "live-restore": "live_restore", "debug": "debug",
}
# what SIGHUP applies to a running daemon (dockerd reloads the same ones); the rest wait for a restart
RELOADABLE = ("log_level", "registry_mirrors", "insecure_registries", "default_runtime", "runtimes",
              "live_restore")
LOG_DRIVERS = ("json-file",)


@dataclass(frozen=True)
class Listener:
    scheme: str        # "unix" | "tcp"
    address: str       # socket path, host, or for "fd" the fd number ("" = every passed socket)
    port: int = 0

    def __str__(self) -> str:
        if self.scheme == "fd":
            return f"fd://{self.address}"
        return f"unix://{self.address}" if self.scheme == "unix" else f"tcp://{self.address}:{self.port}"

    @property
    def loopback(self) -> bool:
        """True for unix sockets and loopback TCP; an activated socket (fd://) is checked once the
        daemon holds it (``daemon.systemd``)."""
        if self.scheme != "tcp":
            return True
        if self.address == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.address).is_loopback
        except ValueError:
            return False


@dataclass
class DaemonConfig:
    hosts: list[Listener]
    data_root: Path
    exec_root: Path
    pidfile: Path
    default_runtime: str
    runtimes: dict[str, str]
    log_level: str = "info"
    log_max_size: int = 20 * 1000 * 1000
    log_max_file: int = 5
    tls: bool = False
    tlsverify: bool = False
    tlscacert: str = ""
    tlscert: str = ""
    tlskey: str = ""
    insecure_registries: list[str] = field(default_factory=list)
    registry_mirrors: list[str] = field(default_factory=list)
    default_registry: str = ""
    bridge: str = "dy0"
    firewall_table: str = "dockyard"
    userns_remap: str = ""           # "default" | USER[:GROUP]; "" = containers share the host's ids
    group: str = DEFAULT_GROUP       # the unix sockets' group, as asked for
    socket_gid: int | None = None    # its gid; None: the sockets stay root:root (root only)
    log_driver: str = "json-file"
    address_pools: list[tuple[str, int]] = field(default_factory=list)  # [] = Docker's defaults
    live_restore: bool = True        # False: containers are stopped when the daemon shuts down
    detach: bool = False             # fork into the background, return once the API is up
    log_file: str = ""               # where a detached daemon writes its log
    argv: list[str] = field(default_factory=list)  # what it was started with, read again on SIGHUP
    config_file: str = ""            # the file actually read ("" = none)
    extra: dict[str, Any] = field(default_factory=dict)


def parse_host(spec: str, tls: bool) -> Listener:
    if spec.startswith("fd://"):
        number = spec[len("fd://"):]
        if number and not number.isdigit():
            raise InvalidArgument(f"invalid host {spec!r}: expected fd:// or fd://N (a socket passed by systemd)")
        return Listener("fd", number)
    if spec.startswith("unix://"):
        path = spec[len("unix://"):] or DEFAULT_HOST[len("unix://"):]
        if not path.startswith("/"):
            raise InvalidArgument(f"invalid host {spec!r}: unix socket path must be absolute")
        return Listener("unix", path)
    if spec.startswith("tcp://"):
        parts = urlsplit(spec)
        try:
            port = parts.port
        except ValueError as exc:
            raise InvalidArgument(f"invalid host {spec!r}: bad port") from exc
        if parts.path not in ("", "/"):
            raise InvalidArgument(f"invalid host {spec!r}: a tcp host takes no path")
        return Listener("tcp", parts.hostname or "0.0.0.0", port or (2376 if tls else 2375))
    raise InvalidArgument(f"invalid host {spec!r}: expected unix://PATH or tcp://HOST:PORT")


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)


def parse_size(value: str, what: str) -> int:
    """go-units RAMInBytes: 10m = 10 MiB."""
    m = _SIZE.match(value)
    if not m:
        raise InvalidArgument(f"invalid {what}: {value!r} (expected a size such as 10m)")
    mult = 1024 ** " kmgt".index(m.group(2).lower() or " ")
    return int(float(m.group(1)) * mult)


def builtin_runtimes() -> dict[str, str]:
    return {
        "dockyard-runtime": str(Path(sys.executable).parent / "dockyard-runtime"),
        "runc": shutil.which("runc") or "runc",
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dockyardd", description="dockyard daemon (Docker Engine API)")
    p.add_argument("-H", "--host", dest="hosts", action="append", help="listen address (repeatable)")
    p.add_argument("--data-root", dest="data_root")
    p.add_argument("--exec-root", dest="exec_root")
    p.add_argument("-p", "--pidfile", dest="pidfile")
    p.add_argument("--default-runtime", dest="default_runtime")
    p.add_argument("--add-runtime", dest="runtimes", action="append", metavar="NAME=PATH")
    p.add_argument("-l", "--log-level", dest="log_level", choices=LOG_LEVELS)
    p.add_argument("--log-opt", dest="log_opts", action="append", metavar="KEY=VALUE")
    p.add_argument("--config-file", dest="config_file")
    p.add_argument("-G", "--group", dest="group", metavar="GROUP",
                   help=f"group owning the unix socket(s), mode 0660 (default {DEFAULT_GROUP} when it exists; "
                        "\"\" for root only)")
    p.add_argument("--tls", dest="tls", action="store_const", const=True)
    p.add_argument("--tlsverify", dest="tlsverify", action="store_const", const=True)
    p.add_argument("--tlscacert", dest="tlscacert")
    p.add_argument("--tlscert", dest="tlscert")
    p.add_argument("--tlskey", dest="tlskey")
    p.add_argument("--insecure-registry", dest="insecure_registries", action="append", metavar="HOST[:PORT]|CIDR")
    p.add_argument("--registry-mirror", dest="registry_mirrors", action="append", metavar="URL")
    # where docker.io names are pulled from instead of Docker Hub (no fallback): tests point it
    # at loopback so that nothing ever reaches a public registry
    p.add_argument("--default-registry", dest="default_registry", metavar="HOST[:PORT]")
    p.add_argument("-b", "--bridge", dest="bridge", metavar="NAME",
                   help="device of the default bridge network (default dy0)")
    p.add_argument("--firewall-table", dest="firewall_table", metavar="NAME",
                   help="nftables table (inet) holding this daemon's rules (default dockyard)")
    p.add_argument("--userns-remap", dest="userns_remap", metavar="default|USER[:GROUP]",
                   help="run every container in a user namespace on USER's subordinate ids")
    p.add_argument("--log-driver", dest="log_driver", help="default container log driver (json-file)")
    p.add_argument("--default-address-pool", dest="address_pools", action="append", metavar="base=CIDR,size=N",
                   help="pool bridge networks take their subnets from (repeatable; default: Docker's)")
    p.add_argument("--live-restore", dest="live_restore", nargs="?", const="true", metavar="true|false",
                   help="keep containers running while the daemon is down (default true)")
    p.add_argument("-D", "--debug", dest="debug", action="store_const", const=True, help="log level debug")
    p.add_argument("--detach", dest="detach", action="store_true",
                   help="run in the background: return once the API answers (not under systemd)")
    p.add_argument("--log-file", dest="log_file", metavar="PATH",
                   help="daemon log of a --detach'ed daemon (default /var/log/dockyardd.log)")
    return p


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"invalid {what} {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def _read_file(path: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise InvalidArgument(f"unable to read config file {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"invalid config file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidArgument(f"invalid config file {path}: expected a JSON object")
    unknown = sorted(k for k in data if k not in _FILE_KEYS)
    if unknown:
        raise InvalidArgument("the following directives don't match any configuration option: " + ", ".join(unknown))
    return data


def _file_value(key: str, value: Any) -> Any:
    """Normalise a config-file value into the flag representation (type-checked)."""
    def bad(expected: str) -> InvalidArgument:
        return InvalidArgument(f"invalid config file value for {key!r}: expected {expected}")
    if key in ("hosts", "insecure-registries", "registry-mirrors"):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad("an array of strings")
        return value
    if key == "runtimes":
        if not isinstance(value, dict):
            raise bad("an object of {name: {\"path\": ...}}")
        out = []
        for name, spec in value.items():
            if not isinstance(spec, dict) or not isinstance(spec.get("path"), str):
                raise InvalidArgument(f"invalid config file value for runtime {name!r}: expected {{\"path\": \"...\"}}")
            out.append(f"{name}={spec['path']}")
        return out
    if key == "log-opts":
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise bad("an object of strings")
        return [f"{k}={v}" for k, v in value.items()]
    if key == "default-address-pools":
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise bad('an array of {"base": "CIDR", "size": N}')
        return [f"base={v.get('base')},size={v.get('size')}" for v in value]
    if key in ("tls", "tlsverify", "live-restore", "debug"):
        if not isinstance(value, bool):
            raise bad("a boolean")
        return value
    if not isinstance(value, str):
        raise bad("a string")
    if key == "log-level" and value not in LOG_LEVELS:
        raise InvalidArgument(f"invalid log level {value!r}: expected one of {', '.join(LOG_LEVELS)}")
    return value


def parse_pool(spec: str) -> tuple[str, int]:
    """dockerd's --default-address-pool base=10.10.0.0/16,size=24."""
    fields = dict(item.partition("=")[::2] for item in spec.split(","))
    base, size = fields.get("base", ""), fields.get("size", "")
    if set(fields) != {"base", "size"} or not size.isdigit():
        raise InvalidArgument(f"invalid default-address-pools entry {spec!r}: expected base=CIDR,size=N")
    try:
        net = ipaddress.IPv4Network(base)
    except ValueError as exc:
        raise InvalidArgument(f"invalid default-address-pools base {base!r}: {exc}") from exc
    if not net.prefixlen <= int(size) <= 32:
        raise InvalidArgument(f"invalid default-address-pools size {size} for base {base}: "
                              f"must be between {net.prefixlen} and 32")
    return str(net), int(size)


def _bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text not in ("true", "false", "1", "0"):
        raise InvalidArgument(f"invalid value {value!r} for {what}: expected true or false")
    return text in ("true", "1")


def resolve_group(name: str | None) -> tuple[str, int | None]:
    """The socket group and its gid. The default group is optional (absent: root only, as dockerd
    does with "docker"); a group asked for by name must exist; a number is taken as a gid."""
    if name is None:
        try:
            return DEFAULT_GROUP, grp.getgrnam(DEFAULT_GROUP).gr_gid
        except KeyError:
            return DEFAULT_GROUP, None
    if not name:
        return "", None
    try:
        return name, grp.getgrnam(name).gr_gid
    except KeyError:
        pass
    if name.isdigit():
        return name, int(name)
    raise InvalidArgument(f"group {name!r} for the API socket does not exist: create it (groupadd {name}) "
                          "or name another with -G/--group")


def load_config(argv: list[str]) -> DaemonConfig:
    """Parse flags, merge the config file (a key set in both is refused, as dockerd does), validate."""
    args = vars(build_parser().parse_args(argv))
    config_file = args.pop("config_file")
    if config_file is None and Path(DEFAULT_CONFIG_FILE).exists():
        config_file = DEFAULT_CONFIG_FILE
    if config_file:
        conflicts = []
        for key, value in _read_file(config_file).items():
            dest = _FILE_KEYS[key]
            normalised = _file_value(key, value)
            if args.get(dest) is not None:
                conflicts.append(f"{key}: (from flag: {args[dest]}, from file: {value})")
            else:
                args[dest] = normalised
        if conflicts:
            raise InvalidArgument("the following directives are specified both as a flag and in the "
                                  "configuration file: " + ", ".join(conflicts))
    tls = bool(args["tls"] or args["tlsverify"])
    group, socket_gid = resolve_group(args["group"])
    hosts = [parse_host(h, tls) for h in (args["hosts"] or [DEFAULT_HOST])]
    exec_root = Path(args["exec_root"] or DEFAULT_EXEC_ROOT)
    runtimes = builtin_runtimes()
    for name, path in _pairs(args["runtimes"] or [], "runtime").items():
        if name in runtimes:
            raise InvalidArgument(f"runtime name {name!r} is reserved")
        runtimes[name] = path
    default_runtime = args["default_runtime"] or DEFAULT_RUNTIME
    if default_runtime not in runtimes:
        raise InvalidArgument(f"specified default runtime {default_runtime!r} does not exist")
    log_opts = _pairs(args["log_opts"] or [], "log-opt")
    unknown = sorted(set(log_opts) - {"max-size", "max-file"})
    if unknown:
        raise InvalidArgument(f"unknown log opt {unknown[0]!r} for json-file log driver")
    log_driver = args["log_driver"] or "json-file"
    if log_driver not in LOG_DRIVERS:
        raise InvalidArgument(f"invalid log-driver {log_driver!r}: dockyard supports {', '.join(LOG_DRIVERS)}")
    max_file = log_opts.get("max-file", "5")
    if not max_file.isdigit() or int(max_file) < 1:
        raise InvalidArgument(f"invalid max-file {max_file!r}: expected a positive integer")
    cfg = DaemonConfig(
        hosts=hosts, data_root=Path(args["data_root"] or DEFAULT_DATA_ROOT), exec_root=exec_root,
        pidfile=Path(args["pidfile"] or exec_root / "dockyardd.pid"), default_runtime=default_runtime,
        runtimes=runtimes, log_level="debug" if args["debug"] else args["log_level"] or "info",
        log_max_size=parse_size(log_opts["max-size"], "max-size") if "max-size" in log_opts else 20 * 1000 * 1000,
        log_max_file=int(max_file), tls=tls, tlsverify=bool(args["tlsverify"]),
        tlscacert=args["tlscacert"] or "", tlscert=args["tlscert"] or "", tlskey=args["tlskey"] or "",
        insecure_registries=list(args["insecure_registries"] or []),
        registry_mirrors=[m.rstrip("/") for m in args["registry_mirrors"] or []],
        default_registry=args["default_registry"] or "",
        bridge=args["bridge"] or "dy0", firewall_table=args["firewall_table"] or "dockyard",
        userns_remap=args["userns_remap"] or "", group=group, socket_gid=socket_gid,
        log_driver=log_driver, address_pools=[parse_pool(p) for p in args["address_pools"] or []],
        live_restore=_bool(args["live_restore"], "live-restore") if args["live_restore"] is not None else True,
        detach=bool(args["detach"]), log_file=args["log_file"] or "", argv=list(argv),
        config_file=config_file or "",
    )
    check_tls(cfg)
    return cfg


def check_tls(cfg: DaemonConfig) -> None:
    """Off-loopback TCP without client-certificate TLS hands root to anyone who can connect."""
    secured = cfg.tlsverify and cfg.tlscacert and cfg.tlscert and cfg.tlskey
    for host in cfg.hosts:
        if host.scheme == "tcp" and not host.loopback and not secured:
            raise InvalidArgument(
                f"refusing to listen on {host} without TLS: anyone who can reach it gets root on this host; "
                "pass --tlsverify --tlscacert --tlscert --tlskey or listen on 127.0.0.1")
    if cfg.tls and not (cfg.tlscert and cfg.tlskey):
        raise InvalidArgument("--tls/--tlsverify need --tlscert and --tlskey")
    if cfg.tlsverify and not cfg.tlscacert:
        raise InvalidArgument("--tlsverify needs --tlscacert")
