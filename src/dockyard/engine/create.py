"""Container creation helpers: merge the user's config with the image's, validate, write files."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

from dockyard.engine.devices import check_devices
from dockyard.engine.seccomp import seccomp_for
from dockyard.engine.security import (
    capabilities,
    check_caps,
    check_sysctls,
    check_ulimits,
    parse_security_opts,
)
from dockyard.engine.spec import parse_signal
from dockyard.engine.types import ContainerConfig, HealthConfig, HostConfig, MountPoint, Resources
from dockyard.errors import InvalidArgument

MIN_MEMORY = 6 * 1024 * 1024


def merge_image_config(user: ContainerConfig, image: dict[str, Any]) -> ContainerConfig:
    """Docker's merge: image values fill what the user left empty (Cmd/Entrypoint rule included)."""
    img = image.get("config") or {}
    cfg = copy.deepcopy(user)
    if cfg.entrypoint is None:
        cfg.entrypoint = list(img.get("Entrypoint") or []) or None
        if cfg.cmd is None:
            cfg.cmd = list(img.get("Cmd") or []) or None
    elif cfg.entrypoint == [""] or cfg.entrypoint == []:
        cfg.entrypoint = None  # `--entrypoint ""` resets it; the image Cmd is dropped too
    # a user entrypoint drops the image Cmd unless the user gave a cmd: nothing to do
    image_env = list(img.get("Env") or [])
    keys = {e.partition("=")[0] for e in cfg.env}
    cfg.env = [e for e in image_env if e.partition("=")[0] not in keys] + cfg.env
    if not cfg.working_dir:
        cfg.working_dir = img.get("WorkingDir") or ""
    if not cfg.user:
        cfg.user = img.get("User") or ""
    labels = dict(img.get("Labels") or {})
    labels.update(cfg.labels)
    cfg.labels = labels
    if not cfg.stop_signal:
        cfg.stop_signal = img.get("StopSignal") or ""
    exposed = dict(img.get("ExposedPorts") or {})
    exposed.update(cfg.exposed_ports)
    cfg.exposed_ports = exposed
    volumes = dict(img.get("Volumes") or {})
    volumes.update(cfg.volumes)
    cfg.volumes = volumes
    if cfg.healthcheck is None and img.get("Healthcheck"):
        hc = img["Healthcheck"]
        cfg.healthcheck = HealthConfig(
            test=list(hc.get("Test") or []), interval_ns=int(hc.get("Interval") or 0),
            timeout_ns=int(hc.get("Timeout") or 0), start_period_ns=int(hc.get("StartPeriod") or 0),
            start_interval_ns=int(hc.get("StartInterval") or 0), retries=int(hc.get("Retries") or 0))
    if cfg.on_build is None and img.get("OnBuild"):
        cfg.on_build = list(img["OnBuild"])
    if cfg.shell is None and img.get("Shell"):
        cfg.shell = list(img["Shell"])
    return cfg


def command_line(cfg: ContainerConfig) -> tuple[str, list[str]]:
    argv = list(cfg.entrypoint or []) + list(cfg.cmd or [])
    if not argv:
        raise InvalidArgument("no command specified")
    return argv[0], argv[1:]


