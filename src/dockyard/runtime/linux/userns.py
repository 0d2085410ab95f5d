"""User namespace id maps (``linux.uidMappings``/``gidMappings``): checked before anything is
created, written by the runtime into its setup child's new user namespace, compared with those of a
namespace joined by path. Imported only for specs that use a user namespace.
"""

from __future__ import annotations

import os

from dockyard.errors import InvalidArgument

TYPE_CHECKING = False  # typing costs ~4 ms per runtime call; annotations are strings anyway
if TYPE_CHECKING:
    from typing import Any

MAX_ID = (1 << 32) - 1  # (uid_t)-1 is "no id": the highest usable id is one below
MAX_MAP_LINES = 340  # the kernel's limit per uid_map/gid_map since Linux 4.15


def _ranges(field: str, maps: Any) -> list[tuple[int, int, int]]:
    """(containerID, hostID, size) of each entry of ``linux.<field>``, checked as the kernel will."""
    if not isinstance(maps, list):
        raise InvalidArgument(f"linux.{field} must be a list")
    if len(maps) > MAX_MAP_LINES:
        raise InvalidArgument(f"linux.{field} has {len(maps)} entries, the kernel allows {MAX_MAP_LINES}")
    out = []
    for i, m in enumerate(maps):
        vals = []
        for key in ("containerID", "hostID", "size"):
            v = m.get(key) if isinstance(m, dict) else None
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise InvalidArgument(f"linux.{field}[{i}].{key} must be a non-negative integer")
            vals.append(v)
        cid, hid, size = vals
        if size == 0:
            raise InvalidArgument(f"linux.{field}[{i}].size must be at least 1")
        for key, start in (("containerID", cid), ("hostID", hid)):
            if start + size > MAX_ID:
                raise InvalidArgument(f"linux.{field}[{i}]: {key} {start} + size {size} is beyond the "
                                      f"highest id {MAX_ID - 1}")
        out.append((cid, hid, size))
    for side, name in ((0, "containerID"), (1, "hostID")):
        spans = sorted((r[side], r[side] + r[2]) for r in out)
        for i in range(1, len(spans)):
            start, end = spans[i][0], spans[i - 1][1]
            if start < end:
                raise InvalidArgument(f"linux.{field}: the {name} ranges overlap at {start}")
    return out


def _mapped(ranges: list[tuple[int, int, int]], ident: int) -> bool:
    return any(cid <= ident < cid + size for cid, _, size in ranges)


def check(linux: dict[str, Any], wanted: dict[str, str], proc: dict[str, Any]) -> None:
    """Validate the user namespace settings before anything is created (InvalidArgument)."""
    uid_maps, gid_maps = linux.get("uidMappings") or [], linux.get("gidMappings") or []
    if "user" not in wanted:
        if uid_maps or gid_maps:
            raise InvalidArgument("linux.uidMappings/gidMappings are set, but linux.namespaces has no "
                                  "user namespace")
        return
    if wanted["user"]:
        # the joined namespace has its maps; the spec may only repeat them (runc 1.1 needs them
        # there, runc 1.2 checks they match): see check_joined_maps
        for field, maps in (("uidMappings", uid_maps), ("gidMappings", gid_maps)):
            if maps:
                _ranges(field, maps)
        return
    user = proc.get("user") or {}
    for field, maps, ids in (("uidMappings", uid_maps, [("process.user.uid", user.get("uid", 0))]),
                             ("gidMappings", gid_maps,
                              [("process.user.gid", user.get("gid", 0))]
                              + [("process.user.additionalGids", g) for g in user.get("additionalGids") or []])):
        if not maps:
            raise InvalidArgument(f"a new user namespace needs linux.{field}")
        ranges = _ranges(field, maps)
        if not _mapped(ranges, 0):
            raise InvalidArgument(f"linux.{field} must map container id 0: the container is set up as "
                                  "root of its user namespace")
        for what, ident in ids:
            if not isinstance(ident, int) or not _mapped(ranges, ident):
                raise InvalidArgument(f"{what} {ident} is not mapped by linux.{field}")


def check_joined_maps(linux: dict[str, Any], path: str) -> None:
    """In a user namespace joined by ``path``: mappings the spec gives must be the namespace's own
    (read from inside, /proc/self/*_map shows them relative to its parent, as the spec does)."""
    for name, field in (("uid_map", "uidMappings"), ("gid_map", "gidMappings")):
        maps = linux.get(field)
        if not maps:
            continue
        try:
            with open(f"/proc/self/{name}") as f:
                actual = sorted(tuple(int(x) for x in line.split()) for line in f if line.strip())
        except OSError:
            continue  # a joined mount namespace may hide our /proc; nothing to compare with
        wanted = sorted((m["containerID"], m["hostID"], m["size"]) for m in maps)
        if wanted != actual:
            raise InvalidArgument(f"linux.{field} {wanted} do not match the mappings {actual} of the "
                                  f"user namespace joined at {path}: give one or the other")


def write_id_maps(pid: int, linux: dict[str, Any]) -> None:
    """Write uid_map then gid_map of ``pid`` (new user namespace); setgroups stays allowed, as runc
    leaves it when the maps are written by a privileged process. Each map is one write(2)."""
    for name, field in (("uid_map", "uidMappings"), ("gid_map", "gidMappings")):
        text = "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in linux[field])
        try:
            fd = os.open(f"/proc/{pid}/{name}", os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, text.encode())
            finally:
                os.close(fd)
        except OSError as exc:
            raise InvalidArgument(f"cannot write linux.{field} to /proc/{pid}/{name}: {exc.strerror}") from exc
