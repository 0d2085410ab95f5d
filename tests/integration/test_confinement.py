"""Container confinement through the stock docker CLI and a live daemon: capabilities, seccomp,
no-new-privileges, masked and read-only paths, sysctls, ulimits and the OOM score, under both
runtimes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockyard.engine.security import CAP_NAMES, DEFAULT_CAPS, host_caps
from tests.conftest import LiveDaemon

pytestmark = pytest.mark.root

RUNTIMES = ["dockyard-runtime", "runc"]


def mask(caps: list[str] | tuple[str, ...]) -> int:
    return sum(1 << CAP_NAMES.index(c) for c in caps)


def status(daemon: LiveDaemon, runtime: str, *flags: str) -> dict[str, str]:
    out = daemon.docker("run", "--rm", "--runtime", runtime, *flags, "busybox", "cat",
                        "/proc/self/status").stdout.decode()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_capability_sets(daemon: LiveDaemon, runtime: str) -> None:
    root = status(daemon, runtime)
    for key in ("CapBnd", "CapEff", "CapPrm"):
        assert int(root[key], 16) == mask(DEFAULT_CAPS), key
    assert int(root["CapInh"], 16) == 0 and int(root["CapAmb"], 16) == 0
    # a non-root user keeps only the bounding set, as execve would leave it
    user = status(daemon, runtime, "--user", "1000:1000")
    assert int(user["CapBnd"], 16) == mask(DEFAULT_CAPS)
    assert int(user["CapEff"], 16) == int(user["CapPrm"], 16) == int(user["CapInh"], 16) == 0
    dropped = status(daemon, runtime, "--cap-drop", "ALL", "--cap-add", "NET_ADMIN")
    assert int(dropped["CapEff"], 16) == mask(["CAP_NET_ADMIN"])
    less = status(daemon, runtime, "--cap-drop", "chown", "--cap-drop", "CAP_KILL")
    assert int(less["CapEff"], 16) == mask([c for c in DEFAULT_CAPS if c not in ("CAP_CHOWN", "CAP_KILL")])
    # privileged and --cap-add ALL: what the host's bounding set has, not more (no failure)
    for flags in (("--privileged",), ("--cap-add", "ALL")):
        assert int(status(daemon, runtime, *flags)["CapEff"], 16) == mask(host_caps())


def test_capability_refusals(daemon: LiveDaemon) -> None:
    res = daemon.docker("run", "--rm", "--cap-add", "NOPE", "busybox", "true", check=False)
    assert res.returncode == 125 and b'unknown capability: "CAP_NOPE"' in res.stderr
    missing = [c for c in CAP_NAMES if c not in host_caps()]
    if missing:   # e.g. CAP_SYS_RESOURCE on this VM: refused at create with the reason
        res = daemon.docker("run", "--rm", "--cap-add", missing[0], "busybox", "true", check=False)
        assert res.returncode == 125 and b"not in this host's bounding set" in res.stderr


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_seccomp_default_unconfined_and_custom_profile(daemon: LiveDaemon, runtime: str,
                                                       tmp_path: Path) -> None:
    assert status(daemon, runtime)["Seccomp"] == "2"                      # filter mode
    assert status(daemon, runtime, "--security-opt", "seccomp=unconfined")["Seccomp"] == "0"
    assert status(daemon, runtime, "--privileged")["Seccomp"] == "0"
    profile = tmp_path / "no-mkdir.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}))
    res = daemon.docker("run", "--rm", "--runtime", runtime, "--security-opt", f"seccomp={profile}",
                        "busybox", "sh", "-c", "mkdir /tmp/x; echo rc=$?; touch /tmp/y && echo touched",
                        check=False)
    out = res.stdout.decode() + res.stderr.decode()
    assert "Permission denied" in out and "rc=1" in out and "touched" in out
    bad = tmp_path / "bad.json"
    bad.write_text('{"defaultAction": "SCMP_ACT_NOPE"}')
    res = daemon.docker("run", "--rm", "--security-opt", f"seccomp={bad}", "busybox", "true", check=False)
    assert res.returncode == 125 and b"SCMP_ACT_NOPE" in res.stderr


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_no_new_privileges_oom_score_and_ulimits(daemon: LiveDaemon, runtime: str) -> None:
    assert status(daemon, runtime)["NoNewPrivs"] == "0"
    assert status(daemon, runtime, "--security-opt", "no-new-privileges")["NoNewPrivs"] == "1"
    assert status(daemon, runtime, "--security-opt", "no-new-privileges=true")["NoNewPrivs"] == "1"
    out = daemon.docker("run", "--rm", "--runtime", runtime, "--oom-score-adj", "500",
                        "--ulimit", "nofile=123:456", "--ulimit", "core=-1", "busybox", "sh", "-c",
                        "cat /proc/self/oom_score_adj; ulimit -n; ulimit -Hn; ulimit -c").stdout.decode()
    assert out.split() == ["500", "123", "456", "unlimited"]
    res = daemon.docker("run", "--rm", "--oom-score-adj", "1001", "busybox", "true", check=False)
    assert res.returncode != 0
    res = daemon.docker("run", "--rm", "--security-opt", "bogus=1", "busybox", "true", check=False)
    assert res.returncode == 125 and b'invalid --security-opt 2: "bogus=1"' in res.stderr


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_masked_and_readonly_paths(daemon: LiveDaemon, runtime: str) -> None:
    script = ("cat /proc/timer_list | wc -c; cat /proc/keys | wc -c; "
              "echo x > /proc/sys/kernel/domainname 2>/dev/null && echo sys=rw || echo sys=ro; "
              "grep ' /sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1")
    default = daemon.docker("run", "--rm", "--runtime", runtime, "busybox", "sh", "-c", script)
    assert default.stdout.decode().split() == ["0", "0", "sys=ro", "ro"]
    for flags in (("--privileged",), ("--security-opt", "systempaths=unconfined")):
        out = daemon.docker("run", "--rm", "--runtime", runtime, *flags, "busybox", "sh", "-c",
                            "cat /proc/timer_list | wc -c").stdout.decode()
        assert int(out) > 0, flags
    sysfs = daemon.docker("run", "--rm", "--runtime", runtime, "--privileged", "busybox", "sh", "-c",
                          "grep ' /sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1").stdout.decode()
    assert sysfs.strip() == "rw"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_sysctls_namespaced_only(daemon: LiveDaemon, runtime: str) -> None:
    out = daemon.docker("run", "--rm", "--runtime", runtime, "--sysctl", "kernel.shmmax=1048576",
                        "--sysctl", "net.ipv4.ip_unprivileged_port_start=80", "busybox", "sh", "-c",
                        "cat /proc/sys/kernel/shmmax /proc/sys/net/ipv4/ip_unprivileged_port_start")
    assert out.stdout.decode().split() == ["1048576", "80"]
    host_before = Path("/proc/sys/kernel/shmmax").read_text()
    assert host_before.strip() != "1048576"
    # the docker CLI refuses non-namespaced sysctls itself; the API refuses them too
    import docker
    client = docker.APIClient(base_url=daemon.host, version="1.44")
    for sysctls, message in (({"kernel.panic": "1"}, "only namespaced sysctls"),
                             ({"net.ipv4.ip_forward": "1"}, "cannot be used with --net=host")):
        with pytest.raises(docker.errors.APIError) as err:
            client.create_container("busybox", ["true"], host_config={
                "Sysctls": sysctls, "NetworkMode": "host" if "net." in next(iter(sysctls)) else "default"})
        assert err.value.status_code == 400 and message in str(err.value)
