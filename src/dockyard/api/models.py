"""Docker JSON ↔ engine dataclasses for containers and exec (the only home of PascalCase names).

Request bodies are validated strictly: a wrong type is an InvalidArgument naming the field.
Rendered objects carry every field Docker's own daemon renders, with Docker's zero values, because
the docker CLI and SDK index into them without checking.
"""

from __future__ import annotations

from typing import Any

from dockyard.api.models_networks import (
    parse_networking,
    render_network_settings,
    summary_networks,
    summary_ports,
)
from dockyard.api.timefmt import human_status, unix_seconds
from dockyard.api.validate import Fields
from dockyard.engine.security import masked_paths, readonly_paths
from dockyard.engine.types import (
    ContainerConfig,
    ContainerRecord,
    CreateOptions,
    DeviceMapping,
    ExecConfig,
    ExecRecord,
    HealthConfig,
    HostConfig,
    LogConfig,
    MountPoint,
    Resources,
    RestartPolicy,
)
from dockyard.errors import InvalidArgument

# --------------------------------------------------------------------------- requests


def parse_health(f: Fields) -> HealthConfig | None:
    if not f.data:
        return None
    return HealthConfig(
        test=f.str_list("Test"),
        interval_ns=f.integer("Interval"),
        timeout_ns=f.integer("Timeout"),
        start_period_ns=f.integer("StartPeriod"),
        start_interval_ns=f.integer("StartInterval"),
        retries=f.integer("Retries"),
    )


def parse_config(f: Fields) -> ContainerConfig:
    health = f.sub("Healthcheck")
    return ContainerConfig(
        image=f.text("Image"),
        cmd=f.strslice("Cmd"),
        entrypoint=f.strslice("Entrypoint"),
        env=f.str_list("Env"),
        working_dir=f.text("WorkingDir"),
        user=f.text("User"),
        hostname=f.text("Hostname"),
        domainname=f.text("Domainname"),
        tty=f.boolean("Tty"),
        open_stdin=f.boolean("OpenStdin"),
        stdin_once=f.boolean("StdinOnce"),
        attach_stdin=f.boolean("AttachStdin"),
        attach_stdout=f.boolean("AttachStdout", True),
        attach_stderr=f.boolean("AttachStderr", True),
        labels=f.str_map("Labels"),
        stop_signal=f.text("StopSignal"),
        stop_timeout=f.opt_int("StopTimeout"),
        exposed_ports=f.obj_map("ExposedPorts"),
        volumes=f.obj_map("Volumes"),
        healthcheck=parse_health(health),
        network_disabled=f.boolean("NetworkDisabled"),
        args_escaped=f.boolean("ArgsEscaped"),
        on_build=f.strslice("OnBuild"),
        shell=f.strslice("Shell"),
        mac_address=f.text("MacAddress"),
    )


def parse_restart_policy(f: Fields) -> RestartPolicy:
    name = f.text("Name", "no") or "no"
    if name not in ("no", "always", "on-failure", "unless-stopped"):
        raise InvalidArgument(f"invalid restart policy: unknown policy '{name}'; use one of 'no', "
                              "'always', 'on-failure', or 'unless-stopped'")
    retries = f.integer("MaximumRetryCount")
    if retries < 0:
        raise InvalidArgument("invalid restart policy: maximum retry count cannot be negative")
    if retries and name != "on-failure":
        raise InvalidArgument("invalid restart policy: maximum retry count can only be used with 'on-failure'")
    return RestartPolicy(name=name, maximum_retry_count=retries)


