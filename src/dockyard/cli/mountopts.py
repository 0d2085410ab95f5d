"""The storage flags of ``run``/``create``: ``-v/--volume``, ``--mount``, ``--tmpfs``,
``--volumes-from``, ``--read-only``, ``--volume-driver``, and their translation into the
POST /containers/create body as the docker 28 CLI sends it. Pure functions; the error texts are
Docker's."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

from dockyard.cli.netopts import add_bool_flag, flag_error, go_bool
from dockyard.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~3 ms to import on every CLI run
    from typing import Any


def add_storage_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--volume", action="append", default=[])
    p.add_argument("--mount", action="append", default=[])
    p.add_argument("--tmpfs", action="append", default=[])
    p.add_argument("--volumes-from", action="append", default=[])
    p.add_argument("--volume-driver", default="")
    add_bool_flag(p, "--read-only")


# ---------------------------------------------------------------- encoding/csv, one record


def csv_record(text: str) -> list[str]:
    """The first record of ``text`` as Go's encoding/csv Reader.Read returns it (comma-separated,
    double quotes with "" escapes, no lazy quotes), with its error texts."""
    data = text.replace("\r\n", "\n")
    # Go skips empty lines before the record
    pos = 0
    while pos < len(data) and data[pos] == "\n":
        pos += 1
    if pos >= len(data):
        raise InvalidArgument("EOF")
    fields: list[str] = []
    while True:
        if pos < len(data) and data[pos] == '"':
            value, pos = _quoted_field(data, pos)
        else:
            end = pos
            while end < len(data) and data[end] not in ",\n":
                end += 1
            value = data[pos:end]
            if '"' in value:
                col = len(data[:pos + value.index('"')].encode()) + 1
                raise InvalidArgument(f'parse error on line 1, column {col}: bare " in non-quoted-field')
            pos = end
        fields.append(value)
        if pos < len(data) and data[pos] == ",":
            pos += 1
            continue
        return fields


def _quoted_field(data: str, pos: int) -> tuple[str, int]:
    out: list[str] = []
    i = pos + 1
    while True:
        q = data.find('"', i)
        if q < 0:
            col = len(data.encode()) + 1
            raise InvalidArgument(f'parse error on line 1, column {col}: extraneous or missing " in quoted-field')
        out.append(data[i:q])
        nxt = data[q + 1] if q + 1 < len(data) else ""
        if nxt == '"':
            out.append('"')
            i = q + 2
            continue
        if nxt in ("", ",", "\n"):
            return "".join(out), q + 1
        col = len(data[:q].encode()) + 1
        raise InvalidArgument(f'parse error on line 1, column {col}: extraneous or missing " in quoted-field')


# ---------------------------------------------------------------- --mount


_RAM_RE = r"(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?"  # compiled on first use (re caches it)
_RAM_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def go_ram_in_bytes(text: str) -> int:
    """go-units RAMInBytes: binary units, an optional single space before the unit."""
    m = re.fullmatch(_RAM_RE, text)
    if not m:
        raise ValueError(text)
    return int(float(m.group(1)) * _RAM_UNITS[(m.group(2) or "").lower()])


def _abs_if_dotted(path: str) -> str:
    """docker makes a relative source absolute when it starts with '.' (``./data``, ``..``)."""
    if not path.startswith("/") and path.startswith("."):
        return os.path.normpath(os.path.join(os.getcwd(), path))
    return path


class _Mount:
    def __init__(self) -> None:
        self.type = "volume"
        self.source = ""
        self.target = ""
        self.read_only = False
        self.consistency = ""
        self.bind: dict[str, Any] | None = None
        self.volume: dict[str, Any] | None = None
        self.image: dict[str, Any] | None = None
        self.tmpfs: dict[str, Any] | None = None

    def bind_opts(self) -> dict[str, Any]:
        if self.bind is None:
            self.bind = {}
        return self.bind

    def volume_opts(self) -> dict[str, Any]:
        if self.volume is None:
            self.volume = {"Labels": {}, "DriverConfig": {}}
        return self.volume

    def tmpfs_opts(self) -> dict[str, Any]:
        if self.tmpfs is None:
            self.tmpfs = {}
        return self.tmpfs

    def to_json(self) -> dict[str, Any]:
        """mount.Mount as Go encodes it: omitempty everywhere, maps with sorted keys."""
        out: dict[str, Any] = {"Type": self.type, "Source": self.source, "Target": self.target,
                               "ReadOnly": self.read_only, "Consistency": self.consistency}
        out = {k: v for k, v in out.items() if v}
        if self.bind is not None:
            out["BindOptions"] = {k: self.bind[k] for k in ("Propagation", "NonRecursive", "CreateMountpoint",
                                                            "ReadOnlyNonRecursive", "ReadOnlyForceRecursive")
                                  if self.bind.get(k)}
        if self.volume is not None:
            vol: dict[str, Any] = {}
            if self.volume.get("NoCopy"):
                vol["NoCopy"] = True
            if self.volume["Labels"]:
                vol["Labels"] = dict(sorted(self.volume["Labels"].items()))
            if self.volume.get("Subpath"):
                vol["Subpath"] = self.volume["Subpath"]
            driver = self.volume["DriverConfig"]
            vol["DriverConfig"] = {k: (dict(sorted(v.items())) if k == "Options" else v)
                                   for k, v in driver.items() if v}
            out["VolumeOptions"] = vol
        if self.image is not None:
            out["ImageOptions"] = {k: v for k, v in self.image.items() if v}
        if self.tmpfs is not None:
            out["TmpfsOptions"] = {k: self.tmpfs[k] for k in ("SizeBytes", "Mode") if self.tmpfs.get(k)}
        return out


def _set_kv(target: dict[str, str], value: str) -> None:
    key, _, val = value.partition("=")
    if key:
        target[key] = val


def _bool_field(key: str, val: str, label: str | None = None) -> bool:
    try:
        return go_bool(val)
    except ValueError:
        raise InvalidArgument(f"invalid value for {label or key}: {val}") from None


def _mount_field(m: _Mount, field: str) -> None:
    key, eq, val = field.partition("=")
    key = key.lower()
    if not eq:
        if key in ("readonly", "ro"):
            m.read_only = True
        elif key == "volume-nocopy":
            m.volume_opts()["NoCopy"] = True
        elif key == "bind-nonrecursive":
            m.bind_opts()["NonRecursive"] = True
        else:
            raise InvalidArgument(f"invalid field '{field}' must be a key=value pair")
        return
    if key == "type":
        m.type = val.lower()
    elif key in ("source", "src"):
        m.source = _abs_if_dotted(val)
    elif key in ("target", "dst", "destination"):
        m.target = val
    elif key in ("readonly", "ro"):
        m.read_only = _bool_field(key, val)
    elif key == "consistency":
        m.consistency = val.lower()
    elif key == "bind-propagation":
        m.bind_opts()["Propagation"] = val.lower()
    elif key == "bind-nonrecursive":
        m.bind_opts()["NonRecursive"] = _bool_field(key, val)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        sys.stderr.write(f'time="{stamp}" level=warning msg="bind-nonrecursive is deprecated, '
                         'use bind-recursive=disabled instead"\n')
    elif key == "bind-recursive":
        flag = {"enabled": None, "disabled": "NonRecursive", "writable": "ReadOnlyNonRecursive",
                "readonly": "ReadOnlyForceRecursive"}
        if val not in flag:
            raise InvalidArgument(f'invalid value for {key}: {val} '
                                  '(must be "enabled", "disabled", "writable", or "readonly")')
        name = flag[val]
        if name:  # "enabled" is the default and leaves BindOptions unset
            m.bind_opts()[name] = True
    elif key == "volume-subpath":
        m.volume_opts()["Subpath"] = val
    elif key == "volume-nocopy":
        m.volume_opts()["NoCopy"] = _bool_field(key, val, "volume-nocopy")
    elif key == "volume-label":
        _set_kv(m.volume_opts()["Labels"], val)
    elif key == "volume-driver":
        m.volume_opts()["DriverConfig"]["Name"] = val
    elif key == "volume-opt":
        _set_kv(m.volume_opts()["DriverConfig"].setdefault("Options", {}), val)
    elif key == "image-subpath":
        m.image = {"Subpath": val}
    elif key == "tmpfs-size":
        try:
            m.tmpfs_opts()["SizeBytes"] = go_ram_in_bytes(val)
        except ValueError:
            raise InvalidArgument(f"invalid value for {key}: {val}") from None
    elif key == "tmpfs-mode":
        if not re.fullmatch(r"[0-7]+", val) or int(val, 8) > 0xFFFFFFFF:
            raise InvalidArgument(f"invalid value for {key}: {val}")
        m.tmpfs_opts()["Mode"] = int(val, 8)
    else:
        raise InvalidArgument(f"unexpected key '{key}' in '{field}'")


def _check_mount(m: _Mount) -> None:
    if not m.type:
        raise InvalidArgument("type is required")
    if not m.target:
        raise InvalidArgument("target is required")
    for opts, prefix, kind in ((m.volume, "volume", "volume"), (m.image, "image", "image"),
                               (m.bind, "bind", "bind"), (m.tmpfs, "tmpfs", "tmpfs")):
        if opts is not None and m.type != kind:
            raise InvalidArgument(f"cannot mix '{prefix}-*' options with mount type '{m.type}'")
    if m.bind is not None:
        if m.bind.get("ReadOnlyNonRecursive") and not m.read_only:
            raise InvalidArgument("option 'bind-recursive=writable' requires 'readonly' to be specified in conjunction")
        if m.bind.get("ReadOnlyForceRecursive"):
            if not m.read_only:
                raise InvalidArgument("option 'bind-recursive=readonly' requires 'readonly' to be specified "
                                      "in conjunction")
            if m.bind.get("Propagation") != "rprivate":
                raise InvalidArgument("option 'bind-recursive=readonly' requires 'bind-propagation=rprivate' "
                                      "to be specified in conjunction")


def parse_mount(value: str) -> dict[str, Any]:
    """One ``--mount`` value → a HostConfig.Mounts entry; errors worded as pflag reports them."""
    try:
        m = _Mount()
        for field in csv_record(value):
            _mount_field(m, field)
        _check_mount(m)
    except InvalidArgument as exc:
        raise flag_error(value, "--mount", str(exc)) from None
    return m.to_json()


# ---------------------------------------------------------------- -v / --volume


def _windows_drive(buffer: str, char: str) -> bool:
    return char == ":" and len(buffer) == 1 and buffer.isalpha()


def parse_volume_spec(spec: str) -> tuple[str, str]:
    """Split a ``-v`` spec the way docker's compose loader does: (source, type), source "" for
    an anonymous volume; type "bind" for a path-like source, else "volume"."""
    if not spec:
        raise InvalidArgument("invalid empty volume spec")
    if len(spec) <= 2:
        return "", "volume"
    source = target = ""
    buffer = ""
    for char in spec + "\0":
        if _windows_drive(buffer, char):
            buffer += char
        elif char in (":", "\0"):
            if not buffer:
                raise InvalidArgument(f"invalid spec: {spec}: empty section between colons")
            if not source and char == "\0":
                target = buffer
            elif not source:
                source = buffer
            elif not target:
                target = buffer
            elif char == ":":
                raise InvalidArgument(f"invalid spec: {spec}: too many colons")
            buffer = ""
        else:
            buffer += char
    return source, ("bind" if source and _is_file_path(source) else "volume")


def _is_file_path(source: str) -> bool:
    if source[0] in "./~":
        return True
    if len(source) == 1:
        return False
    return source.startswith("\\\\") or _windows_drive(source[0], source[1])


def volume_fields(specs: list[str]) -> tuple[dict[str, Any], list[str]]:
    """(Config.Volumes, HostConfig.Binds) for the ``-v`` values: a spec with a source is a bind
    (a '.'-relative host path made absolute), the rest are anonymous volumes."""
    volumes: dict[str, Any] = {}
    binds: list[str] = []
    for spec in dict.fromkeys(specs):  # docker keeps them in a set
        source, kind = parse_volume_spec(spec)
        if not source:
            volumes[spec] = {}
            continue
        bind = spec
        if kind == "bind" and ":" in spec:
            host, _, rest = spec.partition(":")
            bind = f"{_abs_if_dotted(host)}:{rest}"
        binds.append(bind)
    return dict(sorted(volumes.items())), binds


def tmpfs_map(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        path, _, opts = item.partition(":")
        out[path] = opts
    return dict(sorted(out.items()))


def storage_fields(a: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """(Config.Volumes, the HostConfig storage fields) for the parsed run/create flags."""
    mounts = [parse_mount(v) for v in a.mount]
    volumes, binds = volume_fields(a.volume)
    host = {
        "Binds": binds or None,
        "VolumeDriver": a.volume_driver,
        "VolumesFrom": list(a.volumes_from) or None,
        "ReadonlyRootfs": a.read_only,
        "Tmpfs": tmpfs_map(a.tmpfs) or None,
        "Mounts": mounts or None,
    }
    return volumes, host