def validate_resources(res: Resources, ncpu: int) -> list[str]:
    """Docker's checks (daemon/daemon_unix.go verifyPlatformContainerResources); returns warnings."""
    warnings: list[str] = []
    if res.memory and res.memory < MIN_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if res.memory_reservation and res.memory_reservation < MIN_MEMORY:
        raise InvalidArgument("Minimum memory reservation allowed is 6MB")
    if res.memory_swap > 0 and res.memory == 0:
        raise InvalidArgument(
            "You should always set the Memory limit when using Memoryswap limit, see usage")
    if res.memory and res.memory_swap > 0 and res.memory_swap < res.memory:
        raise InvalidArgument(
            "Minimum memoryswap limit should be larger than memory limit, see usage")
    if res.memory_reservation and res.memory and res.memory < res.memory_reservation:
        raise InvalidArgument(
            "Minimum memory limit can not be less than memory reservation limit, see usage")
    if res.nano_cpus and (res.cpu_period or res.cpu_quota):
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set"
                              if res.cpu_period else
                              "Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    if res.nano_cpus < 0 or res.nano_cpus > ncpu * 1_000_000_000:
        raise InvalidArgument(
            f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available")
    if res.cpu_period and not 1000 <= res.cpu_period <= 1_000_000:
        raise InvalidArgument("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
    if res.cpu_quota and 0 < res.cpu_quota < 1000:
        raise InvalidArgument("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if res.cpu_shares < 0:
        raise InvalidArgument(f"invalid CPU shares ({res.cpu_shares}): value must be a positive integer")
    for value, what in ((res.cpuset_cpus, "cpuset.cpus"), (res.cpuset_mems, "cpuset.mems")):
        if value and not re.fullmatch(r"\d+(-\d+)?(,\d+(-\d+)?)*", value):
            raise InvalidArgument(f"Invalid value {value} for {what}")
    if res.cpuset_cpus:
        for part in res.cpuset_cpus.split(","):
            hi = int(part.split("-")[-1])
            if hi >= ncpu:
                raise InvalidArgument(
                    f"Requested CPUs are not available - requested {res.cpuset_cpus}, available: 0-{ncpu - 1}")
    if res.blkio_weight and not 10 <= res.blkio_weight <= 1000:
        raise InvalidArgument("Range of blkio weight is from 10 to 1000")
    return warnings + _block_io_and_oom(res)


# (field, what dockerd's warning says the kernel lacks, what it says is discarded)
_THROTTLE_FIELDS = (("blkio_device_read_bps", "BPS Block I/O read limit", "Block I/O BPS read limit"),
                    ("blkio_device_write_bps", "BPS Block I/O write limit", "Block I/O BPS write limit"),
                    ("blkio_device_read_iops", "IOPS Block read limit", "Block I/O IOPS read limit"),
                    ("blkio_device_write_iops", "IOPS Block write limit", "Block I/O IOPS write limit"))


def block_device(path: Any) -> tuple[int, int]:
    """(major, minor) of the block device at ``path``."""
    import stat
    try:
        st = os.stat(str(path))
    except OSError as exc:
        raise InvalidArgument(f"invalid device {path}: {exc.strerror}") from exc
    if not stat.S_ISBLK(st.st_mode):
        raise InvalidArgument(f"invalid device {path}: not a block device")
    return os.major(st.st_rdev), os.minor(st.st_rdev)


def _block_io_and_oom(res: Resources) -> list[str]:
    """The per-device block I/O limits and OOM-kill disabling: entries checked, and what this host's
    cgroups cannot enforce dropped with dockerd's warning (rather than failing every start)."""
    from dockyard.engine.system import cgroup_features
    features = cgroup_features()
    warnings: list[str] = []
    for entry in res.blkio_weight_device:
        block_device(entry.get("Path"))
        weight = entry.get("Weight")
        if not isinstance(weight, int) or isinstance(weight, bool) or not (weight == 0 or 10 <= weight <= 1000):
            raise InvalidArgument(f"invalid weight for device {entry.get('Path')}: {weight} "
                                  "(it must be between 10 and 1000, or 0)")
    for name, _, _ in _THROTTLE_FIELDS:
        for entry in getattr(res, name):
            block_device(entry.get("Path"))
            rate = entry.get("Rate")
            if not isinstance(rate, int) or isinstance(rate, bool) or rate < 0:
                raise InvalidArgument(f"invalid rate for device {entry.get('Path')}: {rate}")
    if res.blkio_weight and not features["blkio_weight"]:
        warnings.append("Your kernel does not support Block I/O weight or the cgroup is not mounted. "
                        "Weight discarded.")
        res.blkio_weight = 0
    if res.blkio_weight_device and not features["blkio_weight"]:
        warnings.append("Your kernel does not support Block I/O weight_device or the cgroup is not mounted. "
                        "Weight-device discarded.")
        res.blkio_weight_device = []
    for name, lacking, dropped in _THROTTLE_FIELDS:
        if getattr(res, name) and not features["blkio_throttle"]:
            warnings.append(f"Your kernel does not support {lacking} or the cgroup is not mounted. "
                            f"{dropped} discarded.")
            setattr(res, name, [])
    if res.oom_kill_disable:
        if not features["oom_kill_disable"]:
            warnings.append("Your kernel does not support OomKillDisable. OomKillDisable discarded.")
            res.oom_kill_disable = False
        elif not res.memory:
            warnings.append("OOM killer is disabled for the container, but no memory limit is set, "
                            "this can result in the system running out of resources.")
    return warnings


# log drivers and the options each takes (dockerd's json-file and local); "none" keeps nothing
_LOG_DRIVERS: dict[str, frozenset[str]] = {
    "json-file": frozenset({"max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex",
                            "tag"}),
    "local": frozenset({"max-size", "max-file", "compress"}),
    "none": frozenset(),
}
_LOG_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmMgGtTpP]?)[bB]?\s*")
_DECIMAL = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4, "p": 1000**5}


