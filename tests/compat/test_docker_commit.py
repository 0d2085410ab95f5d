"""The stock docker CLI's commit, diff and export against dockyardd."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from tests.conftest import LiveDaemon, unique

pytestmark = [pytest.mark.root, pytest.mark.compat,
              pytest.mark.skipif(shutil.which("docker") is None, reason="docker CLI not installed")]


def test_docker_diff_commit_export(daemon: LiveDaemon, tmp_path: Path) -> None:
    name, repo = unique("dcommit"), unique("dcommitted")
    ref = f"{repo}:v2"
    try:
        daemon.docker("run", "--name", name, "busybox", "sh", "-c",
                      "mkdir /tmp/k && echo hi > /tmp/k/f && rm /bin/ls")
        diff = daemon.docker("diff", name).stdout.decode()
        assert diff == "C /bin\nD /bin/ls\nC /tmp\nA /tmp/k\nA /tmp/k/f\n"
        res = daemon.docker("commit", "--change", 'CMD ["cat", "/tmp/k/f"]', "-m", "via docker",
                            "-a", "someone", name, ref)
        image_id = res.stdout.decode().strip()
        assert image_id.startswith("sha256:")
        assert daemon.docker("run", "--rm", ref).stdout == b"hi\n"
        img = json.loads(daemon.docker("image", "inspect", ref).stdout)[0]
        assert img["Id"] == image_id and img["Config"]["Cmd"] == ["cat", "/tmp/k/f"]
        assert img["Author"] == "someone"
        hist = daemon.docker("history", "--format", "{{.Comment}}", ref).stdout.decode().splitlines()
        assert hist[0] == "via docker"
        out = tmp_path / "c.tar"
        daemon.docker("export", "-o", str(out), name)
        with tarfile.open(out) as tf:
            member = tf.extractfile("tmp/k/f")
            assert member is not None and member.read() == b"hi\n"
            assert "bin/ls" not in tf.getnames()
        piped = daemon.docker("container", "export", name).stdout
        with tarfile.open(fileobj=io.BytesIO(piped)) as tf:
            assert "tmp/k/f" in tf.getnames()
        missing = daemon.docker("commit", unique("nope"), check=False)
        assert missing.returncode == 1 and b"No such container" in missing.stderr
        bad = daemon.docker("commit", "--change", "FROM busybox", name, check=False)
        assert bad.returncode == 1 and b"FROM is not a valid change command" in bad.stderr
    finally:
        daemon.docker("rm", "-f", name, check=False)
        daemon.docker("rmi", "-f", ref, check=False)


def test_docker_diff_of_unchanged_container_is_empty(daemon: LiveDaemon) -> None:
    name = unique("dclean")
    try:
        daemon.docker("create", "--name", name, "busybox", "true")
        res = daemon.docker("diff", name)
        assert res.stdout == b"" and res.stderr == b""
    finally:
        daemon.docker("rm", "-f", name, check=False)


def test_sdk_commit_diff_export(daemon: LiveDaemon) -> None:
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=daemon.host, version="auto")
    name, repo = unique("sdkc"), unique("sdkcommitted")
    image = None
    try:
        c = client.containers.run("busybox", ["sh", "-c", "echo sdk > /sdk"], name=name, detach=True)
        assert c.wait()["StatusCode"] == 0
        assert c.diff() == [{"Path": "/sdk", "Kind": 1}]
        image = c.commit(repository=repo, tag="t", message="sdk msg", changes=["ENV SDK=1"])
        assert f"{repo}:t" in image.tags
        assert "SDK=1" in image.attrs["Config"]["Env"]
        assert client.containers.run(image.id, ["cat", "/sdk"], remove=True) == b"sdk\n"
        data = b"".join(c.export())
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            member = tf.extractfile("sdk")
            assert member is not None and member.read() == b"sdk\n"
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            client.containers.get(name).remove(force=True)
        if image is not None:
            with contextlib.suppress(docker.errors.NotFound):
                client.images.remove(image.id, force=True)
        client.close()
