"""COPY and ADD: which files a source list names, their content digest, and Docker's copy rules.

Paths never leave their roots: source patterns are cleaned as if rooted (``../x`` is ``/x``), and
symlinks — in the context, in another stage, and in the destination rootfs — are resolved the way a
chroot would resolve them, so a link to ``/etc`` means the rootfs's ``/etc``, never the host's.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import posixpath
import shutil
from pathlib import Path

from dockyard.build.trees import DirTree, Tree, resolve
from dockyard.diff import apply_layer
from dockyard.diff.streams import is_compressed
from dockyard.dockerignore import Matcher
from dockyard.errors import InvalidArgument, NotFound

_MAX_LINKS = 40


def is_url(src: str) -> bool:
    return src.startswith(("http://", "https://", "git@")) or (src.startswith("git://"))


def resolve_in(root: Path, rel: str, *, follow_last: bool = True) -> Path:
    """``rel`` inside ``root`` with symlinks resolved as if ``root`` were ``/``."""
    resolved = resolve(DirTree(root), rel, follow_last=follow_last)
    return root / resolved if resolved else root


def _go_glob(pattern: str) -> str:
    return pattern.replace("[^", "[!")


def _has_magic(text: str) -> bool:
    return any(c in text for c in "*?[")


def _glob(tree: Tree, parts: list[str], prefix: str = "") -> list[str]:
    if not parts:
        return [prefix]
    head, rest = parts[0], parts[1:]
    if not _has_magic(head):
        rel = f"{prefix}/{head}" if prefix else head
        found = tree.entry(resolve(tree, rel, follow_last=bool(rest))) is not None
        return _glob(tree, rest, rel) if found else []
    base = resolve(tree, prefix) if prefix else ""
    out: list[str] = []
    for name in tree.listdir(base):
        if fnmatch.fnmatchcase(name, _go_glob(head)):
            out += _glob(tree, rest, f"{prefix}/{name}" if prefix else name)
    return out


def _not_found(pattern: str) -> NotFound:
    return NotFound(f'failed to compute cache key: failed to calculate checksum of ref: "/{pattern}": not found')


def resolve_sources(tree: Tree, patterns: list[str], excludes: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Source paths in ``tree`` ("" for its root), links resolved, that ``patterns`` name."""
    matcher = Matcher(list(excludes)) if excludes else None
    out: list[str] = []
    for pattern in patterns:
        clean = posixpath.normpath("/" + pattern).lstrip("/")
        if clean in ("", "."):
            out.append("")
            continue
        if _has_magic(clean):
            found = [resolve(tree, m) for m in _glob(tree, clean.split("/"))
                     if not (matcher and (matcher.excluded(m) or matcher.excluded(posixpath.basename(m))))]
            if not found:
                raise _not_found(pattern)
            out += found
            continue
        rel = resolve(tree, clean)
        if tree.entry(rel) is None:
            raise _not_found(pattern)
        out.append(rel)
    if not out:
        raise InvalidArgument("no source files were specified")
    return out


def walk(tree: Tree, top: str, skip: Matcher | None = None) -> list[tuple[str, str]]:
    """(path below ``top``, path in the tree) of ``top`` and everything under it, names sorted,
    depth first; what ``skip`` excludes (relative to ``top`` or to the tree) is left out."""
    out = [("", top)]
    stack = [""]
    while stack:
        sub_dir = stack.pop()
        here = posixpath.join(top, sub_dir) if sub_dir else top
        e = tree.entry(here)
        if e is None or e.kind != "dir":
            continue
        found = []
        for name in tree.listdir(here):
            sub = f"{sub_dir}/{name}" if sub_dir else name
            if skip is not None and (skip.excluded(sub) or skip.excluded(posixpath.join(top, sub))):
                continue
            found.append(sub)
        for sub in found:
            out.append((sub, posixpath.join(top, sub) if top else sub))
        stack.extend(reversed(found))
    out[1:] = sorted(out[1:])
    return out


def checksum(tree: Tree, rel_paths: list[str], excludes: list[str] | tuple[str, ...] = ()) -> str:
    """sha256 over names, types, modes, owners, link targets and file contents (not mtimes)."""
    h = hashlib.sha256()
    skip = Matcher(list(excludes)) if excludes else None
    for rel in rel_paths:
        h.update(f"source {rel}\0".encode())
        for sub, path in walk(tree, rel, skip):
            e = tree.entry(path)
            if e is None:
                continue
            h.update(f"{sub}\0{e.kind}\0{e.mode}\0{e.uid}\0{e.gid}\0{e.linkname}\0".encode())
            if e.kind == "file":
                h.update(f"{e.size}\0{tree.file_digest(path)}\0".encode())
    return "sha256:" + h.hexdigest()


def parse_chmod(spec: str) -> int:
    try:
        mode = int(spec, 8)
    except ValueError as exc:
        raise InvalidArgument(f"invalid chmod parameter: {spec!r} (an octal mode like 0755)") from exc
    if not 0 <= mode <= 0o7777:
        raise InvalidArgument(f"invalid chmod parameter: {spec!r}")
    return mode


