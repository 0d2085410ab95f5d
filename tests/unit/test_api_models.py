"""Docker JSON ↔ engine dataclasses: create bodies, validation messages, inspect/list rendering."""

from __future__ import annotations

import json

import pytest

from dockyard import errors
from dockyard.api import models
from dockyard.api.errors import error_response, status_for
from dockyard.api.models_images import render_event, render_image_inspect, render_info, render_version
from dockyard.api.timefmt import human_duration, human_status, unix_seconds
from dockyard.engine.types import (
    ContainerConfig,
    ContainerRecord,
    ContainerState,
    EndpointSettings,
    Event,
    ExecConfig,
    ExecRecord,
    HostConfig,
    ImageDetail,
    ImageSummary,
)

# What `docker create -m 64m --restart on-failure:3 -p 8080:80 -e A=1 --name web busybox sh -c 'x'` sends.
CREATE_BODY = {
    "Hostname": "", "User": "", "AttachStdin": False, "AttachStdout": True, "AttachStderr": True,
    "ExposedPorts": {"80/tcp": {}}, "Tty": False, "OpenStdin": False, "StdinOnce": False,
    "Env": ["A=1"], "Cmd": ["sh", "-c", "x"], "Image": "busybox", "Volumes": {}, "WorkingDir": "",
    "Entrypoint": None, "OnBuild": None, "Labels": {"k": "v"},
    "HostConfig": {
        "Binds": None, "NetworkMode": "default", "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]},
        "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}, "AutoRemove": False,
        "Memory": 67108864, "MemorySwap": 0, "CpuShares": 0, "PidsLimit": None, "ConsoleSize": [24, 80],
        "LogConfig": {"Type": "", "Config": {}}, "Init": None,
    },
    "NetworkingConfig": {"EndpointsConfig": {}},
}


def test_create_body_becomes_create_options() -> None:
    opts = models.parse_create(CREATE_BODY, "web", "")
    assert opts.name == "web"
    assert opts.config.image == "busybox"
    assert opts.config.cmd == ["sh", "-c", "x"]
    assert opts.config.entrypoint is None
    assert opts.config.env == ["A=1"]
    assert opts.config.labels == {"k": "v"}
    assert opts.config.exposed_ports == {"80/tcp": {}}
    hc = opts.host_config
    assert hc.resources.memory == 64 * 1024 * 1024
    assert hc.resources.pids_limit is None
    assert hc.restart_policy.name == "on-failure" and hc.restart_policy.maximum_retry_count == 3
    assert hc.port_bindings == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}
    assert hc.console_size == (24, 80)
    assert hc.log_config.type == "json-file"


def test_strslice_accepts_a_string() -> None:
    opts = models.parse_create({"Image": "busybox", "Cmd": "echo hi", "Entrypoint": "/bin/sh"}, "", "")
    assert opts.config.cmd == ["echo hi"]
    assert opts.config.entrypoint == ["/bin/sh"]


@pytest.mark.parametrize(("body", "field"), [
    ({"Image": "busybox", "HostConfig": {"Memory": "64m"}}, "HostConfig.Memory"),
    ({"Image": "busybox", "Env": "A=1"}, "Config.Env"),
    ({"Image": "busybox", "Tty": "yes"}, "Config.Tty"),
    ({"Image": 3}, "Config.Image"),
    ({"Image": "busybox", "HostConfig": []}, "HostConfig"),
    ({"Image": "busybox", "Labels": {"a": 1}}, "Config.Labels"),
])
def test_wrong_types_name_the_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(errors.InvalidArgument, match=f"invalid {field}"):
        models.parse_create(body, "", "")


