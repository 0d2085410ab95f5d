"""User namespaces for containers: which host ids a container's ids map to, and the namespace
used to idmap its image layers.

- ``--userns-remap default|USER[:GROUP]`` (daemon): every container gets the subordinate ids of
  USER from /etc/subuid and /etc/subgid. ``default`` is Docker's ``dockremap`` user, created
  with a free 65536-id range when it does not exist.
- ``--userns=auto`` (container): a 65536-id range of its own that no other container holds,
  from the subordinate ids of the ``dockyard`` user when it has some, else from a block of ids
  above 2^31 that no distribution hands out to users.
- ``--userns=host`` opts out of a daemon-wide remap.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path

from dockyard.diff.archive import IdMap
from dockyard.engine.types import HostConfig, IdRange
from dockyard.errors import InvalidArgument, Unavailable
from dockyard.mount import Mount, mount_all
from dockyard.mount.idmap import mount_idmapped_overlay

RANGE = 65536
REMAP_USER = "dockremap"
AUTO_USER = "dockyard"
AUTO_BASE = 1 << 31
AUTO_SLOTS = 4096
SUBUID, SUBGID = "/etc/subuid", "/etc/subgid"


def read_subids(path: str, names: set[str] | None = None) -> list[tuple[int, int]]:
    """``(start, count)`` entries of ``path`` whose owner is one of ``names`` (user or uid);
    every entry when ``names`` is None."""
    out = []
    with contextlib.suppress(FileNotFoundError), open(path) as f:
        for line in f:
            parts = line.strip().split(":")
            if len(parts) == 3 and (names is None or parts[0] in names) and parts[1].isdigit() \
                    and parts[2].isdigit():
                out.append((int(parts[1]), int(parts[2])))
    return out


def _owner_names(user: str, db: str = "passwd") -> set[str]:
    try:
        entry = pwd.getpwnam(user) if not user.isdigit() else pwd.getpwuid(int(user))
        return {entry.pw_name, str(entry.pw_uid)}
    except KeyError:
        if db == "group":
            try:
                g = grp.getgrnam(user) if not user.isdigit() else grp.getgrgid(int(user))
                return {g.gr_name, str(g.gr_gid)}
            except KeyError:
                pass
        raise InvalidArgument(f"cannot find user {user!r} for --userns-remap") from None


def remap_range(spec: str) -> IdRange:
    """The id range of ``--userns-remap``: the first subordinate range of the user (and group)."""
    if spec == "default":
        ensure_remap_user()
        spec = REMAP_USER
    user, _, group = spec.partition(":")
    uids = read_subids(SUBUID, _owner_names(user))
    gids = read_subids(SUBGID, _owner_names(group or user, "group"))
    if not uids or not gids:
        raise InvalidArgument(f"no subordinate id ranges found for {spec!r} in {SUBUID} and {SUBGID}")
    size = min(uids[0][1], gids[0][1])
    return IdRange(host_uid=uids[0][0], host_gid=gids[0][0], size=size)


def _free_start(path: str, size: int) -> int:
    taken = sorted(read_subids(path))
    start = 100000
    for s, n in taken:
        if start + size <= s:
            break
        start = max(start, s + n)
    return start


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def ensure_remap_user() -> None:
    """Docker's ``default``: a system user ``dockremap`` and a free range in subuid/subgid."""
    if not _user_exists(REMAP_USER):
        res = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/bin/false",
                              "--user-group", REMAP_USER], capture_output=True, text=True)
        if res.returncode != 0:
            raise Unavailable(f"cannot create the {REMAP_USER} user: {res.stderr.strip()}")
    for path in (SUBUID, SUBGID):
        if not read_subids(path, {REMAP_USER}):
            start = _free_start(path, RANGE)
            with open(path, "a") as f:
                f.write(f"{REMAP_USER}:{start}:{RANGE}\n")
                f.flush()
                os.fsync(f.fileno())


def auto_pool() -> list[IdRange]:
    """Slots for ``--userns=auto``: the ``dockyard`` user's subordinate ids cut into 65536-id
    ranges, or the built-in block above 2^31."""
    uids = read_subids(SUBUID, {AUTO_USER})
    gids = read_subids(SUBGID, {AUTO_USER})
    if uids and gids:
        ustarts = [s + k for s, n in uids for k in range(0, n - RANGE + 1, RANGE)]
        gstarts = [s + k for s, n in gids for k in range(0, n - RANGE + 1, RANGE)]
        return [IdRange(u, g, RANGE, auto=True) for u, g in zip(ustarts, gstarts, strict=False)]
    return [IdRange(AUTO_BASE + k * RANGE, AUTO_BASE + k * RANGE, RANGE, auto=True)
            for k in range(AUTO_SLOTS)]


def allocate_auto(taken: Iterable[IdRange]) -> IdRange:
    """The first pool slot no container holds (an auto range is kept until the container goes)."""
    used = {(r.host_uid, r.host_gid) for r in taken}
    for slot in auto_pool():
        if (slot.host_uid, slot.host_gid) not in used and not _overlaps_used(slot, used):
            return slot
    raise Unavailable("no free id range left for --userns=auto")