def parse_resources(f: Fields) -> Resources:
    """Resource fields sit directly inside HostConfig (and the update body)."""
    return Resources(
        memory=f.integer("Memory"),
        memory_swap=f.integer("MemorySwap"),
        memory_reservation=f.integer("MemoryReservation"),
        nano_cpus=f.integer("NanoCpus"),
        cpu_shares=f.integer("CpuShares"),
        cpu_period=f.integer("CpuPeriod"),
        cpu_quota=f.integer("CpuQuota"),
        cpuset_cpus=f.text("CpusetCpus"),
        cpuset_mems=f.text("CpusetMems"),
        pids_limit=f.opt_int("PidsLimit"),
        blkio_weight=f.integer("BlkioWeight"),
        blkio_weight_device=f.dict_list("BlkioWeightDevice"),
        blkio_device_read_bps=f.dict_list("BlkioDeviceReadBps"),
        blkio_device_write_bps=f.dict_list("BlkioDeviceWriteBps"),
        blkio_device_read_iops=f.dict_list("BlkioDeviceReadIOps"),
        blkio_device_write_iops=f.dict_list("BlkioDeviceWriteIOps"),
        oom_kill_disable=f.boolean("OomKillDisable"),
    )


def _port_bindings(f: Fields) -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = {}
    for port, bindings in f.sub("PortBindings").data.items():
        if bindings is None:
            out[port] = []
            continue
        if not isinstance(bindings, list):
            raise InvalidArgument(f"invalid HostConfig.PortBindings[{port!r}]: expected an array")
        items = []
        for b in bindings:
            bf = Fields(b, f"HostConfig.PortBindings[{port!r}]")
            items.append({"HostIp": bf.text("HostIp"), "HostPort": bf.text("HostPort")})
        out[port] = items
    return out


def _console_size(value: Any, where: str) -> tuple[int, int] | None:
    if value is None:
        return None
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)):
        raise InvalidArgument(f"invalid {where}: expected [height, width]")
    if value == [0, 0]:
        return None
    return (value[0], value[1])


def _devices(f: Fields) -> list[DeviceMapping]:
    out = []
    for i, item in enumerate(f.dict_list("Devices")):
        d = Fields(item, f"HostConfig.Devices[{i}]")
        out.append(DeviceMapping(path_on_host=d.text("PathOnHost"), path_in_container=d.text("PathInContainer"),
                                 cgroup_permissions=d.text("CgroupPermissions")))
    return out


def parse_host_config(f: Fields) -> HostConfig:
    log = f.sub("LogConfig")
    return HostConfig(
        binds=f.str_list("Binds"),
        network_mode=f.text("NetworkMode", "default") or "default",
        port_bindings=_port_bindings(f),
        restart_policy=parse_restart_policy(f.sub("RestartPolicy")),
        auto_remove=f.boolean("AutoRemove"),
        runtime=f.text("Runtime"),
        init=f.opt_bool("Init"),
        privileged=f.boolean("Privileged"),
        readonly_rootfs=f.boolean("ReadonlyRootfs"),
        cap_add=f.str_list("CapAdd"),
        cap_drop=f.str_list("CapDrop"),
        security_opt=f.str_list("SecurityOpt"),
        dns=f.str_list("Dns"),
        dns_search=f.str_list("DnsSearch"),
        dns_options=f.str_list("DnsOptions"),
        extra_hosts=f.str_list("ExtraHosts"),
        links=f.str_list("Links"),
        mounts=f.dict_list("Mounts"),
        volumes_from=f.str_list("VolumesFrom"),
        volume_driver=f.text("VolumeDriver"),
        publish_all_ports=f.boolean("PublishAllPorts"),
        tmpfs=f.str_map("Tmpfs"),
        shm_size=f.integer("ShmSize"),
        log_config=LogConfig(type=log.text("Type", "json-file") or "json-file", config=log.str_map("Config")),
        resources=parse_resources(f),
        sysctls=f.str_map("Sysctls"),
        ulimits=f.dict_list("Ulimits"),
        devices=_devices(f),
        device_cgroup_rules=f.str_list("DeviceCgroupRules"),
        group_add=f.str_list("GroupAdd"),
        oom_score_adj=f.integer("OomScoreAdj"),
        pid_mode=f.text("PidMode"),
        ipc_mode=f.text("IpcMode", "private") or "private",
        uts_mode=f.text("UTSMode"),
        userns_mode=f.text("UsernsMode"),
        cgroupns_mode=f.text("CgroupnsMode"),
        cgroup_parent=f.text("CgroupParent"),
        container_id_file=f.text("ContainerIDFile"),
        masked_paths=f.str_list("MaskedPaths") if f.data.get("MaskedPaths") is not None else None,
        readonly_paths=f.str_list("ReadonlyPaths") if f.data.get("ReadonlyPaths") is not None else None,
        console_size=_console_size(f.raw("ConsoleSize"), "HostConfig.ConsoleSize"),
    )


