"""A new container's mounts from everything Docker accepts: ``Binds`` (``-v``), ``Mounts``
(``--mount``), ``Config.Volumes`` (``-v /path`` and the image's VOLUMEs), ``VolumesFrom`` and
``--mount type=tmpfs``, with Docker's precedence and error texts. Named volumes that do not exist
yet are created; every volume is a ``MountPoint`` whose source is its ``_data`` directory.
"""

from __future__ import annotations

import os
import re
from typing import Any

from dockyard.engine.create import parse_binds
from dockyard.engine.types import ContainerConfig, ContainerRecord, HostConfig, MountPoint
from dockyard.engine.volumes import VolumeService
from dockyard.errors import InvalidArgument

_MOUNT_TYPES = ("bind", "volume", "tmpfs")


# what dockerd's ParseTmpfsOptions accepts: mount flags, and these data options
_TMPFS_FLAGS = frozenset({
    "defaults", "ro", "rw", "suid", "nosuid", "dev", "nodev", "exec", "noexec", "sync", "async",
    "dirsync", "remount", "mand", "nomand", "atime", "noatime", "diratime", "nodiratime", "bind",
    "rbind", "unbindable", "runbindable", "private", "rprivate", "shared", "rshared", "slave",
    "rslave", "relatime", "norelatime", "strictatime", "nostrictatime", "tmpcopyup"})
# dockerd checks only the names and lets a bad value fail the mount at start (a 500); the values
# are checked here too, so ``size=bogus`` is a 400 at create
_TMPFS_VALUES: dict[str, tuple[re.Pattern[str], str]] = {
    "size": (re.compile(r"[0-9]+[kKmMgGtTpPeE%]?"), "a number with an optional k, m, g, t, p, e or % suffix"),
    "nr_blocks": (re.compile(r"[0-9]+[kKmMgGtTpPeE%]?"), "a number with an optional k, m, g, t, p, e or % suffix"),
    "nr_inodes": (re.compile(r"[0-9]+[kKmMgGtTpPeE%]?"), "a number with an optional k, m, g, t, p, e or % suffix"),
    "mode": (re.compile(r"[0-7]{1,4}"), "an octal permission"),
    "uid": (re.compile(r"[0-9]+"), "a numeric user id"),
    "gid": (re.compile(r"[0-9]+"), "a numeric group id"),
    "mpol": (re.compile(r"(default|prefer|bind|interleave|local)(:[0-9,-]+)?"), "a NUMA memory policy"),
}


def check_tmpfs_options(dest: str, options: str) -> None:
    """``HostConfig.Tmpfs`` options, before anything is created."""
    for opt in filter(None, options.split(",")):
        key, eq, value = opt.partition("=")
        if not eq and key in _TMPFS_FLAGS:
            continue
        rule = _TMPFS_VALUES.get(key)
        if rule is None or not eq:
            raise InvalidArgument(f"invalid tmpfs option {opt!r} for {dest}")
        if not rule[0].fullmatch(value):
            raise InvalidArgument(f"invalid tmpfs option {opt!r} for {dest}: {key} must be {rule[1]}")


def _bad(kind: str, why: str) -> InvalidArgument:
    return InvalidArgument(f"invalid mount config for type \"{kind}\": {why}")


def _mount_spec(spec: dict[str, Any], i: int) -> tuple[str, dict[str, Any]]:
    if not isinstance(spec, dict):
        raise InvalidArgument(f"invalid HostConfig.Mounts[{i}]: expected an object")
    kind = str(spec.get("Type") or "")
    if kind not in _MOUNT_TYPES:
        raise InvalidArgument(f"invalid mount config: mount type unknown: \"{kind}\"" if kind
                              else "invalid mount config: type is required")
    target = str(spec.get("Target") or "")
    if not target:
        raise _bad(kind, "field Target must not be empty")
    if not target.startswith("/"):
        raise _bad(kind, f"invalid mount path: '{target}' mount path must be absolute")
    return kind, spec


