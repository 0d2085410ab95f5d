"""The docker SDK for Python against dockyardd."""

from __future__ import annotations

import contextlib
import io
import time

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
            client.images.build(fileobj=io.BytesIO(b"FROM busybox\nRUN exit 5\n"))
    finally:
        client.images.remove(tag, force=True)


def test_sdk_volumes(client) -> None:  # type: ignore[no-untyped-def]
    """A named volume outlives the containers that write it; in use, it cannot be removed."""
    name = unique("sdkvol")
    vol = client.volumes.create(name, labels={"compat": name})
    holder = None
    try:
        assert vol.attrs["Driver"] == "local" and vol.attrs["Labels"] == {"compat": name}
        assert [v.name for v in client.volumes.list(filters={"label": f"compat={name}"})] == [name]
        client.containers.run("busybox", ["sh", "-c", "echo kept > /data/f"], remove=True,
                              volumes={name: {"bind": "/data", "mode": "rw"}})
        assert client.containers.run("busybox", ["cat", "/data/f"], remove=True,
                                     volumes=[f"{name}:/data:ro"]) == b"kept\n"
        denied = client.containers.run("busybox", ["sh", "-c", "touch /data/g 2>&1; echo $?"], remove=True,
                                       volumes=[f"{name}:/data:ro"])
        assert denied.strip().endswith(b"1")  # read-only mount
        holder = client.containers.create("busybox", "true", volumes=[f"{name}:/data"])
        assert holder.attrs["Mounts"][0]["Name"] == name
        with pytest.raises(docker.errors.APIError, match="volume is in use"):
            vol.remove()
        holder.remove()
        holder = None
        vol.remove()
        with pytest.raises(docker.errors.NotFound):
            client.volumes.get(name)
    finally:
        if holder is not None:
            holder.remove(force=True)
        with contextlib.suppress(docker.errors.NotFound):
            client.volumes.get(name).remove(force=True)


def test_sdk_networks(client) -> None:  # type: ignore[no-untyped-def]
    """A user network: containers reach each other by name and alias; one started on the default
    bridge and connected later resolves the network's names too (its resolv.conf is rewritten)."""
    net_name, srv_name = unique("sdknet"), unique("sdksrv")
    net = client.networks.create(net_name, driver="bridge", labels={"compat": "1"})
    started = []
    try:
        assert net.attrs["Driver"] == "bridge" and net.attrs["IPAM"]["Config"][0]["Subnet"]
        srv = client.containers.run("busybox", ["sh", "-c", "hostname > /index.html; exec httpd -f -p 80 -h /"],
                                    name=srv_name, detach=True, network=net_name)
        started.append(srv)
        srv.reload()
        host = srv.attrs["Config"]["Hostname"]
        url = f"http://{srv_name}/index.html"
        for _ in range(50):
            out = client.containers.run("busybox", ["sh", "-c", f"wget -qO- {url} || true"], remove=True,
                                        network=net_name)
            if out:
                break
            time.sleep(0.1)
        assert out == f"{host}\n".encode()
        late = client.containers.run("busybox", ["sleep", "60"], detach=True)
        started.append(late)
        net.connect(late, aliases=["late-alias"])
        net.reload()
        assert {c.name for c in net.containers} == {srv_name, late.name}
        res = late.exec_run(["wget", "-qO-", url])
        assert res.exit_code == 0 and res.output == f"{host}\n".encode()
        res = srv.exec_run(["nslookup", "late-alias"])
        assert res.exit_code == 0 and b"Address" in res.output.split(b"late-alias", 1)[1]
        with pytest.raises(docker.errors.APIError, match="active endpoints"):
            net.remove()
        net.disconnect(late)
        late.reload()
        assert net_name not in late.attrs["NetworkSettings"]["Networks"]
    finally:
        for c in started:
            c.remove(force=True)
        net.remove()
    assert net_name not in [n.name for n in client.networks.list()]


def test_sdk_build_push_pull_loopback_registry(client, registry, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Build, push to a registry on loopback (plain HTTP as in Docker), remove, pull, run."""
    repo = f"{registry.host}/sdk/{unique('app')}"
    ref = f"{repo}:1"
    marker = unique("pushed")
    image, _ = client.images.build(fileobj=io.BytesIO(
        f'FROM busybox\nRUN echo {marker} > /m\nCMD ["cat", "/m"]\n'.encode()), tag=ref)
    try:
        events = list(client.images.push(repo, tag="1", stream=True, decode=True))
        assert not [e for e in events if "error" in e or "errorDetail" in e], events
        digest = next(e["aux"]["Digest"] for e in events if "aux" in e)
        assert any(e.get("status") == "Pushed" for e in events)
        again = list(client.images.push(repo, tag="1", stream=True, decode=True))
        assert any(e.get("status") == "Layer already exists" for e in again)
        assert registry.tags(repo.split("/", 1)[1]) == ["1"]
        assert client.images.get_registry_data(ref).id == digest
        client.images.remove(ref)
        with pytest.raises(docker.errors.ImageNotFound):
            client.images.get(ref)
        pulled = client.images.pull(repo, tag="1")
        assert pulled.id == image.id and f"{repo}@{digest}" in pulled.attrs["RepoDigests"]
        assert client.containers.run(ref, remove=True) == f"{marker}\n".encode()
        with pytest.raises(docker.errors.NotFound, match="not found"):
            client.images.pull(repo, tag="nope")
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(ref, force=True)
