"""Container stats without a daemon: cgroup v1/v2 files written to temp dirs, /proc parsing, the
stream/one-shot sequencing of ``engine.stats.collect`` and docker-cli's formulas in ``cli.stats``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from dockyard.cli import stats as cli
from dockyard.engine import stats
from dockyard.engine.types import ContainerConfig, ContainerRecord, ContainerState, HostConfig
from dockyard.errors import InvalidArgument, NotFound

CID = "c0ffee" + "0" * 58


def _write(d: Path, files: dict[str, str]) -> None:
    d.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(text)


def _record(status: str = "running", pid: int = 4242) -> ContainerRecord:
    return ContainerRecord(id=CID, name="web", created="2024-01-01T00:00:00Z", image_id="sha256:" + "1" * 64,
                           image_ref="busybox", config=ContainerConfig(), host_config=HostConfig(),
                           state=ContainerState(status=status, pid=pid))


# ---------------------------------------------------------------- cgroup v1


def _v1_tree(tmp_path: Path) -> stats.CgroupDirs:
    base = tmp_path / "cg"
    lines = []
    for n, ctrl in enumerate(("cpu", "cpuacct", "memory", "pids", "blkio", "name=systemd")):
        mp = base / ctrl
        lines.append(f"{32 + n} 31 0:{29 + n} / {mp} rw,relatime - cgroup cgroup rw,{ctrl}")
    lines.append(f"41 31 0:38 / {base}/unified rw,relatime - cgroup2 cgroup2 rw")
    (tmp_path / "mountinfo").write_text("\n".join(lines) + "\n")
    leaf = "dockyard/" + CID
    _write(base / "cpuacct" / leaf, {
        "cpuacct.usage": "3000000000\n", "cpuacct.usage_percpu": "1000000000 2000000000 \n",
        "cpuacct.stat": "user 150\nsystem 50\n"})
    _write(base / "cpu" / leaf, {"cpu.stat": "nr_periods 10\nnr_throttled 2\nthrottled_time 5000\n"})
    _write(base / "memory" / leaf, {
        "memory.usage_in_bytes": "10485760\n", "memory.max_usage_in_bytes": "20971520\n",
        "memory.limit_in_bytes": "67108864\n", "memory.failcnt": "0\n",
        "memory.stat": "cache 4096\nrss 8192\nshmem 0\ntotal_inactive_file 1048576\ninactive_file 1048576\n"})
    _write(base / "pids" / leaf, {"pids.current": "3\n", "pids.max": "max\n"})
    _write(base / "blkio" / leaf, {
        "blkio.throttle.io_service_bytes_recursive": "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\nTotal 12288\n",
        "blkio.throttle.io_serviced_recursive": "8:0 Read 1\n8:0 Write 2\nTotal 3\n"})
    root = tmp_path / "sysfs"  # no cgroup.controllers: not a pure v2 host
    root.mkdir()
    return stats.cgroup_dirs("/dockyard/" + CID, root=root, mountinfo=tmp_path / "mountinfo")


def test_v1_layout_follows_mountinfo(tmp_path: Path) -> None:
    dirs = _v1_tree(tmp_path)
    assert dirs.unified is None
    assert dirs.controllers["memory"] == tmp_path / "cg" / "memory" / "dockyard" / CID
    assert "unified" not in str(dirs.controllers.values())  # the hybrid v2 mount is no v1 hierarchy


def test_v1_files_map_like_dockerd(tmp_path: Path) -> None:
    u = stats.read_cgroup(_v1_tree(tmp_path), machine_memory=1 << 40)
    assert u.cpu == {
        "cpu_usage": {"total_usage": 3_000_000_000, "percpu_usage": [1_000_000_000, 2_000_000_000],
                      "usage_in_kernelmode": 500_000_000, "usage_in_usermode": 1_500_000_000},
        "throttling_data": {"periods": 10, "throttled_periods": 2, "throttled_time": 5000}}
    assert list(u.memory) == ["usage", "max_usage", "stats", "limit"]  # failcnt 0 is omitted
    assert u.memory["usage"] == 10485760 and u.memory["limit"] == 67108864
    assert list(u.memory["stats"]) == list(stats.V1_MEMORY_KEYS)  # dockerd's keys, missing ones 0
    assert u.memory["stats"]["total_inactive_file"] == 1048576 and "shmem" not in u.memory["stats"]
    assert u.pids == {"current": 3}  # "max" means no limit: left out
    assert list(u.blkio) == [k for k, _ in stats.BLKIO_KEYS]
    assert u.blkio["io_service_bytes_recursive"] == [
        {"major": 8, "minor": 0, "op": "Read", "value": 4096}, {"major": 8, "minor": 0, "op": "Write", "value": 8192},
        {"major": 8, "minor": 0, "op": "Sync", "value": 0}]
    assert u.blkio["io_serviced_recursive"][1]["value"] == 2
    assert u.blkio["sectors_recursive"] == []  # v1: empty lists, not null


def test_v1_unlimited_memory_reports_machine_memory(tmp_path: Path) -> None:
    dirs = _v1_tree(tmp_path)
    (dirs.controllers["memory"] / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert stats.read_cgroup(dirs, machine_memory=8 << 30).memory["limit"] == 8 << 30


def test_v1_missing_controllers_leave_their_parts_empty(tmp_path: Path) -> None:
    u = stats.read_v1({}, machine_memory=0)
    assert u.memory == {} and u.pids == {} and u.blkio == stats.null_blkio()
    assert u.cpu == stats.zero_cpu()


# ---------------------------------------------------------------- cgroup v2


def _v2_tree(tmp_path: Path) -> stats.CgroupDirs:
    root = tmp_path / "sysfs"
    _write(root, {"cgroup.controllers": "cpu io memory pids\n"})
    _write(root / "dockyard" / CID, {
        "cpu.stat": "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\nnr_periods 4\nnr_throttled 1\n"
                    "throttled_usec 7\n",
        "memory.current": "5242880\n", "memory.max": "max\n",
        "memory.stat": "anon 4096\nfile 8192\ninactive_file 1048576\nworkingset_refault_anon 3\n",
        "memory.events": "low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n",
        "pids.current": "2\n", "pids.max": "100\n",
        "io.stat": "8:0 rbytes=4096 wbytes=512 rios=1 wios=1 dbytes=0 dios=0\n\n"})
    return stats.cgroup_dirs("dockyard/" + CID, root=root, mountinfo=tmp_path / "absent")


def test_v2_files_map_like_dockerd(tmp_path: Path) -> None:
    dirs = _v2_tree(tmp_path)
    assert dirs.unified == tmp_path / "sysfs" / "dockyard" / CID
    u = stats.read_cgroup(dirs, machine_memory=16 << 30)
    assert u.cpu == {"cpu_usage": {"total_usage": 2_500_000, "usage_in_kernelmode": 500_000,
                                   "usage_in_usermode": 2_000_000},
                     "throttling_data": {"periods": 4, "throttled_periods": 1, "throttled_time": 7000}}
    assert u.memory["usage"] == 5242880 and u.memory["limit"] == 16 << 30  # "max" → machine memory
    assert u.memory["failcnt"] == 1 and "max_usage" not in u.memory
    assert list(u.memory["stats"]) == list(stats.V2_MEMORY_KEYS)
    assert u.pids == {"current": 2, "limit": 100}
    assert u.blkio["io_service_bytes_recursive"] == [
        {"major": 8, "minor": 0, "op": "read", "value": 4096}, {"major": 8, "minor": 0, "op": "write", "value": 512}]
    assert u.blkio["io_serviced_recursive"] is None  # v2 fills only the bytes list


def test_v2_without_devices_is_null() -> None:
    assert stats.io_stat_entries("") is None


# ---------------------------------------------------------------- /proc and the JSON shape


def test_system_cpu_counts_seven_fields_and_online_cpus() -> None:
    text = ("cpu  100 2 30 4000 5 6 7 8 9 10\ncpu0 50 1 15 2000 2 3 3 4 0 0\ncpu1 50 1 15 2000 3 3 4 4 0 0\n"
            "intr 1 2 3\ncpu9 1 1 1 1 1 1 1\n")
    usage, cpus = stats.system_cpu(text)
    assert usage == (100 + 2 + 30 + 4000 + 5 + 6 + 7) * 10_000_000
    assert cpus == 2  # lines after the first non-cpu line do not count


def test_net_dev_skips_loopback() -> None:
    text = ("Inter-|   Receive                                                |  Transmit\n"
            " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls "
            "carrier compressed\n"
            "    lo:     140       2    0    0    0     0          0         0      140       2    0    0    0     0 "
            "      0          0\n"
            "  eth0:    1296      16    1    2    0     0          0         0      656       8    3    4    0     0 "
            "      0          0\n")
    assert stats.net_dev(text) == {"eth0": {"rx_bytes": 1296, "rx_packets": 16, "rx_errors": 1, "rx_dropped": 2,
                                            "tx_bytes": 656, "tx_packets": 8, "tx_errors": 3, "tx_dropped": 4}}


def test_go_time_trims_trailing_zeros() -> None:
    assert stats.go_time(1_700_000_000_120_000_000) == "2023-11-14T22:13:20.12Z"
    assert stats.go_time(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"


def test_zero_shape_is_dockerds_byte_for_byte() -> None:
    """What dockerd 28 encodes for a container that is not running (Go zero values, omitempty)."""
    expected = (
        '{"name":"/web","id":"' + CID + '","read":"0001-01-01T00:00:00Z","preread":"0001-01-01T00:00:00Z",'
        '"pids_stats":{},"blkio_stats":{"io_service_bytes_recursive":null,"io_serviced_recursive":null,'
        '"io_queue_recursive":null,"io_service_time_recursive":null,"io_wait_time_recursive":null,'
        '"io_merged_recursive":null,"io_time_recursive":null,"sectors_recursive":null},"num_procs":0,'
        '"storage_stats":{},"cpu_stats":{"cpu_usage":{"total_usage":0,"usage_in_kernelmode":0,'
        '"usage_in_usermode":0},"throttling_data":{"periods":0,"throttled_periods":0,"throttled_time":0}},'
        '"precpu_stats":{"cpu_usage":{"total_usage":0,"usage_in_kernelmode":0,"usage_in_usermode":0},'
        '"throttling_data":{"periods":0,"throttled_periods":0,"throttled_time":0}},"memory_stats":{}}')
    assert json.dumps(stats.response(_record("exited")), separators=(",", ":")) == expected


# ---------------------------------------------------------------- collect(): stream / one-shot


class _Store:
    def __init__(self, rec: ContainerRecord) -> None:
        self.rec: ContainerRecord | None = rec

    def get(self, ref: str) -> ContainerRecord:
        if self.rec is None or ref not in (self.rec.id, self.rec.name):
            raise NotFound(f"No such container: {ref}")
        return self.rec


class _Engine:
    def __init__(self, rec: ContainerRecord) -> None:
        self.store = _Store(rec)


@pytest.fixture
def fake_take(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """stats.take replaced by a counter: sample n has total_usage n and read "t<n>"."""
    taken: list[int] = []

    def take(engine: Any, rec: ContainerRecord) -> dict[str, Any]:
        taken.append(len(taken) + 1)
        n = taken[-1]
        return stats.response(rec, f"t{n}", stats.Usage(cpu={"cpu_usage": {"total_usage": n}}))
    monkeypatch.setattr(stats, "take", take)
    return taken


def _run(engine: Any, limit: int = 10, **kw: Any) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        out = []
        async for sample in stats.collect(engine, "web", interval=0, **kw):
            out.append(sample)
            if len(out) == limit:
                break
        return out
    return asyncio.run(go())


def test_stream_first_sample_has_zero_pre_and_then_the_previous(fake_take: list[int]) -> None:
    out = _run(_Engine(_record()), limit=3)
    assert out[0]["preread"] == stats.ZERO_TIME and out[0]["precpu_stats"] == stats.zero_cpu()
    assert out[1]["preread"] == "t1" and out[1]["precpu_stats"] == out[0]["cpu_stats"]
    assert out[2]["precpu_stats"]["cpu_usage"]["total_usage"] == 2


def test_not_streaming_takes_a_silent_first_sample(fake_take: list[int]) -> None:
    (only,) = _run(_Engine(_record()), stream=False)
    assert fake_take == [1, 2] and only["read"] == "t2" and only["preread"] == "t1"


def test_one_shot_is_a_single_sample(fake_take: list[int]) -> None:
    (only,) = _run(_Engine(_record()), stream=False, one_shot=True)
    assert fake_take == [1] and only["preread"] == stats.ZERO_TIME


def test_stopped_container_not_streaming_is_zeroes_at_once() -> None:
    (only,) = _run(_Engine(_record("exited", pid=0)), stream=False)
    assert only == stats.response(_record("exited", pid=0))


def test_stream_ends_when_the_container_is_removed(fake_take: list[int]) -> None:
    engine = _Engine(_record())

    async def go() -> int:
        n = 0
        async for _ in stats.collect(engine, "web", interval=0):
            n += 1
            if n == 2:
                engine.store.rec = None
        return n
    assert asyncio.run(go()) == 2


def test_bad_requests() -> None:
    with pytest.raises(InvalidArgument, match="cannot have stream=true and one-shot=true"):
        _run(_Engine(_record()), stream=True, one_shot=True)
    with pytest.raises(NotFound, match="No such container: nope"):
        asyncio.run(stats.collect(_Engine(_record()), "nope").__anext__())


# ---------------------------------------------------------------- docker-cli's formulas and table


def test_cpu_percent() -> None:
    pre = {"cpu_usage": {"total_usage": 1_000}, "system_cpu_usage": 100_000}
    cur = {"cpu_usage": {"total_usage": 11_000}, "system_cpu_usage": 200_000, "online_cpus": 4}
    assert cli.cpu_percent(pre, cur) == pytest.approx(40.0)
    # no online_cpus (old daemons): the length of percpu_usage
    cur = {"cpu_usage": {"total_usage": 11_000, "percpu_usage": [1, 1]}, "system_cpu_usage": 200_000}
    assert cli.cpu_percent(pre, cur) == pytest.approx(20.0)
    assert cli.cpu_percent({}, {"cpu_usage": {"total_usage": 5}}) == 0.0  # no system delta


def test_memory_without_cache() -> None:
    v1 = {"usage": 10_000, "stats": {"total_inactive_file": 4_000, "inactive_file": 1_000}}
    assert cli.mem_usage_no_cache(v1) == 6_000.0
    assert cli.mem_usage_no_cache({"usage": 10_000, "stats": {"inactive_file": 1_000}}) == 9_000.0
    assert cli.mem_usage_no_cache({"usage": 10, "stats": {"total_inactive_file": 40}}) == 10.0
    assert cli.mem_percent(0, 5) == 0.0 and cli.mem_percent(200, 50) == 25.0


def test_block_and_network_io() -> None:
    blkio = {"io_service_bytes_recursive": [{"op": "Read", "value": 3}, {"op": "read", "value": 4},
                                            {"op": "Write", "value": 5}, {"op": "Total", "value": 12}]}
    assert cli.block_io(blkio) == (7, 5)
    assert cli.block_io({"io_service_bytes_recursive": None}) == (0, 0)
    assert cli.network_io({"eth0": {"rx_bytes": 1, "tx_bytes": 2}, "eth1": {"rx_bytes": 3, "tx_bytes": 4}}) == (4, 6)


def test_table_and_json_rows() -> None:
    sample = {"name": "/web", "id": CID, "memory_stats": {"usage": 2 * 1024 * 1024, "limit": 64 * 1024 * 1024,
                                                         "stats": {"total_inactive_file": 0}},
              "cpu_stats": {"cpu_usage": {"total_usage": 2}, "system_cpu_usage": 4, "online_cpus": 2},
              "precpu_stats": {"cpu_usage": {"total_usage": 0}, "system_cpu_usage": 0},
              "networks": {"eth0": {"rx_bytes": 1296, "tx_bytes": 656}}, "pids_stats": {"current": 3},
              "blkio_stats": {"io_service_bytes_recursive": None}}
    e = cli.entry_from("web", sample)
    table = cli.render([e], cli.DEFAULT_FORMAT, trunc=True)
    assert table.splitlines() == [
        "CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %     NET I/O        BLOCK I/O   PIDS",
        "c0ffee000000   web       100.00%   2MiB / 64MiB        3.12%     1.3kB / 656B   0B / 0B     3"]
    row = json.loads(cli.render([e], "{{json .}}", trunc=False))
    assert row == {"BlockIO": "0B / 0B", "CPUPerc": "100.00%", "Container": "web", "ID": CID, "MemPerc": "3.12%",
                   "MemUsage": "2MiB / 64MiB", "Name": "web", "NetIO": "1.3kB / 656B", "PIDs": "3"}
    gone = cli.StatsRow(cli.invalidated(e), trunc=True)
    assert (gone.CPUPerc, gone.MemUsage, gone.NetIO, gone.PIDs, gone.Name) == ("--", "-- / --", "--", "--", "web")
    assert cli.StatsRow(cli.Entry("x"), trunc=True).Name == "--"