def test_missing_image_and_bad_restart_policy() -> None:
    with pytest.raises(errors.InvalidArgument, match="Image is required"):
        models.parse_create({}, "", "")
    with pytest.raises(errors.InvalidArgument, match="unknown policy 'sometimes'"):
        models.parse_create({"Image": "b", "HostConfig": {"RestartPolicy": {"Name": "sometimes"}}}, "", "")
    with pytest.raises(errors.InvalidArgument, match="only be used with 'on-failure'"):
        models.parse_create({"Image": "b", "HostConfig": {"RestartPolicy": {"Name": "always",
                                                                           "MaximumRetryCount": 2}}}, "", "")


def test_update_body_only_sets_what_was_sent() -> None:
    resources, policy = models.parse_update({"Memory": 1 << 20})
    assert resources is not None and resources.memory == 1 << 20 and policy is None
    resources, policy = models.parse_update({"RestartPolicy": {"Name": "always"}})
    assert resources is None and policy is not None and policy.name == "always"


def test_exec_body() -> None:
    cfg = models.parse_exec({"Cmd": ["sh"], "AttachStdin": True, "AttachStdout": True, "Tty": True,
                             "Env": ["X=1"], "User": "nobody"})
    assert cfg == ExecConfig(cmd=["sh"], tty=True, attach_stdin=True, attach_stdout=True,
                             attach_stderr=False, env=["X=1"], user="nobody")
    with pytest.raises(errors.InvalidArgument, match="No exec command specified"):
        models.parse_exec({"Cmd": []})


