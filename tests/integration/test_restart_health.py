"""Restart policies and healthchecks with Docker's semantics, through a live dockyardd and the stock
docker CLI / docker SDK (issue 8)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from dockyard.engine.restart import RestartManager
from tests.conftest import LiveDaemon, restart_daemon, start_daemon, stop_daemon, unique

pytestmark = [pytest.mark.root, pytest.mark.compat,
              pytest.mark.skipif(shutil.which("docker") is None, reason="docker CLI not installed")]

T = TypeVar("T")
# each run counts itself in the container's own layer, which a restart keeps
COUNT = 'n=$(cat /runs 2>/dev/null || echo 0); n=$((n+1)); echo $n > /runs; echo run $n; '


def wait_for(what: str, fn: Callable[[], T | None], timeout: float = 60, every: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def inspect(d: LiveDaemon, name: str) -> dict[str, Any]:
    return json.loads(d.docker("inspect", name).stdout)[0]


def state(d: LiveDaemon, name: str) -> dict[str, Any]:
    return inspect(d, name)["State"]


@pytest.fixture
def names(daemon: LiveDaemon) -> Iterator[list[str]]:
    made: list[str] = []
    try:
        yield made
    finally:
        if made:
            daemon.docker("rm", "-f", *made, check=False)


def new_name(names: list[str], prefix: str) -> str:
    names.append(unique(prefix))
    return names[-1]


def restart_delays(d: LiveDaemon, cid: str) -> list[float]:
    """The back-off of each restart, as the daemon logs it."""
    found = re.findall(rf"restarting container {cid} in ([0-9.]+)s", d.log.read_text(errors="replace"))
    return [float(x) for x in found]


def test_backoff_doubles_from_100ms_and_caps_at_a_minute() -> None:
    mgr = RestartManager()
    assert [mgr.next_delay(0.0) for _ in range(12)] == [
        0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 51.2, 60.0, 60.0]
    assert mgr.next_delay(10.0) == 0.1  # a run of 10 s starts the back-off over
    assert mgr.next_delay(9.9) == 0.2


def test_on_failure_limit_backoff_and_restart_count(daemon: LiveDaemon, names: list[str]) -> None:
    name = new_name(names, "onfail")
    since = str(time.time() - 1)
    daemon.docker("run", "-d", "--name", name, "--restart", "on-failure:3", "busybox",
                  "sh", "-c", COUNT + "exit 3")
    info = wait_for("three restarts, then exited", lambda: (
        s := state(daemon, name))["Status"] == "exited" and inspect(daemon, name)["RestartCount"] == 3 and s)
    assert (info["ExitCode"], info["Restarting"], info["Running"]) == (3, False, False)
    assert daemon.docker("logs", name).stdout.decode().split("\n")[:-1] == [f"run {i}" for i in range(1, 5)]
    cid = inspect(daemon, name)["Id"]
    assert restart_delays(daemon, cid) == [0.1, 0.2, 0.4]
    # a die → start gap is at least the back-off
    until = str(time.time())
    events = daemon.docker("events", "--since", since, "--until", until, "--filter", f"container={cid}",
                           "--format", "{{.Action}} {{.TimeNano}}").stdout.decode().split("\n")[:-1]
    times = [(a, int(t)) for a, t in (e.split() for e in events) if a in ("start", "die")]
    assert [a for a, _ in times] == ["start", "die"] * 4
    gaps = [(times[i + 1][1] - times[i][1]) / 1e9 for i in range(1, 7, 2)]
    assert all(gap >= delay for gap, delay in zip(gaps, [0.1, 0.2, 0.4], strict=True)), gaps
    die = json.loads(daemon.docker("events", "--since", since, "--until", until, "--filter", f"container={cid}",
                                   "--filter", "event=die", "--format", "{{json .Actor.Attributes}}"
                                   ).stdout.decode().split("\n")[0])
    assert die["exitCode"] == "3" and "execDuration" in die
    # a user's start begins a new count
    daemon.docker("start", name)
    wait_for("restarts after a new start", lambda: daemon.docker("logs", name).stdout.count(b"run") == 8)
    wait_for("exited again", lambda: state(daemon, name)["Status"] == "exited")
    assert inspect(daemon, name)["RestartCount"] == 3


def test_on_failure_does_not_restart_exit_zero(daemon: LiveDaemon, names: list[str]) -> None:
    name = new_name(names, "zero")
    daemon.docker("run", "--name", name, "--restart", "on-failure", "busybox", "sh", "-c", COUNT + "exit 0")
    time.sleep(1)  # long enough for a (wrong) restart to show
    info = inspect(daemon, name)
    assert (info["State"]["Status"], info["State"]["ExitCode"], info["RestartCount"]) == ("exited", 0, 0)
    assert daemon.docker("logs", name).stdout == b"run 1\n"


def test_backoff_resets_after_ten_seconds_of_running(daemon: LiveDaemon, names: list[str]) -> None:
    name = new_name(names, "reset")
    # runs 1 and 2 fail at once, run 3 fails after 10.5 s, run 4 succeeds
    script = COUNT + 'if [ $n = 3 ]; then sleep 10.5; fi; [ $n -ge 4 ] && exit 0; exit 1'
    daemon.docker("run", "-d", "--name", name, "--restart", "on-failure", "busybox", "sh", "-c", script)
    wait_for("run 4 to exit 0", lambda: (s := state(daemon, name))["Status"] == "exited"
             and s["ExitCode"] == 0, timeout=90)
    assert restart_delays(daemon, inspect(daemon, name)["Id"]) == [0.1, 0.2, 0.1]
    assert inspect(daemon, name)["RestartCount"] == 3


def test_restarting_state_wait_ps_stop(daemon: LiveDaemon, names: list[str]) -> None:
    name = new_name(names, "always")
    daemon.docker("run", "-d", "--name", name, "--restart", "always", "busybox", "sh", "-c", "exit 5")
    s = wait_for("Restarting", lambda: (s := state(daemon, name))["Restarting"] and s, every=0.01)
    assert (s["Status"], s["Running"], s["Pid"], s["ExitCode"]) == ("restarting", True, 0, 5)
    # `docker wait` on a restarting container returns at its next exit
    assert daemon.docker("wait", name).stdout == b"5\n"
    wait_for("ps shows Restarting", lambda: re.fullmatch(
        r"restarting Restarting \(5\) .* ago", daemon.docker(
            "ps", "-a", "--filter", f"name={name}", "--format", "{{.State}} {{.Status}}").stdout.decode().strip()),
        every=0.01)
    wait_for("ps --filter status=restarting", lambda: name in daemon.docker(
        "ps", "--filter", "status=restarting", "--format", "{{.Names}}").stdout.decode(), every=0.01)
    # stop it while it waits (a back-off of 0.8 s and more by now)
    wait_for("a longer back-off", lambda: inspect(daemon, name)["RestartCount"] >= 4
             and state(daemon, name)["Restarting"], every=0.01)
    daemon.docker("stop", name)
    count = inspect(daemon, name)["RestartCount"]
    time.sleep(1)  # long enough for a (wrong) restart to show
    s = state(daemon, name)
    assert (s["Status"], s["Restarting"], s["Running"]) == ("exited", False, False)
    assert inspect(daemon, name)["RestartCount"] == count
    assert daemon.docker("wait", name).stdout.decode() == f"{s['ExitCode']}\n"  # not running: at once


def test_stop_and_kill_of_always_container_do_not_restart(daemon: LiveDaemon, names: list[str]) -> None:
    stopped, killed = new_name(names, "stopped"), new_name(names, "killed")
    for name in (stopped, killed):
        daemon.docker("run", "-d", "--name", name, "--restart", "always", "busybox", "sleep", "1000")
    daemon.docker("stop", "-t", "1", stopped)
    daemon.docker("kill", killed)
    time.sleep(1)  # long enough for a (wrong) restart to show
    for name in (stopped, killed):
        info = inspect(daemon, name)
        assert (info["State"]["Status"], info["RestartCount"]) == ("exited", 0), name


def test_rm_of_restarting_container(daemon: LiveDaemon, names: list[str]) -> None:
    name = new_name(names, "rmf")
    daemon.docker("run", "-d", "--name", name, "--restart", "always", "busybox", "sh", "-c", "exit 1")
    wait_for("Restarting", lambda: state(daemon, name)["Restarting"], every=0.01)
    res = daemon.docker("rm", name, check=False)
    assert res.returncode != 0 and b"stop the container before removing or force remove" in res.stderr
    daemon.docker("rm", "-f", name)
    assert daemon.docker("ps", "-aq", "--filter", f"name={name}").stdout == b""


def test_update_restart_policy(daemon: LiveDaemon, names: list[str]) -> None:
    name, auto = new_name(names, "upd"), new_name(names, "updrm")
    daemon.docker("run", "--name", name, "busybox", "sh", "-c", COUNT + "exit 3", check=False)
    assert inspect(daemon, name)["HostConfig"]["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    assert daemon.docker("update", "--restart=on-failure:3", name).stdout.decode().strip() == name
    assert inspect(daemon, name)["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    # an update of other fields leaves the policy alone (the CLI sends an empty RestartPolicy)
    daemon.docker("update", "--memory", "64m", name)
    assert inspect(daemon, name)["HostConfig"]["RestartPolicy"]["Name"] == "on-failure"
    daemon.docker("start", name)
    wait_for("three restarts", lambda: inspect(daemon, name)["RestartCount"] == 3
             and state(daemon, name)["Status"] == "exited")
    assert daemon.docker("logs", name).stdout.count(b"run") == 5  # the first run, then 1 + 3
    # Docker refuses a restart policy for an AutoRemove container
    daemon.docker("run", "-d", "--rm", "--name", auto, "busybox", "sleep", "1000")
    res = daemon.docker("update", "--restart=always", auto, check=False)
    assert res.returncode != 0
    assert b"Restart policy cannot be updated because AutoRemove is enabled for the container" in res.stderr
    daemon.docker("update", "--restart=no", auto)


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
def test_policies_across_daemon_restart(tmp_path: Path, kill: bool) -> None:
    d = start_daemon(tmp_path)
    try:
        d.cli("bootstrap", "busybox", timeout=120)
        for policy in ("always", "unless-stopped", "no"):
            for suffix in ("stopped", "running", "died"):
                d.docker("run", "-d", "--name", f"{policy}-{suffix}", "--restart", policy, "busybox",
                         "sleep", "1000")
            d.docker("stop", "-t", "0", f"{policy}-stopped")
        d.docker("create", "--name", "always-created", "--restart", "always", "busybox", "sleep", "1000")
        d.docker("update", "--restart", "always", "no-stopped")  # an updated policy counts
        pids = {p: state(d, f"{p}-died")["Pid"] for p in ("always", "unless-stopped", "no")}
        d.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        d.proc.wait(30)
        for pid in pids.values():  # these die while the daemon is away
            os.kill(pid, signal.SIGKILL)
        wait_for("the shims to reap them", lambda: not any(Path(f"/proc/{p}").exists() for p in pids.values()))
        d = restart_daemon(d, kill=kill)
        expected = {
            "always-stopped": "running", "always-running": "running", "always-died": "running",
            "unless-stopped-stopped": "exited", "unless-stopped-running": "running",
            "unless-stopped-died": "running", "no-stopped": "running", "no-running": "running",
            "no-died": "exited", "always-created": "created"}
        wait_for("the policies applied", lambda: {n: state(d, n)["Status"] for n in expected} == expected,
                 timeout=30)
        assert inspect(d, "always-stopped")["RestartCount"] == 0
    finally:
        stop_daemon(d)


# -------------------------------------------------------------------------------- healthchecks


def health_events(d: LiveDaemon, name: str, since: str) -> list[str]:
    out = d.docker("events", "--since", since, "--until", str(time.time()), "--filter", f"container={name}",
                   "--filter", "event=health_status", "--format", "{{.Action}}").stdout.decode()
    return out.split("\n")[:-1]


def ps_names(d: LiveDaemon, *filters: str) -> list[str]:
    args = [a for f in filters for a in ("--filter", f)]
    return d.docker("ps", "-a", *args, "--format", "{{.Names}}").stdout.decode().split()


def test_health_states_log_events_and_ps(daemon: LiveDaemon, names: list[str]) -> None:
    name = new_name(names, "health")
    since = str(time.time() - 1)
    daemon.docker("run", "-d", "--name", name, "--health-cmd", "test -e /tmp/ok && echo fine",
                  "--health-interval", "100ms", "--health-timeout", "5s", "--health-retries", "2",
                  "busybox", "sleep", "1000")
    cfg = inspect(daemon, name)["Config"]["Healthcheck"]
    assert cfg == {"Test": ["CMD-SHELL", "test -e /tmp/ok && echo fine"], "Interval": 100_000_000,
                   "Timeout": 5_000_000_000, "StartPeriod": 0, "StartInterval": 0, "Retries": 2}
    health = wait_for("unhealthy", lambda: (h := state(daemon, name)["Health"])["Status"] == "unhealthy" and h)
    assert health["FailingStreak"] >= 2
    assert name in ps_names(daemon, "health=unhealthy")
    assert name not in ps_names(daemon, "health=healthy") + ps_names(daemon, "health=none")
    status = daemon.docker("ps", "--filter", f"name={name}", "--format", "{{.Status}}").stdout.decode()
    assert status.strip().endswith("(unhealthy)")
    daemon.docker("exec", name, "touch", "/tmp/ok")
    health = wait_for("healthy", lambda: (h := state(daemon, name)["Health"])["Status"] == "healthy" and h)
    wait_for("a full log", lambda: len(state(daemon, name)["Health"]["Log"] or []) == 5)
    health = state(daemon, name)["Health"]
    assert health["FailingStreak"] == 0 and len(health["Log"]) == 5
    last = health["Log"][-1]
    assert set(last) == {"Start", "End", "ExitCode", "Output"}
    assert (last["ExitCode"], last["Output"]) == (0, "fine\n") and last["Start"] <= last["End"]
    assert name in ps_names(daemon, "health=healthy")
    status = daemon.docker("ps", "--filter", f"name={name}", "--format", "{{.Status}}").stdout.decode()
    assert re.fullmatch(r"Up .* \(healthy\)", status.strip()), status
    # one event per change of status, not per probe
    assert health_events(daemon, name, since) == ["health_status: unhealthy", "health_status: healthy"]
    # a stopped container's monitor is gone: Docker reports it unhealthy
    daemon.docker("stop", "-t", "0", name)
    assert state(daemon, name)["Health"]["Status"] == "unhealthy"
    res = daemon.docker("ps", "--filter", "health=sick", check=False)
    assert res.returncode != 0 and b"invalid filter 'health=sick'" in res.stderr


def test_health_start_period_and_start_interval(daemon: LiveDaemon, names: list[str]) -> None:
    name = new_name(names, "hstart")
    daemon.docker("run", "-d", "--name", name, "--health-cmd", "test -e /tmp/ok", "--health-interval", "1h",
                  "--health-start-period", "1h", "--health-start-interval", "100ms", "--health-retries", "1",
                  "busybox", "sleep", "1000")
    assert inspect(daemon, name)["Config"]["Healthcheck"]["StartInterval"] == 100_000_000
    # probes every 100 ms (the start interval, not the 1 h interval); failures do not count yet
    health = wait_for("three failed probes", lambda: len((h := state(daemon, name)["Health"])["Log"] or []) >= 3 and h)
    assert (health["Status"], health["FailingStreak"]) == ("starting", 0)
    assert all(r["ExitCode"] == 1 for r in health["Log"])
    assert name in ps_names(daemon, "health=starting")
    status = daemon.docker("ps", "--filter", f"name={name}", "--format", "{{.Status}}").stdout.decode()
    assert status.strip().endswith("(health: starting)")
    daemon.docker("exec", name, "touch", "/tmp/ok")
    wait_for("healthy", lambda: state(daemon, name)["Health"]["Status"] == "healthy")


def test_health_timeout_and_output_limit(daemon: LiveDaemon, names: list[str]) -> None:
    slow, loud = new_name(names, "hslow"), new_name(names, "hloud")
    daemon.docker("run", "-d", "--name", slow, "--health-cmd", "echo partial; sleep 30",
                  "--health-timeout", "300ms", "--health-interval", "100ms", "--health-retries", "1",
                  "busybox", "sleep", "1000")
    daemon.docker("run", "-d", "--name", loud, "--health-cmd", "yes a | head -c 5000",
                  "--health-interval", "100ms", "busybox", "sleep", "1000")
    health = wait_for("unhealthy", lambda: (h := state(daemon, slow)["Health"])["Status"] == "unhealthy" and h)
    assert health["Log"][0]["ExitCode"] == -1
    assert health["Log"][0]["Output"] == "Health check exceeded timeout (300ms): partial\n"
    health = wait_for("healthy", lambda: (h := state(daemon, loud)["Health"])["Status"] == "healthy" and h)
    assert health["Log"][0]["Output"] == "a\n" * 2048 + "..."


def test_image_healthcheck_none_and_merge(daemon: LiveDaemon, names: list[str], tmp_path: Path) -> None:
    tag, none_tag = unique("hcimg"), unique("hcnone")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nHEALTHCHECK --interval=1h --retries=1 CMD test -e /tmp/ok\n")
    daemon.cli("build", "-q", "-t", tag, str(ctx), timeout=120)
    (ctx / "Dockerfile").write_text(f"FROM {tag}\nHEALTHCHECK NONE\n")
    daemon.cli("build", "-q", "-t", none_tag, str(ctx), timeout=120)
    try:
        merged, disabled, inherited_none = (new_name(names, p) for p in ("hcmerge", "hcoff", "hcinone"))
        # only the interval given: the image's test stays (Docker's merge)
        daemon.docker("run", "-d", "--name", merged, "--health-interval", "100ms", tag, "sleep", "1000")
        cfg = inspect(daemon, merged)["Config"]["Healthcheck"]
        assert (cfg["Test"], cfg["Interval"], cfg["Retries"]) == (["CMD-SHELL", "test -e /tmp/ok"], 100_000_000, 1)
        wait_for("unhealthy", lambda: state(daemon, merged)["Health"]["Status"] == "unhealthy")
        daemon.docker("run", "-d", "--name", disabled, "--no-healthcheck", tag, "sleep", "1000")
        daemon.docker("run", "-d", "--name", inherited_none, none_tag, "sleep", "1000")
        assert inspect(daemon, disabled)["Config"]["Healthcheck"]["Test"] == ["NONE"]
        assert inspect(daemon, inherited_none)["Config"]["Healthcheck"]["Test"] == ["NONE"]
        for name in (disabled, inherited_none):
            assert "Health" not in state(daemon, name)
            assert name in ps_names(daemon, "health=none")
        res = daemon.docker("run", "--no-healthcheck", "--health-retries", "2", tag, "true", check=False)
        assert res.returncode != 0 and b"--no-healthcheck conflicts with --health-* options" in res.stderr
    finally:
        for name in names:
            daemon.docker("rm", "-f", name, check=False)
        daemon.docker("rmi", none_tag, tag, check=False)


def test_health_through_the_sdk(daemon: LiveDaemon, names: list[str]) -> None:
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=daemon.host)
    name = new_name(names, "hsdk")
    try:
        res = client.api.create_container("busybox", ["sleep", "1000"], name=name, healthcheck={
            "test": ["CMD", "true"], "interval": 100_000_000, "start_period": 10**9, "retries": 1},
            host_config=client.api.create_host_config(
                restart_policy={"Name": "on-failure", "MaximumRetryCount": 2}))
        client.api.start(res["Id"])
        c = client.containers.get(name)
        wait_for("healthy", lambda: (c.reload(), c.health)[1] == "healthy")
        assert c.attrs["Config"]["Healthcheck"]["StartPeriod"] == 10**9
        assert c.attrs["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
        assert c.attrs["RestartCount"] == 0
        with pytest.raises(docker.errors.APIError, match="Interval in Healthcheck cannot be less than 1ms"):
            client.api.create_container("busybox", ["true"], healthcheck={"test": ["CMD", "true"],
                                                                          "interval": 1000})
    finally:
        client.close()
