"""``volume create|ls|inspect|rm|prune``: request bodies and output as the docker 28 CLI has them."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from dockyard import errors
from dockyard.cli import formatting as fmt
from dockyard.cli.containers import confirm
from dockyard.cli.netopts import flag_error, kv_map, natural_sorted
from dockyard.client.api import Client
from dockyard.client.transport import DaemonUnreachable


def parse_filter_flag(items: list[str], flag: str) -> dict[str, list[str]]:
    """opts.FilterOpt: name=value pairs, a bad one refused as pflag reports it (exit 125)."""
    out: dict[str, list[str]] = {}
    for item in items or []:
        if not item:
            continue
        key, eq, value = item.partition("=")
        if not eq:
            raise flag_error(item, flag, "bad format of filter (expected name=value)")
        out.setdefault(key.strip().lower(), []).append(value.strip())
    return out


def _label(value: str) -> str:
    """opts.ValidateLabel."""
    key = value.partition("=")[0].lstrip(" \t")
    if not key:
        raise flag_error(value, "--label", f"invalid label '{value}': empty name")
    if " " in key or "\t" in key:
        raise flag_error(value, "--label", f"label '{key}' contains whitespaces")
    return value


def human_size(size: float) -> str:
    """go-units HumanSize (decimal units, four significant digits)."""
    return fmt.human_size(size, 4)


def _daemon_errors(failures: list[errors.DockyardError]) -> None:
    for exc in failures:
        sys.stderr.write(f"Error response from daemon: {exc}\n")


# ---------------------------------------------------------------- create


def add_create(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", "--driver", default="local")
    p.add_argument("--name", default="", help=argparse.SUPPRESS)
    p.add_argument("-o", "--opt", action="append", default=[])
    p.add_argument("--label", action="append", default=[])
    p.add_argument("volume", nargs="?", metavar="VOLUME")
    p.set_defaults(fn=cmd_create)


def create_volume_body(a: argparse.Namespace) -> dict[str, Any]:
    """volume.CreateOptions as docker encodes it: every field omitted when empty."""
    labels = kv_map([_label(v) for v in a.label])
    name = a.name
    if a.volume is not None:
        if name:
            raise errors.InvalidArgument("conflicting options: cannot specify a volume-name through both "
                                         "--name and as a positional arg")
        name = a.volume
    body: dict[str, Any] = {"Driver": a.driver, "DriverOpts": kv_map(a.opt), "Labels": labels, "Name": name}
    return {k: v for k, v in body.items() if v}


def cmd_create(c: Client, a: argparse.Namespace) -> int:
    print(c.create_volume(create_volume_body(a)).get("Name", ""))
    return 0


# ---------------------------------------------------------------- ls


HEADERS = {"ID": "ID", "Name": "VOLUME NAME", "Group": "GROUP", "Driver": "DRIVER", "Scope": "SCOPE",
           "Availability": "AVAILABILITY", "Mountpoint": "MOUNTPOINT", "Labels": "LABELS", "Links": "LINKS",
           "Size": "SIZE", "Status": "STATUS"}
_JSON_FIELDS = ("Availability", "Driver", "Group", "Labels", "Links", "Mountpoint", "Name", "Scope", "Size",
                "Status")


class VolumeRow:
    """docker/cli's volumeContext: the fields ``volume ls --format`` (and ``system df -v``) can use."""

    def __init__(self, v: dict[str, Any]) -> None:
        self.v = v

    @property
    def Name(self) -> str:
        return str(self.v.get("Name", ""))

    @property
    def Driver(self) -> str:
        return str(self.v.get("Driver", ""))

    @property
    def Scope(self) -> str:
        return str(self.v.get("Scope", ""))

    @property
    def Mountpoint(self) -> str:
        return str(self.v.get("Mountpoint", ""))

    @property
    def Labels(self) -> str:
        # docker walks a Go map (random order); sorted is one of its orders and stable
        return ",".join(f"{k}={v}" for k, v in sorted((self.v.get("Labels") or {}).items()))

    def Label(self, name: str) -> str:
        return str((self.v.get("Labels") or {}).get(name, ""))

    @property
    def Links(self) -> str:
        usage = self.v.get("UsageData")
        return "N/A" if usage is None else str(int(usage.get("RefCount") or 0))

    @property
    def Size(self) -> str:
        usage = self.v.get("UsageData")
        return "N/A" if usage is None else human_size(int(usage.get("Size") or 0))

    def _cluster(self, *path: str) -> Any:
        node: Any = self.v.get("ClusterVolume")
        for key in path:
            node = (node or {}).get(key) if isinstance(node, dict) else None
        return node

    @property
    def Group(self) -> str:
        return "N/A" if self.v.get("ClusterVolume") is None else str(self._cluster("Spec", "Group") or "")

    @property
    def Availability(self) -> str:
        if self.v.get("ClusterVolume") is None:
            return "N/A"
        return str(self._cluster("Spec", "Availability") or "")

    @property
    def Status(self) -> str:
        if self.v.get("ClusterVolume") is None:
            return "N/A"
        if not self._cluster("Info", "VolumeID"):
            return "pending creation"
        nodes = len(self._cluster("PublishStatus") or [])
        return "created" if nodes == 0 else "in use (1 node)" if nodes == 1 else f"in use ({nodes} nodes)"

    def to_json(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in _JSON_FIELDS}


