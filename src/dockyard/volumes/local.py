"""The ``local`` volume driver: ``<root>/<name>/_data`` directories, optionally a mounted device or
tmpfs (Docker's ``type``/``device``/``o`` options), and the copy-up of image content into a new
volume.

Options as Docker's local driver takes them: ``type`` + ``device`` + ``o`` mount a filesystem at
``_data`` while a container uses the volume (``-o type=tmpfs -o device=tmpfs -o o=size=64m``, or a
bind: ``-o type=none -o o=bind -o device=/srv/data``). ``uid``/``gid``/``mode`` (dockyard's own, a
common request Docker lacks) set the owner and mode of ``_data`` at creation, so a container running
as a non-root user can write to a fresh volume.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
from pathlib import Path

from dockyard.errors import Conflict, Internal, InvalidArgument, NotFound
from dockyard.mount import Mount, unmount_all

NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
OPTIONS = ("type", "device", "o", "size", "uid", "gid", "mode")


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise InvalidArgument(f"create {name}: \"{name}\" includes invalid characters for a local volume "
                              "name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to "
                              "pass a host directory, use absolute path")
    return name


def check_options(opts: dict[str, str]) -> None:
    for key in opts:
        if key not in OPTIONS:
            raise InvalidArgument(f"invalid option key: \"{key}\"")
    if ("type" in opts) != ("device" in opts) and opts.get("type") != "tmpfs":
        raise InvalidArgument("missing required option: \"device\"" if "type" in opts
                              else "missing required option: \"type\"")
    for key in ("uid", "gid"):
        if key in opts and not opts[key].isdigit():
            raise InvalidArgument(f"invalid {key} {opts[key]!r}: expected a number")
    if "mode" in opts:
        try:
            if not 0 <= int(opts["mode"], 8) <= 0o7777:
                raise ValueError
        except ValueError:
            raise InvalidArgument(f"invalid mode {opts['mode']!r}: expected octal, e.g. 0755") from None
    bind = opts.get("type") in ("none", "") and "bind" in opts.get("o", "").split(",")
    if "device" in opts and bind and not os.path.isabs(opts["device"]):
        raise InvalidArgument(f"invalid device {opts['device']!r}: a bind device must be an absolute path")


class LocalDriver:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        return self.root / name / "_data"

    def create(self, name: str, opts: dict[str, str]) -> Path:
        check_name(name)
        check_options(opts)
        data = self.path(name)
        if data.exists():
            return data
        tmp = self.root / f".{name}.creating"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            (tmp / "_data").mkdir(parents=True, mode=0o755)
            os.chmod(tmp, 0o701)
            if "mode" in opts:
                os.chmod(tmp / "_data", int(opts["mode"], 8))
            if "uid" in opts or "gid" in opts:
                os.chown(tmp / "_data", int(opts.get("uid", "0")), int(opts.get("gid", "0")))
            os.rename(tmp, self.root / name)   # the volume appears whole or not at all
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise Internal(f"create volume {name}: {exc.strerror}") from exc
        return data

    def remove(self, name: str) -> None:
        data = self.path(name)
        if os.path.ismount(data):
            raise Conflict(f"remove {name}: volume is in use (still mounted)")
        target = self.root / name
        if not target.exists():
            return
        trash = self.root / f".{name}.removing"
        with contextlib.suppress(FileNotFoundError):
            os.rename(target, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def exists(self, name: str) -> bool:
        return self.path(name).is_dir()

    # -- mounted volumes (type/device) ------------------------------------------------------
    def mount(self, name: str, opts: dict[str, str]) -> None:
        """Mount the volume's device at ``_data`` unless it already is (idempotent)."""
        if "type" not in opts:
            return
        data = self.path(name)
        if not data.is_dir():
            raise NotFound(f"volume {name}: no data directory")
        if os.path.ismount(data):
            return
        fstype = opts["type"]
        options = [o for o in opts.get("o", "").split(",") if o]
        if opts.get("size") and fstype == "tmpfs":
            options.append(f"size={opts['size']}")
        source = opts.get("device") or fstype
        if fstype in ("none", "") and "bind" in options:
            fstype = "none"
        try:
            Mount(type=fstype, source=source, options=tuple(options)).mount(data)
        except Exception as exc:
            raise Internal(f"error while mounting volume '{data}': {exc}") from exc

    def unmount(self, name: str) -> None:
        data = self.path(name)
        if os.path.ismount(data):
            unmount_all(data, detach=True)

    def size(self, name: str) -> int:
        total = 0
        seen: set[tuple[int, int]] = set()
        for dirpath, dirnames, filenames in os.walk(self.path(name)):
            for entry in (*dirnames, *filenames):
                with contextlib.suppress(OSError):
                    st = os.lstat(os.path.join(dirpath, entry))
                    if (st.st_dev, st.st_ino) in seen:
                        continue
                    seen.add((st.st_dev, st.st_ino))
                    if not stat.S_ISDIR(st.st_mode):
                        total += st.st_blocks * 512 if st.st_blocks else st.st_size
        return total

    def is_empty(self, name: str) -> bool:
        try:
            return not any(os.scandir(self.path(name)))
        except OSError:
            return False


def copy_up(src: Path, dst: Path) -> None:
    """Docker's copy-up: the image's content at the mount point fills an empty volume, owners,
    modes, times, symlinks and hardlinks kept. ``src`` is inside a mounted container rootfs whose
    path the engine resolved inside the root; nothing here follows a symlink out of ``src``."""
    if not src.is_dir() or src.is_symlink():
        return
    st = os.lstat(src)
    os.chown(dst, st.st_uid, st.st_gid)
    os.chmod(dst, stat.S_IMODE(st.st_mode))
    links: dict[tuple[int, int], str] = {}
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        target_dir = dst if rel == "." else dst / rel
        for name in dirnames + filenames:
            s = os.path.join(dirpath, name)
            d = os.path.join(target_dir, name)
            info = os.lstat(s)
            key = (info.st_dev, info.st_ino)
            if stat.S_ISDIR(info.st_mode):
                os.mkdir(d, stat.S_IMODE(info.st_mode))
            elif stat.S_ISLNK(info.st_mode):
                os.symlink(os.readlink(s), d)
            elif info.st_nlink > 1 and key in links:
                os.link(links[key], d)
                continue
            elif stat.S_ISREG(info.st_mode):
                shutil.copyfile(s, d, follow_symlinks=False)
                links[key] = d
            else:
                os.mknod(d, info.st_mode, info.st_rdev)
            os.chown(d, info.st_uid, info.st_gid, follow_symlinks=False)
            if not stat.S_ISLNK(info.st_mode):
                os.chmod(d, stat.S_IMODE(info.st_mode))
            os.utime(d, ns=(info.st_atime_ns, info.st_mtime_ns), follow_symlinks=False)
        # directories: walk does not descend into symlinked dirs (followlinks=False), so no escape
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
