"""ContainerRecord (+ its image config, already merged) → OCI runtime spec ``config.json``.

Defaults follow Docker's ``oci.DefaultSpec`` and daemon/oci_linux.go: /proc /dev /dev/pts /sys
/sys/fs/cgroup /dev/mqueue /dev/shm mounts and fresh pid/ipc/uts/mount/network namespaces; what
confines the container (capabilities, seccomp, masked paths, devices, user namespace) is decided
in ``security``, ``seccomp``, ``devices`` and ``userns``.
"""

from __future__ import annotations

import signal as _signal
from pathlib import Path
from typing import Any

from dockyard.engine.devices import device_spec, privileged_devices
from dockyard.engine.rootfs import ExecUser
from dockyard.engine.seccomp import seccomp_for
from dockyard.engine.security import (
    capabilities,
    masked_paths,
    parse_security_opts,
    process_caps,
    readonly_paths,
    rlimits,
)
from dockyard.engine.types import ContainerRecord, Resources
from dockyard.errors import InvalidArgument

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TINI_HOST_PATH = "/usr/bin/tini-static"
INIT_PATH = "/sbin/docker-init"
DEFAULT_SHM = 64 * 1024 * 1024

def parse_signal(name: str) -> int:
    """``SIGTERM``, ``TERM``, ``15`` → 15; InvalidArgument otherwise."""
    value = name.strip().upper()
    if value.isdigit():  # str.isdigit holds for "²" and "9"*5000 too: check before int()
        num = int(value) if value.isascii() and len(value) <= 3 else 0
        if 0 < num < 65:
            return num
    else:
        if not value.startswith("SIG"):
            value = "SIG" + value
        if value.startswith("SIGRTMIN+") or value.startswith("SIGRTMAX-"):
            base, _, off = value[3:].partition("+" if "+" in value else "-")
            if off.isascii() and off.isdigit() and len(off) <= 3:
                n = int(off)
                num = int(_signal.SIGRTMIN) + n if base == "RTMIN" else int(_signal.SIGRTMAX) - n
                if _signal.SIGRTMIN <= num <= _signal.SIGRTMAX:
                    return num
        sig = getattr(_signal.Signals, value, None)
        if isinstance(sig, _signal.Signals):
            return int(sig)
    raise InvalidArgument(f"Invalid signal: {name}")


def linux_resources(res: Resources) -> dict[str, Any]:
    out: dict[str, Any] = {"devices": [{"allow": False, "access": "rwm"}]}
    memory: dict[str, Any] = {}
    if res.memory:
        memory["limit"] = res.memory
        if res.memory_swap > 0:
            memory["swap"] = res.memory_swap
        elif res.memory_swap == 0:
            memory["swap"] = res.memory * 2
        else:
            memory["swap"] = -1
    if res.memory_reservation:
        memory["reservation"] = res.memory_reservation
    if res.oom_kill_disable:
        memory["disableOOMKiller"] = True
    if memory:
        out["memory"] = memory
    cpu: dict[str, Any] = {}
    if res.nano_cpus:
        cpu["period"] = 100000
        cpu["quota"] = res.nano_cpus * 100000 // 1_000_000_000
    if res.cpu_period:
        cpu["period"] = res.cpu_period
    if res.cpu_quota:
        cpu["quota"] = res.cpu_quota
    if res.cpu_shares:
        cpu["shares"] = res.cpu_shares
    if res.cpuset_cpus:
        cpu["cpus"] = res.cpuset_cpus
    if res.cpuset_mems:
        cpu["mems"] = res.cpuset_mems
    if cpu:
        out["cpu"] = cpu
    if res.pids_limit:  # -1 (from `update --pids-limit -1`) lifts a limit: pids.max = max
        out["pids"] = {"limit": res.pids_limit}
    block_io = _block_io(res)
    if block_io:
        out["blockIO"] = block_io
    return out