def parse_create(body: dict[str, Any], name: str, platform: str) -> CreateOptions:
    """``POST /containers/create``: the body is Config with HostConfig and NetworkingConfig inside."""
    f = Fields(body, "Config")
    config = parse_config(f)
    if not config.image:
        raise InvalidArgument("config cannot be empty in order to create a container: Image is required")
    # Docker names these top-level siblings without the Config prefix.
    host = parse_host_config(Fields(body.get("HostConfig"), "HostConfig"))
    networking = parse_networking(Fields(body.get("NetworkingConfig"), "NetworkingConfig"))
    return CreateOptions(name=name, config=config, host_config=host, platform=platform,
                         networking=networking)


def parse_update(body: dict[str, Any]) -> tuple[Resources | None, RestartPolicy | None]:
    f = Fields(body, "UpdateConfig")
    resource_keys = ("Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares", "CpuPeriod",
                     "CpuQuota", "CpusetCpus", "CpusetMems", "PidsLimit", "BlkioWeight", "OomKillDisable")
    resources = parse_resources(f) if any(f.raw(k) is not None for k in resource_keys) else None
    # the docker CLI always sends RestartPolicy; an empty Name leaves the policy as it is (moby)
    policy = parse_restart_policy(f.sub("RestartPolicy")) if f.sub("RestartPolicy").text("Name") else None
    return resources, policy


def parse_exec(body: dict[str, Any]) -> ExecConfig:
    f = Fields(body, "ExecConfig")
    cmd = f.strslice("Cmd")
    if not cmd:
        raise InvalidArgument("No exec command specified")
    return ExecConfig(
        cmd=cmd,
        tty=f.boolean("Tty"),
        attach_stdin=f.boolean("AttachStdin"),
        attach_stdout=f.boolean("AttachStdout"),
        attach_stderr=f.boolean("AttachStderr"),
        detach_keys=f.text("DetachKeys"),
        env=f.str_list("Env"),
        user=f.text("User"),
        working_dir=f.text("WorkingDir"),
        privileged=f.boolean("Privileged"),
        console_size=_console_size(f.raw("ConsoleSize"), "ExecConfig.ConsoleSize"),
    )


def parse_exec_start(body: dict[str, Any]) -> tuple[bool, bool]:
    f = Fields(body, "ExecStartConfig")
    _console_size(f.raw("ConsoleSize"), "ExecStartConfig.ConsoleSize")
    return f.boolean("Detach"), f.boolean("Tty")


# --------------------------------------------------------------------------- rendering


def render_health_config(h: HealthConfig | None) -> dict[str, Any] | None:
    if h is None:
        return None
    return {"Test": h.test, "Interval": h.interval_ns, "Timeout": h.timeout_ns,
            "StartPeriod": h.start_period_ns, "StartInterval": h.start_interval_ns, "Retries": h.retries}


def render_config(c: ContainerConfig) -> dict[str, Any]:
    out: dict[str, Any] = {
        "Hostname": c.hostname, "Domainname": c.domainname, "User": c.user,
        "AttachStdin": c.attach_stdin, "AttachStdout": c.attach_stdout, "AttachStderr": c.attach_stderr,
        "Tty": c.tty, "OpenStdin": c.open_stdin, "StdinOnce": c.stdin_once,
        "Env": c.env or None, "Cmd": c.cmd, "Image": c.image, "Volumes": c.volumes or None,
        "WorkingDir": c.working_dir, "Entrypoint": c.entrypoint, "OnBuild": c.on_build,
        "Labels": c.labels,
    }
    if c.exposed_ports:
        out["ExposedPorts"] = c.exposed_ports
    if c.healthcheck is not None:
        out["Healthcheck"] = render_health_config(c.healthcheck)
    if c.args_escaped:
        out["ArgsEscaped"] = True
    if c.network_disabled:
        out["NetworkDisabled"] = True
    if c.stop_signal:
        out["StopSignal"] = c.stop_signal
    if c.stop_timeout is not None:
        out["StopTimeout"] = c.stop_timeout
    if c.shell:
        out["Shell"] = c.shell
    if c.mac_address:
        out["MacAddress"] = c.mac_address
    return out