def log_size(text: str) -> int:
    """A ``max-size`` as dockerd reads it (go-units FromHumanSize: decimal, ``10m`` = 10 000 000)."""
    m = _LOG_SIZE.fullmatch(text)
    if not m:
        raise InvalidArgument(f"invalid size: '{text}'")
    return int(float(m.group(1)) * _DECIMAL[m.group(2).lower()])


def check_log_config(kind: str, options: dict[str, str]) -> None:
    """The container's LogConfig, refused at create as dockerd refuses it."""
    allowed = _LOG_DRIVERS.get(kind or "json-file")
    if allowed is None:
        raise InvalidArgument(f"logger: no log driver named '{kind}' is registered "
                              f"(dockyard has {', '.join(sorted(_LOG_DRIVERS))})")
    for key, value in options.items():
        if key not in allowed:
            raise InvalidArgument(f"unknown log opt '{key}' for {kind or 'json-file'} log driver")
        if key == "max-size" and log_size(value) <= 0:
            raise InvalidArgument("max-size must be a positive number")
        if key == "max-file":
            if not value.strip().isdigit():
                raise InvalidArgument(f"invalid max-file '{value}': not a number")
            if int(value) < 1:
                raise InvalidArgument("max-file cannot be less than 1")
        if key == "compress" and value.lower() not in ("true", "false", "1", "0", "t", "f"):
            raise InvalidArgument(f"invalid compress '{value}': not a boolean")


def check_cgroup_parent(parent: str) -> None:
    """``--cgroup-parent``: a path below the cgroup root, absolute or not (cgroupfs)."""
    if not parent:
        return
    parts = parent.strip("/").split("/")
    if any(p in ("", ".", "..") for p in parts) or any(c in parent for c in "\0\n"):
        raise InvalidArgument(f"invalid cgroup parent {parent!r}: it must be a path of cgroup names "
                              "without '.' or '..' components")


def validate_host_config(host: HostConfig, cfg: ContainerConfig, ncpu: int) -> list[str]:
    warnings = validate_resources(host.resources, ncpu)
    check_log_config(host.log_config.type, host.log_config.config)
    check_cgroup_parent(host.cgroup_parent)
    check_caps(host.cap_add, host.cap_drop)
    parse_security_opts(host.security_opt)
    seccomp_for(host.security_opt, capabilities(host.cap_add, host.cap_drop, host.privileged),
                host.privileged)   # a bad profile is refused before anything is made
    check_sysctls(host.sysctls, host.network_mode, host.ipc_mode, host.uts_mode)
    check_ulimits(host.ulimits)
    check_devices(host)
    if host.cgroupns_mode not in ("", "host", "private"):
        raise InvalidArgument(f"invalid cgroup namespace mode: {host.cgroupns_mode}")
    if cfg.stop_signal:
        parse_signal(cfg.stop_signal)
    if host.shm_size < 0:
        raise InvalidArgument("SHM size can not be less than 0")
    if host.oom_score_adj < -1000 or host.oom_score_adj > 1000:
        raise InvalidArgument(
            f"Invalid value {host.oom_score_adj}, range for oom score adj is [-1000, 1000]")
    policy = host.restart_policy.name
    if policy not in ("", "no", "always", "on-failure", "unless-stopped"):
        raise InvalidArgument(f"invalid restart policy '{policy}'")
    if host.auto_remove and policy not in ("", "no"):
        raise InvalidArgument("can't create 'AutoRemove' container with restart policy")
    if policy != "on-failure" and host.restart_policy.maximum_retry_count:
        raise InvalidArgument("invalid restart policy: maximum retry count can only be used with 'on-failure'")
    if cfg.working_dir and not cfg.working_dir.startswith("/"):
        raise InvalidArgument(
            f"the working directory '{cfg.working_dir}' is invalid, it needs to be an absolute path")
    for kind, mode in (("network", host.network_mode), ("pid", host.pid_mode), ("ipc", host.ipc_mode)):
        if mode.startswith("container:") and not mode.split(":", 1)[1]:
            raise InvalidArgument(f"invalid {kind} mode: {mode}")
    if len(cfg.hostname) > 63:
        raise InvalidArgument(f"invalid hostname format: {cfg.hostname}")
    return warnings