def _record(status: str = "running") -> ContainerRecord:
    return ContainerRecord(
        id="a" * 64, name="web", created="2024-01-02T03:04:05.123456789Z", image_id="sha256:" + "b" * 64,
        image_ref="busybox", config=ContainerConfig(image="busybox", cmd=["sleep", "9"], env=["PATH=/bin"]),
        host_config=HostConfig(port_bindings={"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}),
        path="sleep", args=["9"], state=ContainerState(status=status, pid=42,
                                                       started_at="2024-01-02T03:04:06.5Z"),
        networks={"bridge": EndpointSettings(network_id="n" * 64, endpoint_id="e" * 64, ip_address="172.17.0.2",
                                             prefix_len=16, gateway="172.17.0.1", mac_address="02:42:ac:11:00:02")},
        ports={"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]},
    )


def test_inspect_renders_docker_shape() -> None:
    out = models.render_inspect(_record())
    json.dumps(out)
    assert out["Name"] == "/web"
    assert out["State"]["Running"] is True and out["State"]["Pid"] == 42 and out["State"]["Paused"] is False
    assert out["Config"]["Cmd"] == ["sleep", "9"] and out["Config"]["Image"] == "busybox"
    assert out["HostConfig"]["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    assert out["HostConfig"]["Memory"] == 0 and out["HostConfig"]["LogConfig"]["Type"] == "json-file"
    assert out["NetworkSettings"]["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}
    assert out["NetworkSettings"]["Networks"]["bridge"]["IPAddress"] == "172.17.0.2"
    assert out["NetworkSettings"]["IPAddress"] == "172.17.0.2" and out["NetworkSettings"]["IPPrefixLen"] == 16
    assert out["NetworkSettings"]["Networks"]["bridge"]["MacAddress"] == "02:42:ac:11:00:02"
    stopped = models.render_inspect(_record("exited"))["NetworkSettings"]
    assert stopped["IPAddress"] == "" and stopped["Ports"] == {} and stopped["Networks"]["bridge"]["NetworkID"]
    assert out["GraphDriver"]["Name"] == "overlay2"
    assert out["ExecIDs"] is None and out["Mounts"] == []
    for key in ("Id", "Created", "Path", "Args", "Image", "ResolvConfPath", "HostnamePath", "HostsPath",
                "LogPath", "RestartCount", "Driver", "Platform", "MountLabel", "ProcessLabel", "AppArmorProfile"):
        assert key in out


def test_summary_renders_ps_columns() -> None:
    rec = _record()
    now = unix_seconds(rec.state.started_at) + 300
    out = models.render_summary(rec, now)
    assert out["Names"] == ["/web"] and out["Command"] == "sleep 9" and out["State"] == "running"
    assert out["Status"] == "Up 5 minutes"
    assert out["Created"] == 1704164645
    assert out["Ports"] == [{"PrivatePort": 80, "Type": "tcp", "IP": "0.0.0.0", "PublicPort": 8080}]


def test_human_status_strings() -> None:
    st = ContainerState(status="exited", exit_code=3, finished_at="2024-01-01T00:00:00Z")
    assert human_status(st, unix_seconds("2024-01-01T02:00:00Z")) == "Exited (3) 2 hours ago"
    assert human_status(ContainerState(), 0) == "Created"
    assert human_duration(0.2) == "Less than a second"
    assert human_duration(65) == "About a minute"
    assert human_duration(3 * 86400) == "3 days"


def test_exec_inspect_render() -> None:
    rec = ExecRecord(id="e1", container_id="c1", config=ExecConfig(cmd=["sh", "-c", "x"]), exit_code=3)
    out = models.render_exec(rec)
    assert out["ID"] == "e1" and out["ExitCode"] == 3 and out["Running"] is False
    assert out["ProcessConfig"]["entrypoint"] == "sh" and out["ProcessConfig"]["arguments"] == ["-c", "x"]


def test_event_has_legacy_fields_for_containers() -> None:
    ev = Event(type="container", action="start", actor_id="abc", attributes={"image": "busybox", "name": "x"},
               time_nano=1_700_000_000_123_456_789)
    out = render_event(ev)
    assert out["status"] == "start" and out["id"] == "abc" and out["from"] == "busybox"
    assert out["Actor"] == {"ID": "abc", "Attributes": {"image": "busybox", "name": "x"}}
    assert out["time"] == 1_700_000_000 and out["timeNano"] == 1_700_000_000_123_456_789
    assert out["scope"] == "local" and out["Type"] == "container"


def test_image_inspect_and_system_rendering() -> None:
    detail = ImageDetail(
        summary=ImageSummary(id="sha256:" + "c" * 64, repo_tags=["busybox:latest"], repo_digests=[],
                             created=1700000000, size=100),
        config={"architecture": "amd64", "os": "linux", "created": "2023-11-14T22:13:20Z",
                "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]}, "rootfs": {"type": "layers", "diff_ids": ["sha256:d"]}},
    )
    out = render_image_inspect(detail)
    assert out["Config"]["Cmd"] == ["sh"] and out["RootFS"]["Layers"] == ["sha256:d"] and out["Os"] == "linux"
    version = render_version({"version": "0.1.0", "arch": "amd64"})
    assert version["ApiVersion"] == "1.45" and version["MinAPIVersion"] == "1.24"
    assert version["Components"][0]["Name"] == "Engine" and version["GoVersion"].startswith("python")
    info = render_info({"containers": 2, "runtimes": {"runc": {"path": "/usr/bin/runc"}}})
    assert info["Containers"] == 2 and info["Runtimes"] == {"runc": {"path": "/usr/bin/runc"}}
    assert info["OSType"] == "linux" and info["NCPU"] >= 1


@pytest.mark.parametrize(("exc", "status"), [
    (errors.NotFound("x"), 404), (errors.AlreadyExists("x"), 409), (errors.Conflict("x"), 409),
    (errors.InvalidArgument("x"), 400), (errors.NotModified("x"), 304), (errors.FailedPrecondition("x"), 412),
    (errors.PermissionDenied("x"), 403), (errors.Unavailable("x"), 503), (errors.Internal("x"), 500),
    (RuntimeError("x"), 500),
])
def test_status_for(exc: Exception, status: int) -> None:
    assert status_for(exc) == status


def test_error_body() -> None:
    resp = error_response(errors.NotFound("No such container: x"))
    assert resp.status == 404 and resp.content_type == "application/json"
    assert resp.text is not None and json.loads(resp.text) == {"message": "No such container: x"}