def _block_io(res: Resources) -> dict[str, Any]:
    """linux.resources.blockIO; devices by number, looked up now (they may differ across boots)."""
    from dockyard.engine.create import block_device
    out: dict[str, Any] = {}
    if res.blkio_weight:
        out["weight"] = res.blkio_weight
    if res.blkio_weight_device:
        out["weightDevice"] = [dict(zip(("major", "minor"), block_device(d["Path"]), strict=True),
                                    weight=int(d["Weight"])) for d in res.blkio_weight_device]
    for field, key in (("blkio_device_read_bps", "throttleReadBpsDevice"),
                       ("blkio_device_write_bps", "throttleWriteBpsDevice"),
                       ("blkio_device_read_iops", "throttleReadIOPSDevice"),
                       ("blkio_device_write_iops", "throttleWriteIOPSDevice")):
        entries = getattr(res, field)
        if entries:
            out[key] = [dict(zip(("major", "minor"), block_device(d["Path"]), strict=True), rate=int(d["Rate"]))
                        for d in entries]
    return out


def _default_devices() -> list[dict[str, Any]]:
    """Docker's default device cgroup allow list (null zero full random urandom tty ptmx + pts)."""
    rules = [{"allow": False, "access": "rwm"}]
    for major, minor in ((1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 2)):
        rules.append({"allow": True, "type": "c", "major": major, "minor": minor, "access": "rwm"})
    rules.append({"allow": True, "type": "c", "major": 136, "access": "rwm"})
    rules.append({"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"})
    return rules


def merge_env(base: list[str], override: list[str]) -> list[str]:
    """Docker's ReplaceOrAppendEnvValues: ``override`` replaces keys of ``base`` in place."""
    out = list(base)
    index = {item.partition("=")[0]: i for i, item in enumerate(out)}
    for item in override:
        key, sep, _ = item.partition("=")
        if not sep:
            continue  # "KEY" without a value: unset on the client, so dropped
        if key in index:
            out[index[key]] = item
        else:
            index[key] = len(out)
            out.append(item)
    return out


def build_env(env: list[str], hostname: str, tty: bool) -> list[str]:
    """PATH default, HOSTNAME, TERM=xterm with a tty; then the container's (merged) env on top."""
    base = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={hostname}"] + (["TERM=xterm"] if tty else [])
    return merge_env(base, env)


def process_spec(*, args: list[str], env: list[str], cwd: str, user: ExecUser, tty: bool,
                 caps: list[str], console_size: tuple[int, int] | None = None,
                 no_new_privileges: bool = False, oom_score_adj: int = 0) -> dict[str, Any]:
    proc: dict[str, Any] = {
        "terminal": tty,
        "user": {"uid": user.uid, "gid": user.gid,
                 **({"additionalGids": user.additional_gids} if user.additional_gids else {})},
        "args": args,
        "env": env,
        "cwd": cwd or "/",
        "capabilities": process_caps(caps, user.uid),
        "noNewPrivileges": no_new_privileges,
    }
    if tty and console_size:
        proc["consoleSize"] = {"height": console_size[0], "width": console_size[1]}
    if oom_score_adj:
        proc["oomScoreAdj"] = oom_score_adj
    return proc


def namespace_list(network: str, pid: str, ipc: str, uts: str,
                   joined: dict[str, int]) -> list[dict[str, Any]]:
    """New namespaces, none for ``host`` modes, the target's for ``container:<ref>`` modes
    (``joined`` maps the namespace type to the pid of the container to join)."""
    modes = {"network": network, "pid": pid, "ipc": ipc, "uts": uts, "mount": ""}
    out: list[dict[str, Any]] = []
    proc_names = {"network": "net", "pid": "pid", "ipc": "ipc", "uts": "uts", "mount": "mnt"}
    for kind in ("pid", "ipc", "uts", "mount", "network"):
        mode = modes[kind]
        if mode == "host":
            continue
        if kind in joined:
            out.append({"type": kind, "path": f"/proc/{joined[kind]}/ns/{proc_names[kind]}"})
        else:
            out.append({"type": kind})
    return out


def cgroup_parent_of(record: ContainerRecord, default: str) -> str:
    """The cgroup a container's own cgroup goes under: its ``--cgroup-parent``, else the daemon's."""
    return (record.host_config.cgroup_parent or default).strip("/")


