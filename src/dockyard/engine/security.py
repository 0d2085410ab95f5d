"""Container confinement chosen at create: capability sets, security options and sysctls.

Decided here, written into the bundle by ``spec.build_spec`` and enforced by the runtime, so
``dockyard-runtime`` and runc confine a container the same way.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from dockyard.engine.types import HostConfig
from dockyard.errors import InvalidArgument
from dockyard.oci.capabilities import CAP_NAMES

# Docker's default set (moby oci/caps/defaults.go), in Docker's order
DEFAULT_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]

# Docker's defaults (moby oci/defaults.go): kernel interfaces that leak host information or
# would let a container change the host
MASKED_PATHS = [
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
    "/sys/devices/virtual/powercap",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

# Sysctls that live in a namespace the container owns (runc's validateSysctl): anything else
# would change the host for everyone.
_IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}
_UTS_SYSCTLS = {"kernel.domainname", "kernel.hostname"}


@functools.cache
def host_caps() -> tuple[str, ...]:
    """The capabilities this daemon's bounding set holds: the most any container can be given.
    (A VM or an outer container may lack some, e.g. CAP_SYS_RESOURCE; asking the kernel for a
    capability outside the bounding set fails the container's start.)"""
    try:
        with open("/proc/self/status") as f:
            mask = next(int(line.split()[1], 16) for line in f if line.startswith("CapBnd:"))
    except (OSError, StopIteration, ValueError):
        return tuple(CAP_NAMES)
    return tuple(name for n, name in enumerate(CAP_NAMES) if mask >> n & 1)


def normalise_caps(caps: list[str]) -> list[str]:
    """``net_admin``/``NET_ADMIN``/``CAP_NET_ADMIN`` → ``CAP_NET_ADMIN``; ``ALL`` kept."""
    out = []
    for cap in caps:
        up = cap.strip().upper()
        if up == "ALL":
            out.append("ALL")
            continue
        if not up.startswith("CAP_"):
            up = "CAP_" + up
        if up not in CAP_NAMES:
            raise InvalidArgument(f'unknown capability: "{cap}"')
        out.append(up)
    return out


def check_caps(cap_add: list[str], cap_drop: list[str]) -> None:
    """At create: names are known, and what is added by name the host can grant."""
    normalise_caps(cap_drop)
    missing = [c for c in normalise_caps(cap_add) if c != "ALL" and c not in host_caps()]
    if missing:
        raise InvalidArgument(f"capability {missing[0]} is not in this host's bounding set, so no "
                              "container can be given it")


def capabilities(cap_add: list[str], cap_drop: list[str], privileged: bool) -> list[str]:
    """Docker's TweakCapabilities, bounded by what the host has: ``--privileged`` and
    ``--cap-add ALL`` mean every capability the host can grant."""
    available = host_caps()
    if privileged:
        return list(available)
    add, drop = normalise_caps(cap_add), normalise_caps(cap_drop)
    base = [] if "ALL" in drop else [c for c in DEFAULT_CAPS if c not in drop]
    extra = list(available) if "ALL" in add else add
    caps = base + [c for c in extra if c not in base and c != "ALL"]
    return [c for c in caps if c in available]


def process_caps(caps: list[str], uid: int) -> dict[str, list[str]]:
    """OCI ``process.capabilities``. Root gets them bounding/effective/permitted; another user only
    in the bounding set, as execve would leave a non-root process (moby does the same since 25.0).
    Inheritable and ambient stay empty (CVE-2022-24769)."""
    if uid == 0:
        return {k: list(caps) for k in ("bounding", "effective", "permitted")}
    return {"bounding": list(caps)}


def masked_paths(host: HostConfig) -> list[str]:
    """HostConfig.MaskedPaths when given (the docker CLI sends [] for systempaths=unconfined),
    else the defaults; nothing for --privileged."""
    if host.masked_paths is not None:
        return list(host.masked_paths)
    return [] if host.privileged else list(MASKED_PATHS)


def readonly_paths(host: HostConfig) -> list[str]:
    if host.readonly_paths is not None:
        return list(host.readonly_paths)
    return [] if host.privileged else list(READONLY_PATHS)


@dataclass
class SecurityOpts:
    no_new_privileges: bool = False
    seccomp: str = ""               # "" default profile, "unconfined", or a profile's JSON text
    unmask_paths: bool = False      # systempaths=unconfined
    writable_cgroups: bool = False


def _bool(value: str, opt: str, n: int) -> bool:
    if value.lower() in ("1", "t", "true"):
        return True
    if value.lower() in ("0", "f", "false"):
        return False
    raise InvalidArgument(f'invalid --security-opt {n}: "{opt}"')


def parse_security_opts(opts: list[str]) -> SecurityOpts:
    """HostConfig.SecurityOpt as dockerd reads it; AppArmor and SELinux options are accepted and
    have no effect (this daemon does not load LSM profiles), as on a Docker host without them."""
    out = SecurityOpts()
    for opt in opts:
        if opt == "no-new-privileges":
            out.no_new_privileges = True
            continue
        if opt == "disable":        # the old `label:disable`
            continue
        key, sep, value = opt.partition("=")
        if not sep:
            key, sep, value = opt.partition(":")  # Docker's deprecated colon form
        if not sep:
            raise InvalidArgument(f'invalid --security-opt 1: "{opt}"')
        if key == "seccomp":
            out.seccomp = "" if value == "builtin" else value
        elif key == "no-new-privileges":
            out.no_new_privileges = _bool(value, opt, 2)
        elif key == "systempaths":
            if value != "unconfined":
                raise InvalidArgument(f'invalid --security-opt 2: "{opt}"')
            out.unmask_paths = True
        elif key == "writable-cgroups":
            out.writable_cgroups = _bool(value, opt, 2)
        elif key not in ("label", "apparmor"):
            raise InvalidArgument(f'invalid --security-opt 2: "{opt}"')
    return out


def check_sysctls(sysctls: dict[str, str], network_mode: str, ipc_mode: str, uts_mode: str) -> None:
    """Only sysctls of namespaces the container has to itself: the others are host-wide."""
    for key in sysctls:
        if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
            if ipc_mode == "host" or ipc_mode.startswith("container:"):
                raise InvalidArgument(f"sysctl {key!r} is not allowed: the container shares the "
                                      f"IPC namespace ({ipc_mode})")
        elif key.startswith("net."):
            if network_mode == "host":
                raise InvalidArgument(f"--sysctl {key} cannot be used with --net=host")
        elif key in _UTS_SYSCTLS:
            if uts_mode == "host":
                raise InvalidArgument(f"sysctl {key!r} is not allowed in the host's UTS namespace")
        else:
            raise InvalidArgument(f"sysctl {key!r} is not allowed: only namespaced sysctls can be "
                                  "set (kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*, net.*)")


_ULIMITS = {"as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
            "nproc", "rss", "rtprio", "rttime", "sigpending", "stack"}


def rlimits(ulimits: list[dict[str, object]]) -> list[dict[str, object]]:
    """HostConfig.Ulimits ({"Name","Soft","Hard"}) → OCI ``process.rlimits``; checked as dockerd
    checks them (go-units names, soft ≤ hard)."""
    out: list[dict[str, object]] = []
    for ul in ulimits:
        name = str(ul.get("Name", ul.get("name", "")))
        soft, hard = ul.get("Soft", ul.get("soft", 0)), ul.get("Hard", ul.get("hard", 0))
        if name not in _ULIMITS:
            raise InvalidArgument(f"invalid ulimit type: {name}")
        if not isinstance(soft, int) or not isinstance(hard, int) or isinstance(soft, bool) \
                or isinstance(hard, bool):
            raise InvalidArgument(f"invalid ulimit {name}: Soft and Hard must be integers")
        if hard != -1 and (soft == -1 or soft > hard):
            raise InvalidArgument(f"ulimit soft limit must be less than or equal to hard limit: "
                                  f"{soft} > {hard}")
        # -1 is "unlimited" (RLIM_INFINITY) as in go-units
        out.append({"type": f"RLIMIT_{name.upper()}", "soft": soft if soft >= 0 else 2**64 - 1,
                    "hard": hard if hard >= 0 else 2**64 - 1})
    return out


def check_ulimits(ulimits: list[dict[str, object]]) -> None:
    rlimits(ulimits)
