"""The stock docker CLI against dockyardd: same client, our engine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

from tests.conftest import LiveDaemon, unique
from tests.terminal import run_in_pty

pytestmark = [pytest.mark.root, pytest.mark.compat,
              pytest.mark.skipif(shutil.which("docker") is None, reason="docker CLI not installed")]


def test_docker_run_echo(daemon: LiveDaemon) -> None:
    res = daemon.docker("run", "--rm", "busybox", "echo", "hi")
    assert res.stdout == b"hi\n"


def test_docker_version_and_info(daemon: LiveDaemon) -> None:
    ver = json.loads(daemon.docker("version", "--format", "{{json .}}").stdout)
    assert ver["Server"]["ApiVersion"] == "1.45"
    info = daemon.docker("info", "--format", "{{.Driver}} {{.OSType}}").stdout.decode().strip()
    assert info == "overlay2 linux"


def test_docker_ps_logs_stop_rm(daemon: LiveDaemon) -> None:
    name = unique("dps")
    daemon.docker("run", "-d", "--name", name, "busybox", "sh", "-c",
                  "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done")
    ps = daemon.docker("ps", "--format", "{{.Names}}\t{{.Image}}\t{{.Status}}").stdout.decode()
    assert any(line.startswith(f"{name}\tbusybox\tUp") for line in ps.splitlines())
    proc = subprocess.Popen(["docker", "logs", "-f", name], stdout=subprocess.PIPE,
                            env={**os.environ, "DOCKER_HOST": daemon.host})
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.startswith(b"tick ")
    daemon.docker("stop", "-t", "1", name)
    proc.wait(timeout=30)  # logs -f ends when the container stops
    daemon.docker("rm", name)
    assert name not in daemon.docker("ps", "-a", "--format", "{{.Names}}").stdout.decode()


def test_docker_run_it_under_pty(daemon: LiveDaemon) -> None:
    env = {**os.environ, "DOCKER_HOST": daemon.host, "DOCKER_CONFIG": str(daemon.data_root.parent / "dc")}
    code, out = run_in_pty(["docker", "run", "-it", "--rm", "busybox", "sh"],
                           b"tty; echo marker-$((6*7)); exit 4\r", env=env, after=b"#")
    assert b"/dev/pts/" in out and b"marker-42" in out
    assert code == 4


def test_docker_exec_it(daemon: LiveDaemon) -> None:
    name = unique("dexec")
    daemon.docker("run", "-d", "--name", name, "busybox", "sleep", "60")
    env = {**os.environ, "DOCKER_HOST": daemon.host, "DOCKER_CONFIG": str(daemon.data_root.parent / "dc")}
    try:
        code, out = run_in_pty(["docker", "exec", "-it", name, "sh"], b"echo exec-$((2+3)); exit 0\r",
                               env=env, after=b"#")
        assert b"exec-5" in out and code == 0
        res = daemon.docker("exec", name, "sh", "-c", "echo $((1+1)) >&2; exit 7", check=False)
        assert res.returncode == 7 and res.stderr == b"2\n"
    finally:
        daemon.docker("rm", "-f", name, check=False)


def test_docker_save_load_images(daemon: LiveDaemon, tmp_path) -> None:
    tar = tmp_path / "bb.tar"
    tag = f"compat-{unique('img')}:v1"
    daemon.docker("tag", "busybox", tag)
    daemon.docker("save", "-o", str(tar), tag)
    assert tar.stat().st_size > 500_000
    daemon.docker("rmi", tag)
    out = daemon.docker("load", "-i", str(tar)).stdout.decode()
    assert f"Loaded image: {tag}" in out
    images = daemon.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.decode().split()
    assert tag in images
    daemon.docker("rmi", tag)


def test_docker_errors(daemon: LiveDaemon) -> None:
    res = daemon.docker("inspect", "no-such-container-xyz", check=False)
    assert (res.returncode != 0 and b"No such object" in res.stderr) or b"No such container" in res.stderr
    res = daemon.docker("rm", "no-such-container-xyz", check=False)
    assert res.returncode != 0 and b"No such container: no-such-container-xyz" in res.stderr


def test_docker_run_rm_start_failure_removes(daemon: LiveDaemon) -> None:
    """A start that fails under `docker run --rm` returns (the CLI waits for `removed`) and
    leaves no container behind."""
    name = unique("startfail")
    res = daemon.docker("run", "--rm", "--name", name, "busybox", "no-such-command", check=False, timeout=30)
    assert res.returncode == 127 and b"executable file not found" in res.stderr
    assert name not in daemon.docker("ps", "-a", "--format", "{{.Names}}").stdout.decode()


def test_docker_rm_paused_and_image_events(daemon: LiveDaemon) -> None:
    name = unique("paused")
    daemon.docker("run", "-d", "--name", name, "busybox", "sleep", "60")
    try:
        daemon.docker("pause", name)
        res = daemon.docker("rm", name, check=False)
        assert res.returncode != 0 and b"You cannot remove a paused container" in res.stderr
    finally:
        daemon.docker("rm", "-f", name)
    tag = f"{unique('evt')}:1"
    since = str(int(time.time()) - 1)
    image_id = daemon.docker("image", "inspect", "-f", "{{.Id}}", "busybox").stdout.decode().strip()
    daemon.docker("tag", "busybox", tag)
    daemon.docker("rmi", tag)
    events = daemon.docker("events", "--since", since, "--until", str(int(time.time()) + 1),
                           "--filter", "type=image", "--format", "{{.Action}} {{.Actor.ID}} {{index .Actor.Attributes \"name\"}}"
                           ).stdout.decode().splitlines()
    assert f"tag {image_id} {tag}" in events
    assert f"untag {image_id} {image_id}" in events


def test_docker_image_inspect_graph_driver(daemon: LiveDaemon) -> None:
    data = json.loads(daemon.docker("image", "inspect", "-f", "{{json .GraphDriver}}", "busybox").stdout)
    assert data["Name"] == "overlay2"
    upper = data["Data"]["UpperDir"]
    assert os.path.isfile(os.path.join(upper, "bin", "busybox"))


def test_docker_update_pids_limit_and_rename_errors(daemon: LiveDaemon) -> None:
    """``update --pids-limit`` reaches the running container's cgroup and -1 lifts it again;
    inspect shows null for "unlimited" as dockerd does; rename refusals carry dockerd's prefix."""
    name, other = unique("upd"), unique("upd")
    daemon.docker("run", "-d", "--name", name, "busybox", "sleep", "60")
    daemon.docker("create", "--name", other, "busybox", "true")
    try:
        def pids_max() -> str:
            out = daemon.docker("exec", name, "sh", "-c",
                                "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max")
            return out.stdout.decode().strip()

        def limit() -> object:
            return json.loads(daemon.docker("inspect", name).stdout)[0]["HostConfig"]["PidsLimit"]

        assert limit() is None and pids_max() == "max"
        daemon.docker("update", "--pids-limit", "7", name)
        assert limit() == 7 and pids_max() == "7"
        daemon.docker("update", "--pids-limit", "-1", name)
        assert pids_max() == "max"
        res = daemon.docker("rename", other, name, check=False)
        assert res.returncode == 1
        assert ("Error when allocating new name: Conflict. The container name "
                f'"/{name}" is already in use') in res.stderr.decode()
    finally:
        daemon.docker("rm", "-f", name, other, check=False)


