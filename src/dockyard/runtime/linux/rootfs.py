"""The container's filesystem: spec mounts, device nodes, pivot_root, masked and read-only paths.

Runs inside the container's new mount namespace (in init, before the user process). Mount
destinations are resolved inside the rootfs with symlinks evaluated relative to it, so a hostile
image cannot make us mount over host paths.
"""

from __future__ import annotations

import os
import stat

from dockyard.errors import InvalidArgument
from dockyard.runtime.linux.cgroups import Cgroup
from dockyard.runtime.linux.syscalls import move_mount, pivot_root, sys_mount, sys_umount

TYPE_CHECKING = False  # typing costs ~4 ms per runtime call; annotations are strings anyway
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2

# option -> (set, clear)
_FLAGS: dict[str, tuple[int, int]] = {
    "ro": (MS_RDONLY, 0), "rw": (0, MS_RDONLY), "nosuid": (MS_NOSUID, 0), "suid": (0, MS_NOSUID),
    "nodev": (MS_NODEV, 0), "dev": (0, MS_NODEV), "noexec": (MS_NOEXEC, 0), "exec": (0, MS_NOEXEC),
    "sync": (MS_SYNCHRONOUS, 0), "async": (0, MS_SYNCHRONOUS), "dirsync": (MS_DIRSYNC, 0),
    "remount": (MS_REMOUNT, 0), "mand": (MS_MANDLOCK, 0), "nomand": (0, MS_MANDLOCK),
    "atime": (0, MS_NOATIME), "noatime": (MS_NOATIME, 0), "diratime": (0, MS_NODIRATIME),
    "nodiratime": (MS_NODIRATIME, 0), "relatime": (MS_RELATIME, 0), "norelatime": (0, MS_RELATIME),
    "strictatime": (MS_STRICTATIME, 0), "nostrictatime": (0, MS_STRICTATIME),
    "bind": (MS_BIND, 0), "rbind": (MS_BIND | MS_REC, 0),
}
_PROPAGATION = {
    "private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC, "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC, "slave": MS_SLAVE, "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE, "runbindable": MS_UNBINDABLE | MS_REC,
}
_IGNORED = {"tmpcopyup", "z", "Z", "idmap", "ridmap", "norbind"}

# (path, major, minor): created in every container whose /dev is not bind-mounted from the host
DEFAULT_DEVICES = [("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7),
                   ("/dev/random", 1, 8), ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0)]
