"""``run`` flags a Docker user expects, against a live daemon: ``--cgroup-parent`` (the container's
cgroup goes there, stats find it, rm removes it), ``--cidfile``, ``--log-driver/--log-opt`` checked
at create, ``--shm-size`` and the CPU/memory limits that land in cgroup files."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import LiveDaemon, unique

pytestmark = pytest.mark.root

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _hierarchies() -> list[Path]:
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return [CGROUP_ROOT]
    return [d for d in CGROUP_ROOT.iterdir() if d.is_dir() and not d.is_symlink()]


def _inspect(daemon: LiveDaemon, ref: str) -> dict:
    return json.loads(daemon.cli("inspect", ref).stdout)[0]


def test_cgroup_parent(daemon: LiveDaemon) -> None:
    parent = unique("dy-cgp")
    cid = ""
    try:
        cid = daemon.cli("run", "-d", "--cgroup-parent", f"/{parent}", "-m", "64m", "busybox",
                         "sleep", "300").stdout.decode().strip()
        info = _inspect(daemon, cid)
        assert info["HostConfig"]["CgroupParent"] == f"/{parent}"
        lines = Path(f"/proc/{info['State']['Pid']}/cgroup").read_text().splitlines()
        assert any(line.split(":", 2)[2] == f"/{parent}/{cid}" for line in lines), lines
        memory = [h / parent / cid for h in _hierarchies() if (h / parent / cid / "memory.max").exists()
                  or (h / parent / cid / "memory.limit_in_bytes").exists()]
        assert memory, "no memory cgroup under the parent"
        stats = json.loads(daemon.cli("stats", "--no-stream", "--format", "{{json .}}", cid).stdout)
        assert stats["MemUsage"].endswith("64MiB"), stats  # read from the cgroup under the parent
        daemon.cli("rm", "-f", cid)
        cid_left = [str(h / parent / cid) for h in _hierarchies() if (h / parent / cid).exists()]
        assert not cid_left
        bad = daemon.cli("create", "--cgroup-parent", "../escape", "busybox", check=False)
        assert bad.returncode == 125 and b"invalid cgroup parent" in bad.stderr
    finally:
        if cid:
            daemon.cli("rm", "-f", cid, check=False)
        for h in _hierarchies():  # dockerd leaves the parent too; the test does not
            if (h / parent).exists():
                (h / parent).rmdir()


def test_cidfile(daemon: LiveDaemon, tmp_path: Path) -> None:
    cidfile = tmp_path / "cid"
    cid = daemon.cli("run", "-d", "--cidfile", str(cidfile), "busybox", "sleep", "300").stdout.decode().strip()
    try:
        assert cidfile.read_text() == cid
        before = daemon.cli("ps", "-aq").stdout
        again = daemon.cli("run", "-d", "--cidfile", str(cidfile), "busybox", "true", check=False)
        assert again.returncode == 125 and b"container ID file found" in again.stderr
        assert daemon.cli("ps", "-aq").stdout == before  # nothing was created
        assert _inspect(daemon, cid)["HostConfig"]["ContainerIDFile"] == str(cidfile)
        failed = tmp_path / "failed"
        res = daemon.cli("create", "--cidfile", str(failed), "--log-driver", "syslog", "busybox", check=False)
        assert res.returncode == 125 and not failed.exists()  # claimed, then given back
    finally:
        daemon.cli("rm", "-f", cid, check=False)


def test_log_config_refused_at_create(daemon: LiveDaemon) -> None:
    before = daemon.cli("ps", "-aq").stdout
    for flags, why in ((["--log-driver", "syslog"], b"no log driver named 'syslog' is registered"),
                       (["--log-opt", "max-size=lots"], b"invalid size: 'lots'"),
                       (["--log-opt", "max-bytes=1"], b"unknown log opt 'max-bytes' for json-file log driver")):
        res = daemon.cli("create", *flags, "busybox", check=False)
        assert res.returncode == 125 and why in res.stderr, (flags, res.stderr)
        docker = daemon.docker("create", *flags, "busybox", check=False)
        assert docker.returncode != 0 and why in docker.stderr, (flags, docker.stderr)
    assert daemon.cli("ps", "-aq").stdout == before
    name = unique("logs")
    daemon.cli("run", "--name", name, "--log-opt", "max-size=2k", "--log-opt", "max-file=2", "busybox",
               "sh", "-c", "for i in $(seq 1 400); do echo line-$i; done")
    try:
        log = Path(_inspect(daemon, name)["LogPath"])
        assert log.stat().st_size <= 2000 + 200  # rotated at the size asked for
        assert daemon.cli("logs", "--tail", "1", name).stdout == b"line-400\n"
    finally:
        daemon.cli("rm", "-f", name, check=False)


def test_shm_size_and_limits(daemon: LiveDaemon) -> None:
    out = daemon.cli("run", "--rm", "--shm-size", "16m", "busybox", "df", "-k", "/dev/shm").stdout.decode()
    assert out.splitlines()[1].split()[1] == "16384", out
    name = unique("limits")
    daemon.cli("create", "--name", name, "--cpu-period", "100000", "--cpu-quota", "25000",
               "--memory-reservation", "32m", "--cpuset-mems", "0", "--oom-kill-disable", "-m", "64m",
               "--domainname", "example.org", "busybox", "sleep", "300")
    try:
        host = _inspect(daemon, name)["HostConfig"]
        assert (host["CpuPeriod"], host["CpuQuota"], host["MemoryReservation"]) == (100000, 25000, 32 << 20)
        assert host["CpusetMems"] == "0" and host["OomKillDisable"] is True
        daemon.cli("start", name)
        pid = _inspect(daemon, name)["State"]["Pid"]
        cpu = next(line.split(":", 2)[2] for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()
                   if line.split(":")[1] in ("cpu,cpuacct", "cpu", ""))
        base = next(h for h in _hierarchies() if (h / cpu.lstrip("/")).is_dir()
                    and ((h / cpu.lstrip("/") / "cpu.max").exists()
                         or (h / cpu.lstrip("/") / "cpu.cfs_quota_us").exists()))
        d = base / cpu.lstrip("/")
        quota = (d / "cpu.max").read_text().split()[0] if (d / "cpu.max").exists() \
            else (d / "cpu.cfs_quota_us").read_text().strip()
        assert quota == "25000"
        daemon.cli("update", "--cpu-quota", "50000", name)
        quota = (d / "cpu.max").read_text().split()[0] if (d / "cpu.max").exists() \
            else (d / "cpu.cfs_quota_us").read_text().strip()
        assert quota == "50000"
        domain = daemon.cli("exec", name, "cat", "/proc/sys/kernel/domainname").stdout.decode().strip()
        assert domain == "example.org"  # the UTS namespace's NIS domain name
    finally:
        daemon.cli("rm", "-f", name, check=False)


def _block_device() -> str:
    for name in sorted(os.listdir("/sys/block")):
        if not name.startswith(("loop", "ram", "zram", "dm-", "md")) and Path(f"/dev/{name}").exists():
            return f"/dev/{name}"
    pytest.skip("no block device to throttle")


def test_block_io_limits_and_oom_killer(daemon: LiveDaemon) -> None:
    """Throttles land in the container's cgroup; what this kernel cannot enforce (a blkio weight
    without CFQ/BFQ, OOM-kill disabling on v2) is dropped with dockerd's warning, not a failed start."""
    dev = _block_device()
    numbers = Path(f"/sys/block/{dev.rsplit('/', 1)[1]}/dev").read_text().strip()
    name = unique("blkio")
    res = daemon.cli("run", "-d", "--name", name, "-m", "64m", "--oom-kill-disable", "--blkio-weight", "300",
                     "--device-read-bps", f"{dev}:1mb", "--device-write-iops", f"{dev}:100",
                     "busybox", "sleep", "300")
    try:
        features = {"weight": any(Path("/sys/fs/cgroup/blkio", f).exists()
                                  for f in ("blkio.weight", "blkio.bfq.weight")),
                    "v2": Path("/sys/fs/cgroup/cgroup.controllers").exists()}
        assert (b"Block I/O weight" in res.stderr) is (not features["weight"] and not features["v2"])
        host = _inspect(daemon, name)["HostConfig"]
        assert host["BlkioDeviceReadBps"] == [{"Path": dev, "Rate": 1 << 20}]
        assert host["BlkioDeviceWriteIOps"] == [{"Path": dev, "Rate": 100}]
        pid = _inspect(daemon, name)["State"]["Pid"]
        rel = {line.split(":")[1]: line.split(":", 2)[2]
               for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()}
        if features["v2"]:
            io_max = (CGROUP_ROOT / rel[""].lstrip("/") / "io.max").read_text()
            assert f"{numbers} rbps=1048576" in io_max and "wiops=100" in io_max, io_max
        else:
            blkio = CGROUP_ROOT / "blkio" / rel["blkio"].lstrip("/")
            assert (blkio / "blkio.throttle.read_bps_device").read_text().split() == [numbers, "1048576"]
            assert (blkio / "blkio.throttle.write_iops_device").read_text().split() == [numbers, "100"]
            memory = CGROUP_ROOT / "memory" / rel["memory"].lstrip("/")
            assert "oom_kill_disable 1" in (memory / "memory.oom_control").read_text()
        bad = daemon.cli("create", "--device-read-bps", "/dev/dy-no-such-disk:1mb", "busybox", check=False)
        assert bad.returncode == 125 and b"invalid device /dev/dy-no-such-disk" in bad.stderr
        not_block = daemon.cli("create", "--device-read-bps", "/dev/null:1mb", "busybox", check=False)
        assert not_block.returncode == 125 and b"not a block device" in not_block.stderr
    finally:
        daemon.cli("rm", "-f", name, check=False)


