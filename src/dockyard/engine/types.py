"""The engine's public data: what the API hands in (Options) and gets back (records, results).

Snake_case mirrors of Docker's Config / HostConfig / State. ``api/models.py`` converts Docker JSON
to and from these; nothing else in the engine knows Docker's PascalCase.
Records are plain dataclasses serialised to JSON (``asdict``) into ``metadata.db``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class HealthConfig:
    test: list[str] = field(default_factory=list)
    interval_ns: int = 0
    timeout_ns: int = 0
    start_period_ns: int = 0
    start_interval_ns: int = 0
    retries: int = 0


@dataclass
class ContainerConfig:
    """Docker's ``Config``: what runs, as the user asked for it (before merging with the image)."""
    image: str = ""
    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    env: list[str] = field(default_factory=list)
    working_dir: str = ""
    user: str = ""
    hostname: str = ""
    domainname: str = ""
    tty: bool = False
    open_stdin: bool = False
    stdin_once: bool = False
    attach_stdin: bool = False
    attach_stdout: bool = True
    attach_stderr: bool = True
    labels: dict[str, str] = field(default_factory=dict)
    stop_signal: str = ""
    stop_timeout: int | None = None
    exposed_ports: dict[str, dict[str, Any]] = field(default_factory=dict)
    volumes: dict[str, dict[str, Any]] = field(default_factory=dict)
    healthcheck: HealthConfig | None = None
    network_disabled: bool = False
    args_escaped: bool = False
    on_build: list[str] | None = None
    shell: list[str] | None = None
    mac_address: str = ""


@dataclass
class LogConfig:
    type: str = "json-file"
    config: dict[str, str] = field(default_factory=dict)


@dataclass
class RestartPolicy:
    name: str = "no"  # "" | no | always | on-failure | unless-stopped
    maximum_retry_count: int = 0


@dataclass
class Resources:
    """Docker's resource fields (the subset ``update`` may change)."""
    memory: int = 0                 # bytes; 0 = unlimited
    memory_swap: int = 0            # bytes incl. memory; -1 = unlimited swap; 0 = default (2× memory)
    memory_reservation: int = 0
    nano_cpus: int = 0              # 1e9 = one CPU
    cpu_shares: int = 0
    cpu_period: int = 0
    cpu_quota: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    pids_limit: int | None = None   # None/0/-1 = unlimited
    blkio_weight: int = 0
    # Docker's shapes: [{"Path": "/dev/sda", "Weight": 300}] and [{"Path": ..., "Rate": ...}]
    blkio_weight_device: list[dict[str, Any]] = field(default_factory=list)
    blkio_device_read_bps: list[dict[str, Any]] = field(default_factory=list)
    blkio_device_write_bps: list[dict[str, Any]] = field(default_factory=list)
    blkio_device_read_iops: list[dict[str, Any]] = field(default_factory=list)
    blkio_device_write_iops: list[dict[str, Any]] = field(default_factory=list)
    oom_kill_disable: bool = False


@dataclass(frozen=True)
class DeviceMapping:
    """``--device``: a host device node, or a directory of them, made visible in the container."""
    path_on_host: str
    path_in_container: str = ""     # "" = the same path as on the host
    cgroup_permissions: str = "rwm"


@dataclass
class HostConfig:
    binds: list[str] = field(default_factory=list)
    network_mode: str = "default"
    port_bindings: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    auto_remove: bool = False
    runtime: str = ""               # "" = daemon default
    init: bool | None = None
    privileged: bool = False
    readonly_rootfs: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    security_opt: list[str] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    extra_hosts: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)      # "name:alias" (default bridge only)
    mounts: list[dict[str, Any]] = field(default_factory=list)  # Docker's HostConfig.Mounts, as sent
    volumes_from: list[str] = field(default_factory=list)
    volume_driver: str = ""
    publish_all_ports: bool = False
    tmpfs: dict[str, str] = field(default_factory=dict)
    shm_size: int = 0
    log_config: LogConfig = field(default_factory=LogConfig)
    resources: Resources = field(default_factory=Resources)
    sysctls: dict[str, str] = field(default_factory=dict)
    ulimits: list[dict[str, Any]] = field(default_factory=list)
    devices: list[DeviceMapping] = field(default_factory=list)
    device_cgroup_rules: list[str] = field(default_factory=list)  # "c 1:3 rwm", as the docker CLI sends
    group_add: list[str] = field(default_factory=list)
    oom_score_adj: int = 0
    pid_mode: str = ""
    ipc_mode: str = "private"
    uts_mode: str = ""
    userns_mode: str = ""           # "" (daemon default), "host", or "auto" (a range of its own)
    cgroupns_mode: str = ""         # "host" | "private"; "" = the daemon's default, set at create
    cgroup_parent: str = ""         # "" = the daemon's --cgroup-parent
    container_id_file: str = ""     # what the client wrote the ID to (--cidfile); shown, never used
    # None: the engine's defaults (filled in at create, as dockerd does); [] masks nothing
    masked_paths: list[str] | None = None
    readonly_paths: list[str] | None = None
    console_size: tuple[int, int] | None = None  # (height, width)


