"""Container cgroups for both cgroup v1 (one hierarchy per controller) and v2 (unified).

The mode is detected from ``/sys/fs/cgroup``: a ``cgroup.controllers`` file there means v2; otherwise
every cgroup v1 hierarchy listed in ``/proc/self/mountinfo`` is used (hybrid hosts keep their v2
mount without controllers, which we leave alone as runc does).
"""

from __future__ import annotations

import errno
import os
import time

from dockyard.errors import Conflict, FailedPrecondition, Internal, InvalidArgument

TYPE_CHECKING = False  # typing costs ~4 ms per runtime call; annotations are strings anyway
if TYPE_CHECKING:
    from typing import Any

CGROUP_ROOT = "/sys/fs/cgroup"


def is_v2() -> bool:
    return os.path.exists(f"{CGROUP_ROOT}/cgroup.controllers")


def v1_hierarchies() -> dict[str, list[str]]:
    """Mount point of each cgroup v1 hierarchy -> its controllers (``name=x`` kept as is)."""
    found: dict[str, list[str]] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fstype, _src, superopts = post.split()[:3]
            if fstype != "cgroup":
                continue
            mountpoint = pre.split()[4]
            ctrls = [o for o in superopts.split(",") if o not in ("rw", "ro", "clone_children")
                     and not o.startswith(("release_agent=", "cpuset_v2_mode", "noprefix", "xattr"))]
            found.setdefault(mountpoint, ctrls)
    return found


