"""The runtime's per-container state directory: ``<root>/<id>/{state.json, exec.fifo}``.

``state.json`` is written atomically (temp file, fsync, rename) so a concurrent ``state`` never reads
half a file. The status is never stored: it is derived from the init pid, its start time (guards
against pid reuse), the exec fifo (present until ``start``) and the freezer.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dockyard.errors import AlreadyExists, InvalidArgument, NotFound

OCI_VERSION = "1.0.2"
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$")


@dataclass
class ContainerState:
    id: str
    bundle: str
    pid: int = 0
    pid_start: str = ""                    # /proc/<pid>/stat field 22, to detect pid reuse
    created: str = ""
    rootfs: str = ""
    cgroup_path: str = ""                  # spec-relative path, e.g. /dockyard/<id>
    annotations: dict[str, str] = field(default_factory=dict)


def check_id(container_id: str) -> None:
    if not _ID_RE.match(container_id):
        raise InvalidArgument(f"invalid container id {container_id!r}")


def container_dir(root: Path, container_id: str) -> Path:
    check_id(container_id)
    return root / container_id


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def make_dir(root: Path, container_id: str) -> Path:
    root.mkdir(parents=True, exist_ok=True, mode=0o711)
    path = container_dir(root, container_id)
    try:
        path.mkdir(mode=0o711)
    except FileExistsError as exc:
        raise AlreadyExists(f"container with id exists: {container_id}") from exc
    return path


def save(root: Path, st: ContainerState) -> None:
    atomic_write(container_dir(root, st.id) / "state.json", json.dumps(asdict(st)).encode())


def load(root: Path, container_id: str) -> ContainerState:
    path = container_dir(root, container_id) / "state.json"
    try:
        raw = json.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise NotFound(f"container does not exist: {container_id}") from exc
    return ContainerState(**raw)


def proc_start_time(pid: int) -> str:
    """Field 22 (starttime) of /proc/<pid>/stat, or "" when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode()
    except (FileNotFoundError, ProcessLookupError):
        return ""
    # comm may contain spaces and parens: split after the last ')'
    rest = raw[raw.rfind(")") + 2:].split()
    if rest[0] in ("Z", "X"):
        return ""
    return rest[19]


def init_alive(st: ContainerState) -> bool:
    return st.pid > 0 and proc_start_time(st.pid) == st.pid_start
