"""Docker JSON for images, events and system facts (continuation of ``models.py``)."""

from __future__ import annotations

import ipaddress
import os
import platform
from datetime import UTC, datetime
from typing import Any

from dockyard.engine.types import DeleteResponseItem, Event, HistoryEntry, ImageDetail, ImageSummary

API_VERSION = "1.45"
MIN_API_VERSION = "1.24"
SERVER_VERSION = "25.0.0-dockyard"


def render_image_summary(img: ImageSummary) -> dict[str, Any]:
    return {
        "Containers": img.containers, "Created": img.created, "Id": img.id, "Labels": img.labels or None,
        "ParentId": img.parent_id, "RepoDigests": img.repo_digests, "RepoTags": img.repo_tags,
        "SharedSize": -1, "Size": img.size,
    }


def _image_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The OCI config's ``config`` section in Docker's container-config shape."""
    return {
        "Hostname": "", "Domainname": "", "User": cfg.get("User", ""), "AttachStdin": False,
        "AttachStdout": False, "AttachStderr": False,
        **({"ExposedPorts": cfg["ExposedPorts"]} if cfg.get("ExposedPorts") else {}),
        "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": cfg.get("Env"), "Cmd": cfg.get("Cmd"),
        **({"Healthcheck": cfg["Healthcheck"]} if cfg.get("Healthcheck") else {}),
        **({"ArgsEscaped": True} if cfg.get("ArgsEscaped") else {}),
        "Image": "", "Volumes": cfg.get("Volumes"), "WorkingDir": cfg.get("WorkingDir", ""),
        "Entrypoint": cfg.get("Entrypoint"), "OnBuild": cfg.get("OnBuild"), "Labels": cfg.get("Labels"),
        **({"StopSignal": cfg["StopSignal"]} if cfg.get("StopSignal") else {}),
        **({"Shell": cfg["Shell"]} if cfg.get("Shell") else {}),
    }


def _rfc3339(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if unix else ""


def render_image_inspect(detail: ImageDetail) -> dict[str, Any]:
    s, cfg = detail.summary, detail.config
    history = cfg.get("history") or []
    comment = history[-1].get("comment", "") if history else ""
    layers = detail.layer_diff_ids or list((cfg.get("rootfs") or {}).get("diff_ids") or [])
    out: dict[str, Any] = {
        "Id": s.id, "RepoTags": s.repo_tags, "RepoDigests": s.repo_digests, "Parent": s.parent_id,
        "Comment": comment, "Created": cfg.get("created") or _rfc3339(s.created), "DockerVersion": "",
        "Author": cfg.get("author", ""), "Config": _image_config(cfg.get("config") or {}),
        "Architecture": cfg.get("architecture", ""), "Os": cfg.get("os", ""), "Size": s.size,
        "GraphDriver": {"Name": "overlay2", "Data": dict(detail.graph_driver_data) or None},
        "RootFS": {"Type": "layers", "Layers": layers}, "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    }
    if cfg.get("variant"):
        out["Variant"] = cfg["variant"]
    return out


def render_history(entries: list[HistoryEntry]) -> list[dict[str, Any]]:
    return [{"Id": e.id, "Created": e.created, "CreatedBy": e.created_by, "Tags": e.tags or None,
             "Size": e.size, "Comment": e.comment} for e in entries]


def render_delete_items(items: list[DeleteResponseItem]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for item in items:
        if item.untagged:
            out.append({"Untagged": item.untagged})
        if item.deleted:
            out.append({"Deleted": item.deleted})
    return out


def render_event(ev: Event) -> dict[str, Any]:
    """Docker's events.Message, with the legacy status/id/from for containers (and images)."""
    out: dict[str, Any] = {}
    if ev.type in ("container", "image"):
        out["status"] = ev.action
        out["id"] = ev.actor_id
        if ev.type == "container" and "image" in ev.attributes:
            out["from"] = ev.attributes["image"]
    out.update({
        "Type": ev.type, "Action": ev.action, "Actor": {"ID": ev.actor_id, "Attributes": ev.attributes},
        "scope": ev.scope, "time": ev.time_nano // 1_000_000_000, "timeNano": ev.time_nano,
    })
    return out


def _arch() -> str:
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(
        platform.machine(), platform.machine())


def _py_version() -> str:
    return "python" + platform.python_version()