def _id_from(rootfs: Path, path: str, name: str, field: int) -> tuple[int, int] | None:
    try:
        text = resolve_in(rootfs, path).read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        items = line.split(":")
        if len(items) > field and items[0] == name:
            try:
                return int(items[2]), int(items[3]) if field == 3 else 0
            except ValueError:
                return None
    return None


def resolve_chown(spec: str, rootfs: Path) -> tuple[int, int]:
    """``user[:group]`` with names looked up in the rootfs's own /etc/passwd and /etc/group."""
    user, _, group = spec.partition(":")
    if user.isdigit():
        uid, gid = int(user), int(user)
    else:
        found = _id_from(rootfs, "etc/passwd", user, 3)
        if found is None:
            raise InvalidArgument(f"unable to find user {user}: no matching entries in passwd file")
        uid, gid = found
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            g = _id_from(rootfs, "etc/group", group, 2)
            if g is None:
                raise InvalidArgument(f"unable to find group {group}: no matching entries in group file")
            gid = g[0]
    return uid, gid


def _is_archive(tree: Tree, rel: str) -> bool:
    try:
        with tree.open(rel) as f:
            head = f.read(512)
    except (OSError, NotFound):
        return False
    if is_compressed(head):
        return True
    return len(head) >= 262 and head[257:262] == b"ustar"


def _mkdirs(dest_root: Path, rel: str, owner: tuple[int, int] | None) -> Path:
    """Create the directory ``rel`` (and its parents) inside ``dest_root``; returns its real path."""
    cur = ""
    for part in [p for p in rel.split("/") if p]:
        cur = f"{cur}/{part}" if cur else part
        path = resolve_in(dest_root, cur)
        if not path.exists():
            path.mkdir(mode=0o755)
            os.chown(path, *(owner or (0, 0)))
        elif not path.is_dir():
            raise InvalidArgument(f"cannot copy to /{cur}: it is not a directory")
    return resolve_in(dest_root, rel)


def _place(tree: Tree, rel: str, target: Path, owner: tuple[int, int], chmod: int | None) -> None:
    e = tree.entry(rel)
    if e is None or e.kind == "other":
        return  # sockets, devices and fifos are not copied
    if os.path.lexists(target) and not (e.kind == "dir" and target.is_dir() and not target.is_symlink()):
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink()
    if e.kind == "dir":
        if not target.exists():
            target.mkdir()
        os.chmod(target, chmod if chmod is not None else e.mode)
    elif e.kind == "symlink":
        os.symlink(e.linkname, target)
    else:
        with tree.open(rel) as fin, open(target, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
        os.chmod(target, chmod if chmod is not None else e.mode)
    os.lchown(target, *owner)
    os.utime(target, (e.mtime, e.mtime), follow_symlinks=False)


def copy_into(tree: Tree, rel_paths: list[str], dest_root: Path, dest: str, workdir: str, *,
              chown: tuple[int, int] | None, chmod: int | None, is_add: bool, dest_is_dir_hint: bool,
              excludes: list[str] | tuple[str, ...] = ()) -> None:
    """Copy the sources into the rootfs at ``dest`` (relative to ``workdir``), Docker's rules."""
    path = dest if dest.startswith("/") else posixpath.join(workdir or "/", dest)
    as_dir = dest.endswith("/") or dest in (".", "..") or dest_is_dir_hint
    rel_dest = posixpath.normpath(path).lstrip("/")
    if len(rel_paths) > 1 and not as_dir:
        raise InvalidArgument("When using COPY with more than one source file, the destination must be a "
                              "directory and end with a /")
    existing = resolve_in(dest_root, rel_dest) if rel_dest else dest_root
    if existing.is_dir():
        as_dir = True
    owner = chown or (0, 0)
    skip = Matcher(list(excludes)) if excludes else None
    for rel in rel_paths:
        e = tree.entry(rel)
        if e is not None and e.kind == "dir":
            target_dir = _mkdirs(dest_root, rel_dest, chown)
            parents: dict[str, Path] = {}  # resolved once per directory, not per file
            for sub, item in walk(tree, rel, skip)[1:]:
                up = posixpath.dirname(sub)
                parent = parents.get(up)
                if parent is None:
                    parent = parents[up] = resolve_in(dest_root, posixpath.join(rel_dest, up))
                _place(tree, item, parent / posixpath.basename(sub), owner, chmod)
            if rel and target_dir != dest_root and chmod is not None:
                os.chmod(target_dir, chmod)
            continue
        if is_add and _is_archive(tree, rel):
            target_dir = _mkdirs(dest_root, rel_dest, chown)
            with tree.open(rel) as f:
                apply_layer(f, target_dir)
            if chown:
                for dirpath, dirnames, filenames in os.walk(target_dir):
                    for name in dirnames + filenames:
                        os.lchown(os.path.join(dirpath, name), *chown)
            continue
        if as_dir:
            parent = _mkdirs(dest_root, rel_dest, chown)
            target = parent / posixpath.basename(rel)
        else:
            parent = _mkdirs(dest_root, posixpath.dirname(rel_dest), chown)
            target = parent / posixpath.basename(rel_dest)
        _place(tree, rel, target, owner, chmod)