def _pids_limit(value: int | None) -> int | None:
    """dockerd stores 0 and -1 ("unlimited") as null; inspect then shows ``"PidsLimit": null``."""
    return value if value is not None and value > 0 else None


def render_resources(r: Resources) -> dict[str, Any]:
    return {
        "CpuShares": r.cpu_shares, "Memory": r.memory, "NanoCpus": r.nano_cpus, "CgroupParent": "",
        "BlkioWeight": r.blkio_weight, "BlkioWeightDevice": r.blkio_weight_device,
        "BlkioDeviceReadBps": r.blkio_device_read_bps, "BlkioDeviceWriteBps": r.blkio_device_write_bps,
        "BlkioDeviceReadIOps": r.blkio_device_read_iops, "BlkioDeviceWriteIOps": r.blkio_device_write_iops,
        "CpuPeriod": r.cpu_period, "CpuQuota": r.cpu_quota, "CpuRealtimePeriod": 0,
        "CpuRealtimeRuntime": 0, "CpusetCpus": r.cpuset_cpus, "CpusetMems": r.cpuset_mems,
        "Devices": [], "DeviceCgroupRules": None, "DeviceRequests": None,
        "MemoryReservation": r.memory_reservation, "MemorySwap": r.memory_swap, "MemorySwappiness": None,
        "OomKillDisable": r.oom_kill_disable, "PidsLimit": _pids_limit(r.pids_limit), "Ulimits": None,
        "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0,
    }


def render_host_config(h: HostConfig) -> dict[str, Any]:
    out: dict[str, Any] = {
        "Binds": h.binds or None, "ContainerIDFile": h.container_id_file,
        "LogConfig": {"Type": h.log_config.type, "Config": h.log_config.config},
        "NetworkMode": h.network_mode, "PortBindings": h.port_bindings,
        "RestartPolicy": {"Name": h.restart_policy.name,
                          "MaximumRetryCount": h.restart_policy.maximum_retry_count},
        "AutoRemove": h.auto_remove, "VolumeDriver": h.volume_driver, "VolumesFrom": h.volumes_from or None,
        "ConsoleSize": list(h.console_size or (0, 0)),
        "CapAdd": h.cap_add or None, "CapDrop": h.cap_drop or None, "CgroupnsMode": h.cgroupns_mode or "host",
        "Dns": h.dns, "DnsOptions": h.dns_options, "DnsSearch": h.dns_search,
        "ExtraHosts": h.extra_hosts or None, "GroupAdd": h.group_add or None, "IpcMode": h.ipc_mode,
        "Cgroup": "", "Links": h.links or None, "OomScoreAdj": h.oom_score_adj, "PidMode": h.pid_mode,
        "Privileged": h.privileged, "PublishAllPorts": h.publish_all_ports, "ReadonlyRootfs": h.readonly_rootfs,
        "SecurityOpt": h.security_opt or None, "UTSMode": h.uts_mode, "UsernsMode": h.userns_mode,
        "ShmSize": h.shm_size or 67108864, "Runtime": h.runtime, "Isolation": "",
    }
    out.update(render_resources(h.resources))
    out["CgroupParent"] = h.cgroup_parent
    out["Ulimits"] = h.ulimits or None
    out["Devices"] = [{"PathOnHost": d.path_on_host, "PathInContainer": d.path_in_container,
                       "CgroupPermissions": d.cgroup_permissions} for d in h.devices]
    out["DeviceCgroupRules"] = h.device_cgroup_rules or None
    if h.mounts:
        out["Mounts"] = h.mounts
    out["MaskedPaths"] = masked_paths(h)
    out["ReadonlyPaths"] = readonly_paths(h)
    if h.init is not None:
        out["Init"] = h.init
    if h.sysctls:
        out["Sysctls"] = h.sysctls
    if h.tmpfs:
        out["Tmpfs"] = h.tmpfs
    return out