def _write(path: str, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as exc:
        raise Internal(f"cannot write {value!r} to {path}: {exc.strerror}") from exc


def _write_v2(d: str, name: str, value: str) -> None:
    if not os.path.exists(f"{d}/{name}"):
        ctrl = name.split(".", 1)[0]
        raise FailedPrecondition(f"cannot set {name}: the {ctrl} controller is not enabled for cgroup {d}")
    _write(f"{d}/{name}", value)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


class Cgroup:
    """The cgroup(s) of one container, addressed by the spec's ``linux.cgroupsPath``."""

    def __init__(self, path: str, mount_root: str = CGROUP_ROOT, v2: bool | None = None) -> None:
        """``mount_root``/``v2`` override detection (tests use a hybrid host's unified mount)."""
        if not path:
            raise InvalidArgument("empty cgroups path")
        self.path = "/" + path.strip("/")
        if ".." in self.path.split("/"):
            raise InvalidArgument(f"invalid cgroupsPath {path!r}")
        self.root = mount_root
        self.v2 = is_v2() if v2 is None else v2
        self.hierarchies: dict[str, list[str]] = {} if self.v2 else v1_hierarchies()

    # -- layout ------------------------------------------------------------------------------
    def dirs(self) -> dict[str, str]:
        """Controller (v1 hierarchy mount point name, or "" for v2) -> this container's directory."""
        if self.v2:
            return {"": self.root + self.path}
        return {os.path.basename(mp): mp + self.path for mp in self.hierarchies}

    def dir_for(self, controller: str) -> str | None:
        if self.v2:
            return self.root + self.path
        for mp, ctrls in self.hierarchies.items():
            if controller in ctrls:
                return mp + self.path
        return None

    def _main_dir(self) -> str:
        return self.dir_for("freezer") or self.dir_for("pids") or next(iter(self.dirs().values()))

    # -- lifecycle ----------------------------------------------------------------------------
    def create(self) -> None:
        if self.v2:
            self._create_v2()
            return
        for mp, ctrls in self.hierarchies.items():
            cur = mp
            for part in self.path.strip("/").split("/"):
                parent, cur = cur, f"{cur}/{part}"
                try:
                    os.mkdir(cur, 0o755)
                except FileExistsError:
                    pass
                if "cpuset" in ctrls:
                    # a fresh v1 cpuset is empty and cannot take tasks: inherit the parent's sets
                    for key in ("cpuset.cpus", "cpuset.mems"):
                        if not _read(f"{cur}/{key}"):
                            _write(f"{cur}/{key}", _read(f"{parent}/{key}"))

    def _create_v2(self) -> None:
        cur = self.root
        for part in self.path.strip("/").split("/"):
            # delegate every controller available here to the next level, one at a time so one
            # refusal (e.g. a threaded subtree) does not cost us the others
            for ctrl in _read(f"{cur}/cgroup.controllers").split():
                try:
                    _write(f"{cur}/cgroup.subtree_control", f"+{ctrl}")
                except Internal:
                    pass
            cur = f"{cur}/{part}"
            try:
                os.mkdir(cur, 0o755)
            except FileExistsError:
                pass

    def join(self, pid: int) -> None:
        for d in self.dirs().values():
            _write(f"{d}/cgroup.procs", str(pid))

    def join_self(self) -> None:
        """Move the calling process in. On v1, a single-threaded caller writes ``0`` to ``tasks``:
        moving only the current thread skips the kernel's global threadgroup lock, whose first
        writer waits out an RCU grace period (~5-20 ms on every container start). For a process
        of one thread that is the same move as ``cgroup.procs``."""
        if self.v2 or len(os.listdir("/proc/self/task")) != 1:
            self.join(os.getpid())
            return
        for d in self.dirs().values():
            _write(f"{d}/tasks", "0")

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.dirs().values())

    def procs(self) -> list[int]:
        try:
            return [int(x) for x in _read(f"{self._main_dir()}/cgroup.procs").split()]
        except FileNotFoundError:
            return []

    def destroy(self, timeout: float = 5.0) -> None:
        """Remove the container's cgroup directories (the leaf only; shared parents stay)."""
        deadline = time.monotonic() + timeout
        for d in self.dirs().values():
            while True:
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise Internal(f"cannot remove cgroup {d}: {exc.strerror}") from exc
                    time.sleep(0.01)

    # -- freezer ------------------------------------------------------------------------------
    def frozen(self) -> bool:
        try:
            if self.v2:
                return _read(f"{self.root}{self.path}/cgroup.freeze") == "1"
            d = self.dir_for("freezer")
            return d is not None and _read(f"{d}/freezer.state") != "THAWED"
        except FileNotFoundError:
            return False

    def freeze(self, on: bool) -> None:
        if self.v2:
            d = self.root + self.path
            _write(f"{d}/cgroup.freeze", "1" if on else "0")
            want, key = ("frozen 1" if on else "frozen 0"), "cgroup.events"
        else:
            fd = self.dir_for("freezer")
            if fd is None:
                raise Conflict("the freezer cgroup controller is not available")
            d = fd
            _write(f"{d}/freezer.state", "FROZEN" if on else "THAWED")
            want, key = ("FROZEN" if on else "THAWED"), "freezer.state"
        for _ in range(1000):
            if want in _read(f"{d}/{key}"):
                return
            if not self.v2 and on:
                _write(f"{d}/freezer.state", "FROZEN")  # v1 may stay FREEZING: retry the write
            time.sleep(0.002)
        raise Internal(f"cgroup {self.path} did not reach state {want!r}")

    # -- limits -------------------------------------------------------------------------------
    def set(self, res: dict[str, Any]) -> None:
        (self._set_v2 if self.v2 else self._set_v1)(res)

    def _set_v1(self, res: dict[str, Any]) -> None:
        mem = res.get("memory") or {}
        md = self.dir_for("memory")
        if md and mem:
            limit, swap = mem.get("limit"), mem.get("swap")
            if limit is not None and swap is not None and os.path.exists(f"{md}/memory.memsw.limit_in_bytes"):
                # memsw must stay >= limit at every step: order the writes accordingly
                try:
                    _write(f"{md}/memory.limit_in_bytes", str(limit))
                    _write(f"{md}/memory.memsw.limit_in_bytes", str(swap))
                except Internal:
                    _write(f"{md}/memory.memsw.limit_in_bytes", str(swap))
                    _write(f"{md}/memory.limit_in_bytes", str(limit))
            elif limit is not None:
                _write(f"{md}/memory.limit_in_bytes", str(limit))
            elif swap is not None and os.path.exists(f"{md}/memory.memsw.limit_in_bytes"):
                _write(f"{md}/memory.memsw.limit_in_bytes", str(swap))
            if mem.get("reservation") is not None:
                _write(f"{md}/memory.soft_limit_in_bytes", str(mem["reservation"]))
            if mem.get("swappiness") is not None and os.path.exists(f"{md}/memory.swappiness"):
                _write(f"{md}/memory.swappiness", str(mem["swappiness"]))
            if mem.get("disableOOMKiller"):
                _write(f"{md}/memory.oom_control", "1")
        cpu = res.get("cpu") or {}
        cd = self.dir_for("cpu")
        if cd and cpu:
            if cpu.get("shares"):
                _write(f"{cd}/cpu.shares", str(cpu["shares"]))
            if cpu.get("period"):
                _write(f"{cd}/cpu.cfs_period_us", str(cpu["period"]))
            if cpu.get("quota") is not None and cpu.get("quota") != 0:
                _write(f"{cd}/cpu.cfs_quota_us", str(cpu["quota"]))
        sd = self.dir_for("cpuset")
        if sd:
            if cpu.get("cpus"):
                _write(f"{sd}/cpuset.cpus", cpu["cpus"])
            if cpu.get("mems"):
                _write(f"{sd}/cpuset.mems", cpu["mems"])
        pids = res.get("pids") or {}
        pd = self.dir_for("pids")
        if pd and "limit" in pids:
            _write(f"{pd}/pids.max", str(pids["limit"]) if pids["limit"] > 0 else "max")
        bd = self.dir_for("blkio")
        if bd and res.get("blockIO"):
            _set_blkio_v1(bd, res["blockIO"])
        dd = self.dir_for("devices")
        if dd and res.get("devices"):
            for rule in res["devices"]:
                _write(f"{dd}/{'devices.allow' if rule.get('allow') else 'devices.deny'}", _device_rule(rule))

    def _set_v2(self, res: dict[str, Any]) -> None:
        d = self.root + self.path
        mem = res.get("memory") or {}
        if mem.get("limit") is not None:
            _write_v2(d, "memory.max", _max(mem["limit"]))
        if mem.get("swap") is not None and os.path.exists(f"{d}/memory.swap.max"):
            swap = mem["swap"]
            # the spec's swap is memory+swap (v1 semantics); v2 limits swap alone
            _write_v2(d, "memory.swap.max", "max" if swap < 0 else str(max(swap - (mem.get("limit") or 0), 0)))
        if mem.get("reservation") is not None:
            _write_v2(d, "memory.low", str(mem["reservation"]))
        cpu = res.get("cpu") or {}
        if cpu.get("shares"):
            weight = 1 + ((int(cpu["shares"]) - 2) * 9999) // 262142
            _write_v2(d, "cpu.weight", str(weight))
        if cpu.get("quota") or cpu.get("period"):
            quota = cpu.get("quota")
            _write_v2(d, "cpu.max", f"{_max(quota) if quota else 'max'} {cpu.get('period') or 100000}")
        if cpu.get("cpus"):
            _write_v2(d, "cpuset.cpus", cpu["cpus"])
        if cpu.get("mems"):
            _write_v2(d, "cpuset.mems", cpu["mems"])
        pids = res.get("pids") or {}
        if "limit" in pids:
            _write_v2(d, "pids.max", _max(pids["limit"]))
        if res.get("blockIO"):
            _set_io_v2(d, res["blockIO"])
        if res.get("devices") is not None:  # absent on updates: the filter stays as it is
            _filter_devices_v2(d, res["devices"])