@dataclass
class CreateOptions:
    name: str = ""                  # "" = generate
    config: ContainerConfig = field(default_factory=ContainerConfig)
    host_config: HostConfig = field(default_factory=HostConfig)
    platform: str = ""
    networking: dict[str, EndpointSettings] = field(default_factory=dict)  # EndpointsConfig by network


@dataclass
class Health:
    status: str = "starting"        # starting | healthy | unhealthy
    failing_streak: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ContainerState:
    status: str = "created"         # created | running | paused | restarting | removing | exited | dead
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    oom_killed: bool = False
    started_at: str = "0001-01-01T00:00:00Z"   # RFC 3339 nano, Docker's zero time when never
    finished_at: str = "0001-01-01T00:00:00Z"
    restart_count: int = 0
    health: Health | None = None

    @property
    def running(self) -> bool:
        return self.status in ("running", "paused", "restarting")


@dataclass
class MountPoint:
    type: str                       # bind | volume | tmpfs
    source: str
    destination: str
    mode: str = ""
    rw: bool = True
    propagation: str = ""
    name: str = ""
    driver: str = ""
    nocopy: bool = False            # volume: no copy-up of the image's content
    subpath: str = ""               # volume: mount this directory of the volume


@dataclass
class VolumeRecord:
    name: str
    driver: str = "local"
    created: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    anonymous: bool = False         # made for a container (-v /path, image VOLUME): rm -v removes it


@dataclass
class EndpointSettings:
    """A container's attachment to one network: what was asked (kept while stopped) and what it
    got (set while running). Docker's ``EndpointSettings``."""
    network_id: str = ""
    aliases: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    ipv4_requested: str = ""        # IPAMConfig.IPv4Address (--ip)
    ipv6_requested: str = ""
    mac_requested: str = ""
    driver_opts: dict[str, str] = field(default_factory=dict)
    endpoint_id: str = ""
    mac_address: str = ""
    ip_address: str = ""
    prefix_len: int = 0
    gateway: str = ""
    ipv6_address: str = ""
    ipv6_prefix_len: int = 0
    ipv6_gateway: str = ""
    ifname: str = ""                # eth0 inside the container
    host_ifname: str = ""           # the veth end on the bridge


@dataclass
class IPAMPool:
    subnet: str = ""
    gateway: str = ""
    ip_range: str = ""
    aux_addresses: dict[str, str] = field(default_factory=dict)


@dataclass
class NetworkRecord:
    """A network as ``network inspect`` shows it (without its live Containers)."""
    id: str
    name: str
    driver: str                     # bridge | host | null
    created: str
    scope: str = "local"
    enable_ipv4: bool = True
    enable_ipv6: bool = False
    internal: bool = False
    attachable: bool = False
    ingress: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    ipam_driver: str = "default"
    ipam_options: dict[str, str] = field(default_factory=dict)
    ipam_config: list[IPAMPool] = field(default_factory=list)
    bridge: str = ""                # the bridge device
    own_bridge: bool = True         # made by dockyard (removed with the network), not found existing
    mtu: int = 0
    icc: bool = True
    masquerade: bool = True

    @property
    def builtin(self) -> bool:
        return self.name in ("bridge", "host", "none")


@dataclass
class NetworkCreateOptions:
    name: str
    driver: str = "bridge"
    options: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    internal: bool = False
    attachable: bool = False
    ingress: bool = False
    enable_ipv6: bool = False
    ipam_driver: str = "default"
    ipam_options: dict[str, str] = field(default_factory=dict)
    ipam_config: list[IPAMPool] = field(default_factory=list)
    config_only: bool = False
    config_from: str = ""


