"""User namespaces through a live daemon: ``UsernsMode: auto`` per container and the daemon-wide
``--userns-remap``. Root inside is an unprivileged id on the host; image layers are shared through
idmapped mounts, never chowned."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.conftest import LiveDaemon, start_daemon, stop_daemon, unique

pytestmark = pytest.mark.root

RUNTIMES = ["dockyard-runtime", "runc"]


def api(d: LiveDaemon) -> docker.APIClient:
    return docker.APIClient(base_url=d.host, version="1.44")


def run_auto(d: LiveDaemon, name: str, cmd: str, runtime: str, binds: list[str] | None = None) -> str:
    """Create and start a container with UsernsMode "auto" (the docker CLI and SDK only know
    "host", so the raw API is used, as Podman's clients would)."""
    c = api(d).create_container("busybox", ["sh", "-c", cmd], name=name, host_config={
        "UsernsMode": "auto", "Runtime": runtime, "Binds": binds or [], "NetworkMode": "none"})
    api(d).start(c["Id"])
    return str(c["Id"])


def host_uid_map(d: LiveDaemon, name: str) -> tuple[int, int, int]:
    pid = json.loads(d.docker("inspect", "-f", "{{json .State.Pid}}", name).stdout)
    inside, outside, size = (int(x) for x in Path(f"/proc/{pid}/uid_map").read_text().split())
    return inside, outside, size


def wait_file(path: Path) -> None:
    for _ in range(100):
        if path.exists():
            return
        subprocess.run(["sleep", "0.05"])
    raise AssertionError(f"{path} never appeared")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_userns_auto_root_is_nobody_on_the_host(daemon: LiveDaemon, tmp_path: Path, runtime: str) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    a, b = unique("uns-a"), unique("uns-b")
    try:
        for name in (a, b):
            run_auto(daemon, name, f"id -u > /shared/{name}.id; touch /made-by-root; "
                     f"echo ok > /shared/{name}; exec sleep 600", runtime, [f"{shared}:/shared"])
        for name in (a, b):
            wait_file(shared / name)
        ranges = [host_uid_map(daemon, n) for n in (a, b)]
        for name, (inside, outside, size) in zip((a, b), ranges, strict=True):
            assert (shared / f"{name}.id").read_text().strip() == "0"     # root inside
            assert inside == 0 and size == 65536 and outside >= 100000
            assert (shared / name).stat().st_uid == outside            # a nobody on the host
            upper = Path(json.loads(daemon.docker("inspect", "-f", "{{json .GraphDriver.Data}}",
                                                  name).stdout)["UpperDir"])
            assert (upper / "made-by-root").stat().st_uid == outside
            pid = json.loads(daemon.docker("inspect", "-f", "{{json .State.Pid}}", name).stdout)
            status = Path(f"/proc/{pid}/status").read_text()
            assert f"Uid:\t{outside}\t" in status
        (_, start_a, size_a), (_, start_b, _) = ranges
        assert start_a + size_a <= start_b or start_b + size_a <= start_a   # disjoint
        # exec joins the container's user namespace
        out = daemon.docker("exec", a, "sh", "-c", "id -u; cat /proc/self/uid_map").stdout.decode().split()
        assert out[0] == "0" and int(out[2]) == ranges[0][1]
        # the image's files are root's inside, and stay owned by 0 on disk (idmapped, not chowned)
        ls = daemon.docker("exec", a, "stat", "-c", "%u", "/bin/busybox").stdout.decode().strip()
        assert ls == "0"
        lower = json.loads(daemon.docker("inspect", "-f", "{{json .GraphDriver.Data}}", a).stdout)["LowerDir"]
        assert any((Path(p) / "bin" / "busybox").exists() and (Path(p) / "bin" / "busybox").stat().st_uid == 0
                   for p in lower.split(":"))
    finally:
        daemon.docker("rm", "-f", a, b, check=False)


def test_userns_auto_range_is_released_with_the_container(daemon: LiveDaemon) -> None:
    name = unique("uns-r")
    run_auto(daemon, name, "exec sleep 600", "runc")
    first = host_uid_map(daemon, name)[1]
    daemon.docker("rm", "-f", name)
    run_auto(daemon, name, "exec sleep 600", "runc")
    try:
        assert host_uid_map(daemon, name)[1] == first
    finally:
        daemon.docker("rm", "-f", name)


def test_userns_mode_refusals(daemon: LiveDaemon) -> None:
    client = api(daemon)
    for host_config, message in (
            ({"UsernsMode": "auto", "Privileged": True}, "privileged mode is incompatible"),
            ({"UsernsMode": "auto", "NetworkMode": "host"}, "host's network namespace"),
            ({"UsernsMode": "bogus"}, "invalid USER mode")):
        with pytest.raises(docker.errors.APIError) as err:
            client.create_container("busybox", ["true"], host_config=host_config)
        assert err.value.status_code == 400 and message in str(err.value)


@pytest.fixture
def remap_user() -> Iterator[tuple[str, int]]:
    """A user with its own subordinate range, removed afterwards with its subuid/subgid lines."""
    name = f"dyt{uuid.uuid4().hex[:8]}"
    start = 300000 + (uuid.uuid4().int % 1000) * 65536
    subprocess.run(["useradd", "--system", "--no-create-home", "--user-group", name], check=True)
    lines = {p: f"{name}:{start}:65536\n" for p in ("/etc/subuid", "/etc/subgid")}
    existed = {p: os.path.exists(p) for p in lines}
    for path, line in lines.items():
        with open(path, "a") as f:
            f.write(line)
    try:
        yield name, start
    finally:
        for path, line in lines.items():
            text = Path(path).read_text().replace(line, "")
            if text or existed[path]:
                Path(path).write_text(text)
            else:   # the test made the file: leave the host as it found it
                os.unlink(path)
        subprocess.run(["userdel", name], check=False)
        subprocess.run(["groupdel", name], check=False, capture_output=True)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_userns_remap_daemon(tmp_path: Path, remap_user: tuple[str, int], runtime: str) -> None:
    user, start = remap_user
    d = start_daemon(tmp_path, "--userns-remap", user)
    try:
        d.cli("bootstrap", "busybox", timeout=120)
        assert "name=userns" in json.loads(d.docker("info", "-f", "{{json .SecurityOptions}}").stdout)
        vol = unique("uns-vol")
        out = d.docker("run", "--rm", "--runtime", runtime, "-v", f"{vol}:/data", "busybox", "sh", "-c",
                       "id -u; cat /proc/self/uid_map; echo hi > /data/f").stdout.decode().split()
        assert out[:3] == ["0", "0", str(start)]
        data = Path(json.loads(d.docker("volume", "inspect", "-f", "{{json .Mountpoint}}", vol).stdout))
        assert (data / "f").stat().st_uid == start and data.stat().st_uid == start
        # --userns=host opts out; privileged needs it
        host = d.docker("run", "--rm", "--runtime", runtime, "--userns", "host", "busybox",
                        "cat", "/proc/self/uid_map").stdout.decode().split()
        assert host[:2] == ["0", "0"]
        res = d.docker("run", "--rm", "--privileged", "busybox", "true", check=False)
        assert res.returncode != 0 and b"privileged mode is incompatible" in res.stderr
        d.docker("run", "--rm", "--runtime", runtime, "--privileged", "--userns", "host", "busybox", "true")
    finally:
        stop_daemon(d)


def test_userns_commit_export_and_cp_use_the_containers_own_ids(daemon: LiveDaemon, tmp_path: Path) -> None:
    """Files on disk carry host ids; images, exports and copies carry the container's."""
    import io
    import tarfile

    name, image = unique("uns-c"), unique("uns-img")
    run_auto(daemon, name, "mkdir /made && echo x > /made/f && chown 1000:1000 /made/f && exec sleep 600", "runc")
    try:
        start = host_uid_map(daemon, name)[1]
        upper = Path(json.loads(daemon.docker("inspect", "-f", "{{json .GraphDriver.Data}}", name).stdout)["UpperDir"])
        for _ in range(100):
            if (upper / "made" / "f").exists():
                break
            subprocess.run(["sleep", "0.05"])
        assert (upper / "made" / "f").stat().st_uid == start + 1000
        # copy out: the tar has the container's ids
        tar = daemon.docker("cp", f"{name}:/made", "-").stdout
        with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
            owners = {m.name: (m.uid, m.gid) for m in tf.getmembers()}
        assert owners == {"made": (0, 0), "made/f": (1000, 1000)}
        # copy in: root's file inside is the container's root on disk
        src = tmp_path / "in.txt"
        src.write_text("in")
        daemon.docker("cp", str(src), f"{name}:/made/in.txt")
        assert (upper / "made" / "in.txt").stat().st_uid == start
        assert daemon.docker("exec", name, "stat", "-c", "%u", "/made/in.txt").stdout.decode().strip() == "0"
        # commit: the layer records the container's ids; a plain container sees them as made
        daemon.docker("commit", name, image)
        out = daemon.docker("run", "--rm", image, "stat", "-c", "%u:%g", "/made", "/made/f").stdout.decode()
        assert out.split() == ["0:0", "1000:1000"]
        exported = daemon.docker("export", name).stdout
        with tarfile.open(fileobj=io.BytesIO(exported)) as tf:
            f = tf.getmember("made/f")
        assert (f.uid, f.gid) == (1000, 1000)
    finally:
        daemon.docker("rm", "-f", name, check=False)
        daemon.docker("rmi", image, check=False)
