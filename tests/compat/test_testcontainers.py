"""testcontainers-python against dockyardd: an image it builds, containers with exposed ports
reached over loopback, wait strategies (logs, HTTP, port, healthcheck, exec), exec, logs, file
copies and its Network class.

testcontainers' defaults reach for Docker Hub (the "ryuk" reaper image, a pull of any image it
lacks) and, inside a container as this machine is, for the default gateway's address. The tests
point it at the test daemon only: ryuk off, the host override at 127.0.0.1 and the docker_host
connection mode, every image made locally first; the test daemon's default registry is a closed
port on loopback, so even a stray pull goes nowhere."""

from __future__ import annotations

import os
import socket
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LiveDaemon, unique

pytest.importorskip("testcontainers", reason="testcontainers not installed (the dev extras)")

import docker
from testcontainers.core.config import ConnectionMode, testcontainers_config
from testcontainers.core.container import DockerContainer, ExecConfig
from testcontainers.core.image import DockerImage
from testcontainers.core.labels import LABEL_SESSION_ID, SESSION_ID
from testcontainers.core.network import Network
from testcontainers.core.wait_strategies import (
    CompositeWaitStrategy,
    ExecWaitStrategy,
    HealthcheckWaitStrategy,
    HttpWaitStrategy,
    LogMessageWaitStrategy,
    PortWaitStrategy,
)
from testcontainers.core.waiting_utils import wait_for_logs

pytestmark = [pytest.mark.root, pytest.mark.compat]

DOCKERFILE = """\
FROM busybox
RUN mkdir /www && echo built-by-testcontainers > /www/index.html
HEALTHCHECK --interval=1s --timeout=2s CMD wget -qO- http://127.0.0.1/ || exit 1
EXPOSE 80
CMD ["sh", "-c", "echo booting; echo listening; exec httpd -f -v -p 80 -h /www"]
"""


