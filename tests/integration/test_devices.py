"""--device, --device-cgroup-rule and --privileged's /dev end to end: the stock docker CLI against a
live dockyardd, under the built-in runtime and runc alike (the same bundle must confine the same)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import stat
import subprocess
from typing import Any

import pytest

from dockyard.engine import records
from dockyard.engine.types import ContainerConfig, ContainerRecord, DeviceMapping, HostConfig
from tests.conftest import LiveDaemon, unique

pytestmark = pytest.mark.root

RUNTIMES = ["dockyard-runtime", "runc"]
# a node outside Docker's default allow list whose driver is harmless to open: /dev/fuse
FUSE = (10, 229)
needs_fuse = pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="needs /dev/fuse")


def out(res: subprocess.CompletedProcess[bytes]) -> str:
    return res.stdout.decode()


def run(daemon: LiveDaemon, runtime: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return daemon.docker("run", "--rm", "--runtime", runtime, *args, check=check)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_device_under_another_name(daemon: LiveDaemon, runtime: str) -> None:
    got = out(run(daemon, runtime, "--device", "/dev/zero:/dev/myzero", "busybox", "sh", "-c",
                  "stat -c '%t:%T %F' /dev/myzero; head -c 4 /dev/myzero | od -An -tx1"))
    assert got.split("\n")[:2] == ["1:5 character special file", " 00 00 00 00"]
    absent = run(daemon, runtime, "busybox", "test", "-e", "/dev/myzero", check=False)
    assert absent.returncode == 1


@needs_fuse
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_device_permissions_reach_the_cgroup(daemon: LiveDaemon, runtime: str) -> None:
    """--device HOST:CTR:r allows reading the node and nothing more."""
    res = run(daemon, runtime, "--device", "/dev/fuse:/dev/f:r", "busybox", "sh", "-c",
              ": < /dev/f && echo read-ok; (: > /dev/f) && echo write-ok; true")
    assert out(res) == "read-ok\n"
    assert b"Operation not permitted" in res.stderr


@needs_fuse
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_device_cgroup_rule_lets_a_made_node_open(daemon: LiveDaemon, runtime: str) -> None:
    script = f"mknod /dev/mine c {FUSE[0]} {FUSE[1]} && : < /dev/mine && echo opened"
    allowed = run(daemon, runtime, "--device-cgroup-rule", f"c {FUSE[0]}:{FUSE[1]} rwm", "busybox",
                  "sh", "-c", script)
    assert out(allowed) == "opened\n"
    # mknod itself is allowed to every container (c *:* m); opening the node is not
    denied = run(daemon, runtime, "busybox", "sh", "-c", script, check=False)
    assert denied.returncode != 0 and out(denied) == ""
    assert b"Operation not permitted" in denied.stderr


@pytest.mark.parametrize("device", ["/dev/nope-dy", "/etc/hostname"])
def test_bad_device_fails_at_create(daemon: LiveDaemon, device: str) -> None:
    name = unique("baddev")
    reason = "no such file or directory" if "nope" in device else "not a device node"
    try:
        res = daemon.docker("create", "--name", name, "--device", device, "busybox", check=False)
        assert res.returncode != 0
        assert (f'error gathering device information while adding custom device "{device}": '
                f"{reason}") in res.stderr.decode()
        assert out(daemon.docker("ps", "-aq", "--filter", f"name=^{name}$")) == ""
    finally:
        daemon.docker("rm", "-f", name, check=False)


def _post(daemon: LiveDaemon, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    class Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(str(daemon.sock))

    conn = Conn("localhost", timeout=30)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


def test_bad_rule_and_mode_through_the_api(daemon: LiveDaemon) -> None:
    """What the CLI would refuse before sending, the daemon refuses too, creating nothing."""
    name = unique("badrule")
    try:
        status, body = _post(daemon, f"/v1.44/containers/create?name={name}", {
            "Image": "busybox", "HostConfig": {"DeviceCgroupRules": ["c 1:5"]}})
        assert (status, body["message"]) == (400, "invalid device cgroup rule format: 'c 1:5'")
        status, body = _post(daemon, f"/v1.44/containers/create?name={name}", {
            "Image": "busybox", "HostConfig": {"Devices": [
                {"PathOnHost": "/dev/null", "PathInContainer": "/dev/n", "CgroupPermissions": "rx"}]}})
        assert (status, body["message"]) == (400, "bad mode specified: rx")
        assert out(daemon.docker("ps", "-aq", "--filter", f"name=^{name}$")) == ""
    finally:
        daemon.docker("rm", "-f", name, check=False)


def _host_nodes() -> set[str]:
    """Top-level device nodes of the host's /dev, as --privileged passes them (no console)."""
    names = set()
    for entry in os.scandir("/dev"):
        mode = entry.stat(follow_symlinks=False).st_mode
        if (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)) and entry.name != "console":
            names.add(entry.name)
    return names


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_privileged_sees_the_hosts_devices(daemon: LiveDaemon, runtime: str) -> None:
    host = _host_nodes()
    assert "loop-control" in host or "kmsg" in host  # a node the default set lacks
    seen = set(out(run(daemon, runtime, "--privileged", "busybox", "ls", "/dev")).split())
    assert host <= seen
    plain = set(out(run(daemon, runtime, "busybox", "ls", "/dev")).split())
    assert "loop-control" not in plain and "kmsg" not in plain
    # and its device cgroup lets it open them
    if "kmsg" in host:
        kmsg = run(daemon, runtime, "--privileged", "busybox", "sh", "-c", ": < /dev/kmsg && echo ok")
        assert out(kmsg) == "ok\n"