def container_mounts(host: HostConfig, cfg: ContainerConfig, volumes: VolumeService,
                     lookup: Any) -> list[MountPoint]:
    """The mounts of a container being created; ``lookup(ref)`` finds another container
    (for VolumesFrom). Volumes are created only after every spec has been checked, so bad input
    leaves nothing behind."""
    planned: list[MountPoint] = []
    create_args: dict[int, tuple[dict[str, str], dict[str, str]]] = {}   # --mount volume-opt/-label
    taken: set[str] = set()

    def add(mp: MountPoint) -> None:
        dest = os.path.normpath(mp.destination)
        if dest in taken or dest in host.tmpfs:
            raise InvalidArgument(f"Duplicate mount point: {dest}")
        taken.add(dest)
        mp.destination = dest
        planned.append(mp)

    for dest, tmpfs_options in host.tmpfs.items():
        if not dest.startswith("/"):
            raise InvalidArgument(f"invalid tmpfs mount point {dest!r}: mount path must be absolute")
        check_tmpfs_options(dest, tmpfs_options)
    for bind in host.binds:
        add(_bind_or_volume(bind))
    for i, raw in enumerate(host.mounts):
        kind, spec = _mount_spec(raw, i)
        target = os.path.normpath(str(spec["Target"]))
        readonly = bool(spec.get("ReadOnly"))
        source = str(spec.get("Source") or "")
        if kind == "tmpfs":
            if source:
                raise _bad("tmpfs", "field Source must not be specified")
            opts = spec.get("TmpfsOptions") or {}
            parts = [f"size={int(opts['SizeBytes'])}"] if opts.get("SizeBytes") else []
            if opts.get("Mode"):
                parts.append(f"mode={int(opts['Mode']):o}")
            add(MountPoint(type="tmpfs", source="", destination=target, rw=not readonly, mode=",".join(parts)))
            continue
        if kind == "bind":
            if not source:
                raise _bad("bind", "field Source must not be empty")
            if not os.path.isabs(source):
                raise _bad("bind", f"invalid mount path: '{source}' mount path must be absolute")
            if not os.path.exists(source):
                raise _bad("bind", f"bind source path does not exist: {source}")
            prop = str((spec.get("BindOptions") or {}).get("Propagation") or "rprivate")
            add(MountPoint(type="bind", source=os.path.normpath(source), destination=target,
                           rw=not readonly, propagation=prop))
            continue
        vopts = spec.get("VolumeOptions") or {}
        driver = (vopts.get("DriverConfig") or {})
        mp = MountPoint(type="volume", source="", destination=target, rw=not readonly, name=source,
                        driver=str(driver.get("Name") or host.volume_driver or "local"),
                        nocopy=bool(vopts.get("NoCopy")), subpath=str(vopts.get("Subpath") or ""))
        add(mp)
        create_args[id(mp)] = (dict(driver.get("Options") or {}), dict(vopts.get("Labels") or {}))
    for ref in host.volumes_from:
        name, _, mode = ref.partition(":")
        if mode not in ("", "ro", "rw"):
            raise InvalidArgument(f"invalid mode for volumes-from: {mode}")
        source_rec: ContainerRecord = lookup(name)
        for m in source_rec.mounts:
            if os.path.normpath(m.destination) in taken:
                continue
            copy = MountPoint(**{k: getattr(m, k) for k in MountPoint.__dataclass_fields__})
            if mode:
                copy.rw = mode == "rw"
            add(copy)
    for dest in cfg.volumes:   # anonymous volumes: -v /path and the image's VOLUMEs
        if not dest.startswith("/"):
            raise InvalidArgument(f"invalid volume specification: '{dest}': invalid mount config for "
                                  f"type \"volume\": invalid mount path: '{dest}' mount path must be absolute")
        norm = os.path.normpath(dest)
        if norm in taken or norm in host.tmpfs:
            continue   # a bind, a named volume or a tmpfs there wins (Docker)
        add(MountPoint(type="volume", source="", destination=norm, name="",
                       driver=host.volume_driver or "local"))
    # everything checked: make the volumes
    for mp in planned:
        if mp.type != "volume":
            continue
        options, labels = create_args.get(id(mp), ({}, {}))
        vol = volumes.create(mp.name, mp.driver, options, labels, anonymous=not mp.name)
        mp.name, mp.driver = vol.name, vol.driver
        base = volumes.mountpoint(vol.name)
        mp.source = str(base / mp.subpath) if mp.subpath else str(base)
    return planned


def _bind_or_volume(spec: str) -> MountPoint:
    """One ``-v`` item: ``/host:/ctr[:opts]`` is a bind, ``name:/ctr[:opts]`` a named volume."""
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise InvalidArgument(f"invalid volume specification: '{spec}'")
    if parts[0].startswith("/"):
        return parse_binds([spec])[0]
    source, dest = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else ""
    if not dest.startswith("/"):
        raise InvalidArgument(f"invalid volume specification: '{spec}': invalid mount config for type "
                              f"\"volume\": invalid mount path: '{dest}' mount path must be absolute")
    rw, nocopy = True, False
    for opt in filter(None, mode.split(",")):
        if opt in ("ro", "rw"):
            rw = opt == "rw"
        elif opt == "nocopy":
            nocopy = True
        elif opt not in ("z", "Z", "consistent", "cached", "delegated"):
            raise InvalidArgument(f"invalid mode: {mode}")
    from dockyard.volumes.local import check_name
    check_name(source)
    return MountPoint(type="volume", source="", destination=dest, mode=mode or "z", rw=rw, name=source,
                      driver="local", nocopy=nocopy)
