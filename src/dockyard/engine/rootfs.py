"""Reading and preparing files inside an (untrusted) container rootfs from the host.

A path inside the rootfs is resolved component by component with symlinks re-rooted at the
rootfs (like ``openat2(RESOLVE_IN_ROOT)``), so a hostile ``/etc/passwd -> /host/file`` link can
never make the engine read or create anything outside the rootfs.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.errors import InvalidArgument, NotFound

_MAX_LINKS = 40


def resolve_in_root(root: Path, path: str) -> Path:
    """Host path of ``path`` inside ``root``; symlinks resolved as if ``root`` were ``/``."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            resolved.extend(p for p in parts if p not in ("", "."))  # rest does not exist yet
            return root.joinpath(*_normalise(resolved))
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > _MAX_LINKS:
                raise InvalidArgument(f"too many levels of symbolic links resolving {path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return root.joinpath(*resolved)


def _normalise(parts: list[str]) -> list[str]:
    out: list[str] = []
    for p in parts:
        if p == "..":
            if out:
                out.pop()
        elif p not in ("", "."):
            out.append(p)
    return out


def read_file(root: Path, path: str, limit: int = 4 << 20) -> str:
    """Text of a regular file inside the rootfs; NotFound when absent or not a regular file."""
    host = resolve_in_root(root, path)
    try:
        fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise NotFound(f"{path} not found in the container rootfs") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotFound(f"{path} is not a regular file in the container rootfs")
        return os.read(fd, limit).decode("utf-8", "replace")
    finally:
        os.close(fd)


def make_dirs(root: Path, path: str, uid: int = 0, gid: int = 0, mode: int = 0o755) -> None:
    """``mkdir -p`` inside the rootfs (Docker creates a missing WORKDIR owned by the user)."""
    current = root
    for part in [p for p in path.split("/") if p not in ("", ".")]:
        nxt = resolve_in_root(root, str((current / part).relative_to(root)))
        if not nxt.exists():
            try:
                os.mkdir(nxt, mode)
                os.chown(nxt, uid, gid, follow_symlinks=False)
            except FileExistsError:
                pass
            except OSError as exc:
                raise InvalidArgument(f"cannot create working directory {path}: {exc.strerror}") from exc
        elif not nxt.is_dir():
            raise InvalidArgument(f"cannot create working directory {path}: not a directory")
        current = nxt


@dataclass
class ExecUser:
    uid: int = 0
    gid: int = 0
    additional_gids: list[int] = field(default_factory=list)
    home: str = "/root"


def _entries(root: Path | None, path: str) -> list[list[str]]:
    if root is None:
        return []
    try:
        text = read_file(root, path)
    except NotFound:
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def resolve_user(root: Path | None, user: str, group_add: list[str] | None = None) -> ExecUser:
    """Resolve ``name|uid[:group|gid]`` against the rootfs' /etc/passwd and /etc/group (Docker's rules)."""
    name, _, group = (user or "").partition(":")
    passwd = _entries(root, "/etc/passwd")
    groups = _entries(root, "/etc/group")
    result = ExecUser(home="/")
    found = None
    if name == "":
        name = "0"
    for entry in passwd:
        if len(entry) >= 7 and (entry[0] == name or (name.isdigit() and entry[2] == name)):
            found = entry
            break
    if found is not None:
        result.uid, result.gid, result.home = int(found[2]), int(found[3]), found[5] or "/"
    elif name.isdigit():
        result.uid = int(name)
        result.home = "/root" if result.uid == 0 else "/"
    else:
        raise InvalidArgument(
            f"unable to find user {name}: no matching entries in passwd file")
    if group:
        result.gid = _group_id(groups, group)
    if found is not None and not group:
        for entry in groups:  # supplementary groups listing the user by name
            if len(entry) >= 4 and found[0] in entry[3].split(","):
                gid = int(entry[2])
                if gid != result.gid and gid not in result.additional_gids:
                    result.additional_gids.append(gid)
    for extra in group_add or []:
        gid = _group_id(groups, extra)
        if gid not in result.additional_gids:
            result.additional_gids.append(gid)
    return result


def _group_id(groups: list[list[str]], group: str) -> int:
    for entry in groups:
        if len(entry) >= 3 and (entry[0] == group or (group.isdigit() and entry[2] == group)):
            return int(entry[2])
    if group.isdigit():
        return int(group)
    raise InvalidArgument(f"unable to find group {group}: no matching entries in group file")
