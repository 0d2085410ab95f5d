"""``GET /containers/{id}/stats`` and ``stats`` commands through a live daemon: the stock docker CLI,
the docker SDK and the dockyard CLI (table, JSON, live view on a terminal and on a pipe)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from dockyard.client.api import Client
from dockyard.client.transport import parse_host
from dockyard.errors import InvalidArgument
from tests.conftest import BIN, LiveDaemon, unique
from tests.terminal import run_in_pty

pytestmark = pytest.mark.root

ZERO_TIME = "0001-01-01T00:00:00Z"
HEADER = ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"]


@dataclass
class Pair:
    """A busy container limited to 32 MiB and a peer it can ping, on a user network of their own."""
    name: str
    peer: str
    network: str


@pytest.fixture
def pair(daemon: LiveDaemon) -> Iterator[Pair]:
    p = Pair(unique("stats"), unique("peer"), unique("statsnet"))
    try:
        daemon.docker("network", "create", p.network)
        daemon.docker("run", "-d", "--name", p.peer, "--network", p.network, "busybox", "sleep", "600")
        daemon.docker("run", "-d", "--name", p.name, "--network", p.network, "-m", "32m", "busybox",
                      "sh", "-c", "while :; do :; done")
        yield p
    finally:
        daemon.docker("rm", "-f", p.name, p.peer, check=False)
        daemon.docker("network", "rm", p.network, check=False)


@pytest.fixture
def sdk(daemon: LiveDaemon) -> Iterator[Any]:
    import docker
    client = docker.APIClient(base_url=daemon.host, version="1.44")
    try:
        yield client
    finally:
        client.close()


def _eth0(sample: dict[str, Any]) -> dict[str, int]:
    return dict(sample["networks"]["eth0"])


def test_docker_cli_row_has_sane_values(daemon: LiveDaemon, pair: Pair, sdk: Any) -> None:
    before = _eth0(sdk.stats(pair.name, stream=False, one_shot=True))
    daemon.docker("exec", pair.name, "ping", "-c", "3", pair.peer)
    after = _eth0(sdk.stats(pair.name, stream=False, one_shot=True))
    # three echo requests out, three replies in: 84-byte IP packets at least
    assert after["tx_bytes"] - before["tx_bytes"] >= 3 * 84
    assert after["rx_bytes"] - before["rx_bytes"] >= 3 * 84
    assert after["tx_packets"] - before["tx_packets"] >= 3

    row = json.loads(daemon.docker("stats", "--no-stream", "--format", "{{json .}}", pair.name).stdout)
    assert set(row) == {"BlockIO", "CPUPerc", "Container", "ID", "MemPerc", "MemUsage", "Name", "NetIO", "PIDs"}
    assert row["Name"] == pair.name and row["Container"] == pair.name
    assert len(row["ID"]) == 12
    assert row["MemUsage"].endswith(" / 32MiB")  # the -m limit
    assert float(row["CPUPerc"].rstrip("%")) >= 0.0 and float(row["MemPerc"].rstrip("%")) > 0.0
    assert int(row["PIDs"]) >= 1
    rx, tx = row["NetIO"].split(" / ")
    assert rx != "0B" and tx != "0B"


def test_sdk_sample_has_what_clients_read(daemon: LiveDaemon, pair: Pair, sdk: Any) -> None:
    s = sdk.stats(pair.name, stream=False)
    inspect = sdk.inspect_container(pair.name)
    assert s["id"] == inspect["Id"] and s["name"] == "/" + pair.name
    assert s["read"] != ZERO_TIME and s["preread"] != ZERO_TIME and s["preread"] < s["read"]
    for key in ("cpu_stats", "precpu_stats"):
        cpu = s[key]
        assert cpu["cpu_usage"]["total_usage"] > 0 and cpu["system_cpu_usage"] > 0 and cpu["online_cpus"] >= 1
        assert set(cpu["cpu_usage"]) >= {"total_usage", "usage_in_kernelmode", "usage_in_usermode"}
        assert set(cpu["throttling_data"]) == {"periods", "throttled_periods", "throttled_time"}
    assert s["cpu_stats"]["cpu_usage"]["total_usage"] > s["precpu_stats"]["cpu_usage"]["total_usage"]
    mem = s["memory_stats"]
    assert mem["limit"] == 32 * 1024 * 1024 and 0 < mem["usage"] <= mem["limit"]
    assert "total_inactive_file" in mem["stats"] or "inactive_file" in mem["stats"]
    assert s["pids_stats"]["current"] >= 1
    assert "io_service_bytes_recursive" in s["blkio_stats"]
    assert set(s["networks"]["eth0"]) == {"rx_bytes", "rx_packets", "rx_errors", "rx_dropped",
                                          "tx_bytes", "tx_packets", "tx_errors", "tx_dropped"}
    assert s["num_procs"] == 0 and s["storage_stats"] == {}

    one = sdk.stats(pair.name, stream=False, one_shot=True)
    assert one["preread"] == ZERO_TIME and one["precpu_stats"]["cpu_usage"]["total_usage"] == 0


def test_stream_fills_precpu_from_the_previous_sample(daemon: LiveDaemon, pair: Pair, sdk: Any) -> None:
    samples = []
    for sample in sdk.stats(pair.name, stream=True, decode=True):
        samples.append(sample)
        if len(samples) == 2:
            break
    first, second = samples
    assert first["preread"] == ZERO_TIME and first["precpu_stats"]["cpu_usage"]["total_usage"] == 0
    assert "system_cpu_usage" not in first["precpu_stats"]
    assert second["preread"] == first["read"]
    assert second["precpu_stats"] == first["cpu_stats"]


def test_dockyard_cli_table_and_pipe_view(daemon: LiveDaemon, pair: Pair) -> None:
    out = daemon.cli("stats", "--no-stream", pair.name, pair.peer).stdout.decode()
    lines = out.splitlines()
    assert [c.strip() for c in lines[0].split("  ") if c.strip()] == HEADER
    # same columns as docker's (their widths follow the values, which move between two calls)
    theirs = daemon.docker("stats", "--no-stream", pair.name, pair.peer).stdout.decode().splitlines()[0]
    assert [c.strip() for c in theirs.split("  ") if c.strip()] == HEADER
    names = {line.split()[1] for line in lines[1:]}
    assert names == {pair.name, pair.peer}
    assert "/ 32MiB" in next(line for line in lines if pair.name in line)

    every = daemon.cli("stats", "--no-stream", "--no-trunc", "--format", "{{.ID}} {{.PIDs}}").stdout.decode()
    full_id = daemon.docker("inspect", "-f", "{{.Id}}", pair.name).stdout.decode().strip()
    assert any(line.startswith(full_id + " ") for line in every.splitlines())

    # not a terminal: plain tables, no cursor movement; the view ends when its container goes
    proc = subprocess.Popen([str(BIN / "dockyard"), "-H", daemon.host, "stats", pair.name],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        headers = 0
        while headers < 2:
            line = proc.stdout.readline().decode()
            assert line, proc.stderr.read() if proc.stderr else ""
            assert "\033" not in line
            headers += line.startswith("CONTAINER ID")
        daemon.docker("rm", "-f", pair.name)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_dockyard_cli_redraws_on_a_terminal(daemon: LiveDaemon, pair: Pair) -> None:
    code, shown = run_in_pty([str(BIN / "dockyard"), "-H", daemon.host, "stats", pair.name],
                             b"\x03", after=b"/ 32MiB", timeout=60)
    assert code == 130  # interrupted with ^C
    assert b"\033[H" in shown and b"\033[K" in shown and b"\033[J" in shown
    assert b"CONTAINER ID" in shown


def test_unknown_container(daemon: LiveDaemon, sdk: Any) -> None:
    import docker
    name = unique("nosuch")
    with pytest.raises(docker.errors.NotFound) as err:
        sdk.stats(name, stream=False)
    assert err.value.explanation == f"No such container: {name}"
    theirs = daemon.docker("stats", "--no-stream", name, check=False)
    ours = daemon.cli("stats", "--no-stream", name, check=False)
    assert theirs.returncode == ours.returncode == 1
    assert ours.stderr.decode() == theirs.stderr.decode() == f"Error response from daemon: No such container: {name}\n"


def test_stream_with_one_shot_is_refused(daemon: LiveDaemon, pair: Pair) -> None:
    client = Client(parse_host(daemon.host))
    with pytest.raises(InvalidArgument, match="cannot have stream=true and one-shot=true") as err:
        client.stats(pair.name, stream=True, one_shot=True)
    assert getattr(err.value, "status", None) == 400


def test_stopped_container_gets_dockers_zero_shape(daemon: LiveDaemon, sdk: Any) -> None:
    name = unique("stopped")
    try:
        daemon.docker("create", "--name", name, "busybox", "true")
        s = sdk.stats(name, stream=False)
        assert s["name"] == "/" + name and len(s["id"]) == 64
        assert s["read"] == s["preread"] == ZERO_TIME
        assert s["pids_stats"] == {} and s["memory_stats"] == {} and s["storage_stats"] == {}
        assert s["cpu_stats"] == s["precpu_stats"] == {
            "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}
        assert all(v is None for v in s["blkio_stats"].values()) and len(s["blkio_stats"]) == 8
        assert "networks" not in s
        row = json.loads(daemon.docker("stats", "--no-stream", "--format", "{{json .}}", name).stdout)
        assert (row["CPUPerc"], row["MemUsage"], row["NetIO"], row["PIDs"]) == ("0.00%", "0B / 0B", "0B / 0B", "0")
    finally:
        daemon.docker("rm", "-f", name, check=False)
