"""What issue 2 must show, through the dockyard CLI against a live daemon."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from tests.conftest import BIN, LiveDaemon, unique
from tests.terminal import run_in_pty

pytestmark = pytest.mark.root


def test_echo_hello(daemon: LiveDaemon) -> None:
    res = daemon.cli("run", "--rm", "busybox", "echo", "hello")
    assert res.stdout == b"hello\n"


def test_exit_code_propagates(daemon: LiveDaemon) -> None:
    res = daemon.cli("run", "--rm", "busybox", "sh", "-c", "exit 3", check=False)
    assert res.returncode == 3


def test_pid_is_one(daemon: LiveDaemon) -> None:
    res = daemon.cli("run", "--rm", "busybox", "sh", "-c", "echo $$")
    assert res.stdout.strip() == b"1"


def test_own_hostname_and_no_host_processes(daemon: LiveDaemon) -> None:
    name = unique("host")
    res = daemon.cli("run", "--rm", "--hostname", name, "busybox", "sh", "-c", "hostname; ps -o pid,comm")
    lines = res.stdout.decode().splitlines()
    assert lines[0] == name != socket.gethostname()
    pids = [ln.split()[0] for ln in lines[2:]]
    assert pids == ["1"] or set(pids) <= {"1", str(max(int(p) for p in pids))}
    assert "dockyardd" not in res.stdout.decode()


def test_files_are_gone_after_rm(daemon: LiveDaemon) -> None:
    name = unique("files")
    daemon.cli("run", "--name", name, "busybox", "sh", "-c", "echo data > /tmp/marker")
    info = json.loads(daemon.cli("inspect", name).stdout)[0]
    cid = info["Id"]
    upper = info["GraphDriver"]["Data"].get("UpperDir", "")
    daemon.cli("rm", name)
    assert daemon.cli("inspect", name, check=False).returncode != 0
    assert not (daemon.data_root / "containers" / cid).exists()
    if upper:
        assert not Path(upper).exists()


def test_detached_logs_and_stop(daemon: LiveDaemon) -> None:
    name = unique("logs")
    cid = daemon.cli("run", "-d", "--name", name, "busybox", "sh", "-c",
                     "echo one; echo two >&2; trap 'exit 0' TERM; while true; do sleep 0.1; done").stdout
    assert len(cid.strip()) == 64
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        logs = daemon.cli("logs", name)
        if logs.stdout == b"one\n" and logs.stderr == b"two\n":
            break
        time.sleep(0.1)
    assert logs.stdout == b"one\n" and logs.stderr == b"two\n"
    ps = daemon.cli("ps", "--format", "{{.Names}} {{.State}}").stdout.decode()
    assert f"{name} running" in ps
    daemon.cli("stop", "-t", "5", name)
    state = json.loads(daemon.cli("inspect", name).stdout)[0]["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 0
    daemon.cli("rm", name)


def test_memory_limit_and_oom(daemon: LiveDaemon) -> None:
    name = unique("mem")
    res = daemon.cli("run", "--name", name, "-m", "32m", "busybox", "cat",
                     "/sys/fs/cgroup/memory/memory.limit_in_bytes", check=False)
    if res.returncode != 0 or not res.stdout.strip():
        # cgroup v2 host: the limit is in memory.max
        res = daemon.cli("run", "--rm", "-m", "32m", "busybox", "cat", "/sys/fs/cgroup/memory.max")
    assert res.stdout.strip() == str(32 * 1024 * 1024).encode()
    daemon.cli("rm", "-f", name, check=False)
    oom = unique("oom")
    res = daemon.cli("run", "--name", oom, "-m", "16m", "--memory-swap", "16m", "busybox", "sh", "-c",
                     "x=a; while true; do x=$x$x; done", check=False, timeout=120)
    assert res.returncode == 137
    state = json.loads(daemon.cli("inspect", oom).stdout)[0]["State"]
    assert state["OOMKilled"] is True
    daemon.cli("rm", oom)


def test_bad_input_leaves_nothing(daemon: LiveDaemon) -> None:
    before = set(os.listdir(daemon.data_root / "containers")) if (daemon.data_root / "containers").exists() else set()
    res = daemon.cli("run", "--rm", "--pull=never", "no-such-image:1", "true", check=False)
    assert res.returncode == 125 and b"No such image" in res.stderr
    res = daemon.cli("run", "--rm", "no-such-image:1", "true", check=False)  # tries a pull first
    assert res.returncode == 125 and b"Unable to find image 'no-such-image:1' locally" in res.stderr
    assert b"127.0.0.1:1" in res.stderr  # the test daemon's --default-registry, never Docker Hub
    res = daemon.cli("create", "--name", "bad name!", "busybox", check=False)
    assert res.returncode != 0 and b"Invalid container name" in res.stderr
    res = daemon.cli("create", "-m", "1k", "busybox", check=False)
    assert res.returncode != 0 and b"Minimum memory limit" in res.stderr
    name = unique("dup")
    daemon.cli("create", "--name", name, "busybox")
    res = daemon.cli("create", "--name", name, "busybox", check=False)
    assert res.returncode != 0 and b"is already in use" in res.stderr
    daemon.cli("rm", name)
    after = set(os.listdir(daemon.data_root / "containers")) if (daemon.data_root / "containers").exists() else set()
    assert after == before
    assert daemon.cli("ps", "-aq", "--filter", f"name={name}").stdout == b""


def test_exec_and_top(daemon: LiveDaemon) -> None:
    name = unique("exec")
    daemon.cli("run", "-d", "--name", name, "busybox", "sleep", "60")
    res = daemon.cli("exec", name, "sh", "-c", "echo in-exec; exit 5", check=False)
    assert res.stdout == b"in-exec\n" and res.returncode == 5
    top = daemon.cli("top", name).stdout.decode()
    assert "sleep 60" in top and "PID" in top
    daemon.cli("rm", "-f", name)


def test_init_reaps_and_forwards(daemon: LiveDaemon) -> None:
    res = daemon.cli("run", "--rm", "--init", "busybox", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '")
    assert b"docker-init" in res.stdout


def test_user_and_workdir_and_env(daemon: LiveDaemon) -> None:
    res = daemon.cli("run", "--rm", "-u", "nobody", "-w", "/tmp/wd", "-e", "FOO=bar", "busybox",
                     "sh", "-c", "id -u; pwd; echo $FOO")
    assert res.stdout.decode().split() == ["65534", "/tmp/wd", "bar"]


def test_run_it_keeps_typeahead(daemon: LiveDaemon) -> None:
    """Keys typed before the container is up reach it (raw mode must not flush pending input)."""
    code, out = run_in_pty([str(BIN / "dockyard"), "-H", daemon.host, "run", "-it", "--rm", "busybox", "sh"],
                           b"echo TYPED-$((40+2)); exit 5\r")
    assert b"TYPED-42" in out
    assert code == 5


def test_mount_stubs_live_in_the_init_layer(daemon: LiveDaemon) -> None:
    """/etc/hosts, /proc, ... mount points the image lacks are made in ``<id>-init``, as Docker's
    overlay2 does: the container's own upper dir holds only what its processes wrote."""
    name = unique("init")
    daemon.cli("run", "--name", name, "busybox", "sh", "-c", "cat /etc/hosts >/dev/null; echo x > /tmp/f")
    try:
        data = json.loads(daemon.cli("inspect", name).stdout)[0]["GraphDriver"]["Data"]
        upper = Path(data["UpperDir"])
        found = sorted(str(p.relative_to(upper)) for p in upper.rglob("*"))
        assert found == ["tmp", "tmp/f"]
        init_upper = Path(data["LowerDir"].split(":")[0])
        assert (init_upper / "etc" / "hosts").exists() or not (init_upper / "etc").exists()
    finally:
        daemon.cli("rm", name)
