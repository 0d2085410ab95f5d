"""The docker SDK for Python against dockyardd."""

from __future__ import annotations

import pytest

from tests.conftest import LiveDaemon, unique

docker = pytest.importorskip("docker")
pytestmark = [pytest.mark.root, pytest.mark.compat]


@pytest.fixture()
def client(daemon: LiveDaemon):  # type: ignore[no-untyped-def]
    c = docker.DockerClient(base_url=daemon.host, version="auto")
    yield c
    c.close()


def test_sdk_run_list_logs_remove(client) -> None:  # type: ignore[no-untyped-def]
    assert client.ping() is True
    out = client.containers.run("busybox", ["echo", "from-sdk"], remove=True)
    assert out == b"from-sdk\n"
    name = unique("sdk")
    c = client.containers.run("busybox", ["sh", "-c", "echo a; echo b >&2; sleep 30"], name=name, detach=True)
    assert c.id and len(c.id) == 64
    assert name in [x.name for x in client.containers.list()]
    c.reload()
    assert c.status == "running"
    for _ in range(50):
        if c.logs(stdout=True, stderr=True) == b"a\nb\n":
            break
        import time
        time.sleep(0.1)
    assert c.logs(stdout=True, stderr=False) == b"a\n"
    assert c.logs(stdout=False, stderr=True) == b"b\n"
    res = c.exec_run(["sh", "-c", "echo exec; exit 2"])
    assert res.exit_code == 2 and res.output == b"exec\n"
    c.stop(timeout=1)
    assert c.wait()["StatusCode"] in (137, 143)
    c.remove()
    assert name not in [x.name for x in client.containers.list(all=True)]


def test_sdk_errors(client) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("nope-" + unique())
    # the SDK tries a pull first; the test daemon's default registry is a closed loopback port
    with pytest.raises(docker.errors.APIError, match=r"127\.0\.0\.1:1"):
        client.containers.run("no-such-image-" + unique(), "true")
    img = client.images.get("busybox")
    assert "busybox:latest" in img.tags


def test_sdk_images_build(client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nARG WHO=nobody\nRUN echo \"hi $WHO\" > /hi\n"
                                    'CMD ["cat", "/hi"]\n')
    tag = unique("sdkbuild")
    image, logs = client.images.build(path=str(ctx), tag=tag, buildargs={"WHO": "sdk"}, rm=True)
    try:
        assert any("Step 1/4" in (chunk.get("stream") or "") for chunk in logs)
        assert image.id.startswith("sha256:") and f"{tag}:latest" in image.tags
        assert client.containers.run(tag, remove=True) == b"hi sdk\n"
        again, _ = client.images.build(path=str(ctx), tag=tag, buildargs={"WHO": "sdk"})
        assert again.id == image.id  # every step from the cache: the same image
        with pytest.raises(docker.errors.BuildError, match="returned a non-zero code: 5"):
            client.images.build(fileobj=__import__("io").BytesIO(b"FROM busybox\nRUN exit 5\n"))
    finally:
        client.images.remove(tag, force=True)
