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
    return out


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
