"""commit, diff and export through the dockyard CLI and the API client against a live daemon."""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard import errors
from dockyard.client.api import Client
from dockyard.client.transport import parse_host
from tests.conftest import LiveDaemon, unique

pytestmark = pytest.mark.root

_WRITE = "mkdir -p /tmp/d && echo hi > /tmp/d/f && rm /bin/ls"


@contextlib.contextmanager
def cleanup(daemon: LiveDaemon) -> Iterator[tuple[list[str], list[str]]]:
    """Collects container names and image refs the test made; removes them whatever happens."""
    containers: list[str] = []
    images: list[str] = []
    try:
        yield containers, images
    finally:
        if containers:
            daemon.cli("rm", "-f", *containers, check=False)
        for image in reversed(images):
            daemon.cli("rmi", "-f", image, check=False)


def image_ids(client: Client) -> set[str]:
    return {i["Id"] for i in client.list_images(all=True)}


def client_for(daemon: LiveDaemon) -> Client:
    return Client(parse_host(daemon.host))


def inspect(daemon: LiveDaemon, kind: str, ref: str) -> dict:  # type: ignore[type-arg]
    return json.loads(daemon.cli(kind, "inspect", ref).stdout)[0]


def test_diff_reports_added_and_deleted_exactly(daemon: LiveDaemon) -> None:
    with cleanup(daemon) as (containers, _):
        name = unique("diff")
        containers.append(name)
        daemon.cli("run", "--name", name, "busybox", "sh", "-c", _WRITE)
        out = daemon.cli("diff", name).stdout.decode()
        assert out == "C /bin\nD /bin/ls\nC /tmp\nA /tmp/d\nA /tmp/d/f\n"
        assert daemon.cli("container", "diff", name).stdout.decode() == out


def test_diff_modified_file_and_empty(daemon: LiveDaemon) -> None:
    with cleanup(daemon) as (containers, _):
        mod, clean = unique("diffm"), unique("diffe")
        containers += [mod, clean]
        daemon.cli("run", "--name", mod, "busybox", "sh", "-c", "echo x >> /etc/passwd")
        assert "C /etc/passwd" in daemon.cli("diff", mod).stdout.decode().splitlines()
        daemon.cli("create", "--name", clean, "busybox", "true")
        assert daemon.cli("diff", clean).stdout == b""  # the init layer's stubs are not changes
        assert client_for(daemon).changes(clean) == []


def test_commit_image_runs_with_the_changes(daemon: LiveDaemon) -> None:
    with cleanup(daemon) as (containers, images):
        name, ref = unique("commit"), f"{unique('committed')}:v1"
        containers.append(name)
        daemon.cli("run", "--name", name, "busybox", "sh", "-c", _WRITE)
        images.append(ref)
        res = daemon.cli("commit", "-a", "Ann <a@x>", "-m", "my message", "-c", "ENV FOO=bar",
                         "-c", "LABEL team=core", name, ref)
        image_id = res.stdout.decode().strip()
        assert image_id.startswith("sha256:") and len(image_id) == 71
        run = daemon.cli("run", "--rm", ref, "sh", "-c", "cat /tmp/d/f; test -e /bin/ls || echo gone; echo $FOO")
        assert run.stdout == b"hi\ngone\nbar\n"
        img = inspect(daemon, "image", ref)
        base = inspect(daemon, "image", "busybox")
        assert img["Id"] == image_id
        assert img["Author"] == "Ann <a@x>"
        assert img["Config"]["Labels"]["team"] == "core"
        assert "FOO=bar" in img["Config"]["Env"]
        assert img["Config"]["Cmd"] == ["sh", "-c", _WRITE]  # the container's command
        assert img["RootFS"]["Layers"][:-1] == base["RootFS"]["Layers"]
        assert len(img["RootFS"]["Layers"]) == len(base["RootFS"]["Layers"]) + 1
        hist = client_for(daemon).history(ref)
        assert hist[0]["Id"] == image_id and hist[0]["Comment"] == "my message"
        assert hist[0]["CreatedBy"] == "sh -c " + _WRITE and hist[0]["Size"] > 0
        assert len(hist) == len(client_for(daemon).history("busybox")) + 1


