"""Host devices in containers: ``--device``, ``--device-cgroup-rule`` and ``--privileged``'s /dev.

Follows dockerd (daemon/oci_linux.go WithDevices, daemon/pkg/oci DevicesFromPath) and containerd's
``HostDevices``: a device node is described by what ``lstat`` says of it on the host, a directory
given as ``--device`` brings every node under it, and each mapped node gets a device cgroup rule
with the mapping's permissions. The result goes into the OCI spec's ``linux.devices`` (nodes the
runtime creates) and ``linux.resources.devices`` (what the device cgroup lets through).
"""

from __future__ import annotations

import os
import re
import stat
from typing import Any

from dockyard.engine.types import DeviceMapping, HostConfig
from dockyard.errors import Internal, InvalidArgument

# dockerd's pattern (daemon/pkg/oci/oci.go); fullmatch, as Go's `$` does not match before a newline
_RULE = re.compile(r"([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})")
# never taken from the host's /dev for --privileged: filesystems of their own or the host's session
_SKIP_DIRS = {"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"}
_TYPES = {stat.S_IFCHR: "c", stat.S_IFBLK: "b", stat.S_IFIFO: "p"}
_INT64_MAX = 2**63 - 1


class _NotADevice(Exception):
    pass


def _go_strerror(exc: OSError) -> str:
    """Go's wording of an errno ("no such file or directory"): what dockerd puts in its errors."""
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


def _node(path: str, path_in_container: str) -> dict[str, Any]:
    """containerd's DeviceFromPath: an OCI ``linux.devices`` entry for the node at ``path``."""
    st = os.lstat(path)
    kind = _TYPES.get(stat.S_IFMT(st.st_mode))
    if kind is None:
        raise _NotADevice(path)
    return {"path": path_in_container, "type": kind, "major": os.major(st.st_rdev),
            "minor": os.minor(st.st_rdev), "fileMode": stat.S_IMODE(st.st_mode),
            "uid": st.st_uid, "gid": st.st_gid}


def _walk(top: str) -> list[str]:
    """Every non-directory under ``top`` in filepath.WalkDir's order (lexical, depth first,
    symlinks not followed); unreadable directories are skipped as dockerd skips them."""
    out: list[str] = []
    try:
        entries = sorted(os.scandir(top), key=lambda e: e.name)
    except OSError:
        return out
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            out += _walk(entry.path)
        else:
            out.append(entry.path)
    return out


def devices_from_path(path_on_host: str, path_in_container: str) -> list[dict[str, Any]]:
    """The nodes one ``--device`` names: the node itself, or every node under a directory."""
    resolved = path_on_host
    if os.path.islink(path_on_host):
        resolved = os.path.realpath(path_on_host)
    try:
        return [_node(resolved, path_in_container)]
    except _NotADevice:
        reason = "not a device node"
        if os.path.isdir(resolved):
            found = []
            for child in _walk(resolved):
                try:
                    found.append(_node(child, path_in_container + child[len(resolved):]))
                except (_NotADevice, OSError):
                    continue
            if found:
                return found
    except OSError as exc:
        reason = _go_strerror(exc)
    raise InvalidArgument(f"error gathering device information while adding custom device "
                          f"\"{path_on_host}\": {reason}")


def _check_mode(mode: str) -> str:
    """The docker CLI's validDeviceMode: some of r, w, m, each at most once. Empty means rwm (the
    SDKs' default)."""
    if not mode:
        return "rwm"
    if any(c not in "rwm" for c in mode) or len(set(mode)) != len(mode):
        raise InvalidArgument(f"bad mode specified: {mode}")
    return mode


def _check_mapping(m: DeviceMapping) -> tuple[str, str]:
    """(path in the container, cgroup permissions) of one mapping, refused as the docker CLI
    refuses it (dockerd itself would hand a bad one to the runtime)."""
    if not m.path_on_host:
        raise InvalidArgument(f"bad format for path: {m.path_on_host}")
    target = m.path_in_container or m.path_on_host
    if not target.startswith("/"):
        raise InvalidArgument(f"{target} is not an absolute path")
    return target, _check_mode(m.cgroup_permissions)


def cgroup_rules(rules: list[str]) -> list[dict[str, Any]]:
    """``--device-cgroup-rule`` values ('c 1:3 mr', 'b *:* rwm', 'a *:* rwm') → OCI allow rules."""
    out: list[dict[str, Any]] = []
    for rule in rules:
        m = _RULE.fullmatch(rule)
        if m is None:
            raise InvalidArgument(f"invalid device cgroup rule format: '{rule}'")
        kind, major, minor, access = m.groups()
        numbers = []
        for value, what in ((major, "major"), (minor, "minor")):
            n = -1 if value == "*" else int(value)
            if n > _INT64_MAX:
                raise InvalidArgument(f"invalid {what} value in device cgroup rule format: '{rule}'")
            numbers.append(n)
        out.append({"allow": True, "type": kind, "major": numbers[0], "minor": numbers[1],
                    "access": access})
    return out


def device_spec(host: HostConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(OCI ``linux.devices`` entries, extra ``linux.resources.devices`` allow rules) for the
    container's ``--device`` and ``--device-cgroup-rule`` values; InvalidArgument for bad ones.

    A privileged container already has every host node and an allow-all cgroup rule, so only
    mappings to another path add nodes (with rwm: dockerd ignores custom permissions there)."""
    devices: list[dict[str, Any]] = []
    rules: list[dict[str, Any]] = []
    for mapping in host.devices:
        target, mode = _check_mapping(mapping)
        if host.privileged and target == mapping.path_on_host:
            continue
        found = devices_from_path(mapping.path_on_host, target)
        devices += found
        if not host.privileged:
            # a fifo is no device to the device cgroup: runc refuses a rule of type "p"
            rules += [{"allow": True, "type": d["type"], "major": d["major"], "minor": d["minor"],
                       "access": mode} for d in found if d["type"] != "p"]
    extra = cgroup_rules(host.device_cgroup_rules)
    return devices, ([] if host.privileged else rules + extra)


def check_devices(host: HostConfig) -> None:
    """At create: every ``--device`` exists and is a device, every rule is well-formed."""
    device_spec(host)


def _host_devices(path: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
    except OSError as exc:
        raise Internal(f"cannot list host devices in {path}: {_go_strerror(exc)}") from exc
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if entry.name not in _SKIP_DIRS:
                out += _host_devices(entry.path)
            continue
        if entry.name == "console":  # the host's console stays the host's
            continue
        try:
            dev = _node(entry.path, entry.path)
        except (_NotADevice, FileNotFoundError):
            continue  # symlinks, regular files, or a node removed while we looked
        except OSError as exc:
            raise Internal(f"cannot stat host device {entry.path}: {_go_strerror(exc)}") from exc
        if dev["type"] != "p":
            out.append(dev)
    return out


def privileged_devices() -> list[dict[str, Any]]:
    """Every device node of the host's /dev as ``linux.devices`` entries, for ``--privileged``."""
    return _host_devices("/dev")