def test_none_log_driver_keeps_nothing(daemon: LiveDaemon) -> None:
    """``--log-driver none``: output still reaches an attached client, nothing is written to disk,
    and ``logs`` says the driver cannot be read (dockerd's answer)."""
    assert daemon.cli("run", "--rm", "--log-driver", "none", "busybox", "echo", "attached").stdout == b"attached\n"
    name = unique("nolog")
    daemon.cli("run", "-d", "--name", name, "--log-driver", "none", "busybox", "sh", "-c",
               "echo to-nowhere; sleep 300")
    try:
        info = _inspect(daemon, name)
        assert info["LogPath"] == "" and info["HostConfig"]["LogConfig"]["Type"] == "none"
        cdir = daemon.data_root / "containers" / info["Id"]
        assert not list(cdir.glob("*json.log*")), sorted(p.name for p in cdir.iterdir())
        res = daemon.cli("logs", name, check=False)
        assert (res.returncode, res.stderr) == (
            1, b"Error response from daemon: configured logging driver does not support reading\n")
        docker = daemon.docker("logs", name, check=False)
        assert docker.returncode == 1 and docker.stderr.endswith(
            b"Error response from daemon: configured logging driver does not support reading\n")
        status = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket",
                                 str(daemon.sock), f"http://x/v1.45/containers/{name}/logs?stdout=1&follow=1"],
                                capture_output=True, check=True, timeout=30).stdout
        assert status == b"501"  # as dockerd: NotImplemented, before any of the stream
    finally:
        daemon.cli("rm", "-f", name, check=False)