def test_commit_body_config_and_changes_via_api(daemon: LiveDaemon) -> None:
    client = client_for(daemon)
    with cleanup(daemon) as (containers, images):
        name = unique("cbody")
        containers.append(name)
        daemon.cli("run", "--name", name, "-e", "KEEP=1", "busybox", "sh", "-c", "echo > /marker")
        res = client.commit(name, config={"Cmd": ["echo", "from-body"], "Env": ["X=1"], "WorkingDir": "/tmp"},
                            changes=["EXPOSE 8080", "USER 1:1"])
        images.append(res["Id"])
        cfg = client.inspect_image(res["Id"])["Config"]
        assert cfg["Cmd"] == ["echo", "from-body"]
        assert cfg["Env"][0] == "X=1" and "KEEP=1" in cfg["Env"]  # body first, container's merged in
        assert cfg["WorkingDir"] == "/tmp" and cfg["User"] == "1:1"
        assert "8080/tcp" in cfg["ExposedPorts"]
        assert daemon.cli("run", "--rm", "--user", "0", res["Id"]).stdout == b"from-body\n"
        # ENTRYPOINT without CMD drops the Cmd, as the builder does
        res2 = client.commit(name, changes=['ENTRYPOINT ["echo", "ep"]'])
        images.append(res2["Id"])
        cfg2 = client.inspect_image(res2["Id"])["Config"]
        assert cfg2["Entrypoint"] == ["echo", "ep"] and not cfg2.get("Cmd")


def test_commit_without_changes_adds_no_layer(daemon: LiveDaemon) -> None:
    client = client_for(daemon)
    with cleanup(daemon) as (containers, images):
        name = unique("cempty")
        containers.append(name)
        daemon.cli("create", "--name", name, "busybox", "true")
        image_id = daemon.cli("container", "commit", name).stdout.decode().strip()
        images.append(image_id)
        img = client.inspect_image(image_id)
        assert img["RootFS"]["Layers"] == client.inspect_image("busybox")["RootFS"]["Layers"]
        assert client.history(image_id)[0]["Size"] == 0


def test_commit_running_container_pauses_and_resumes(daemon: LiveDaemon) -> None:
    with cleanup(daemon) as (containers, images):
        name = unique("crun")
        containers.append(name)
        daemon.cli("run", "-d", "--name", name, "busybox", "sh", "-c", "echo live > /live; sleep 60")
        deadline = time.monotonic() + 10
        while b"A /live" not in daemon.cli("diff", name).stdout and time.monotonic() < deadline:
            time.sleep(0.05)
        since = str(time.time() - 1)
        image_id = daemon.cli("commit", name).stdout.decode().strip()
        images.append(image_id)
        assert inspect(daemon, "container", name)["State"]["Status"] == "running"
        assert daemon.cli("run", "--rm", image_id, "cat", "/live").stdout == b"live\n"
        events = daemon.cli("events", "--since", since, "--until", str(time.time()), "--filter",
                            f"container={name}", "--format", "{{.Action}}").stdout.decode().split()
        assert events[-3:] == ["pause", "commit", "unpause"]  # moby unpauses after the commit event


def test_commit_errors_leave_nothing_behind(daemon: LiveDaemon) -> None:
    client = client_for(daemon)
    with cleanup(daemon) as (containers, _):
        name = unique("cerr")
        containers.append(name)
        daemon.cli("run", "--name", name, "busybox", "sh", "-c", "echo > /file")
        before = image_ids(client)
        missing = unique("missing")
        res = daemon.cli("commit", missing, check=False)
        assert res.returncode == 1
        assert res.stderr.decode() == f"Error response from daemon: No such container: {missing}\n"
        res = daemon.cli("commit", "-c", "RUN echo hi", name, unique("x"), check=False)
        assert res.returncode != 0 and "RUN is not a valid change command" in res.stderr.decode()
        with pytest.raises(errors.InvalidArgument):
            client.commit(name, repo="Bad:Repo:Name")
        with pytest.raises(errors.InvalidArgument):
            client.commit(name, changes=["EXPOSE notaport"])
        assert image_ids(client) == before