_DEV_SYMLINKS = [("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
                 ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr")]


def parse_options(options: list[str]) -> tuple[int, int, list[int], str]:
    """Split spec mount options into (flags, propagation flags, data)."""
    flags = 0
    prop: list[int] = []
    data: list[str] = []
    for opt in options:
        if opt in _FLAGS:
            set_, clear = _FLAGS[opt]
            flags = (flags | set_) & ~clear
        elif opt in _PROPAGATION:
            prop.append(_PROPAGATION[opt])
        elif opt in _IGNORED:
            continue
        else:
            data.append(opt)
    return flags, 0, prop, ",".join(data)


def secure_join(root: str, unsafe: str) -> str:
    """``root`` + ``unsafe`` with every symlink resolved as if ``root`` were ``/``."""
    parts = [p for p in unsafe.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            target = os.readlink(candidate)
        except OSError:
            resolved.append(part)
            continue
        hops += 1
        if hops > 255:
            raise InvalidArgument(f"too many symlinks resolving {unsafe}")
        if target.startswith("/"):
            resolved = []
        parts = [p for p in target.split("/") if p not in ("", ".")] + parts
    return os.path.join(root, *resolved)


def _ensure(path: str, is_dir: bool) -> None:
    if os.path.lexists(path):
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if is_dir:
        os.mkdir(path, 0o755)
    else:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))


def _statvfs_flags(path: str) -> int:
    # ST_* bits equal the MS_* bits for these flags; keep locked flags across a bind remount
    f = os.statvfs(path).f_flag
    return f & (MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | MS_RELATIME)


def mount_one(rootfs: str, m: dict[str, Any], cgroup: Cgroup | None, userns: bool = False,
              tree_fd: int | None = None) -> None:
    """``tree_fd``: a bind's source, already cloned as a detached mount (user namespaces)."""
    dest_rel = m.get("destination") or ""
    if not dest_rel.startswith("/"):
        raise InvalidArgument(f"mount destination {dest_rel!r} is not absolute")
    mtype = m.get("type") or ""
    source = m.get("source") or ""
    options = list(m.get("options") or [])
    flags, _, prop, data = parse_options(options)
    dest = secure_join(rootfs, dest_rel)
    if mtype == "cgroup":
        _mount_cgroup(dest, flags, cgroup)
    elif flags & MS_BIND or mtype == "bind":
        flags |= MS_BIND
        if tree_fd is not None:
            _ensure(dest, stat.S_ISDIR(os.fstat(tree_fd).st_mode))
            move_mount(tree_fd, dest)
        else:
            _ensure(dest, os.path.isdir(source))
            sys_mount(source, dest, None, flags & (MS_BIND | MS_REC))
        if flags & ~(MS_BIND | MS_REC):
            sys_mount("", dest, None, (flags & ~MS_REC) | MS_REMOUNT | MS_BIND | _statvfs_flags(dest))
    else:
        _ensure(dest, True)
        if userns and mtype == "devpts" and "gid=" in data:
            data = _mapped_gid_only(data)
        try:
            sys_mount(source or mtype, dest, mtype, flags, data or None)
        except PermissionError:
            if not (userns and mtype == "sysfs"):
                raise
            # sysfs needs a network namespace owned by our user namespace; without one show the
            # host's, read-only (what runc's rootless specs and Docker do with a shared netns)
            sys_mount("/sys", dest, None, MS_BIND | MS_REC)
            sys_mount("", dest, None, MS_BIND | MS_REMOUNT | MS_RDONLY | (flags & ~MS_REC)
                      | _statvfs_flags(dest))
    for p in prop:
        sys_mount("", dest, None, p)


def _mapped_gid_only(data: str) -> str:
    """Drop devpts' ``gid=N`` when our user namespace does not map N (the mount would fail EINVAL)."""
    with open("/proc/self/gid_map") as f:
        ranges = [tuple(int(x) for x in line.split()) for line in f if line.strip()]
    opts = []
    for opt in data.split(","):
        if opt.startswith("gid=") and opt[4:].isdigit():
            gid = int(opt[4:])
            if not any(r[0] <= gid < r[0] + r[2] for r in ranges):
                continue
        opts.append(opt)
    return ",".join(opts)


def _mount_cgroup(dest: str, flags: int, cgroup: Cgroup | None) -> None:
    """A ``cgroup`` mount shows the container's own cgroup(s) at ``dest``."""
    _ensure(dest, True)
    ro = flags & MS_RDONLY
    base = MS_NOSUID | MS_NODEV | MS_NOEXEC
    if cgroup is None:
        raise InvalidArgument("a cgroup mount needs linux.cgroupsPath")
    if cgroup.v2:
        src = cgroup.dirs()[""]
        sys_mount(src, dest, None, MS_BIND | MS_REC)
        sys_mount("", dest, None, MS_BIND | MS_REMOUNT | base | ro)
        return
    sys_mount("tmpfs", dest, "tmpfs", base, "mode=755")
    for name, src in cgroup.dirs().items():
        sub = os.path.join(dest, name)
        os.mkdir(sub, 0o755)
        sys_mount(src, sub, None, MS_BIND)
        sys_mount("", sub, None, MS_BIND | MS_REMOUNT | base | ro)
        if "," in name:
            for ctrl in name.split(","):
                os.symlink(name, os.path.join(dest, ctrl))
    if ro:
        sys_mount("", dest, None, MS_REMOUNT | base | MS_RDONLY)


def create_devices(rootfs: str, devices: list[dict[str, Any]], defaults: bool, userns: bool = False) -> None:
    """Device nodes; in a user namespace mknod is refused, so the host's node is bind-mounted."""
    wanted: list[dict[str, Any]] = []
    if defaults:
        wanted += [{"path": p, "type": "c", "major": ma, "minor": mi, "fileMode": 0o666, "uid": 0, "gid": 0}
                   for p, ma, mi in DEFAULT_DEVICES]
    wanted += devices
    for dev in wanted:
        path = secure_join(rootfs, dev["path"])
        kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}.get(dev.get("type", ""))
        if kind is None:
            raise InvalidArgument(f"device {dev['path']}: unknown type {dev.get('type')!r}")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.lexists(path):
            os.unlink(path)
        mode = dev.get("fileMode")
        mode = 0o666 if mode is None else mode
        if not userns:  # there mknod fails EPERM: go straight to the bind
            try:
                os.mknod(path, kind | (mode & 0o7777), os.makedev(dev.get("major", 0), dev.get("minor", 0)))
                os.chmod(path, mode & 0o7777)  # mknod honours the umask
                os.chown(path, dev.get("uid") or 0, dev.get("gid") or 0)
                continue
            except PermissionError:
                pass  # no CAP_MKNOD
        # bind the host's node instead (it keeps the host's owner and mode, as with runc)
        _ensure(path, False)
        sys_mount(dev["path"], path, None, MS_BIND)
    if defaults:
        for target, link in _DEV_SYMLINKS:
            lp = secure_join(rootfs, link)
            if not os.path.lexists(lp):
                os.symlink(target, lp)
        ptmx = secure_join(rootfs, "/dev/ptmx")
        if os.path.lexists(ptmx):
            os.unlink(ptmx)
        os.symlink("pts/ptmx", ptmx)
        os.makedirs(secure_join(rootfs, "/dev/shm"), exist_ok=True)


