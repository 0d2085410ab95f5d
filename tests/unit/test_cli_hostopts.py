"""``run``/``create`` flags for logging, /dev/shm, the cgroup parent, labels from files, the
container-ID file and the CPU/memory/block-IO limits: the create body the docker CLI sends, and
what the daemon refuses at create."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.engine.create import check_cgroup_parent, check_log_config, log_size
from dockyard.errors import InvalidArgument
from tests.runflags import run_body


def test_host_and_limit_flags_make_docker_fields(tmp_path: Path) -> None:
    labels = tmp_path / "labels"
    labels.write_text("# team labels\n\nteam=core\n  tier=web\nshared=from-file\n")
    body = run_body("--log-driver", "local", "--log-opt", "max-size=1m", "--log-opt", "max-file=2",
                    "--shm-size", "128m", "--cgroup-parent", "/ci/jobs", "--oom-kill-disable",
                    "--domainname", "example.org", "--label-file", str(labels), "-l", "shared=from-flag",
                    "--cpu-period", "100000", "--cpu-quota", "50000", "--cpuset-mems", "0",
                    "--memory-reservation", "64m", "--blkio-weight", "300", "--cidfile", str(tmp_path / "cid"))
    host = body["HostConfig"]
    assert host["LogConfig"] == {"Type": "local", "Config": {"max-file": "2", "max-size": "1m"}}
    assert host["ShmSize"] == 128 << 20 and host["CgroupParent"] == "/ci/jobs" and host["OomKillDisable"] is True
    assert (host["CpuPeriod"], host["CpuQuota"], host["CpusetMems"]) == (100000, 50000, "0")
    assert host["MemoryReservation"] == 64 << 20 and host["BlkioWeight"] == 300
    assert host["ContainerIDFile"] == str(tmp_path / "cid")
    assert body["Domainname"] == "example.org"
    assert body["Labels"] == {"shared": "from-flag", "team": "core", "tier": "web"}  # the flag wins


def test_defaults_send_what_docker_sends() -> None:
    host = run_body()["HostConfig"]
    assert host["LogConfig"] == {"Type": "", "Config": {}} and host["CgroupParent"] == ""
    assert host["OomKillDisable"] is False and "ShmSize" not in host and "ContainerIDFile" not in host


def test_bad_flags_are_refused_by_the_client(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="invalid logging opts for driver none"):
        run_body("--log-driver", "none", "--log-opt", "max-size=1m")
    with pytest.raises(InvalidArgument, match=r"open .*missing: No such file"):
        run_body("--label-file", str(tmp_path / "missing"))


def test_log_config_checked_as_dockerd_checks_it() -> None:
    check_log_config("", {"max-size": "10m", "max-file": "3", "compress": "true", "tag": "x"})
    check_log_config("local", {"max-size": "1.5g"})
    check_log_config("none", {})
    assert log_size("10m") == 10_000_000 and log_size("2kb") == 2000 and log_size("100") == 100
    for kind, opts, why in (("syslog", {}, "no log driver named 'syslog'"),
                            ("json-file", {"max-bytes": "1"}, "unknown log opt 'max-bytes' for json-file"),
                            ("local", {"tag": "x"}, "unknown log opt 'tag' for local"),
                            ("", {"max-size": "bogus"}, "invalid size: 'bogus'"),
                            ("", {"max-size": "0"}, "max-size must be a positive number"),
                            ("", {"max-file": "0"}, "max-file cannot be less than 1"),
                            ("", {"max-file": "two"}, "not a number"),
                            ("none", {"max-size": "1m"}, "unknown log opt 'max-size' for none")):
        with pytest.raises(InvalidArgument, match=why):
            check_log_config(kind, opts)


def test_cgroup_parent_must_be_a_plain_path() -> None:
    for ok in ("", "/ci", "ci/jobs", "/a/b/"):
        check_cgroup_parent(ok)
    for bad in ("/a/../b", "..", "/a//b", "./a", "a\nb"):
        with pytest.raises(InvalidArgument, match="invalid cgroup parent"):
            check_cgroup_parent(bad)


def test_block_io_flags() -> None:
    host = run_body("--blkio-weight-device", "/dev/sda:300", "--device-read-bps", "/dev/sda:1mb",
                    "--device-write-bps", "/dev/sdb:512k", "--device-read-iops", "/dev/sda:1000",
                    "--device-write-iops", "/dev/sda:20")["HostConfig"]
    assert host["BlkioWeightDevice"] == [{"Path": "/dev/sda", "Weight": 300}]
    assert host["BlkioDeviceReadBps"] == [{"Path": "/dev/sda", "Rate": 1 << 20}]
    assert host["BlkioDeviceWriteBps"] == [{"Path": "/dev/sdb", "Rate": 512 << 10}]
    assert host["BlkioDeviceReadIOps"] == [{"Path": "/dev/sda", "Rate": 1000}]
    assert host["BlkioDeviceWriteIOps"] == [{"Path": "/dev/sda", "Rate": 20}]
    for flags, why in ((("--device-read-bps", "sda:1mb"), "bad format for device path"),
                       (("--device-read-bps", "/dev/sda"), "bad format: /dev/sda"),
                       (("--device-read-bps", "/dev/sda:fast"), "invalid rate for device"),
                       (("--device-read-iops", "/dev/sda:1k"), "invalid rate for device"),
                       (("--blkio-weight-device", "/dev/sda:5"), "invalid weight for device")):
        with pytest.raises(InvalidArgument, match=why):
            run_body(*flags)