def add_ls(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--format")
    p.add_argument("-f", "--filter", action="append", default=[])
    p.add_argument("--cluster", action="store_true")
    p.set_defaults(fn=cmd_ls)


def render_volumes(volumes: list[dict[str, Any]], template: str | None, quiet: bool,
                   cluster: bool = False) -> str:
    if cluster:
        volumes = [v for v in volumes if v.get("ClusterVolume") is not None]
        template = "table" if quiet else "table {{.Name}}\t{{.Group}}\t{{.Driver}}\t{{.Availability}}\t{{.Status}}"
    rows = [VolumeRow(v) for v in natural_sorted(volumes, key=lambda v: str(v.get("Name", "")))]
    template = template or "table"
    if template == "table":
        template = "{{.Name}}" if quiet else "table {{.Driver}}\t{{.Name}}"
    elif template == "raw":
        template = "name: {{.Name}}" if quiet else "name: {{.Name}}\ndriver: {{.Driver}}\n"
    return fmt.render_list(template, rows, HEADERS)


def cmd_ls(c: Client, a: argparse.Namespace) -> int:
    reply = c.list_volumes(parse_filter_flag(a.filter, "-f, --filter"))  # docker ignores its Warnings
    sys.stdout.write(render_volumes(reply.get("Volumes") or [], a.format, a.quiet, a.cluster))
    return 0


# ---------------------------------------------------------------- inspect


_VOLUME_FIELDS = ("ClusterVolume", "CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope",
                  "Status", "UsageData")
_OMIT_EMPTY = ("ClusterVolume", "CreatedAt", "Status", "UsageData")


def _go_value(value: Any) -> Any:
    """A decoded JSON value as Go re-encodes it: map keys sorted."""
    if isinstance(value, dict):
        return {k: _go_value(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_go_value(v) for v in value]
    return value


def typed_volume(v: dict[str, Any]) -> dict[str, Any]:
    """The daemon's reply decoded into Go's volume.Volume and encoded again, as ``volume inspect``
    prints it: its fields in struct order, unknown ones dropped, empty optional ones left out."""
    out: dict[str, Any] = {}
    for key in _VOLUME_FIELDS:
        value: Any = v.get(key)
        if key in _OMIT_EMPTY and not value:
            continue
        if key == "UsageData":
            value = {"RefCount": int(value.get("RefCount") or 0), "Size": int(value.get("Size") or 0)}
        elif key in ("Driver", "Mountpoint", "Name", "Scope"):
            value = "" if value is None else value
        out[key] = _go_value(value)
    return out


def go_indent_json(value: Any) -> str:
    """json.MarshalIndent(v, "", "    ") with Go's HTML escaping."""
    text = json.dumps(value, indent=4, ensure_ascii=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def add_inspect(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--format")
    p.add_argument("names", nargs="+", metavar="VOLUME")
    p.set_defaults(fn=cmd_inspect)


def render_inspect(found: list[dict[str, Any]], template: str | None) -> str:
    if not template:
        return go_indent_json(found) + "\n" if found else "[]\n"
    if template == "json":
        return fmt.go_json(found) + "\n" if found else "[]\n"
    return fmt.render_each(template, found) or "\n"


def cmd_inspect(c: Client, a: argparse.Namespace) -> int:
    found: list[dict[str, Any]] = []
    failures: list[errors.DockyardError] = []
    for name in a.names:
        try:
            found.append(typed_volume(c.inspect_volume(name)))
        except DaemonUnreachable:
            raise
        except errors.DockyardError as exc:
            failures.append(exc)
    sys.stdout.write(render_inspect(found, a.format))
    _daemon_errors(failures)  # docker reports the misses after the output
    return 1 if failures else 0


# ---------------------------------------------------------------- rm / prune


def add_rm(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("names", nargs="+", metavar="VOLUME")
    p.set_defaults(fn=cmd_rm)


def cmd_rm(c: Client, a: argparse.Namespace) -> int:
    failures: list[errors.DockyardError] = []
    for name in a.names:
        try:
            c.remove_volume(name, a.force)
        except DaemonUnreachable:
            raise
        except errors.DockyardError as exc:
            failures.append(exc)
            continue
        print(name, flush=True)
    _daemon_errors(failures)
    return 1 if failures else 0


ANONYMOUS_WARNING = "WARNING! This will remove anonymous local volumes not used by at least one container."
ALL_WARNING = "WARNING! This will remove all local volumes not used by at least one container."


def add_prune(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("--filter", action="append", default=[])
    p.set_defaults(fn=cmd_prune)


def prune_report(rep: dict[str, Any]) -> tuple[int, str]:
    """(space reclaimed, the "Deleted Volumes:" section) of a POST /volumes/prune reply; the space
    counts only when something was deleted, as docker reckons it."""
    deleted = rep.get("VolumesDeleted") or []
    if not deleted:
        return 0, ""
    return int(rep.get("SpaceReclaimed") or 0), "Deleted Volumes:\n" + "".join(f"{v}\n" for v in deleted)


def cmd_prune(c: Client, a: argparse.Namespace) -> int:
    filters = parse_filter_flag(a.filter, "--filter")
    warning = ANONYMOUS_WARNING
    if a.all:
        if "all" in filters:
            raise errors.InvalidArgument("conflicting options: cannot specify both --all and --filter all=1")
        filters["all"] = ["true"]
        warning = ALL_WARNING
    if not confirm(warning, a.force):
        return 0
    space, text = prune_report(c.prune_volumes(filters))
    if text:
        sys.stdout.write(text + "\n")
    sys.stdout.write(f"Total reclaimed space: {human_size(space)}\n")
    return 0
