"""A container's files as the container sees them: paths resolved safely in its root and mounts.

The container's files are its rootfs (the running container's merged mount, or the snapshot
mounted for the call) plus its mounts, which are not under the host's view of the rootfs: a path is
resolved one component at a time, and where the resolved container path reaches a mount's
destination the walk goes on in the mount's source. The container may swap any directory for a
symlink at any moment, so no host path below the root ever reaches the kernel: each lookup is one
name under its parent's O_PATH descriptor (openat2 RESOLVE_IN_ROOT|RESOLVE_NO_SYMLINKS|
RESOLVE_NO_MAGICLINKS), and links are read and re-walked here from the container's root. Writers
(engine/tarextract.py) make every create, link, chown, chmod and utime an ``*at`` call on such a
descriptor that does not follow the final name. docs/cp.md has the rules.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass

from dockyard.errors import InvalidArgument
from dockyard.runtime.linux import syscalls

RO_ROOTFS = "container rootfs is marked read-only"
RO_VOLUME = "mounted volume is marked read-only"
_MAX_LINKS = 40
_ONE = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_CONFINED = syscalls.RESOLVE_IN_ROOT | syscalls.RESOLVE_NO_SYMLINKS | syscalls.RESOLVE_NO_MAGICLINKS
_have_openat2 = True


@dataclass
class Frame:
    """An O_PATH descriptor of a resolved container path; ``ro``: why it may not be written."""
    names: tuple[str, ...]
    fd: int
    ro: str

    @property
    def path(self) -> str:
        return "/" + "/".join(self.names)


def _open_one(dirfd: int, name: str) -> int:
    global _have_openat2
    if _have_openat2:
        try:
            return syscalls.openat2(dirfd, name, _ONE, resolve=_CONFINED)
        except OSError as exc:
            if exc.errno != errno.ENOSYS:
                raise
            _have_openat2 = False  # before Linux 5.6: one plain name under O_NOFOLLOW is as safe
    return os.open(name, _ONE, dir_fd=dirfd)


def reopen(fd: int, flags: int) -> int:
    """A readable descriptor of the inode an O_PATH one pins (files and directories only)."""
    return os.open(f"/proc/self/fd/{fd}", flags | os.O_CLOEXEC)


def _lexical(names: Sequence[str], rest: Sequence[str]) -> tuple[str, ...]:
    out = list(names)
    for p in rest:
        if p == "..":
            if out:
                out.pop()
        elif p not in ("", "."):
            out.append(p)
    return tuple(out)


class ContainerFS:
    """A container's files as the container sees them, resolved in its root. Not thread-safe."""

    def __init__(self, root_fd: int, readonly: bool) -> None:
        self.root = Frame((), root_fd, RO_ROOTFS if readonly else "")
        self.mounts: dict[tuple[str, ...], tuple[int, str]] = {}

    def close(self) -> None:
        for fd, _ in self.mounts.values():
            os.close(fd)
        self.mounts.clear()
        os.close(self.root.fd)

    def add_mount(self, dest: str, fd: int, ro: bool) -> None:
        """Mounts go in the runtime's order: the destination resolves through the ones before."""
        names = self.resolve_names(dest)
        old = self.mounts.pop(names, None)
        if old is not None:
            os.close(old[0])
        self.mounts[names] = (fd, RO_VOLUME if ro else "")

    def child(self, parent: Frame, name: str) -> Frame:
        """``name`` in directory ``parent``, not followed if a link; the caller closes it."""
        names = (*parent.names, name)
        mount = self.mounts.get(names)
        if mount is not None:
            return Frame(names, os.dup(mount[0]), mount[1])
        return Frame(names, _open_one(parent.fd, name), parent.ro)

    def _dup(self, f: Frame) -> Frame:
        return Frame(f.names, os.dup(f.fd), f.ro)

    def walk(self, parts: Sequence[str], *, base: Frame | None = None, follow: bool = True,
             mkdirs: bool = False, partial: bool = False) -> tuple[Frame, list[str]]:
        """Resolve ``parts`` below ``base`` (default: the root); the caller closes the frame.
        ``mkdirs`` creates missing directories; ``partial`` stops at a missing component and
        returns the components left instead of raising FileNotFoundError."""
        stack = [self._dup(base or self.root)]
        todo = list(reversed(parts))
        hops = 0
        try:
            while todo:
                name = todo.pop()
                if name in ("", "."):
                    continue
                if name == "..":
                    if len(stack) > 1:
                        os.close(stack.pop().fd)
                    elif stack[0].names:  # above the base: its parent, from the root
                        up, _ = self.walk(stack[0].names[:-1])
                        os.close(stack[0].fd)
                        stack[0] = up
                    continue
                top = stack[-1]
                try:
                    nxt = self.child(top, name)
                except FileNotFoundError:
                    if partial:
                        return stack.pop(), [name, *reversed(todo)]
                    hops += 1
                    if not mkdirs or hops > _MAX_LINKS:
                        raise
                    check_writable(top)
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(name, 0o755, dir_fd=top.fd)
                    todo.append(name)  # look again: whatever raced in is walked like the rest
                    continue
                st = os.fstat(nxt.fd)
                if stat.S_ISLNK(st.st_mode) and (todo or follow):
                    try:
                        target = os.readlink("", dir_fd=nxt.fd)
                    finally:
                        os.close(nxt.fd)
                    hops += 1
                    if hops > _MAX_LINKS:
                        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), nxt.path)
                    if target.startswith("/"):
                        for f in stack:
                            os.close(f.fd)
                        stack[:] = [self._dup(self.root)]
                    todo.extend(reversed(target.split("/")))
                    continue
                if todo and not stat.S_ISDIR(st.st_mode):
                    os.close(nxt.fd)
                    raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), nxt.path)
                stack.append(nxt)
            return stack.pop(), []
        finally:
            for f in stack:
                os.close(f.fd)

    def resolve_names(self, path: str) -> tuple[str, ...]:
        """``path`` with every link followed as far as it exists; the rest taken lexically."""
        frame, rest = self.walk(path.split("/"), partial=True)
        os.close(frame.fd)
        return _lexical(frame.names, rest)

    def read_text(self, path: str, limit: int = 4 << 20) -> str:
        """A regular file's text ("" when there is none)."""
        try:
            frame, _ = self.walk(path.split("/"))
        except OSError:
            return ""
        try:
            if not stat.S_ISREG(os.fstat(frame.fd).st_mode):
                return ""
            with os.fdopen(reopen(frame.fd, os.O_RDONLY), "rb") as f:
                return f.read(limit).decode("utf-8", "replace")
        finally:
            os.close(frame.fd)


def check_writable(frame: Frame) -> None:
    """Refuse a write where ``frame`` lies on the read-only rootfs or a read-only mount."""
    if frame.ro:
        raise InvalidArgument(frame.ro)  # dockerd answers these with 400 (errdefs.InvalidParameter)


# -- paths as dockerd cleans and names them ---------------------------------------------------

def go_clean(path: str) -> str:
    """Go's ``path.Clean`` of an absolute path."""
    return "/" + "/".join(_lexical((), path.split("/")))


def go_base(path: str) -> str:
    """Go's ``filepath.Base``."""
    stripped = path.rstrip("/")
    return (stripped.rsplit("/", 1)[-1] if stripped else "/") if path else "."


def preserve_trailing(cleaned: str, original: str) -> str:
    """moby's ``PreserveTrailingDotOrSeparator``."""
    if go_base(cleaned) != "." and go_base(original) == ".":
        cleaned = (cleaned if cleaned.endswith("/") else cleaned + "/") + "."
    if not cleaned.endswith("/") and original.endswith("/"):
        cleaned += "/"
    return cleaned