def test_docker_build_classic_builder_same_image(daemon: LiveDaemon, tmp_path) -> None:
    """``DOCKER_BUILDKIT=0 docker build`` speaks POST /build's classic stream; on the same context
    it gets the image ``dockyard build`` made (every step a cache hit), and a fresh build works."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY msg.txt /msg.txt\nRUN cp /msg.txt /copy.txt\n"
                                    'CMD ["cat", "/copy.txt"]\n')
    (ctx / "msg.txt").write_text("built by the docker CLI\n")
    ours, theirs = unique("dybuild"), unique("dkbuild")
    legacy = {"DOCKER_BUILDKIT": "0"}
    try:
        first = daemon.cli("build", "-q", "-t", ours, str(ctx)).stdout.decode().strip()
        res = daemon.docker("build", "-t", theirs, str(ctx), env_extra=legacy)
        out = res.stdout.decode()
        assert "Step 1/4 : FROM busybox" in out and "Using cache" in out
        assert f"Successfully tagged {theirs}:latest" in out
        assert daemon.docker("image", "inspect", "-f", "{{.Id}}", theirs).stdout.decode().strip() == first
        assert daemon.docker("run", "--rm", theirs).stdout == b"built by the docker CLI\n"
        fail = daemon.docker("build", "--no-cache", "-f", "-", str(ctx), env_extra=legacy, check=False,
                             input=b"FROM busybox\nRUN exit 4\n")
        assert fail.returncode != 0 and b"returned a non-zero code: 4" in fail.stderr
    finally:
        daemon.docker("rmi", ours, theirs, check=False)


def test_docker_network_lifecycle(daemon: LiveDaemon) -> None:
    """network create/ls/inspect/connect/disconnect/rm; names and aliases resolve on the network."""
    net, srv, late = unique("dnet"), unique("dsrv"), unique("dlate")
    try:
        net_id = daemon.docker("network", "create", "--label", "compat=1", net).stdout.decode().strip()
        assert len(net_id) == 64
        assert net in daemon.docker("network", "ls", "--filter", "label=compat=1", "--format", "{{.Name}}").stdout.decode().split()
        daemon.docker("run", "-d", "--name", srv, "--network", net, "--network-alias", "web", "busybox",
                      "sh", "-c", "echo up > /index.html; exec httpd -f -p 80 -h /")
        for who in (srv, "web"):
            out = daemon.docker("run", "--rm", "--network", net, "busybox", "sh", "-c",
                                f"for i in $(seq 50); do wget -qO- http://{who}/index.html && exit 0; sleep 0.1; done; exit 1")
            assert out.stdout == b"up\n"
        daemon.docker("run", "-d", "--name", late, "busybox", "sleep", "60")
        daemon.docker("network", "connect", "--alias", "late-alias", net, late)
        assert daemon.docker("exec", late, "wget", "-qO-", "http://web/index.html").stdout == b"up\n"
        assert daemon.docker("exec", srv, "ping", "-c1", "-W2", "late-alias").returncode == 0
        members = json.loads(daemon.docker("network", "inspect", "-f", "{{json .Containers}}", net).stdout)
        assert {m["Name"] for m in members.values()} == {srv, late}
        busy = daemon.docker("network", "rm", net, check=False)
        assert busy.returncode != 0 and b"has active endpoints" in busy.stderr
        daemon.docker("network", "disconnect", net, late)
        nets = json.loads(daemon.docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", late).stdout)
        assert list(nets) == ["bridge"]
    finally:
        daemon.docker("rm", "-f", srv, late, check=False)
        daemon.docker("network", "rm", net, check=False)
    assert net not in daemon.docker("network", "ls", "--format", "{{.Name}}").stdout.decode().split()


def test_docker_volume_lifecycle(daemon: LiveDaemon) -> None:
    """volume create/ls/inspect/rm/prune; data outlives the container; -v and --mount both work."""
    vol, holder = unique("dvol"), unique("dhold")
    try:
        assert daemon.docker("volume", "create", "--label", f"compat={vol}", vol).stdout.decode().strip() == vol
        daemon.docker("run", "--rm", "-v", f"{vol}:/data", "busybox", "sh", "-c", "echo kept > /data/f")
        out = daemon.docker("run", "--rm", "--mount", f"type=volume,src={vol},dst=/d,readonly", "busybox",
                            "sh", "-c", "cat /d/f; touch /d/g 2>/dev/null || echo read-only")
        assert out.stdout == b"kept\nread-only\n"
        mountpoint = daemon.docker("volume", "inspect", "-f", "{{.Mountpoint}}", vol).stdout.decode().strip()
        assert os.path.isfile(os.path.join(mountpoint, "f"))
        listed = daemon.docker("volume", "ls", "-q", "--filter", f"label=compat={vol}").stdout.decode().split()
        assert listed == [vol]
        daemon.docker("create", "--name", holder, "-v", f"{vol}:/data", "busybox", "true")
        busy = daemon.docker("volume", "rm", vol, check=False)
        assert busy.returncode != 0 and b"volume is in use" in busy.stderr
        daemon.docker("rm", holder)
        daemon.docker("volume", "rm", vol)
        assert vol not in daemon.docker("volume", "ls", "-q").stdout.decode().split()
        # an anonymous volume goes with `rm -v`
        daemon.docker("create", "--name", holder, "-v", "/anon", "busybox", "true")
        anon = json.loads(daemon.docker("inspect", "-f", "{{json .Mounts}}", holder).stdout)[0]["Name"]
        assert anon in daemon.docker("volume", "ls", "-q").stdout.decode().split()
        daemon.docker("rm", "-v", holder)
        assert anon not in daemon.docker("volume", "ls", "-q").stdout.decode().split()
    finally:
        daemon.docker("rm", "-f", holder, check=False)
        daemon.docker("volume", "rm", "-f", vol, check=False)


def test_docker_push_pull_loopback_registry(daemon: LiveDaemon, registry, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """build → push to ``dockyard registry serve`` on loopback → rmi → pull → run, with digests
    agreeing; a missing tag is an error."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    marker = unique("cli")
    (ctx / "Dockerfile").write_text(f'FROM busybox\nRUN echo {marker} > /m\nCMD ["cat", "/m"]\n')
    repo = f"{registry.host}/cli/{unique('app')}"
    ref = f"{repo}:v1"
    image_id = ""
    try:
        daemon.docker("build", "-q", "-t", ref, str(ctx), env_extra={"DOCKER_BUILDKIT": "0"})
        image_id = daemon.docker("image", "inspect", "-f", "{{.Id}}", ref).stdout.decode().strip()
        out = daemon.docker("push", ref).stdout.decode()
        assert f"The push refers to repository [{repo}]" in out and "Pushed" in out
        digest = out.strip().splitlines()[-1].split()[2]
        assert digest.startswith("sha256:")
        daemon.docker("rmi", ref)
        pulled = daemon.docker("pull", ref).stdout.decode()
        assert f"Digest: {digest}" in pulled and f"Status: Downloaded newer image for {ref}" in pulled
        digests = daemon.docker("image", "inspect", "-f", "{{json .RepoDigests}}", ref).stdout
        assert f"{repo}@{digest}" in json.loads(digests)
        assert daemon.docker("image", "inspect", "-f", "{{.Id}}", ref).stdout.decode().strip() == image_id
        assert daemon.docker("run", "--rm", ref).stdout == f"{marker}\n".encode()
        by_digest = daemon.docker("run", "--rm", f"{repo}@{digest}").stdout
        assert by_digest == f"{marker}\n".encode()
        missing = daemon.docker("pull", f"{repo}:nope", check=False)
        assert missing.returncode != 0 and b"not found" in missing.stderr
    finally:
        daemon.docker("rmi", "-f", ref, *([image_id] if image_id else []), check=False)
