"""Container resource usage (``GET /containers/{id}/stats``) in Docker's StatsResponse shape.

Everything is read from files: the container's cgroup (v1: one directory per controller under
``/sys/fs/cgroup/<controller>/<parent>/<id>``; v2: the unified ``/sys/fs/cgroup/<parent>/<id>``),
the host's ``/proc/stat`` and the container's ``/proc/<pid>/net/dev`` (read from the host, it
shows the counters of that task's network namespace: no namespace entry, no fork).

The API's stats JSON is snake_case already, so samples are plain dicts in Docker's key order and
with Go's ``omitempty`` rules applied (zero numbers and empty maps left out where Docker leaves
them out, ``null`` where Go encodes a nil slice).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dockyard.engine.spec import cgroup_parent_of
from dockyard.engine.system import mem_total
from dockyard.engine.types import ContainerRecord
from dockyard.errors import InvalidArgument, NotFound

CGROUP_ROOT = Path("/sys/fs/cgroup")
MOUNTINFO = Path("/proc/self/mountinfo")
ZERO_TIME = "0001-01-01T00:00:00Z"      # Go's zero time.Time, as Docker sends "never read"
INTERVAL = 1.0                          # dockerd's collector samples once a second
_NS = 1_000_000_000
_USER_HZ = 100                          # /proc/stat and cpuacct.stat count in 1/100 s on Linux

# The memory.stat keys dockerd copies (cgroup v1, then v2); absent ones read as 0 like containerd.
V1_MEMORY_KEYS = (
    "cache", "rss", "rss_huge", "mapped_file", "dirty", "writeback", "pgpgin", "pgpgout", "pgfault",
    "pgmajfault", "inactive_anon", "active_anon", "inactive_file", "active_file", "unevictable",
    "hierarchical_memory_limit", "hierarchical_memsw_limit", "total_cache", "total_rss",
    "total_rss_huge", "total_mapped_file", "total_dirty", "total_writeback", "total_pgpgin",
    "total_pgpgout", "total_pgfault", "total_pgmajfault", "total_inactive_anon", "total_active_anon",
    "total_inactive_file", "total_active_file", "total_unevictable")
V2_MEMORY_KEYS = (
    "anon", "file", "kernel_stack", "slab", "sock", "shmem", "file_mapped", "file_dirty",
    "file_writeback", "anon_thp", "inactive_anon", "active_anon", "inactive_file", "active_file",
    "unevictable", "slab_reclaimable", "slab_unreclaimable", "pgfault", "pgmajfault",
    "workingset_refault", "workingset_activate", "workingset_nodereclaim", "pgrefill", "pgscan",
    "pgsteal", "pgactivate", "pgdeactivate", "pglazyfree", "pglazyfreed", "thp_fault_alloc",
    "thp_collapse_alloc")
# BlkioStats' JSON keys in order, with the cgroup v1 CFQ file each comes from.
BLKIO_KEYS = (
    ("io_service_bytes_recursive", "io_service_bytes_recursive"),
    ("io_serviced_recursive", "io_serviced_recursive"),
    ("io_queue_recursive", "io_queued_recursive"),
    ("io_service_time_recursive", "io_service_time_recursive"),
    ("io_wait_time_recursive", "io_wait_time_recursive"),
    ("io_merged_recursive", "io_merged_recursive"),
    ("io_time_recursive", "time_recursive"),
    ("sectors_recursive", "sectors_recursive"))


# ---------------------------------------------------------------- shapes


def zero_cpu() -> dict[str, Any]:
    """CPUStats as Go encodes its zero value (precpu_stats of a first sample)."""
    return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}


def null_blkio() -> dict[str, Any]:
    return {key: None for key, _ in BLKIO_KEYS}


@dataclass
class Usage:
    """What the cgroup files say about one container (the parts of StatsResponse they fill)."""
    cpu: dict[str, Any] = field(default_factory=zero_cpu)
    memory: dict[str, Any] = field(default_factory=dict)
    pids: dict[str, Any] = field(default_factory=dict)
    blkio: dict[str, Any] = field(default_factory=null_blkio)


def response(rec: ContainerRecord, read: str = ZERO_TIME, usage: Usage | None = None,
             networks: dict[str, dict[str, int]] | None = None, preread: str = ZERO_TIME,
             precpu: dict[str, Any] | None = None) -> dict[str, Any]:
    """StatsResponse in dockerd's key order; without ``usage`` it is the zero shape dockerd sends
    for a container that is not running."""
    u = usage or Usage()
    out: dict[str, Any] = {
        "name": "/" + rec.name, "id": rec.id, "read": read, "preread": preread,
        "pids_stats": u.pids, "blkio_stats": u.blkio, "num_procs": 0, "storage_stats": {},
        "cpu_stats": u.cpu, "precpu_stats": precpu or zero_cpu(), "memory_stats": u.memory}
    if networks:
        out["networks"] = networks
    return out


def go_time(ns: int) -> str:
    """Go's time.Time JSON (RFC 3339 with nanoseconds, trailing zeros cut), in UTC."""
    secs, frac = divmod(ns, _NS)
    base = datetime.fromtimestamp(secs, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{frac:09d}".rstrip("0")
    return base + (f".{digits}" if digits else "") + "Z"


# ---------------------------------------------------------------- file parsing


def _text(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:  # a controller not mounted or a file this kernel lacks: that part stays empty
        return None


def _int(path: Path, unlimited: int = 0) -> int:
    """One number; "max" (no limit) reads as ``unlimited``; missing as 0."""
    text = (_text(path) or "").strip()
    if text == "max":
        return unlimited
    try:
        return int(text)
    except ValueError:
        return 0


def _flat(path: Path) -> dict[str, int]:
    """A flat-keyed file ("key value" lines: memory.stat, cpu.stat, cpuacct.stat, memory.events)."""
    out: dict[str, int] = {}
    for line in (_text(path) or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def _omit_zero(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v}


def blkio_entries(text: str) -> list[dict[str, Any]]:
    """cgroup v1 blkio lines ("8:0 Read 4096"); the closing "Total N" line is skipped like
    containerd does."""
    out: list[dict[str, Any]] = []
    for line in text.splitlines():
        parts = line.replace(":", " ").split()
        if len(parts) != 4 or not (parts[0].isdigit() and parts[1].isdigit() and parts[3].isdigit()):
            continue
        out.append({"major": int(parts[0]), "minor": int(parts[1]), "op": parts[2], "value": int(parts[3])})
    return out


def io_stat_entries(text: str) -> list[dict[str, Any]] | None:
    """cgroup v2 io.stat ("8:0 rbytes=1 wbytes=2 ...") as dockerd reports it: a read and a write
    entry per device (``null`` when there is no device at all)."""
    out: list[dict[str, Any]] = []
    for line in text.splitlines():
        dev, *pairs = line.split() or [""]
        major, _, minor = dev.partition(":")
        if not (major.isdigit() and minor.isdigit()):
            continue
        kv = dict(p.partition("=")[::2] for p in pairs)
        for op, key in (("read", "rbytes"), ("write", "wbytes")):
            value = kv.get(key, "0")
            out.append({"major": int(major), "minor": int(minor), "op": op,
                        "value": int(value) if value.isdigit() else 0})
    return out or None


def system_cpu(text: str) -> tuple[int, int]:
    """(system_cpu_usage in ns, online CPUs) from /proc/stat as dockerd computes them: the first
    seven fields of the "cpu" line (user..softirq) in USER_HZ ticks, and the count of "cpuN" lines."""
    usage, cpus = 0, 0
    for line in text.splitlines():
        if not line.startswith("cpu"):
            break  # glibc's rule: the cpu lines come first
        parts = line.split()
        if parts[0] == "cpu":
            usage = sum(int(x) for x in parts[1:8]) * _NS // _USER_HZ
        elif parts[0][3:].isdigit():
            cpus += 1
    return usage, cpus


def net_dev(text: str) -> dict[str, dict[str, int]]:
    """Per-interface counters from a /proc/<pid>/net/dev; loopback is no endpoint and left out
    (dockerd reports the sandbox's endpoint interfaces only)."""
    out: dict[str, dict[str, int]] = {}
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        name = name.strip()
        f = rest.split()
        if not sep or name == "lo" or len(f) < 12 or not all(x.isdigit() for x in f[:12]):
            continue
        n = [int(x) for x in f[:12]]
        out[name] = {"rx_bytes": n[0], "rx_packets": n[1], "rx_errors": n[2], "rx_dropped": n[3],
                     "tx_bytes": n[8], "tx_packets": n[9], "tx_errors": n[10], "tx_dropped": n[11]}
    return out


# ---------------------------------------------------------------- cgroups


@dataclass
class CgroupDirs:
    """Where one container's cgroup lives: the unified directory (v2) or one per v1 controller."""
    unified: Path | None = None
    controllers: dict[str, Path] = field(default_factory=dict)


def cgroup_dirs(cgroup_path: str, root: Path = CGROUP_ROOT, mountinfo: Path = MOUNTINFO) -> CgroupDirs:
    """The directories of ``cgroup_path`` (e.g. "/dockyard/<id>"): v2 when ``root`` is a pure
    unified hierarchy, else every cgroup v1 hierarchy mounted on this host."""
    rel = cgroup_path.strip("/")
    if (root / "cgroup.controllers").exists():
        return CgroupDirs(unified=root / rel)
    dirs: dict[str, Path] = {}
    for line in (_text(mountinfo) or "").splitlines():
        pre, _, post = line.partition(" - ")
        fields, tail = pre.split(), post.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] != "cgroup":
            continue
        for ctrl in tail[2].split(","):
            dirs.setdefault(ctrl, Path(fields[4]) / rel)
    return CgroupDirs(controllers=dirs)


def _throttling(stat: dict[str, int], time_key: str, scale: int) -> dict[str, int]:
    return {"periods": stat.get("nr_periods", 0), "throttled_periods": stat.get("nr_throttled", 0),
            "throttled_time": stat.get(time_key, 0) * scale}


def read_v1(dirs: dict[str, Path], machine_memory: int) -> Usage:
    """containerd's cgroup1 metrics as dockerd's statsV1 maps them."""
    u = Usage()
    acct = dirs.get("cpuacct")
    if acct is not None:
        ticks = _flat(acct / "cpuacct.stat")
        usage: dict[str, Any] = {"total_usage": _int(acct / "cpuacct.usage")}
        percpu = [int(x) for x in (_text(acct / "cpuacct.usage_percpu") or "").split() if x.isdigit()]
        if percpu:
            usage["percpu_usage"] = percpu
        usage["usage_in_kernelmode"] = ticks.get("system", 0) * (_NS // _USER_HZ)
        usage["usage_in_usermode"] = ticks.get("user", 0) * (_NS // _USER_HZ)
        u.cpu["cpu_usage"] = usage
    cpu = dirs.get("cpu")
    if cpu is not None:
        u.cpu["throttling_data"] = _throttling(_flat(cpu / "cpu.stat"), "throttled_time", 1)
    mem = dirs.get("memory")
    if mem is not None and mem.is_dir():
        raw = _flat(mem / "memory.stat")
        limit = _int(mem / "memory.limit_in_bytes")
        if machine_memory and limit > machine_memory:
            limit = machine_memory  # no limit set: dockerd reports the machine's memory
        u.memory = {**_omit_zero({"usage": _int(mem / "memory.usage_in_bytes"),
                                  "max_usage": _int(mem / "memory.max_usage_in_bytes")}),
                    "stats": {k: raw.get(k, 0) for k in V1_MEMORY_KEYS},
                    **_omit_zero({"failcnt": _int(mem / "memory.failcnt"), "limit": limit})}
    pids = dirs.get("pids")
    if pids is not None:
        u.pids = _omit_zero({"current": _int(pids / "pids.current"), "limit": _int(pids / "pids.max")})
    blk = dirs.get("blkio")
    if blk is not None and blk.is_dir():
        u.blkio = _blkio_v1(blk)
    return u


def _blkio_v1(d: Path) -> dict[str, Any]:
    """CFQ's files when the kernel has them and they count something, else the throttle ones."""
    lists: dict[str, list[dict[str, Any]]] = {key: [] for key, _ in BLKIO_KEYS}
    if (d / "blkio.io_serviced_recursive").exists():
        for key, name in BLKIO_KEYS:
            lists[key] = blkio_entries(_text(d / f"blkio.{name}") or "")
        if any(lists.values()):
            return dict(lists)
    for key, name in (("io_service_bytes_recursive", "io_service_bytes"), ("io_serviced_recursive", "io_serviced")):
        text = _text(d / f"blkio.throttle.{name}_recursive")
        lists[key] = blkio_entries(text if text is not None else _text(d / f"blkio.throttle.{name}") or "")
    return dict(lists)


def read_v2(d: Path, machine_memory: int) -> Usage:
    """containerd's cgroup2 metrics as dockerd's statsV2 maps them (no percpu, no max_usage)."""
    u = Usage()
    stat = _flat(d / "cpu.stat")
    u.cpu = {"cpu_usage": {"total_usage": stat.get("usage_usec", 0) * 1000,
                           "usage_in_kernelmode": stat.get("system_usec", 0) * 1000,
                           "usage_in_usermode": stat.get("user_usec", 0) * 1000},
             "throttling_data": _throttling(stat, "throttled_usec", 1000)}
    if (d / "memory.current").exists():
        raw = _flat(d / "memory.stat")
        limit = _int(d / "memory.max", unlimited=2**64 - 1)
        if machine_memory and limit > machine_memory:
            limit = machine_memory
        u.memory = {**_omit_zero({"usage": _int(d / "memory.current")}),
                    "stats": {k: raw.get(k, 0) for k in V2_MEMORY_KEYS},
                    **_omit_zero({"failcnt": _flat(d / "memory.events").get("oom", 0), "limit": limit})}
    if (d / "pids.current").exists():
        u.pids = _omit_zero({"current": _int(d / "pids.current"), "limit": _int(d / "pids.max")})
    u.blkio = {**null_blkio(), "io_service_bytes_recursive": io_stat_entries(_text(d / "io.stat") or "")}
    return u


def read_cgroup(dirs: CgroupDirs, machine_memory: int) -> Usage:
    if dirs.unified is not None:
        return read_v2(dirs.unified, machine_memory)
    return read_v1(dirs.controllers, machine_memory)


# ---------------------------------------------------------------- the engine side


def _live(rec: ContainerRecord) -> bool:
    """dockerd samples running and paused containers; restarting or stopped ones get zeroes."""
    return rec.state.status in ("running", "paused") and rec.state.pid > 0


def take(engine: Any, rec: ContainerRecord) -> dict[str, Any]:
    """One sample of ``rec`` (without the pre* fields); the zero shape when it is not running."""
    if not _live(rec):
        return response(rec)
    parent = cgroup_parent_of(rec, str(getattr(engine.config, "cgroup_parent", "dockyard")))
    usage = read_cgroup(cgroup_dirs(f"/{parent}/{rec.id}"), mem_total())
    sys_usage, online = system_cpu(_text(Path("/proc/stat")) or "")
    # CPUStats' field order: cpu_usage, system_cpu_usage, online_cpus (both omitempty), throttling_data
    usage.cpu = {"cpu_usage": usage.cpu["cpu_usage"],
                 **_omit_zero({"system_cpu_usage": sys_usage, "online_cpus": online}),
                 "throttling_data": usage.cpu["throttling_data"]}
    networks: dict[str, dict[str, int]] = {}
    if not rec.config.network_disabled and rec.host_config.network_mode not in ("host", "none"):
        networks = net_dev(_text(Path(f"/proc/{rec.state.pid}/net/dev")) or "")
    try:
        still = _live(engine.store.get(rec.id))
    except NotFound:
        still = False
    if not still:  # it stopped (or went) while we read: what we read may be half gone too
        return response(rec)
    return response(rec, go_time(time.time_ns()), usage, networks)


async def collect(engine: Any, ref: str, *, stream: bool = True, one_shot: bool = False,
                  interval: float = INTERVAL) -> AsyncIterator[dict[str, Any]]:
    """Stats of container ``ref`` as ``GET /containers/{id}/stats`` answers them.

    ``stream``: a sample now and one per ``interval`` until the container is removed, each with
    the previous sample's read time and CPU figures as preread/precpu_stats (zero in the first).
    Not streaming: one sample taken ``interval`` after a first, silent one (so CPU deltas are
    meaningful) or, with ``one_shot``, a single one at once; a container that is not running gets
    the zero shape at once. NotFound for an unknown container comes from the first iteration.
    """
    if stream and one_shot:
        raise InvalidArgument("cannot have stream=true and one-shot=true")
    rec = engine.store.get(ref)
    if not stream and (one_shot or not _live(rec)):
        yield take(engine, rec)
        return
    pre_read, pre_cpu = ZERO_TIME, zero_cpu()
    if not stream:
        first = take(engine, rec)
        pre_read, pre_cpu = first["read"], first["cpu_stats"]
        await asyncio.sleep(interval)
    while True:
        try:
            rec = engine.store.get(rec.id)
        except NotFound:
            return  # removed: dockerd ends the stream
        sample = take(engine, rec)
        sample["preread"], sample["precpu_stats"] = pre_read, pre_cpu
        yield sample
        if not stream:
            return
        pre_read, pre_cpu = sample["read"], sample["cpu_stats"]
        await asyncio.sleep(interval)
