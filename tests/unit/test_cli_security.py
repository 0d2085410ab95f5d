"""The security flags of ``run``/``create`` → the create body's HostConfig fields. Expected values
and messages were captured from the docker 28.2 CLI against a recording socket; when a ``docker``
binary is installed, one test also compares against it live (on a unix socket in tmp_path)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from dockyard.cli.netopts import FlagError
from dockyard.cli.securityopts import compact_json, parse_device, parse_go_int, parse_ulimit
from dockyard.errors import InvalidArgument
from tests.fakedaemon import JSONHandler, serve
from tests.runflags import run_body

KEYS = ("CapAdd", "CapDrop", "SecurityOpt", "Devices", "DeviceCgroupRules", "Sysctls", "Ulimits",
        "OomScoreAdj", "UsernsMode", "GroupAdd", "CgroupnsMode", "IpcMode", "PidMode", "UTSMode",
        "Privileged", "MaskedPaths", "ReadonlyPaths")


def _fields(*argv: str) -> dict[str, Any]:
    hc = run_body(*argv)["HostConfig"]
    return {k: hc.get(k) for k in KEYS}


def test_no_security_flags_as_docker() -> None:
    hc = run_body()["HostConfig"]
    assert hc["Devices"] == [] and hc["Ulimits"] == []  # docker sends empty arrays for these
    assert (hc["Privileged"], hc["OomScoreAdj"], hc["PidMode"], hc["UsernsMode"]) == (False, 0, "", "")
    # null in docker's body (or left out, as Sysctls is)
    for key in ("CapAdd", "CapDrop", "SecurityOpt", "DeviceCgroupRules", "GroupAdd", "Sysctls",
                "MaskedPaths", "ReadonlyPaths"):
        assert hc.get(key) is None


def test_every_flag_like_docker(tmp_path: Path) -> None:
    profile = tmp_path / "prof.json"
    profile.write_text('{"defaultAction":"SCMP_ACT_ALLOW",  "syscalls": [ ]}\n')
    got = _fields(
        "--privileged", "--cap-add", "NET_ADMIN", "--cap-add", "sys_time", "--cap-drop", "ALL",
        "--security-opt", f"seccomp={profile}", "--security-opt", "no-new-privileges",
        "--security-opt", "systempaths=unconfined", "--security-opt", "label=disable",
        "--device", "/dev/zero:/dev/myzero", "--device", "/dev/null", "--device", "/dev/sda:r",
        "--device", "/dev/fuse:/dev/f:rw", "--device", "/dev/x/../y:/a/../b",
        "--device-cgroup-rule", "c 1:5 rwm", "--device-cgroup-rule", "a *:* rwm",
        "--sysctl", "net.ipv4.ip_forward=1", "--sysctl", "kernel.shmmax=1",
        "--ulimit", "nproc=10", "--ulimit", "nofile=1024:2048", "--ulimit", "core=-1",
        "--oom-score-adj", "100", "--userns", "host", "--group-add", "audio", "--group-add", "10",
        "--cgroupns", "private", "--ipc", "shareable", "--pid", "host", "--uts", "host")
    assert got == {
        "CapAdd": ["CAP_NET_ADMIN", "CAP_SYS_TIME"], "CapDrop": ["ALL"],
        "SecurityOpt": ['seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[]}', "no-new-privileges",
                        "label=disable"],
        "Devices": [{"PathOnHost": "/dev/zero", "PathInContainer": "/dev/myzero", "CgroupPermissions": "rwm"},
                    {"PathOnHost": "/dev/null", "PathInContainer": "/dev/null", "CgroupPermissions": "rwm"},
                    {"PathOnHost": "/dev/sda", "PathInContainer": "/dev/sda", "CgroupPermissions": "r"},
                    {"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/f", "CgroupPermissions": "rw"},
                    {"PathOnHost": "/dev/x/../y", "PathInContainer": "/b", "CgroupPermissions": "rwm"}],
        "DeviceCgroupRules": ["c 1:5 rwm", "a *:* rwm"],
        "Sysctls": {"kernel.shmmax": "1", "net.ipv4.ip_forward": "1"},
        "Ulimits": [{"Name": "core", "Hard": -1, "Soft": -1}, {"Name": "nofile", "Hard": 2048, "Soft": 1024},
                    {"Name": "nproc", "Hard": 10, "Soft": 10}],
        "OomScoreAdj": 100, "UsernsMode": "host", "GroupAdd": ["audio", "10"], "CgroupnsMode": "private",
        "IpcMode": "shareable", "PidMode": "host", "UTSMode": "host", "Privileged": True,
        "MaskedPaths": [], "ReadonlyPaths": [],
    }


def test_caps_normalised_like_the_api_client() -> None:
    got = _fields("--cap-add", "sys_time", "--cap-add", " NET_ADMIN", "--cap-add", "net_admin",
                  "--cap-drop", "net_admin", "--cap-drop", "chown", "--cap-add", "all")
    assert got["CapAdd"] == ["ALL", "CAP_ NET_ADMIN", "CAP_NET_ADMIN", "CAP_SYS_TIME"]
    assert got["CapDrop"] == ["CAP_CHOWN", "CAP_NET_ADMIN"]


def test_security_opt_forms() -> None:
    got = _fields("--security-opt", "seccomp=unconfined", "--security-opt", "apparmor:foo",
                  "--security-opt", "no-new-privileges=true", "--security-opt", "no-new-privileges:",
                  "--ulimit", "nofile=5", "--ulimit", "nofile=7:9", "--privileged=false")
    assert got["SecurityOpt"] == ["seccomp=unconfined", "apparmor:foo", "no-new-privileges=true",
                                  "no-new-privileges:"]
    assert got["Ulimits"] == [{"Name": "nofile", "Hard": 9, "Soft": 7}]  # the last one given wins
    assert got["Privileged"] is False and got["MaskedPaths"] is None


@pytest.mark.parametrize(("argv", "message"), [
    (["--ulimit", "nofile"], 'invalid argument "nofile" for "--ulimit" flag: invalid ulimit argument: nofile'),
    (["--ulimit", "foo=1"], 'invalid argument "foo=1" for "--ulimit" flag: invalid ulimit type: foo'),
    (["--ulimit", "nofile=a"],
     'invalid argument "nofile=a" for "--ulimit" flag: strconv.ParseInt: parsing "a": invalid syntax'),
    (["--ulimit", "nofile=1:2:3"], 'invalid argument "nofile=1:2:3" for "--ulimit" flag: too many limit '
                                   'value arguments - 1:2:3, can only have up to two, `soft[:hard]`'),
    (["--ulimit", "nofile=3:2"], 'invalid argument "nofile=3:2" for "--ulimit" flag: ulimit soft limit '
                                 'must be less than or equal to hard limit: 3 > 2'),
    (["--ulimit", "nofile=-1:5"], 'invalid argument "nofile=-1:5" for "--ulimit" flag: ulimit soft limit '
                                  'must be less than or equal to hard limit: soft: -1 (unlimited), hard: 5'),
    (["--sysctl", "kernel.hostname=x"],
     'invalid argument "kernel.hostname=x" for "--sysctl" flag: sysctl \'kernel.hostname=x\' is not allowed'),
    (["--sysctl", "net.a"], 'invalid argument "net.a" for "--sysctl" flag: sysctl \'net.a\' is not allowed'),
    (["--oom-score-adj", "x"],
     'invalid argument "x" for "--oom-score-adj" flag: strconv.ParseInt: parsing "x": invalid syntax'),
    (["--device-cgroup-rule", "a"],
     'invalid argument "a" for "--device-cgroup-rule" flag: invalid device cgroup format \'a\''),
    (["--device-cgroup-rule", "c 1:5  rwm"],
     'invalid argument "c 1:5  rwm" for "--device-cgroup-rule" flag: invalid device cgroup format \'c 1:5  rwm\''),
])
def test_flag_errors_like_docker(argv: list[str], message: str) -> None:
    with pytest.raises(FlagError) as err:
        run_body(*argv)
    assert str(err.value) == message


@pytest.mark.parametrize(("argv", "message"), [
    (["--userns", "foo"], "--userns: invalid USER mode"),
    (["--cgroupns", "foo"], "--cgroupns: invalid CGROUP mode"),
    (["--pid", "container:"], "--pid: invalid PID mode"),
    (["--uts", "foo"], "--uts: invalid UTS mode"),
    (["--security-opt", "foo"], 'Invalid --security-opt: "foo"'),
    (["--security-opt", "seccomp="], 'Invalid --security-opt: "seccomp="'),
    (["--security-opt", "seccomp=/nonexistent-dy"],
     "opening seccomp profile (/nonexistent-dy) failed: open /nonexistent-dy: no such file or directory"),
    (["--device", "/dev/zero:rwx"], "rwx is not an absolute path"),
    (["--device", "/dev/zero:/x:rwx"], "bad mode specified: rwx"),
    (["--device", "/dev/zero:/x:rr"], "bad mode specified: rr"),
    (["--device", "/dev/zero:/x:"], "bad mode specified: "),
    (["--device", "/dev/zero::r"], " is not an absolute path"),
    (["--device", "relative"], "relative is not an absolute path"),
    (["--device", "/a:b:c:d"], "bad format for path: /a:b:c:d"),
    (["--device", ":/x"], "bad format for path: :/x"),
])
def test_parse_errors_like_docker(argv: list[str], message: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        run_body(*argv)
    assert not isinstance(err.value, FlagError) and str(err.value) == message


def test_values_docker_accepts_and_leaves_to_the_daemon() -> None:
    got = _fields("--oom-score-adj", "2000", "--ipc", "foo", "--userns", "auto", "--pid", "container:db")
    assert (got["OomScoreAdj"], got["IpcMode"], got["UsernsMode"], got["PidMode"]) == (
        2000, "foo", "auto", "container:db")


def test_go_number_and_json_details() -> None:
    assert [parse_go_int(v, "--x") for v in ("0x10", "017", "0o17", "-1_000", "+5", "0")] == [
        16, 15, 15, -1000, 5, 0]
    for bad in (" 5", "1__0", "5_", "99999999999999999999"):
        with pytest.raises(FlagError):
            parse_go_int(bad, "--x")
    assert parse_ulimit("nofile=+3:4") == {"Name": "nofile", "Hard": 4, "Soft": 3}
    with pytest.raises(InvalidArgument, match="value out of range"):
        parse_ulimit("nofile=1:99999999999999999999")
    # escapes and number spellings stay as written; only whitespace between tokens goes
    assert compact_json('{ "a" : "x \\" y\\u00e9",\n "b": [1.0e2, 2 ] }') == '{"a":"x \\" y\\u00e9","b":[1.0e2,2]}'
    assert parse_device("/dev//sda/") == {"PathOnHost": "/dev/sda", "PathInContainer": "/dev/sda",
                                          "CgroupPermissions": "rwm"}


class _Recorder(JSONHandler):
    """Answers the docker CLI's ping and records the create body it posts."""

    def _headers(self, length: int) -> None:
        self.send_response(200)
        self.send_header("Api-Version", "1.47")
        self.send_header("OSType", "linux")
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def do_HEAD(self) -> None:
        self._headers(0)

    def do_GET(self) -> None:
        self._headers(2)
        self.wfile.write(b"OK")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if "/containers/create" in self.path:
            self.server.bodies.append(json.loads(body))  # type: ignore[attr-defined]
        self.send_json(500, {"message": "recorded"})


@pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI")
def test_same_body_as_the_installed_docker_cli(tmp_path: Path) -> None:
    profile = tmp_path / "p.json"
    profile.write_text('{\n  "defaultAction": "SCMP_ACT_ERRNO"\n}\n')
    argv = ["--privileged=false", "--cap-add", "chown", "--cap-drop", "net_raw", "--security-opt",
            f"seccomp:{profile}", "--device", "/dev/fuse:/dev/f:r", "--device-cgroup-rule", "b 7:* rw",
            "--sysctl", "fs.mqueue.msg_max=20", "--ulimit", "nofile=50:60", "--oom-score-adj=-5",
            "--userns=host", "--group-add", "disk", "--cgroupns", "host", "--ipc", "none",
            "--pid", "host", "--uts", "host", "--security-opt", "systempaths=unconfined"]
    sock = tmp_path / "d.sock"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["DOCKER_CONFIG"] = str(tmp_path / "cfg")
    with serve(sock, _Recorder, bodies=[]) as srv:
        subprocess.run(["docker", "-H", f"unix://{sock}", "create", *argv, "busybox"], env=env,
                       capture_output=True, timeout=60)
        docker_hc = srv.bodies[0]["HostConfig"]  # type: ignore[attr-defined]
    ours = run_body(*argv)["HostConfig"]
    for key in KEYS:
        assert ours.get(key) == docker_hc.get(key), key
