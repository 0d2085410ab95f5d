"""Host facts for ``version`` and ``info`` (snake_case; the API renders Docker's JSON)."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import dockyard

API_VERSION = "1.47"
MIN_API_VERSION = "1.24"


def _os_release() -> dict[str, str]:
    facts: dict[str, str] = {}
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep:
                facts[key] = value.strip().strip('"')
    except OSError:
        pass
    return facts


def mem_total() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def cgroup_version() -> str:
    """"2" when /sys/fs/cgroup is a pure unified hierarchy, else "1" (hybrid counts as v1)."""
    return "2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "1"


def cgroup_features() -> dict[str, bool]:
    """What the host's cgroups can enforce (dockerd's sysinfo): blkio weights need the CFQ or BFQ
    scheduler's files, throttles the blkio (v1) or io (v2) controller, OOM-kill disabling v1's
    memory.oom_control. Read once: it does not change while the daemon runs."""
    global _FEATURES
    if _FEATURES is None:
        root = Path("/sys/fs/cgroup")
        if (root / "cgroup.controllers").exists():
            io = "io" in (root / "cgroup.controllers").read_text().split()
            _FEATURES = {"blkio_weight": io, "blkio_throttle": io, "oom_kill_disable": False}
        else:
            blkio = root / "blkio"
            _FEATURES = {
                "blkio_weight": (blkio / "blkio.weight").exists() or (blkio / "blkio.bfq.weight").exists(),
                "blkio_throttle": (blkio / "blkio.throttle.read_bps_device").exists(),
                "oom_kill_disable": (root / "memory" / "memory.oom_control").exists(),
            }
    return _FEATURES


_FEATURES: dict[str, bool] | None = None


def ncpu() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except OSError:
        return os.cpu_count() or 1


def go_arch(machine: str | None = None) -> str:
    machine = machine or platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
            "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}.get(machine, machine)


def version_facts() -> dict[str, Any]:
    uname = os.uname()
    return {
        "version": getattr(dockyard, "__version__", "0.1.0"),
        "api_version": API_VERSION,
        "min_api_version": MIN_API_VERSION,
        "os": "linux",
        "arch": go_arch(uname.machine),
        "kernel_version": uname.release,
        "python_version": platform.python_version(),
        "git_commit": "",
        "build_time": "",
    }


def info_facts(*, data_root: Path, runtimes: dict[str, str], default_runtime: str,
               counts: dict[str, int], images: int, name: str | None = None) -> dict[str, Any]:
    uname = os.uname()
    release = _os_release()
    return {
        "id": _daemon_id(data_root),
        "name": name or uname.nodename,
        "containers": sum(counts.values()),
        "containers_running": counts.get("running", 0),
        "containers_paused": counts.get("paused", 0),
        "containers_stopped": sum(v for k, v in counts.items() if k not in ("running", "paused")),
        "images": images,
        "driver": "overlay2",
        "driver_status": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]],
        "docker_root_dir": str(data_root),
        "logging_driver": "json-file",
        "cgroup_driver": "cgroupfs",
        "cgroup_version": cgroup_version(),
        "kernel_version": uname.release,
        "operating_system": release.get("PRETTY_NAME", "Linux"),
        "os_version": release.get("VERSION_ID", ""),
        "os_type": "linux",
        "architecture": uname.machine,
        "ncpu": ncpu(),
        "mem_total": mem_total(),
        "runtimes": {k: {"path": v} for k, v in runtimes.items()},
        "default_runtime": default_runtime,
        "live_restore_enabled": True,
        "server_version": getattr(dockyard, "__version__", "0.1.0"),
        "init_binary": "docker-init",
        "security_options": ["name=seccomp,profile=builtin"],
    }


def _daemon_id(data_root: Path) -> str:
    """A stable engine id kept in <data-root>/engine-id (Docker keeps one too)."""
    path = data_root / "engine-id"
    try:
        return path.read_text().strip()
    except OSError:
        import uuid
        value = str(uuid.uuid4())
        try:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(value)
            os.replace(tmp, path)
        except OSError:
            pass
        return value
