"""Volumes, bind mounts and tmpfs end to end through a live daemon and the stock docker CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LiveDaemon, restart_daemon, start_daemon, stop_daemon, unique

pytestmark = pytest.mark.root


@pytest.fixture
def vol(daemon: LiveDaemon) -> Iterator[str]:
    name = unique("vol")
    try:
        yield name
    finally:
        daemon.docker("volume", "rm", "-f", name, check=False)


def out(res: subprocess.CompletedProcess[bytes]) -> str:
    return res.stdout.decode()


def test_named_volume_outlives_containers_and_daemon(tmp_path: Path) -> None:
    d = start_daemon(tmp_path)
    try:
        d.cli("bootstrap", "busybox", timeout=120)
        d.docker("run", "--name", "writer", "-v", "data:/data", "busybox", "sh", "-c", "echo kept > /data/f")
        d.docker("rm", "writer")
        d = restart_daemon(d, kill=True)
        assert out(d.docker("run", "--rm", "-v", "data:/data", "busybox", "cat", "/data/f")) == "kept\n"
        info = json.loads(d.docker("volume", "inspect", "data").stdout)[0]
        assert info["Mountpoint"] == str(d.data_root / "volumes" / "data" / "_data")
        assert (Path(info["Mountpoint"]) / "f").read_text() == "kept\n"
        d.docker("volume", "rm", "data")
        assert not (d.data_root / "volumes" / "data").exists()
    finally:
        d.proc.send_signal(signal.SIGTERM)
        stop_daemon(d)


def test_copy_up_fills_a_new_volume_with_owner_and_mode(daemon: LiveDaemon, tmp_path: Path, vol: str) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN mkdir -p /app/sub && echo one > /app/sub/f && "
                                    "ln -s sub/f /app/link && chown -R 1000:1001 /app && chmod 750 /app\n")
    tag = unique("copyup")
    daemon.cli("build", "-q", "-t", tag, str(ctx), timeout=120)
    try:
        listing = out(daemon.docker("run", "--rm", "-v", f"{vol}:/app", tag, "sh", "-c",
                                    "stat -c '%u:%g %a' /app; cat /app/link; stat -c '%u:%g' /app/sub/f"))
        assert listing.split("\n")[:3] == ["1000:1001 750", "one", "1000:1001"]
        # the volume keeps what it got; a later image change does not copy again into a non-empty volume
        daemon.docker("run", "--rm", "-v", f"{vol}:/app", tag, "rm", "/app/sub/f")
        assert "f" not in out(daemon.docker("run", "--rm", "-v", f"{vol}:/app", tag, "ls", "/app/sub"))
        # nocopy: a fresh volume stays empty
        other = unique("vol")
        assert out(daemon.docker("run", "--rm", "-v", f"{other}:/app:nocopy", tag, "ls", "-A", "/app")) == ""
        daemon.docker("volume", "rm", other)
    finally:
        daemon.docker("rmi", "-f", tag, check=False)


def test_bind_mount_both_ways_and_read_only(daemon: LiveDaemon, tmp_path: Path) -> None:
    host = tmp_path / "shared"
    host.mkdir()
    (host / "from-host").write_text("h\n")
    res = daemon.docker("run", "--rm", "-v", f"{host}:/mnt", "busybox", "sh", "-c",
                        "cat /mnt/from-host && echo c > /mnt/from-ctr")
    assert out(res) == "h\n" and (host / "from-ctr").read_text() == "c\n"
    res = daemon.docker("run", "--rm", "-v", f"{host}:/mnt:ro", "busybox", "sh", "-c", "echo x > /mnt/nope",
                        check=False)
    assert res.returncode != 0 and b"Read-only file system" in res.stderr
    assert not (host / "nope").exists()
    res = daemon.docker("run", "--rm", "--mount", f"type=bind,src={host},dst=/m,readonly", "busybox",
                        "touch", "/m/x", check=False)
    assert res.returncode != 0 and b"Read-only file system" in res.stderr


def test_tmpfs_is_empty_and_leaves_nothing(daemon: LiveDaemon) -> None:
    name = unique("tmp")
    res = daemon.docker("run", "--name", name, "--tmpfs", "/scratch:size=1m", "--mount",
                        "type=tmpfs,dst=/t2,tmpfs-size=2097152", "busybox", "sh", "-c",
                        "ls -A /scratch /t2; grep -E ' /(scratch|t2) ' /proc/mounts; echo x > /scratch/f")
    text = out(res)
    assert "tmpfs /scratch tmpfs" in text and "tmpfs /t2 tmpfs" in text and "size=1024k" in text
    mounts = json.loads(daemon.docker("inspect", name).stdout)[0]["Mounts"]
    assert {"Type": "tmpfs", "Source": "", "Destination": "/t2", "Mode": "size=2097152", "RW": True,
            "Propagation": ""} in mounts
    res = daemon.docker("start", "-a", name)   # a new tmpfs each start: the file is gone
    assert "/scratch/f" not in out(res) and "f\n" not in out(res).split("/t2:")[0]
    daemon.docker("rm", name)


def test_read_only_rootfs_with_writable_volume(daemon: LiveDaemon, vol: str) -> None:
    res = daemon.docker("run", "--rm", "--read-only", "-v", f"{vol}:/data", "busybox", "sh", "-c",
                        "echo ok > /data/f && cat /data/f && touch /etc/x", check=False)
    assert out(res) == "ok\n" and res.returncode != 0 and b"Read-only file system" in res.stderr


def test_volume_in_use_rm_v_and_prune(daemon: LiveDaemon, vol: str) -> None:
    c = unique("c")
    daemon.docker("create", "--name", c, "-v", f"{vol}:/data", "-v", "/anon", "busybox", "true")
    mounts = json.loads(daemon.docker("inspect", c).stdout)[0]["Mounts"]
    anon = next(m["Name"] for m in mounts if m["Destination"] == "/anon")
    named = next(m for m in mounts if m["Destination"] == "/data")
    assert named["Type"] == "volume" and named["Name"] == vol and named["Driver"] == "local" and named["RW"]
    res = daemon.docker("volume", "rm", vol, check=False)
    assert res.returncode != 0 and f"remove {vol}: volume is in use - [".encode() in res.stderr
    daemon.docker("rm", "-v", c)
    names = out(daemon.docker("volume", "ls", "-q")).split()
    assert vol in names and anon not in names   # rm -v: anonymous gone, named kept
    keep = unique("anon")
    daemon.docker("create", "--name", keep, "-v", "/x", "busybox", "true")
    anon2 = json.loads(daemon.docker("inspect", keep).stdout)[0]["Mounts"][0]["Name"]
    daemon.docker("rm", keep)   # without -v the anonymous volume stays, unused
    res = daemon.docker("volume", "prune", "-f")
    assert anon2 in out(res) and vol not in out(res)
    res = daemon.docker("volume", "prune", "-f", "--all", "--filter", f"label!=nothing-{vol}")
    assert vol in out(res)


def test_volume_options_uid_gid_and_tmpfs_device(daemon: LiveDaemon, vol: str) -> None:
    daemon.docker("volume", "create", "-o", "uid=1000", "-o", "gid=1000", "-o", "mode=0750", vol)
    assert out(daemon.docker("run", "--rm", "-v", f"{vol}:/d", "busybox", "stat", "-c", "%u:%g %a", "/d")) \
        == "1000:1000 750\n"
    res = daemon.docker("run", "--rm", "-u", "1000", "-v", f"{vol}:/d", "busybox", "touch", "/d/mine")
    assert res.returncode == 0
    tv = unique("tvol")
    daemon.docker("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m", tv)
    try:
        text = out(daemon.docker("run", "--rm", "-v", f"{tv}:/t", "busybox", "grep", " /t ", "/proc/mounts"))
        assert text.startswith("tmpfs /t tmpfs")
        mp = json.loads(daemon.docker("volume", "inspect", tv).stdout)[0]["Mountpoint"]
        assert not os.path.ismount(mp)   # unmounted again once no container uses it
    finally:
        daemon.docker("volume", "rm", tv, check=False)


def test_volumes_from_and_df(daemon: LiveDaemon, vol: str) -> None:
    src = unique("src")
    daemon.docker("run", "--name", src, "-v", f"{vol}:/shared", "busybox", "sh", "-c",
                  "head -c 100000 /dev/zero > /shared/blob")
    try:
        res = daemon.docker("run", "--rm", "--volumes-from", f"{src}:ro", "busybox", "sh", "-c",
                            "wc -c < /shared/blob; touch /shared/x", check=False)
        assert out(res).strip() == "100000" and b"Read-only file system" in res.stderr
        usage = json.loads(subprocess.run(
            ["curl", "-s", "--unix-socket", str(daemon.sock), "http://x/v1.45/system/df?type=volume"],
            capture_output=True, check=True).stdout)
        entry = next(v for v in usage["Volumes"] if v["Name"] == vol)
        assert entry["UsageData"]["Size"] >= 100000 and entry["UsageData"]["RefCount"] == 1
    finally:
        daemon.docker("rm", "-f", src, check=False)


def test_bad_input_changes_nothing(daemon: LiveDaemon, tmp_path: Path) -> None:
    before_vols = out(daemon.docker("volume", "ls", "-q"))
    before_ctrs = out(daemon.docker("ps", "-aq"))
    cases = [
        (["-v", "rel/dir:/x"], b"includes invalid characters for a local volume name"),
        (["--mount", f"type=bind,src={tmp_path}/missing,dst=/x"], b"bind source path does not exist"),
        (["-v", "okname:relative"], b"mount path must be absolute"),
        (["-v", "dupvola:/dup", "-v", "dupvolb:/dup"], b"Duplicate mount point"),
        # dockerd takes these at create and fails the start with a 500; a 400 at create here
        (["--tmpfs", "/t:size=bogus"], b"invalid tmpfs option 'size=bogus' for /t: size must be a number"),
        (["--tmpfs", "/t:mode=999"], b"mode must be an octal permission"),
    ]
    for flags, message in cases:
        res = daemon.docker("create", *flags, "busybox", "true", check=False)
        assert res.returncode != 0 and message in res.stderr, (flags, res.stderr)
    res = daemon.docker("volume", "create", "a/b", check=False)
    assert res.returncode != 0 and b"includes invalid characters" in res.stderr
    status = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", str(daemon.sock),
         "-H", "Content-Type: application/json", "-d",
         '{"Image":"busybox","HostConfig":{"Mounts":[{"Type":"foo","Target":"/x"}]}}',
         "http://x/v1.45/containers/create"], capture_output=True, check=True).stdout
    assert status == b"400"
    for tmpfs in ('{"/x": "size=1g,exec,foo"}', '{"relative": ""}'):
        status = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", str(daemon.sock),
             "-H", "Content-Type: application/json", "-d",
             f'{{"Image":"busybox","HostConfig":{{"Tmpfs":{tmpfs}}}}}',
             "http://x/v1.45/containers/create"], capture_output=True, check=True).stdout
        assert status == b"400", tmpfs
    assert out(daemon.docker("volume", "ls", "-q")) == before_vols
    assert out(daemon.docker("ps", "-aq")) == before_ctrs