def build_spec(record: ContainerRecord, *, rootfs: Path, user: ExecUser, cgroup_parent: str,
               joined: dict[str, int] | None = None) -> dict[str, Any]:
    cfg, host = record.config, record.host_config
    args = [record.path, *record.args] if record.path else list(record.args)
    if host.init:
        args = [INIT_PATH, "--", *args]
    caps = capabilities(host.cap_add, host.cap_drop, host.privileged)
    env = build_env(cfg.env, cfg.hostname, cfg.tty)
    secopts = parse_security_opts(host.security_opt)
    proc = process_spec(args=args, env=env, cwd=cfg.working_dir or "/", user=user, tty=cfg.tty,
                        caps=caps, console_size=host.console_size,
                        no_new_privileges=secopts.no_new_privileges, oom_score_adj=host.oom_score_adj)
    if host.ulimits:
        proc["rlimits"] = rlimits(host.ulimits)
    shm = host.shm_size or DEFAULT_SHM
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "rw" if host.privileged else "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["rw" if host.privileged or secopts.writable_cgroups else "ro",
                     "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm}"]},
    ]
    for dest, tmpfs_opts in host.tmpfs.items():
        extra = [o for o in tmpfs_opts.split(",") if o]
        mounts.append({"destination": dest, "type": "tmpfs", "source": "tmpfs",
                       "options": ["nosuid", "nodev", "noexec", *extra]})
    for path, dest in ((record.resolv_conf_path, "/etc/resolv.conf"),
                       (record.hostname_path, "/etc/hostname"), (record.hosts_path, "/etc/hosts")):
        if path:
            mounts.append({"destination": dest, "type": "bind", "source": path,
                           "options": ["rbind", "rprivate", "rw" if not host.readonly_rootfs else "ro"]})
    for mp in record.mounts:
        if mp.type == "tmpfs":   # --mount type=tmpfs (mode holds its size=/mode= options)
            extra = [o for o in mp.mode.split(",") if o] + ([] if mp.rw else ["ro"])
            mounts.append({"destination": mp.destination, "type": "tmpfs", "source": "tmpfs",
                           "options": ["nosuid", "nodev", "noexec", *extra]})
            continue
        bind_opts = ["rbind", mp.propagation or "rprivate", "rw" if mp.rw else "ro"]
        mounts.append({"destination": mp.destination, "type": "bind", "source": mp.source,
                       "options": bind_opts})
    if host.init:
        mounts.append({"destination": INIT_PATH, "type": "bind", "source": TINI_HOST_PATH,
                       "options": ["bind", "ro", "nosuid", "nodev"]})
    namespaces = namespace_list(host.network_mode, host.pid_mode, host.ipc_mode, host.uts_mode,
                                joined or {})
    if host.cgroupns_mode == "private":
        namespaces.append({"type": "cgroup"})
    resources = linux_resources(host.resources)
    devices, device_rules = device_spec(host)
    if host.privileged:
        devices = privileged_devices() + devices
        resources["devices"] = [{"allow": True, "access": "rwm"}]
    else:
        resources["devices"] = _default_devices() + device_rules
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "cgroupsPath": f"/{cgroup_parent.strip('/')}/{record.id}",
        "resources": resources,
        "sysctl": dict(host.sysctls),
        "devices": devices,
    }
    if not secopts.unmask_paths:
        linux["maskedPaths"] = masked_paths(host)
        linux["readonlyPaths"] = readonly_paths(host)
    seccomp = seccomp_for(host.security_opt, caps, host.privileged)
    if seccomp is not None:
        linux["seccomp"] = seccomp
    if record.id_range is not None:
        r = record.id_range
        namespaces.insert(0, {"type": "user"})
        linux["uidMappings"] = [{"containerID": 0, "hostID": r.host_uid, "size": r.size}]
        linux["gidMappings"] = [{"containerID": 0, "hostID": r.host_gid, "size": r.size}]
    spec: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": proc,
        "root": {"path": str(rootfs), "readonly": host.readonly_rootfs},
        "hostname": cfg.hostname if any(n["type"] == "uts" and "path" not in n for n in namespaces) else "",
        "mounts": mounts,
        "linux": linux,
    }
    if cfg.domainname:
        spec["domainname"] = cfg.domainname
    return spec
