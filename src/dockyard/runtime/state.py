"""The runtime's per-container state directory: ``<root>/<id>/{state.json, exec.fifo}``.

``state.json`` is written atomically (temp file, rename) so a concurrent ``state`` never reads half
a file. Not fsynced, as runc does not: the root lives under the exec root (``/run``), which holds
what exists only while the machine is up — after a power loss every process it describes is gone.
The status is never stored: it is derived from the init pid, its start time (guards against pid
reuse), the exec fifo (present until ``start``) and the freezer.
"""

from __future__ import annotations

import os

from dockyard.errors import AlreadyExists, InvalidArgument, NotFound
from dockyard.runtime import jsonio

OCI_VERSION = "1.0.2"
_ID_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_ID_CHARS = _ID_FIRST | frozenset("_.+-")


class ContainerState:
    """What ``create`` records; a plain class because dataclasses cost ~7 ms of imports per call."""

    FIELDS = ("id", "bundle", "pid", "pid_start", "created", "rootfs", "cgroup_path", "annotations")

    def __init__(self, id: str, bundle: str, pid: int = 0, pid_start: str = "", created: str = "",
                 rootfs: str = "", cgroup_path: str = "", annotations: dict[str, str] | None = None) -> None:
        self.id = id
        self.bundle = bundle
        self.pid = pid
        self.pid_start = pid_start          # /proc/<pid>/stat field 22, to detect pid reuse
        self.created = created
        self.rootfs = rootfs
        self.cgroup_path = cgroup_path      # spec-relative path, e.g. /dockyard/<id>
        self.annotations = annotations or {}

    def to_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.FIELDS}


def check_id(container_id: str) -> None:
    # same rule as runc: ^[\w+-\.]+$, no path separators, bounded length
    if not (0 < len(container_id) <= 128 and container_id[0] in _ID_FIRST and set(container_id) <= _ID_CHARS):
        raise InvalidArgument(f"invalid container id {container_id!r}")


def container_dir(root: str, container_id: str) -> str:
    check_id(container_id)
    return os.path.join(root, container_id)


def atomic_write(path: str, data: bytes, mode: int = 0o600) -> None:
    """Readers see the old file or the new one, never a part (rename); no fsync (see above: the
    state and pid files describe processes that do not outlive the machine)."""
    path = os.path.abspath(path)
    parent, name = os.path.split(path)
    tmp = os.path.join(parent, f".{name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.rename(tmp, path)


def make_dir(root: str, container_id: str) -> str:
    os.makedirs(root, mode=0o711, exist_ok=True)
    path = container_dir(root, container_id)
    try:
        os.mkdir(path, 0o711)
    except FileExistsError as exc:
        raise AlreadyExists(f"container with id exists: {container_id}") from exc
    return path


def save(root: str, st: ContainerState) -> None:
    atomic_write(os.path.join(container_dir(root, st.id), "state.json"), jsonio.dumps(st.to_dict()).encode())


def load(root: str, container_id: str) -> ContainerState:
    path = os.path.join(container_dir(root, container_id), "state.json")
    try:
        with open(path, "rb") as f:
            raw = jsonio.loads(f.read())
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