def test_inspect_shows_devices_as_docker(daemon: LiveDaemon) -> None:
    name, plain = unique("devinspect"), unique("devplain")
    try:
        daemon.docker("create", "--name", name, "--device", "/dev/zero:/dev/z:rw",
                      "--device-cgroup-rule", "c 1:5 r", "busybox")
        daemon.docker("create", "--name", plain, "busybox")
        hc = json.loads(out(daemon.docker("inspect", name)))[0]["HostConfig"]
        assert hc["Devices"] == [{"PathOnHost": "/dev/zero", "PathInContainer": "/dev/z",
                                  "CgroupPermissions": "rw"}]
        assert hc["DeviceCgroupRules"] == ["c 1:5 r"]
        hc = json.loads(out(daemon.docker("inspect", plain)))[0]["HostConfig"]
        assert hc["Devices"] == [] and hc["DeviceCgroupRules"] is None
    finally:
        daemon.docker("rm", "-f", name, plain, check=False)


def test_devices_survive_a_record_round_trip() -> None:
    """What metadata.db stores (records.dumps) reads back into the same dataclasses."""
    host = HostConfig(devices=[DeviceMapping("/dev/zero", "/dev/z", "rw")], device_cgroup_rules=["b *:* m"],
                      userns_mode="host")
    rec = ContainerRecord(id="x" * 64, name="n", created="", image_id="", image_ref="",
                          config=ContainerConfig(), host_config=host)
    back = records.loads(ContainerRecord, records.dumps(rec))
    assert back.host_config.devices == [DeviceMapping("/dev/zero", "/dev/z", "rw")]
    assert back.host_config.device_cgroup_rules == ["b *:* m"] and back.host_config.userns_mode == "host"


def test_dockyard_cli_passes_devices_too(daemon: LiveDaemon) -> None:
    got = daemon.cli("run", "--rm", "--device", "/dev/zero:/dev/myzero:r", "--device-cgroup-rule",
                     "c 1:5 r", "busybox", "stat", "-c", "%t:%T", "/dev/myzero")
    assert got.stdout.decode() == "1:5\n"
    bad = daemon.cli("run", "--rm", "--device", "/dev/nope-dy", "busybox", "true", check=False)
    assert bad.returncode == 125
    assert b'adding custom device "/dev/nope-dy": no such file or directory' in bad.stderr
