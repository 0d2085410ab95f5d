"""The ``run``/``create`` flags for logging, /dev/shm, the cgroup parent, labels from files and the
container-ID file, as the docker CLI turns them into the create body."""

from __future__ import annotations

import argparse
import os

from dockyard.errors import InvalidArgument

TYPE_CHECKING = False  # typing costs ~3 ms to import on every CLI run
if TYPE_CHECKING:
    from typing import Any


def add_host_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-driver", default="")
    p.add_argument("--log-opt", action="append", default=[])
    p.add_argument("--shm-size")
    p.add_argument("--cgroup-parent", default="")
    p.add_argument("--oom-kill-disable", action="store_true")
    p.add_argument("--domainname", default="")
    p.add_argument("--label-file", action="append", default=[])
    p.add_argument("--cidfile", default="")
    p.add_argument("--blkio-weight-device", action="append", default=[])
    for flag in ("--device-read-bps", "--device-write-bps", "--device-read-iops", "--device-write-iops"):
        p.add_argument(flag, action="append", default=[])


def host_fields(a: argparse.Namespace) -> dict[str, Any]:
    """HostConfig fields for these flags, in the shape the docker CLI sends."""
    from dockyard.cli.netopts import kv_map
    from dockyard.cli.runopts import ram_in_bytes
    if a.log_driver == "none" and a.log_opt:
        raise InvalidArgument("invalid logging opts for driver none")
    out: dict[str, Any] = {
        "LogConfig": {"Type": a.log_driver, "Config": kv_map(a.log_opt)},
        "CgroupParent": a.cgroup_parent,
        "OomKillDisable": a.oom_kill_disable,
    }
    if a.shm_size:
        out["ShmSize"] = ram_in_bytes(a.shm_size)
    if a.cidfile:
        out["ContainerIDFile"] = a.cidfile
    out["BlkioWeightDevice"] = [_weight_device(v) for v in a.blkio_weight_device]
    for flag, key, iops in (("device_read_bps", "BlkioDeviceReadBps", False),
                            ("device_write_bps", "BlkioDeviceWriteBps", False),
                            ("device_read_iops", "BlkioDeviceReadIOps", True),
                            ("device_write_iops", "BlkioDeviceWriteIOps", True)):
        out[key] = [_throttle(v, iops) for v in getattr(a, flag)]
    return out


def _device_and_value(text: str) -> tuple[str, str]:
    path, sep, value = text.partition(":")
    if not sep:
        raise InvalidArgument(f"bad format: {text}")
    if not path.startswith("/dev/"):
        raise InvalidArgument(f"bad format for device path: {text}")
    return path, value


def _weight_device(text: str) -> dict[str, Any]:
    """``--blkio-weight-device /dev/sda:300``."""
    path, value = _device_and_value(text)
    if not value.isdigit() or int(value) >= 1 << 16:
        raise InvalidArgument(f"invalid weight for device: {text}")
    weight = int(value)
    if weight and not 10 <= weight <= 1000:
        raise InvalidArgument(f"invalid weight for device: {text}")
    return {"Path": path, "Weight": weight}


def _throttle(text: str, iops: bool) -> dict[str, Any]:
    """``--device-read-bps /dev/sda:1mb`` (sizes as in ``-m``), ``--device-read-iops /dev/sda:1000``."""
    from dockyard.cli.runopts import ram_in_bytes
    path, value = _device_and_value(text)
    if iops:
        if not value.isdigit():
            raise InvalidArgument(f"invalid rate for device: {text}. The correct format is "
                                  "<device-path>:<number>. Number must be a positive integer")
        return {"Path": path, "Rate": int(value)}
    try:
        rate = ram_in_bytes(value)
    except InvalidArgument:
        raise InvalidArgument(f"invalid rate for device: {text}. The correct format is "
                              "<device-path>:<number>[<unit>]. Number must be a positive integer. "
                              "Unit is optional and can be kb, mb, or gb") from None
    return {"Path": path, "Rate": rate}


def file_labels(paths: list[str]) -> list[str]:
    """``--label-file``: one label per line (``#`` comments and blank lines skipped), before the
    ``--label`` flags, which win."""
    out: list[str] = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError as exc:
            raise InvalidArgument(f"open {path}: {exc.strerror}") from exc
        out += [line.lstrip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return out


class CidFile:
    """``--cidfile``: refused when the file exists (another container may own it), claimed before
    the create, given the ID after it, and removed again when the create fails."""

    def __init__(self, path: str) -> None:
        self.path = path
        if not path:
            return
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            raise InvalidArgument(f"container ID file found, make sure the other container isn't running "
                                  f"or delete {path}") from None
        except OSError as exc:
            raise InvalidArgument(f"failed to create the container ID file: open {path}: {exc.strerror}") from exc
        os.close(fd)

    def write(self, cid: str) -> None:
        if self.path:
            with open(self.path, "w") as f:
                f.write(cid)

    def discard(self) -> None:
        if self.path:
            try:
                os.unlink(self.path)
            except OSError:
                pass