def test_export_tar_holds_the_merged_filesystem(daemon: LiveDaemon, tmp_path: Path) -> None:
    with cleanup(daemon) as (containers, _):
        name = unique("export")
        containers.append(name)
        daemon.cli("run", "--name", name, "busybox", "sh", "-c", _WRITE)
        out = tmp_path / "fs.tar"
        daemon.cli("export", "-o", str(out), name)
        with tarfile.open(out) as tf:
            names = set(tf.getnames())
            member = tf.extractfile("tmp/d/f")
            assert member is not None and member.read() == b"hi\n"
        assert {"bin/sh", "etc/passwd", "tmp/d", ".dockerenv", "etc/hosts", "proc"} <= names
        assert "bin/ls" not in names
        streamed = daemon.cli("container", "export", name).stdout  # stdout is a pipe here
        with tarfile.open(fileobj=io.BytesIO(streamed)) as tf:
            assert set(tf.getnames()) == names
        res = daemon.cli("export", unique("missing"), check=False)
        assert res.returncode == 1 and b"No such container" in res.stderr
        assert not list((daemon.data_root / "tmp").glob("export-*"))  # the view mount is gone


def test_export_running_container(daemon: LiveDaemon, tmp_path: Path) -> None:
    with cleanup(daemon) as (containers, _):
        name = unique("exprun")
        containers.append(name)
        daemon.cli("run", "-d", "--name", name, "busybox", "sh", "-c", "echo run > /r; sleep 60")
        deadline = time.monotonic() + 10
        while b"A /r" not in daemon.cli("diff", name).stdout and time.monotonic() < deadline:
            time.sleep(0.05)
        data = daemon.cli("export", name).stdout
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            member = tf.extractfile("r")
            assert member is not None and member.read() == b"run\n"
        assert inspect(daemon, "container", name)["State"]["Status"] == "running"


def http(daemon: LiveDaemon, method: str, path: str, body: bytes | None = None) -> tuple[int, dict, bytes]:  # type: ignore[type-arg]
    from tests.integration.test_daemon_helpers import UnixHTTPConnection
    conn = UnixHTTPConnection(daemon.sock)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_raw_api_shapes(daemon: LiveDaemon) -> None:
    with cleanup(daemon) as (containers, images):
        name = unique("raw")
        containers.append(name)
        daemon.cli("run", "--name", name, "busybox", "sh", "-c", "rm /etc/group; echo > /new")
        status, _, body = http(daemon, "GET", f"/v1.45/containers/{name}/changes")
        assert status == 200
        assert json.loads(body) == [{"Path": "/etc", "Kind": 0}, {"Path": "/etc/group", "Kind": 2},
                                    {"Path": "/new", "Kind": 1}]
        status, _, body = http(daemon, "POST", f"/v1.45/commit?container={name}&pause=0", b"null")
        assert status == 201, body
        image_id = json.loads(body)["Id"]
        images.append(image_id)
        assert set(json.loads(body)) == {"Id"}
        status, headers, body = http(daemon, "GET", f"/containers/{name}/export")
        assert status == 200 and headers["content-type"] == "application/x-tar"
        with tarfile.open(fileobj=io.BytesIO(body)) as tf:
            assert "new" in tf.getnames()
        status, _, body = http(daemon, "GET", "/containers/nope-x/changes")
        assert (status, json.loads(body)) == (404, {"message": "No such container: nope-x"})
        status, _, body = http(daemon, "GET", "/containers/nope-x/export")
        assert (status, json.loads(body)) == (404, {"message": "No such container: nope-x"})
        status, _, body = http(daemon, "POST", f"/commit?container={name}&repo=UPPER", b"")
        assert status == 400, body
        status, _, body = http(daemon, "POST", f"/commit?container={name}", b'{"Cmd": "x", "Env": 3}')
        assert status == 400 and b"Env" in body


def test_export_client_going_away_cleans_up(daemon: LiveDaemon) -> None:
    import socket
    with cleanup(daemon) as (containers, _):
        name = unique("exgone")
        containers.append(name)
        daemon.cli("run", "--name", name, "busybox", "sh", "-c",
                   "dd if=/dev/urandom of=/big bs=1M count=24 2>/dev/null")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(30)
        sock.connect(str(daemon.sock))
        sock.sendall(f"GET /containers/{name}/export HTTP/1.1\r\nHost: docker\r\n\r\n".encode())
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        sock.close()
        deadline = time.monotonic() + 10
        while list((daemon.data_root / "tmp").glob("export-*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not list((daemon.data_root / "tmp").glob("export-*"))
        mounts = Path("/proc/self/mountinfo").read_text()
        assert f"{daemon.data_root}/tmp/export-" not in mounts