_THROTTLES = (("throttleReadBpsDevice", "read_bps", "rbps"), ("throttleWriteBpsDevice", "write_bps", "wbps"),
              ("throttleReadIOPSDevice", "read_iops", "riops"), ("throttleWriteIOPSDevice", "write_iops", "wiops"))


def _set_blkio_v1(d: str, bio: dict[str, Any]) -> None:
    """blockIO on v1: the weight where the I/O scheduler offers one (CFQ's ``blkio.weight`` or BFQ's
    ``blkio.bfq.weight``), and the throttles, one ``major:minor value`` line per device."""
    weight_file = next((f for f in ("blkio.weight", "blkio.bfq.weight") if os.path.exists(f"{d}/{f}")), None)
    if bio.get("weight"):
        if weight_file is None:
            raise Internal("blockIO weight: the kernel's I/O scheduler offers no blkio weight here")
        _write(f"{d}/{weight_file}", str(bio["weight"]))
    for dev in bio.get("weightDevice") or []:
        if weight_file is None:
            raise Internal("blockIO weightDevice: the kernel's I/O scheduler offers no blkio weight here")
        _write(f"{d}/{weight_file.replace('weight', 'weight_device')}",
               f"{dev['major']}:{dev['minor']} {dev['weight']}")
    for key, name, _ in _THROTTLES:
        for dev in bio.get(key) or []:
            _write(f"{d}/blkio.throttle.{name}_device", f"{dev['major']}:{dev['minor']} {dev['rate']}")