@pytest.fixture
def tc(daemon: LiveDaemon, monkeypatch: pytest.MonkeyPatch) -> Iterator[docker.DockerClient]:
    """testcontainers aimed at the test daemon for this test only; afterwards every container and
    network it labelled with its session is gone."""
    for key in list(os.environ):
        if key.startswith(("DOCKER_", "TESTCONTAINERS_", "TC_", "RYUK_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("DOCKER_HOST", daemon.host)   # testcontainers also writes it back: restored
    monkeypatch.setenv("DOCKER_CONFIG", str(daemon.data_root.parent / "docker-config"))
    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
    # the configuration object read its environment at import: set the same on it
    monkeypatch.setattr(testcontainers_config, "_ryuk_disabled", True)
    monkeypatch.setattr(testcontainers_config, "tc_host_override", "127.0.0.1")
    monkeypatch.setattr(testcontainers_config, "connection_mode_override", ConnectionMode.docker_host)
    monkeypatch.setattr(testcontainers_config, "_docker_auth_config", None)
    monkeypatch.setattr(testcontainers_config, "max_tries", 60)
    monkeypatch.setattr(testcontainers_config, "sleep_time", 0.5)
    client = docker.DockerClient(base_url=daemon.host, version="auto")
    try:
        yield client
    finally:
        mine = {"label": f"{LABEL_SESSION_ID}={SESSION_ID}"}
        for c in client.containers.list(all=True, filters=mine):
            c.remove(force=True, v=True)
        for n in client.networks.list(filters=mine):
            n.remove()
        assert not client.containers.list(all=True, filters={"name": "testcontainers-ryuk"})
        client.close()


@pytest.fixture
def context(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    return ctx


def test_tc_image_container_ports_waits_exec_logs(tc: docker.DockerClient, context: Path, tmp_path: Path) -> None:
    tag = f"{unique('tcimg')}:1"
    with DockerImage(path=str(context), tag=tag) as image:
        assert str(image) == tag and tc.images.get(tag).id.split(":")[1].startswith(image.short_id)
        assert any("Successfully built" in (chunk.get("stream") or "") for chunk in image.get_logs())
        strategy = CompositeWaitStrategy(LogMessageWaitStrategy("listening"), PortWaitStrategy(80),
                                         HttpWaitStrategy(80).for_status_code(200),
                                         HealthcheckWaitStrategy(), ExecWaitStrategy(["test", "-f", "/www/index.html"]))
        container = (DockerContainer(str(image)).with_exposed_ports(80).with_env("GREETING", "hi")
                     .with_volume_mapping(str(context), "/ctx", "ro").waiting_for(strategy))
        with container as ct:
            host, port = ct.get_container_host_ip(), int(ct.get_exposed_port(80))
            assert host == "127.0.0.1" and port > 0
            with urllib.request.urlopen(f"http://{host}:{port}/", timeout=5) as resp:
                assert resp.read() == b"built-by-testcontainers\n"
            wait_for_logs(ct, LogMessageWaitStrategy("booting"), timeout=10)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)   # the string form is deprecated
                wait_for_logs(ct, r"listen\w+", timeout=10)
            res = ct.exec(["sh", "-c", "echo $GREETING; head -1 /ctx/Dockerfile; exit 3"])
            assert res.exit_code == 3 and res.output == b"hi\nFROM busybox\n"
            res = ct.exec(ExecConfig(["sh", "-c", "id -u; pwd; echo $X"], user="1000", workdir="/tmp",
                                     environment={"X": "y"}))
            assert res.exit_code == 0 and res.output == b"1000\n/tmp\ny\n"
            ct.copy_into_container(b"copied in\n", "/tmp/in.txt")
            assert ct.exec(["cat", "/tmp/in.txt"]).output == b"copied in\n"
            ct.copy_from_container("/www/index.html", tmp_path / "out.txt")
            assert (tmp_path / "out.txt").read_bytes() == b"built-by-testcontainers\n"
            info = ct.get_container_info()
            assert info is not None and info.State is not None and info.State.Status == "running"
            stdout, stderr = ct.get_logs()
            assert stdout == b"booting\nlistening\n" and b"response:200" in stderr  # httpd -v logs to stderr
            cid = ct.get_container_id()
        with pytest.raises(docker.errors.NotFound):
            tc.containers.get(cid)
    with pytest.raises(docker.errors.ImageNotFound):
        tc.images.get(tag)


@pytest.mark.parametrize("mode", [ConnectionMode.docker_host, ConnectionMode.gateway_ip, ConnectionMode.bridge_ip])
def test_tc_connection_modes(tc: docker.DockerClient, monkeypatch: pytest.MonkeyPatch, mode: ConnectionMode) -> None:
    """Each way testcontainers reaches a container: the published port on loopback, on the
    bridge's gateway address, or the container's own address on the bridge."""
    monkeypatch.setattr(testcontainers_config, "connection_mode_override", mode)
    server = (DockerContainer("busybox", command=["sh", "-c", "echo ready; exec nc -ll -p 80 -e echo hello"])
              .with_exposed_ports(80).waiting_for(LogMessageWaitStrategy("ready")))
    with server as ct:
        host, port = ct.get_container_host_ip(), int(ct.get_exposed_port(80))
        bridge = ct.get_wrapped_container().attrs["NetworkSettings"]["Networks"]["bridge"]
        expected = {ConnectionMode.docker_host: "127.0.0.1", ConnectionMode.gateway_ip: bridge["Gateway"],
                    ConnectionMode.bridge_ip: bridge["IPAddress"]}[mode]
        assert host == expected and (port == 80) == (mode is ConnectionMode.bridge_ip)
        PortWaitStrategy(80).with_startup_timeout(20).wait_until_ready(ct)
        with socket.create_connection((host, port), timeout=5) as s:
            s.settimeout(5)
            assert s.recv(100) == b"hello\n"


def test_tc_network(tc: docker.DockerClient) -> None:
    """Network(): containers on it reach each other by alias, also one connected after it started
    on the default bridge; the network goes when the block ends."""
    with Network() as net:
        server = (DockerContainer("busybox", command=["sh", "-c", "echo up > /index.html; echo ready; "
                                                                  "exec httpd -f -p 80 -h /"])
                  .with_network(net).with_network_aliases("srv").waiting_for(LogMessageWaitStrategy("ready")))
        fetch = "for i in $(seq 50); do wget -qO- http://srv/index.html && exit 0; sleep 0.1; done; exit 1"
        with server as srv, DockerContainer("busybox", command=["sleep", "60"]) as late:
            one_off = DockerContainer("busybox", command=["sh", "-c", fetch]).with_network(net)
            with one_off as job:
                assert job.wait() == 0 and job.get_logs() == (b"up\n", b"")
            net.connect(late.get_container_id(), ["late-alias"])
            assert late.exec(["sh", "-c", fetch]).output == b"up\n"
            assert srv.exec(["ping", "-c1", "-W2", "late-alias"]).exit_code == 0
            assert srv.exec(["ping", "-c1", "-W2", late.get_wrapped_container().name]).exit_code == 0
        net_id = net.id
    with pytest.raises(docker.errors.NotFound):
        tc.networks.get(net_id)


def test_tc_failures_stay_local(tc: docker.DockerClient) -> None:
    """A container that exits before its log line fails the wait and is removed; an image that is
    not here is pulled from the test daemon's registry (closed loopback port), never a hub."""
    early = (DockerContainer("busybox", command=["sh", "-c", "echo bye; exit 2"])
             .waiting_for(LogMessageWaitStrategy("never printed").with_startup_timeout(20)))
    with pytest.raises(RuntimeError, match="exited"):
        early.start()
    cid = early.get_container_id()
    early.stop()
    with pytest.raises(docker.errors.NotFound):
        tc.containers.get(cid)
    missing = DockerContainer(f"{unique('absent')}:1")
    with pytest.raises(docker.errors.APIError, match=r"127\.0\.0\.1:1"):
        missing.start()
    missing.stop()