def render_mount(m: MountPoint) -> dict[str, Any]:
    out: dict[str, Any] = {"Type": m.type}
    if m.name:
        out["Name"] = m.name
    out.update({"Source": m.source, "Destination": m.destination})
    if m.driver:
        out["Driver"] = m.driver
    out.update({"Mode": m.mode, "RW": m.rw, "Propagation": m.propagation})
    return out


def render_state(rec: ContainerRecord) -> dict[str, Any]:
    s = rec.state
    out: dict[str, Any] = {
        "Status": s.status, "Running": s.status in ("running", "paused", "restarting"),
        "Paused": s.status == "paused", "Restarting": s.status == "restarting",
        "OOMKilled": s.oom_killed, "Dead": s.status == "dead", "Pid": s.pid, "ExitCode": s.exit_code,
        "Error": s.error, "StartedAt": s.started_at, "FinishedAt": s.finished_at,
    }
    if s.health is not None:
        out["Health"] = {"Status": s.health.status, "FailingStreak": s.health.failing_streak,
                         "Log": s.health.log or None}  # null before the first probe
    return out


def render_inspect(rec: ContainerRecord) -> dict[str, Any]:
    """``GET /containers/{id}/json``."""
    return {
        "Id": rec.id, "Created": rec.created, "Path": rec.path, "Args": rec.args,
        "State": render_state(rec), "Image": rec.image_id, "ResolvConfPath": rec.resolv_conf_path,
        "HostnamePath": rec.hostname_path, "HostsPath": rec.hosts_path, "LogPath": rec.log_path,
        "Name": "/" + rec.name, "RestartCount": rec.state.restart_count, "Driver": rec.driver,
        "Platform": rec.platform, "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "",
        "ExecIDs": rec.exec_ids or None, "HostConfig": render_host_config(rec.host_config),
        "GraphDriver": {"Name": rec.driver, "Data": _graph_data(rec)},
        "Mounts": [render_mount(m) for m in rec.mounts],
        "Config": render_config(rec.config), "NetworkSettings": render_network_settings(rec),
    }


def _graph_data(rec: ContainerRecord) -> dict[str, str] | None:
    return dict(rec.graph_driver_data) or None


def _command(rec: ContainerRecord) -> str:
    argv = [rec.path, *rec.args] if rec.path else []
    return " ".join(argv)


def render_summary(rec: ContainerRecord, now: float | None = None) -> dict[str, Any]:
    """One entry of ``GET /containers/json``."""
    return {
        "Id": rec.id, "Names": ["/" + rec.name], "Image": rec.image_ref or rec.config.image,
        "ImageID": rec.image_id, "Command": _command(rec), "Created": int(unix_seconds(rec.created)),
        "Ports": summary_ports(rec), "Labels": rec.config.labels, "State": rec.state.status,
        "Status": human_status(rec.state, now), "HostConfig": {"NetworkMode": rec.host_config.network_mode},
        "NetworkSettings": {"Networks": summary_networks(rec)},
        "Mounts": [render_mount(m) for m in rec.mounts],
    }


def render_exec(rec: ExecRecord) -> dict[str, Any]:
    """``GET /exec/{id}/json``."""
    c = rec.config
    return {
        "ID": rec.id, "Running": rec.running, "ExitCode": rec.exit_code, "ProcessConfig": {
            "tty": c.tty, "entrypoint": c.cmd[0] if c.cmd else "", "arguments": c.cmd[1:],
            "privileged": c.privileged, "user": c.user,
        },
        "OpenStdin": rec.open_stdin or c.attach_stdin, "OpenStderr": c.attach_stderr,
        "OpenStdout": c.attach_stdout, "CanRemove": False, "ContainerID": rec.container_id,
        "DetachKeys": c.detach_keys, "Pid": rec.pid,
    }
