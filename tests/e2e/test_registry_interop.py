"""Issue 4 through real programs: dockyardd ↔ ``dockyard registry serve`` (anonymous, Basic and token
auth), the stock docker CLI through dockyardd, and skopeo against our registry — all on loopback."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.registry.auth import bcrypt_hash
from tests.conftest import BIN, LiveDaemon, free_port, unique

pytestmark = pytest.mark.root


class Server:
    def __init__(self, root: Path, *flags: str) -> None:
        self.host = f"127.0.0.1:{free_port()}"
        self.proc = subprocess.Popen([str(BIN / "dockyard"), "registry", "serve", "--addr", self.host,
                                      "--root", str(root), *flags], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1).close()
                return
            except urllib.error.HTTPError:
                return  # 401: up, with auth
            except OSError:
                time.sleep(0.05)
        raise AssertionError("registry did not come up")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Server]:
    server = Server(tmp_path / "registry")
    yield server
    server.stop()


def _cli(daemon: LiveDaemon, cfg: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "DOCKER_CONFIG": str(cfg)}
    return subprocess.run([str(BIN / "dockyard"), "-H", daemon.host, *args], input=stdin, capture_output=True,
                          env=env, timeout=120)


def test_build_push_pull_run_through_our_registry(daemon: LiveDaemon, registry: Server, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    marker = unique("ours")
    (ctx / "Dockerfile").write_text(f"FROM busybox\nRUN echo {marker} > /m\nCMD [\"cat\", \"/m\"]\n")
    ref = f"{registry.host}/app/web:1"
    daemon.cli("build", "-q", "-t", ref, str(ctx))
    try:
        digest = daemon.cli("push", ref).stdout.decode().strip().splitlines()[-1].split()[2]
        copy = f"{registry.host}/app/copy:1"  # same registry, another repository: mounted, not sent
        daemon.cli("tag", ref, copy)
        mounted = daemon.cli("push", copy).stdout.decode()
        assert "Mounted from app/web" in mounted and ": Pushed" not in mounted
        daemon.cli("rmi", copy)
        daemon.cli("rmi", ref)
        out = daemon.cli("pull", ref).stdout.decode()
        assert f"Digest: {digest}" in out
        assert daemon.cli("run", "--rm", ref).stdout.decode().strip() == marker
        tags = json.loads(urllib.request.urlopen(f"http://{registry.host}/v2/app/web/tags/list").read())
        assert tags == {"name": "app/web", "tags": ["1"]}
        found = daemon.cli("search", "--format", "{{.Name}}", f"{registry.host}/web").stdout.decode()
        assert found == f"{registry.host}/app/web\n"
        if shutil.which("docker"):  # the stock docker CLI through dockyardd, same registry
            other = f"{registry.host}/app/docker:1"
            daemon.docker("tag", ref, other)
            daemon.docker("push", other)
            daemon.docker("rmi", other)
            daemon.docker("pull", other)
            assert daemon.docker("run", "--rm", other).stdout.decode().strip() == marker
            listed = daemon.docker("search", f"{registry.host}/app").stdout.decode()
            assert f"{registry.host}/app/docker" in listed and f"{registry.host}/app/web" in listed
            daemon.docker("rmi", other)
    finally:
        daemon.cli("rmi", "-f", ref, check=False)


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed")
def test_skopeo_pushes_to_and_pulls_from_our_registry(daemon: LiveDaemon, registry: Server, tmp_path: Path) -> None:
    archive = tmp_path / "bb.tar"
    daemon.cli("save", "-o", str(archive), "busybox")
    dest = f"docker://{registry.host}/skopeo/busybox:1"
    subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", f"docker-archive:{archive}", dest],
                   check=True, capture_output=True, timeout=120)
    layout = tmp_path / "layout"
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", dest, f"oci:{layout}:copied"],
                   check=True, capture_output=True, timeout=120)
    index = json.loads((layout / "index.json").read_text())
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "copied"
    inspect = subprocess.run(["skopeo", "inspect", "--tls-verify=false", dest], check=True, capture_output=True,
                             timeout=60)
    assert json.loads(inspect.stdout)["Os"] == "linux"
    ref = f"{registry.host}/skopeo/busybox:1"  # and our engine pulls what skopeo pushed
    try:
        daemon.cli("pull", ref)
        assert daemon.cli("run", "--rm", ref, "echo", "via-skopeo").stdout == b"via-skopeo\n"
    finally:
        daemon.cli("rmi", ref, check=False)
    _busybox_intact_after_removing_a_child(daemon, tmp_path)


@pytest.mark.parametrize("mode", ["basic", "token"])
def test_auth_modes(daemon: LiveDaemon, tmp_path: Path, mode: str) -> None:
    (tmp_path / "htpasswd").write_text(f"alice:{bcrypt_hash('s3cret')}\nbob:{bcrypt_hash('hunter2')}\n")
    (tmp_path / "policy.json").write_text(json.dumps({"alice": {"*": ["pull", "push"]},
                                                       "bob": {"*": ["pull"]}}))
    server = Server(tmp_path / "registry", "--auth", mode, "--htpasswd", str(tmp_path / "htpasswd"),
                    "--auth-policy", str(tmp_path / "policy.json"))
    ref = f"{server.host}/secure/busybox:{mode}"
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    try:
        daemon.cli("tag", "busybox", ref)
        assert b"unauthorized" in _cli(daemon, alice, "push", ref).stderr.lower()
        assert _cli(daemon, alice, "login", "-u", "alice", "--password-stdin", server.host,
                    stdin=b"wrong\n").returncode == 1
        assert _cli(daemon, alice, "login", "-u", "alice", "--password-stdin", server.host,
                    stdin=b"s3cret\n").returncode == 0
        assert _cli(daemon, alice, "push", ref).returncode == 0
        assert _cli(daemon, bob, "login", "-u", "bob", "--password-stdin", server.host,
                    stdin=b"hunter2\n").returncode == 0
        daemon.cli("tag", "busybox", f"{server.host}/secure/bob:1")
        denied = _cli(daemon, bob, "push", f"{server.host}/secure/bob:1")  # bob may only pull
        assert denied.returncode == 1 and b"denied" in denied.stderr.lower()
        daemon.cli("rmi", ref)
        assert _cli(daemon, bob, "pull", ref).returncode == 0
    finally:
        daemon.cli("rmi", "-f", ref, f"{server.host}/secure/bob:1", check=False)
        server.stop()


def test_refuses_auth_over_plain_http_off_loopback(tmp_path: Path) -> None:
    (tmp_path / "htpasswd").write_text(f"alice:{bcrypt_hash('x')}\n")
    res = subprocess.run([str(BIN / "dockyard"), "registry", "serve", "--addr", "0.0.0.0:0", "--root",
                          str(tmp_path / "r"), "--htpasswd", str(tmp_path / "htpasswd")],
                         capture_output=True, timeout=30)
    assert res.returncode != 0 and b"plain HTTP" in res.stderr and b"--tls-cert" in res.stderr


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed")
def test_pull_zstd_layers_and_pick_the_platform_from_an_index(daemon: LiveDaemon, registry: Server,
                                                              tmp_path: Path) -> None:
    """skopeo pushes busybox with zstd layers; an OCI index then lists it for linux/<host arch>
    next to another platform, and the engine pulls the index: zstd unpacked, the right entry picked."""
    import platform as host
    archive = tmp_path / "bb.tar"
    daemon.cli("save", "-o", str(archive), "busybox")
    repo = f"{registry.host}/multi/busybox"
    subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", "--dest-compress-format", "zstd",
                    "--format", "oci", f"docker-archive:{archive}", f"docker://{repo}:single"],
                   check=True, capture_output=True, timeout=120)
    req = urllib.request.Request(f"http://{registry.host}/v2/multi/busybox/manifests/single",
                                 headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    with urllib.request.urlopen(req) as resp:
        manifest = resp.read()
        digest = resp.headers["Docker-Content-Digest"]
    assert b"tar+zstd" in manifest
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(host.machine(), host.machine())
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + "1" * 64,
         "size": 10, "platform": {"os": "linux", "architecture": "s390x"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": len(manifest),
         "platform": {"os": "linux", "architecture": arch}}]}
    body = json.dumps(index).encode()
    put = urllib.request.Request(f"http://{registry.host}/v2/multi/busybox/manifests/index", data=body,
                                 method="PUT", headers={"Content-Type": "application/vnd.oci.image.index.v1+json"})
    with pytest.raises(urllib.error.HTTPError) as refused:  # its first child is not in the repository
        urllib.request.urlopen(put)
    assert refused.value.code == 400
    real = index["manifests"][1]
    index["manifests"] = [real, {**real, "platform": {"os": "linux", "architecture": "s390x"}}]
    put = urllib.request.Request(put.full_url, data=json.dumps(index).encode(), method="PUT",
                                 headers={"Content-Type": "application/vnd.oci.image.index.v1+json"})
    urllib.request.urlopen(put).close()
    ref = f"{repo}:index"
    try:
        daemon.cli("pull", ref)
        assert daemon.cli("run", "--rm", ref, "echo", "zstd-ok").stdout == b"zstd-ok\n"
    finally:
        daemon.cli("rmi", ref, check=False)
    _busybox_intact_after_removing_a_child(daemon, tmp_path)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_tls_with_basic_auth(daemon: LiveDaemon, tmp_path: Path) -> None:
    import ssl
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True, timeout=60)
    (tmp_path / "htpasswd").write_text(f"alice:{bcrypt_hash('s3cret')}\n")
    port = free_port()
    proc = subprocess.Popen([str(BIN / "dockyard"), "registry", "serve", "--addr", f"127.0.0.1:{port}",
                             "--root", str(tmp_path / "r"), "--htpasswd", str(tmp_path / "htpasswd"),
                             "--tls-cert", str(cert), "--tls-key", str(key)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ctx = ssl.create_default_context(cafile=str(cert))
    made: list[Path] = []
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"https://127.0.0.1:{port}/v2/", context=ctx, timeout=1)
            except urllib.error.HTTPError as exc:
                assert exc.code == 401 and exc.headers["WWW-Authenticate"].startswith("Basic realm=")
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise AssertionError("TLS registry did not answer")
        import base64
        req = urllib.request.Request(f"https://127.0.0.1:{port}/v2/", headers={
            "Authorization": "Basic " + base64.b64encode(b"alice:s3cret").decode()})
        assert urllib.request.urlopen(req, context=ctx, timeout=5).status == 200
        import http.client
        with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):  # no plain HTTP
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2)
        # the engine trusts the registry's private CA from certs.d/<host>/, as Docker does
        certs = Path("/etc/dockyard/certs.d") / f"127.0.0.1:{port}"
        made += [p for p in (Path("/etc/dockyard"), certs.parent) if not p.exists()]  # removed afterwards
        certs.mkdir(parents=True)
        shutil.copy(cert, certs / "ca.crt")
        host = f"127.0.0.1:{port}"
        daemon.cli("tag", "busybox", f"{host}/tls/bb:1")
        assert _cli(daemon, tmp_path / "cfg", "login", "-u", "alice", "--password-stdin", host,
                    stdin=b"s3cret\n").returncode == 0
        pushed = _cli(daemon, tmp_path / "cfg", "push", f"{host}/tls/bb:1")
        assert pushed.returncode == 0, pushed.stderr
    finally:
        shutil.rmtree(Path("/etc/dockyard/certs.d") / f"127.0.0.1:{port}", ignore_errors=True)
        for created in reversed(made):
            with contextlib.suppress(OSError):
                created.rmdir()
        daemon.cli("rmi", f"127.0.0.1:{port}/tls/bb:1", check=False)
        proc.terminate()
        proc.wait(10)


def _busybox_intact_after_removing_a_child(daemon: LiveDaemon, tmp_path: Path) -> None:
    """busybox's ID may now also carry a manifest pulled from a registry (gzip or zstd layers):
    removing an image built on busybox must still keep busybox's own uncompressed layer blob."""
    ctx = tmp_path / "child"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN touch /x\n")
    for flags in ([], ["--no-cache"]):
        built = daemon.cli("build", "-q", *flags, str(ctx)).stdout.decode().strip()
        daemon.cli("rmi", built)
    assert daemon.cli("run", "--rm", "busybox", "echo", "intact").stdout == b"intact\n"
    info = json.loads(daemon.cli("image", "inspect", "busybox").stdout)[0]
    layer = info["RootFS"]["Layers"][0].split(":")[1]
    assert (daemon.data_root / "content" / "blobs" / "sha256" / layer).exists()
