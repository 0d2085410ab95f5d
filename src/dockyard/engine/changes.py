"""``docker diff``: a container's filesystem changes, from its overlay upper dir and lower layers.

Follows moby's ``archive.OverlayChanges`` (pkg/archive/changes.go): the upper dir is walked depth
first with names sorted bytewise in each directory; a whiteout (0/0 char device) is a deletion; an
opaque directory that a lower layer has is a deletion too (it was removed and recreated); anything
else is a modification when the lower layers show the path, an addition otherwise. A directory that
exists below with the same size, mode and mtime is not reported, except as the parent of an added
or deleted entry (then ``C <parent>`` is recorded once, before its first such child).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from dockyard.errors import Internal

MODIFIED, ADDED, DELETED = 0, 1, 2
_OPAQUE = "trusted.overlay.opaque"


@dataclass(frozen=True)
class Change:
    path: str
    kind: int  # 0 modified, 1 added, 2 deleted (Docker's ChangeType)


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, _OPAQUE, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _lower_stat(lowers: list[Path], rel: str) -> os.stat_result | None:
    """The entry the merged lower layers show at ``rel`` (None when absent or whited out)."""
    parts = rel.strip("/").split("/")
    for layer in lowers:
        opaque = False
        present = True
        for i in range(1, len(parts)):
            parent = os.path.join(layer, *parts[:i])
            try:
                pst = os.lstat(parent)
            except (FileNotFoundError, NotADirectoryError):
                present = False
                break
            if not stat.S_ISDIR(pst.st_mode):
                return None  # a file or whiteout in this layer hides everything below
            opaque = opaque or _is_opaque(parent)
        if not present:
            if opaque:
                return None
            continue
        try:
            st = os.lstat(os.path.join(layer, *parts))
        except (FileNotFoundError, NotADirectoryError):
            if opaque:
                return None  # an opaque directory hides the layers below
            continue
        return None if _is_whiteout(st) else st
    return None


def _same_dir(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_size == b.st_size and a.st_mode == b.st_mode
            and a.st_mtime_ns == b.st_mtime_ns)


def overlay_changes(upper: Path, lowers: list[Path]) -> list[Change]:
    """The changes ``upper`` makes over ``lowers`` (topmost first), in moby's order."""
    out: list[Change] = []
    changed_dirs: set[str] = set()

    def visit(host_dir: str, rel_dir: str) -> None:
        names = sorted(os.listdir(host_dir), key=os.fsencode)
        for name in names:
            host = os.path.join(host_dir, name)
            rel = f"{rel_dir}/{name}"
            st = os.lstat(host)
            lower = None
            if _is_whiteout(st):
                kind = DELETED
            else:
                lower = _lower_stat(lowers, rel)
                if stat.S_ISDIR(st.st_mode) and _is_opaque(host) and lower is not None:
                    kind = DELETED
                elif lower is None:
                    kind = ADDED
                elif (stat.S_ISDIR(st.st_mode) and stat.S_ISDIR(lower.st_mode)
                      and _same_dir(st, lower)):
                    kind = -1  # a directory only copied up for its children
                else:
                    kind = MODIFIED
            if kind >= 0:
                if stat.S_ISDIR(st.st_mode):
                    changed_dirs.add(rel)
                if kind in (ADDED, DELETED) and rel_dir and rel_dir not in changed_dirs:
                    out.append(Change(rel_dir, MODIFIED))
                    changed_dirs.add(rel_dir)
                out.append(Change(rel, kind))
            if stat.S_ISDIR(st.st_mode):
                visit(host, rel)

    try:
        visit(os.fspath(upper), "")
    except OSError as exc:
        raise Internal(f"cannot compute the container's changes: {exc}") from exc
    return out