def _atomic_write(path: Path, text: str, mode: int = 0o644, durable: bool = True) -> None:
    """Readers see the old file or the new one; ``durable``: also after a power loss (fsync)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def resolv_conf(host_file: Path, dns: list[str], search: list[str], options: list[str]) -> str:
    """The host's resolv.conf without loopback nameservers (unreachable from the container's
    netns); user --dns/--dns-search/--dns-option replace the matching lines. No public fallback."""
    try:
        lines = host_file.read_text().splitlines()
    except OSError:
        lines = []
    out: list[str] = []
    for line in lines:
        words = line.split()
        if not words:
            continue
        key = words[0]
        if key == "nameserver":
            if dns or len(words) < 2 or words[1].startswith("127.") or words[1] == "::1":
                continue
        elif (key in ("search", "domain") and search) or (key == "options" and options):
            continue
        out.append(line)
    out += [f"nameserver {ns}" for ns in dns]
    if search:
        out.append("search " + " ".join(search))
    if options:
        out.append("options " + " ".join(options))
    return "\n".join(out) + "\n" if out else ""


def hosts_file(hostname: str, extra_hosts: list[str], own: list[str] | None = None,
               host_gateway: str = "", links: list[str] | None = None) -> str:
    """/etc/hosts: the standard entries, ``--add-host`` lines (``host-gateway`` is the default
    bridge's gateway), linked containers, then the container's own addresses with its hostname
    (loopback's 127.0.1.1 when it has none)."""
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "ff00::0\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
    ]
    for entry in extra_hosts:
        name, sep, addr = entry.partition(":")
        if not sep or not name or not addr:
            raise InvalidArgument(f"invalid IP address in add-host: \"{entry}\"")
        if addr == "host-gateway":
            if not host_gateway:
                raise InvalidArgument("unable to derive the IP value for host-gateway")
            addr = host_gateway
        lines.append(f"{addr}\t{name}")
    lines += links or []
    for addr in own or ["127.0.1.1"]:
        lines.append(f"{addr}\t{hostname}")
    return "\n".join(lines) + "\n"


def write_container_files(cdir: Path, hostname: str, host: HostConfig) -> dict[str, Path]:
    cdir.mkdir(mode=0o710, parents=True)
    (cdir / "rootfs").mkdir(mode=0o755)
    paths = {"hostname": cdir / "hostname", "hosts": cdir / "hosts", "resolv.conf": cdir / "resolv.conf"}
    _atomic_write(paths["hostname"], hostname + "\n")
    # hosts and resolv.conf are written afresh before every start (Endpoints.prepare): what a
    # power loss leaves of these first versions is never what a container sees, so no fsync
    _atomic_write(paths["hosts"], hosts_file(hostname, [e for e in host.extra_hosts
                                                        if not e.endswith(":host-gateway")]), durable=False)
    _atomic_write(paths["resolv.conf"],
                  resolv_conf(Path("/etc/resolv.conf"), host.dns, host.dns_search, host.dns_options),
                  durable=False)
    return paths


atomic_write = _atomic_write


_PROPAGATION = {"private", "rprivate", "shared", "rshared", "slave", "rslave"}


def parse_binds(binds: list[str]) -> list[MountPoint]:
    """``-v /host:/ctr[:ro|rw,propagation,z,Z,nocopy]`` host-path binds (named volumes arrive with
    the volumes package and are refused here with a precise message)."""
    mounts: list[MountPoint] = []
    seen: set[str] = set()
    for bind in binds:
        parts = bind.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
            raise InvalidArgument(f"invalid volume specification: '{bind}'")
        source, dest = parts[0], parts[1]
        mode = parts[2] if len(parts) == 3 else ""
        if not dest.startswith("/"):
            raise InvalidArgument(f"invalid volume specification: '{bind}': "
                                  f"invalid mount config for type \"bind\": invalid mount path: "
                                  f"'{dest}' mount path must be absolute")
        if not source.startswith("/"):
            raise InvalidArgument(f"invalid volume specification: '{bind}': named volumes are not "
                                  "supported yet")
        rw, propagation = True, ""
        for opt in filter(None, mode.split(",")):
            if opt in ("ro", "rw"):
                rw = opt == "rw"
            elif opt in _PROPAGATION:
                propagation = opt
            elif opt not in ("z", "Z", "nocopy", "consistent", "cached", "delegated"):
                raise InvalidArgument(f"invalid mode: {mode}")
        clean = os.path.normpath(dest)
        if clean in seen:
            raise InvalidArgument(f"Duplicate mount point: {clean}")
        seen.add(clean)
        mounts.append(MountPoint(type="bind", source=os.path.normpath(source), destination=clean,
                                 mode=mode, rw=rw, propagation=propagation or "rprivate"))
    return mounts