def _overlaps_used(slot: IdRange, used: set[tuple[int, int]]) -> bool:
    return any(u < slot.host_uid + slot.size and slot.host_uid < u + RANGE for u, _ in used)


def wants_range(host: HostConfig, remap: IdRange | None) -> bool:
    """Whether a new container gets a user namespace; its mode and what it shares with the host
    are checked here, as dockerd checks them."""
    mode = host.userns_mode
    if mode not in ("", "host", "auto") and not mode.startswith("auto:"):
        raise InvalidArgument(f"invalid USER mode: {mode!r} (expected host, auto or empty)")
    if mode == "host" or (not mode and remap is None):
        return False
    if host.privileged:
        raise InvalidArgument("privileged mode is incompatible with user namespaces.  You must run "
                              "the container in the host namespace when running privileged mode")
    if host.network_mode == "host":
        raise InvalidArgument("cannot share the host's network namespace when user namespaces are enabled")
    if host.pid_mode == "host":
        raise InvalidArgument("cannot share the host PID namespace when user namespaces are enabled")
    if host.ipc_mode == "host":   # the host's mqueue cannot be mounted from another user namespace
        raise InvalidArgument("cannot share the host's IPC namespace when user namespaces are enabled")
    return True


def choose_range(host: HostConfig, remap: IdRange | None,
                 taken: Callable[[], Iterable[IdRange]]) -> IdRange | None:
    """The range for a new container (None: the host's user namespace)."""
    if not wants_range(host, remap):
        return None
    if host.userns_mode.startswith("auto"):
        return allocate_auto(taken())
    assert remap is not None
    return replace(remap, auto=False)


@contextlib.contextmanager
def namespace_fd(r: IdRange) -> Iterator[int]:
    """An fd of a fresh user namespace with ``r``'s mapping (to idmap layers with). The daemon
    never forks into namespaces: a throwaway ``unshare`` process makes it and is killed."""
    own = os.readlink("/proc/self/ns/user")
    proc = subprocess.Popen(["unshare", "--user", "--", "sleep", "30"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    fd = -1
    try:
        deadline = time.monotonic() + 5
        while True:
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{proc.pid}/ns/user") != own:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise Unavailable(f"cannot create a user namespace: {err.strip() or 'timed out'}")
            time.sleep(0.0005)
        for name, start in (("uid_map", r.host_uid), ("gid_map", r.host_gid)):
            with open(f"/proc/{proc.pid}/{name}", "w") as f:
                f.write(f"0 {start} {r.size}\n")
        fd = os.open(f"/proc/{proc.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        proc.kill()
        proc.wait()
        if proc.stderr:
            proc.stderr.close()
    try:
        yield fd
    finally:
        os.close(fd)


def host_ids(r: IdRange | None, uid: int, gid: int) -> tuple[int, int]:
    """Host ids of container ids ``uid``/``gid`` (unchanged without a user namespace)."""
    if r is None:
        return uid, gid
    if not (0 <= uid < r.size and 0 <= gid < r.size):
        raise InvalidArgument(f"user {uid}:{gid} is outside the container's id mapping (0-{r.size - 1})")
    return r.host_uid + uid, r.host_gid + gid


def mount_rootfs(mounts: list[Mount], rootfs: Path, r: IdRange | None) -> None:
    """Mount a container's root file system; in a user namespace with the image layers idmapped
    and the writable layer owned by the container's root."""
    if r is None:
        mount_all(mounts, rootfs)
        return
    for m in mounts:
        for opt in m.options:
            if opt.startswith("upperdir="):
                upper = opt.removeprefix("upperdir=")
                if os.stat(upper).st_uid == 0:   # fresh: / of the container belongs to its root
                    os.chown(upper, r.host_uid, r.host_gid)
    with namespace_fd(r) as fd:
        for m in mounts:
            mount_idmapped_overlay(m, rootfs, fd)


def check_reachable(path: Path) -> None:
    """The runtime pivots into the bundle as the container's root, an unprivileged host id: every
    directory above it must let others through (dockerd makes the same demand of its root)."""
    for parent in [path, *path.parents]:
        if not os.stat(parent).st_mode & 0o001:
            raise InvalidArgument(f"{parent} is not reachable by a user namespace's root (mode "
                                  f"{os.stat(parent).st_mode & 0o777:04o}): it needs o+x, e.g. 0711")


def to_container(r: IdRange | None) -> IdMap | None:
    """Host ids → the container's own (for layers, exports and copies out of it): ids of its
    range are shifted back; others (files the engine made as root) are kept."""
    if r is None:
        return None

    def shift(uid: int, gid: int) -> tuple[int, int]:
        return (uid - r.host_uid if r.host_uid <= uid < r.host_uid + r.size else uid,
                gid - r.host_gid if r.host_gid <= gid < r.host_gid + r.size else gid)
    return shift


def to_host(r: IdRange | None) -> IdMap | None:
    """The container's ids → host ids (for files copied into it); ids outside its mapping would
    be nobody inside, so they become its root."""
    if r is None:
        return None

    def shift(uid: int, gid: int) -> tuple[int, int]:
        return (r.host_uid + (uid if 0 <= uid < r.size else 0),
                r.host_gid + (gid if 0 <= gid < r.size else 0))
    return shift
