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
import stat
from pathlib import Path

from dockyard.diff import apply_layer
from dockyard.dockerignore import Matcher
from dockyard.errors import InvalidArgument, NotFound

_MAX_LINKS = 40
_ARCHIVE_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")


def is_url(src: str) -> bool:
    return src.startswith(("http://", "https://", "git@")) or (src.startswith("git://"))


def resolve_in(root: Path, rel: str, *, follow_last: bool = True) -> Path:
    """``rel`` inside ``root`` with symlinks resolved as if ``root`` were ``/``."""
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    done: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        path = root.joinpath(*done, part)
        if (parts or follow_last) and path.is_symlink():
            links += 1
            if links > _MAX_LINKS:
                raise InvalidArgument(f"too many levels of symbolic links in {rel}")
            target = os.readlink(path)
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        done.append(part)
    return root.joinpath(*done)


def _go_glob(pattern: str) -> str:
    return pattern.replace("[^", "[!")


def _has_magic(text: str) -> bool:
    return any(c in text for c in "*?[")


def _glob(root: Path, parts: list[str], prefix: str = "") -> list[str]:
    if not parts:
        return [prefix]
    head, rest = parts[0], parts[1:]
    base = resolve_in(root, prefix) if prefix else root
    if not _has_magic(head):
        rel = f"{prefix}/{head}" if prefix else head
        full = resolve_in(root, rel, follow_last=bool(rest))
        return _glob(root, rest, rel) if os.path.lexists(full) else []
    try:
        names = sorted(os.listdir(base))
    except (NotADirectoryError, FileNotFoundError):
        return []
    out: list[str] = []
    for name in names:
        if fnmatch.fnmatchcase(name, _go_glob(head)):
            out += _glob(root, rest, f"{prefix}/{name}" if prefix else name)
    return out


def _not_found(pattern: str) -> NotFound:
    return NotFound(f'failed to compute cache key: failed to calculate checksum of ref: "/{pattern}": not found')


def resolve_sources(src_root: Path, patterns: list[str], excludes: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Source paths (relative to ``src_root``, "" for the root itself) that ``patterns`` name."""
    matcher = Matcher(list(excludes)) if excludes else None
    out: list[str] = []
    for pattern in patterns:
        clean = posixpath.normpath("/" + pattern).lstrip("/")
        if clean in ("", "."):
            out.append("")
            continue
        if _has_magic(clean):
            found = [m for m in _glob(src_root, clean.split("/"))
                     if not (matcher and (matcher.excluded(m) or matcher.excluded(posixpath.basename(m))))]
            if not found:
                raise _not_found(pattern)
            out += found
            continue
        full = resolve_in(src_root, clean)
        if not os.path.lexists(full):
            raise _not_found(pattern)
        out.append(full.relative_to(src_root).as_posix() if full != src_root else "")
    if not out:
        raise InvalidArgument("no source files were specified")
    return out


def _walk(top: Path, skip: Matcher | None = None, base: str = "") -> list[tuple[str, Path]]:
    """(relative path, path) of ``top`` and everything below, depth first, names sorted; entries
    ``skip`` excludes (matched relative to ``top`` and to ``base``) are left out."""
    out = [("", top)]
    if top.is_dir() and not top.is_symlink():
        for dirpath, dirnames, filenames in os.walk(top):
            rel_dir = os.path.relpath(dirpath, top)
            kept = []
            for name in sorted(dirnames + filenames):
                rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                if skip is not None and (skip.excluded(rel) or skip.excluded(posixpath.join(base, rel))):
                    continue
                kept.append(name)
                out.append((rel, Path(dirpath) / name))
            dirnames[:] = [d for d in sorted(dirnames) if d in kept]
    return out


def checksum(src_root: Path, rel_paths: list[str], excludes: list[str] | tuple[str, ...] = ()) -> str:
    """sha256 over names, types, modes, owners, link targets and file contents (not mtimes)."""
    h = hashlib.sha256()
    skip = Matcher(list(excludes)) if excludes else None
    for rel in rel_paths:
        top = src_root / rel if rel else src_root
        h.update(f"source {rel}\0".encode())
        for sub, path in _walk(top, skip, rel):
            st = os.lstat(path)
            h.update(f"{sub}\0{stat.S_IFMT(st.st_mode)}\0{stat.S_IMODE(st.st_mode)}\0{st.st_uid}\0{st.st_gid}\0"
                     .encode())
            if stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(path).encode() + b"\0")
            elif stat.S_ISREG(st.st_mode):
                h.update(f"{st.st_size}\0".encode())
                with open(path, "rb") as f:
                    while chunk := f.read(1 << 20):
                        h.update(chunk)
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


def _is_archive(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return False
    if any(head.startswith(m) for m in _ARCHIVE_MAGIC):
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


def _place(src: Path, target: Path, owner: tuple[int, int], chmod: int | None) -> None:
    st = os.lstat(src)
    if os.path.lexists(target) and not (target.is_dir() and not target.is_symlink() and stat.S_ISDIR(st.st_mode)):
        if target.is_dir() and not target.is_symlink():
            import shutil
            shutil.rmtree(target)
        else:
            target.unlink()
    if stat.S_ISDIR(st.st_mode):
        if not target.exists():
            target.mkdir()
        os.chmod(target, chmod if chmod is not None else stat.S_IMODE(st.st_mode))
    elif stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), target)
    elif stat.S_ISREG(st.st_mode):
        with open(src, "rb") as fin, open(target, "wb") as fout:
            while chunk := fin.read(1 << 20):
                fout.write(chunk)
        os.chmod(target, chmod if chmod is not None else stat.S_IMODE(st.st_mode))
    elif stat.S_ISFIFO(st.st_mode):
        os.mkfifo(target, stat.S_IMODE(st.st_mode))
    else:
        return  # sockets and device nodes are not copied
    os.lchown(target, *owner)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def copy_into(src_root: Path, rel_paths: list[str], dest_root: Path, dest: str, workdir: str, *,
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
    for rel in rel_paths:
        src = src_root / rel if rel else src_root
        if src.is_dir() and not src.is_symlink():
            target_dir = _mkdirs(dest_root, rel_dest, chown)
            for sub, item in _walk(src, Matcher(list(excludes)) if excludes else None, rel)[1:]:
                parent = resolve_in(dest_root, posixpath.join(rel_dest, posixpath.dirname(sub)))
                _place(item, parent / posixpath.basename(sub), owner, chmod)
            if rel and target_dir != dest_root and chmod is not None:
                os.chmod(target_dir, chmod)
            continue
        if is_add and _is_archive(src):
            target_dir = _mkdirs(dest_root, rel_dest, chown)
            with open(src, "rb") as f:
                apply_layer(f, target_dir)
            if chown:
                for _, item in _walk(target_dir)[1:]:
                    os.lchown(item, *chown)
            continue
        if as_dir:
            parent = _mkdirs(dest_root, rel_dest, chown)
            target = parent / posixpath.basename(rel)
        else:
            parent = _mkdirs(dest_root, posixpath.dirname(rel_dest), chown)
            target = parent / posixpath.basename(rel_dest)
        _place(src, target, owner, chmod)