@dataclass(frozen=True)
class IdRange:
    """A user namespace's id mapping: container ids 0..size-1 are host ids host_uid/host_gid + n."""
    host_uid: int
    host_gid: int
    size: int = 65536
    auto: bool = False              # allocated for this container (--userns=auto), not daemon-wide


@dataclass
class ContainerRecord:
    """Everything the engine keeps about one container; ``inspect`` renders from this."""
    id: str
    name: str                       # without the leading "/"
    created: str                    # RFC 3339 nano
    image_id: str                   # "sha256:<hex>"
    image_ref: str                  # what the user typed (Config.Image)
    config: ContainerConfig         # merged with the image's config (what actually runs)
    host_config: HostConfig
    path: str = ""                  # argv[0] after ENTRYPOINT/CMD merge
    args: list[str] = field(default_factory=list)
    state: ContainerState = field(default_factory=ContainerState)
    driver: str = "overlay2"
    platform: str = "linux"
    runtime: str = "dockyard-runtime"
    snapshot_key: str = ""
    rootfs: str = ""                # merged rootfs path while mounted
    bundle: str = ""                # containers/<id>/ (holds config.json)
    log_path: str = ""
    hostname_path: str = ""
    hosts_path: str = ""
    resolv_conf_path: str = ""
    mounts: list[MountPoint] = field(default_factory=list)
    networks: dict[str, EndpointSettings] = field(default_factory=dict)   # by network name
    ports: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # bound while running
    exec_ids: list[str] = field(default_factory=list)
    manually_stopped: bool = False
    id_range: IdRange | None = None     # set when the container runs in its own user namespace
    # Docker's GraphDriver.Data (LowerDir/UpperDir/WorkDir/MergedDir); filled by Engine.get_container.
    graph_driver_data: dict[str, str] = field(default_factory=dict)


@dataclass
class ListOptions:
    all: bool = False
    limit: int = -1
    size: bool = False
    filters: dict[str, list[str]] = field(default_factory=dict)  # Docker filters, values as lists


@dataclass
class LogsOptions:
    follow: bool = False
    stdout: bool = True
    stderr: bool = True
    since: float = 0.0              # unix seconds, 0 = beginning
    until: float = 0.0              # 0 = no bound
    timestamps: bool = False
    tail: int = -1                  # -1 = all


@dataclass
class LogEntry:
    stream: str                     # "stdout" | "stderr"
    data: bytes
    time: str                       # RFC 3339 nano


@dataclass
class ExecConfig:
    cmd: list[str]
    tty: bool = False
    attach_stdin: bool = False
    attach_stdout: bool = True
    attach_stderr: bool = True
    detach_keys: str = ""
    env: list[str] = field(default_factory=list)
    user: str = ""
    working_dir: str = ""
    privileged: bool = False
    console_size: tuple[int, int] | None = None


@dataclass
class ExecRecord:
    id: str
    container_id: str
    config: ExecConfig
    running: bool = False
    exit_code: int | None = None
    pid: int = 0
    open_stdin: bool = False


@dataclass
class Event:
    """One entry of ``/events`` (Docker's events.Message without the legacy fields)."""
    type: str                       # container | image | network | volume | daemon
    action: str                     # create | start | die | destroy | tag | delete | ...
    actor_id: str
    attributes: dict[str, str] = field(default_factory=dict)
    time_nano: int = 0
    scope: str = "local"


@dataclass
class ImageSummary:
    id: str                         # "sha256:<hex>"
    repo_tags: list[str]            # familiar "busybox:latest"
    repo_digests: list[str]
    created: int                    # unix seconds from the config's "created"
    size: int
    parent_id: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    containers: int = -1


@dataclass
class ImageDetail:
    """What ``image inspect`` renders: the summary plus the config JSON (OCI image config)."""
    summary: ImageSummary
    config: dict[str, Any]          # OCI image config as stored (architecture, os, config, rootfs, history)
    manifest_digest: str = ""
    layer_diff_ids: list[str] = field(default_factory=list)
    graph_driver_data: dict[str, str] = field(default_factory=dict)  # overlay2 dirs, as Docker shows


@dataclass
class HistoryEntry:
    id: str                         # image id for the top entry, "<missing>" otherwise
    created: int
    created_by: str
    tags: list[str]
    size: int
    comment: str = ""


@dataclass
class DeleteResponseItem:
    untagged: str = ""
    deleted: str = ""


@dataclass
class PruneReport:
    deleted: list[str] = field(default_factory=list)
    space_reclaimed: int = 0