def prepare(spec: dict[str, Any], rootfs: str, cgroup: Cgroup | None,
            before_pivot: Callable[[], None] | None = None, userns: bool = False,
            pinned: dict[int, int] | None = None) -> None:
    """Everything up to and including pivot_root; cwd is the new ``/`` afterwards.

    ``before_pivot`` runs once the mounts and devices exist (createRuntime/createContainer hooks).
    ``userns``: we run as root of a user namespace that owns our mount namespace.
    """
    linux = spec.get("linux") or {}
    prop = _PROPAGATION.get(linux.get("rootfsPropagation") or "", 0)
    # stop our mounts from propagating back to the host (and host mounts from confusing pivot_root)
    sys_mount("", "/", None, MS_PRIVATE | MS_REC if prop & MS_PRIVATE else MS_SLAVE | MS_REC)
    sys_mount(rootfs, rootfs, None, MS_BIND | MS_REC)
    mounts = spec.get("mounts") or []
    dev_bound = False
    for i, m in enumerate(mounts):
        mount_one(rootfs, m, cgroup, userns, (pinned or {}).get(i))
        if m.get("destination", "").rstrip("/") == "/dev" and (m.get("type") == "bind"
                                                               or "bind" in (m.get("options") or [])
                                                               or "rbind" in (m.get("options") or [])):
            dev_bound = True
    create_devices(rootfs, linux.get("devices") or [], not dev_bound, userns)
    if before_pivot is not None:
        before_pivot()
    os.chdir(rootfs)
    pivot_root(".", ".")
    # the old root is now stacked under "/" at "."; detach it without touching the host's mounts
    sys_mount("", ".", None, MS_SLAVE | MS_REC)
    sys_umount(".", MNT_DETACH)
    os.chdir("/")
    if prop:
        sys_mount("", "/", None, prop)


def finalize(spec: dict[str, Any]) -> None:
    """After pivot_root: sysctl, read-only and masked paths, read-only root."""
    linux = spec.get("linux") or {}
    for key, value in (linux.get("sysctl") or {}).items():
        path = "/proc/sys/" + key.replace(".", "/")
        with open(path, "w") as f:
            f.write(str(value))
    for path in linux.get("readonlyPaths") or []:
        if not os.path.exists(path):
            continue
        sys_mount(path, path, None, MS_BIND | MS_REC)
        sys_mount("", path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | _statvfs_flags(path))
    for path in linux.get("maskedPaths") or []:
        if not os.path.exists(path):
            continue
        if os.path.isdir(path):
            sys_mount("tmpfs", path, "tmpfs", MS_RDONLY)
        else:
            sys_mount("/dev/null", path, None, MS_BIND)
    if (spec.get("root") or {}).get("readonly"):
        sys_mount("", "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | _statvfs_flags("/"))