def render_version(facts: dict[str, Any]) -> dict[str, Any]:
    """``GET /version`` from the engine's (snake_case) version facts."""
    version = str(facts.get("version") or SERVER_VERSION)
    common = {
        "ApiVersion": API_VERSION, "Arch": str(facts.get("arch") or _arch()),
        "BuildTime": str(facts.get("build_time") or ""), "GitCommit": str(facts.get("git_commit") or ""),
        "GoVersion": str(facts.get("go_version") or _py_version()),
        "KernelVersion": str(facts.get("kernel_version") or platform.release()),
        "MinAPIVersion": MIN_API_VERSION, "Os": str(facts.get("os") or "linux"),
    }
    return {
        "Platform": {"Name": str(facts.get("platform") or "Dockyard Engine")},
        "Components": [{"Name": "Engine", "Version": version,
                        "Details": {**common, "Experimental": "false"}}],
        "Version": version, **common,
    }


def _mem_total() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _os_name() -> str:
    try:
        with open("/etc/os-release") as fh:
            for line in fh:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def _registry_config(mirrors: list[str], insecure: list[str]) -> dict[str, Any]:
    """dockerd's RegistryConfig: loopback and insecure CIDRs, one index entry per insecure host,
    docker.io with its mirrors (each with a trailing slash, as dockerd normalises them)."""
    cidrs, hosts = ["127.0.0.0/8"], []
    for entry in insecure:
        try:
            cidrs.append(str(ipaddress.ip_network(entry, strict=False)))
        except ValueError:
            hosts.append(entry)   # a host[:port], not a network
    slashed = [m.rstrip("/") + "/" for m in mirrors]
    index = {"docker.io": {"Name": "docker.io", "Mirrors": slashed, "Secure": True, "Official": True}}
    index.update({h: {"Name": h, "Mirrors": [], "Secure": False, "Official": False} for h in hosts})
    return {"AllowNondistributableArtifactsCIDRs": None, "AllowNondistributableArtifactsHostnames": None,
            "InsecureRegistryCIDRs": cidrs, "IndexConfigs": index, "Mirrors": slashed or None}


def render_info(facts: dict[str, Any]) -> dict[str, Any]:
    """``GET /info`` from the engine's (snake_case) info facts; host facts fill what it omits."""
    g = facts.get
    runtimes = g("runtimes") or {"dockyard-runtime": "dockyard-runtime", "runc": "runc"}
    cgroup_version = str(g("cgroup_version") or ("2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"))
    return {
        "ID": g("id", ""), "Containers": g("containers", 0), "ContainersRunning": g("containers_running", 0),
        "ContainersPaused": g("containers_paused", 0), "ContainersStopped": g("containers_stopped", 0),
        "Images": g("images", 0), "Driver": g("driver", "overlay2"),
        "DriverStatus": g("driver_status") or [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "none"], "Authorization": None,
                    "Log": ["json-file"]},
        "MemoryLimit": True, "SwapLimit": bool(g("swap_limit", True)), "KernelMemoryTCP": False,
        "CpuCfsPeriod": True, "CpuCfsQuota": True, "CPUShares": True, "CPUSet": True, "PidsLimit": True,
        "IPv4Forwarding": True, "BridgeNfIptables": False, "BridgeNfIp6tables": False, "Debug": bool(g("debug", False)),
        "NFd": g("nfd", len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0),
        "OomKillDisable": cgroup_version == "1", "NGoroutines": g("ngoroutines", 0),
        "SystemTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "LoggingDriver": "json-file",
        "CgroupDriver": g("cgroup_driver", "cgroupfs"), "CgroupVersion": cgroup_version,
        "NEventsListener": g("n_events_listener", 0), "KernelVersion": g("kernel_version") or platform.release(),
        "OperatingSystem": g("operating_system") or _os_name(), "OSVersion": g("os_version", ""),
        "OSType": "linux", "Architecture": g("architecture") or platform.machine(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": _registry_config(g("registry_mirrors") or [], g("insecure_registries") or []),
        "NCPU": g("ncpu") or os.cpu_count() or 1, "MemTotal": g("mem_total") or _mem_total(),
        "GenericResources": None, "DockerRootDir": str(g("docker_root_dir") or g("data_root") or ""),
        "HttpProxy": "", "HttpsProxy": "", "NoProxy": "", "Name": g("name") or platform.node(),
        "Labels": [], "ExperimentalBuild": False, "ServerVersion": g("server_version") or SERVER_VERSION,
        "Runtimes": {name: (dict(path) if isinstance(path, dict) else {"path": str(path)})
                     for name, path in dict(runtimes).items()},
        "DefaultRuntime": g("default_runtime", "dockyard-runtime"),
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
                  "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": bool(g("live_restore_enabled", True)), "Isolation": "", "InitBinary": "docker-init",
        "ContainerdCommit": {"ID": ""}, "RuncCommit": {"ID": ""}, "InitCommit": {"ID": ""},
        "SecurityOptions": g("security_options") or ["name=seccomp,profile=builtin"],
        "CDISpecDirs": [], "Warnings": g("warnings") or None,
    }