def _set_io_v2(d: str, bio: dict[str, Any]) -> None:
    """blockIO on v2: ``io.max`` per device; the weight in ``io.bfq.weight`` (BFQ's scale is
    blkio's) or ``io.weight`` (1-10000, converted as runc converts)."""
    if bio.get("weight"):
        if os.path.exists(f"{d}/io.bfq.weight"):
            _write_v2(d, "io.bfq.weight", str(bio["weight"]))
        else:
            _write_v2(d, "io.weight", f"default {1 + (int(bio['weight']) - 10) * 9999 // 990}")
    limits: dict[str, list[str]] = {}
    for key, _, field in _THROTTLES:
        for dev in bio.get(key) or []:
            limits.setdefault(f"{dev['major']}:{dev['minor']}", []).append(f"{field}={dev['rate']}")
    for dev_id, fields in limits.items():
        _write_v2(d, "io.max", f"{dev_id} {' '.join(fields)}")


def _filter_devices_v2(d: str, rules: list[dict[str, Any]]) -> None:
    from dockyard.runtime.linux import devicefilter  # v2 only: keeps bpf/ctypes setup off v1 hosts

    try:
        devicefilter.apply(d, rules)
    except Internal:
        # without bpf(2) (e.g. in a user namespace) a rule set that allows everything loses
        # nothing by going without a filter (runc skips it too); a real restriction must not be
        # dropped silently
        if devicefilter.emulate(rules) != (True, {}):
            raise


def _max(value: int) -> str:
    return "max" if value is None or value <= 0 else str(value)


def _device_rule(rule: dict[str, Any]) -> str:
    kind = rule.get("type") or "a"
    if kind == "a":
        return "a"
    major = "*" if rule.get("major") is None or rule["major"] < 0 else str(rule["major"])
    minor = "*" if rule.get("minor") is None or rule["minor"] < 0 else str(rule["minor"])
    return f"{kind} {major}:{minor} {rule.get('access') or 'rwm'}"


# Always allowed after the spec's own rules (as runc does): the default device nodes, ptys,
# and mknod of anything.
_ALLOWED_DEVICES: list[tuple[str, int, int, str]] = [
    ("c", -1, -1, "m"), ("b", -1, -1, "m"), ("c", 1, 3, "rwm"), ("c", 1, 8, "rwm"), ("c", 1, 7, "rwm"),
    ("c", 5, 0, "rwm"), ("c", 1, 5, "rwm"), ("c", 1, 9, "rwm"), ("c", 5, 1, "rwm"), ("c", 136, -1, "rwm"),
    ("c", 5, 2, "rwm"), ("c", 10, 200, "rwm"),
]


def with_default_devices(res: dict[str, Any], devices: list[dict[str, Any]]) -> dict[str, Any]:
    """``res`` with runc's always-allowed device rules after the spec's own. The spec's
    ``linux.devices`` get no rule of their own, as in runc: which access a mapped node has is
    the spec's ``resources.devices`` to say (dockerd writes one rule per ``--device`` there), so
    ``--device /dev/x:/dev/x:r`` stays read-only under every runtime."""
    del devices  # kept in the signature: the nodes to create never widen the cgroup
    rules = list(res.get("devices") or [])
    rules += [{"allow": True, "type": t, "major": ma, "minor": mi, "access": acc}
              for t, ma, mi, acc in _ALLOWED_DEVICES]
    return {**res, "devices": rules}
