"""Issue 4, the engine side: push to and pull from a registry on loopback — Debian's
docker-registry (the CNCF distribution registry) — through the dockyard CLI and the stock docker
CLI; digests match on both sides and the pulled image runs."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LiveDaemon, free_port, unique

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(shutil.which("docker-registry") is None, reason="docker-registry not installed")]


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    cfg = tmp_path / "registry.yml"
    cfg.write_text(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: "
                   f"{tmp_path / 'data'}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen(["docker-registry", "serve", str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def _manifest_digest(host: str, repo: str, tag: str) -> str:
    req = urllib.request.Request(f"http://{host}/v2/{repo}/manifests/{tag}", method="HEAD", headers={
        "Accept": "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return str(resp.headers["Docker-Content-Digest"])


def test_push_pull_round_trip(daemon: LiveDaemon, registry: str, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    marker = unique("shared")
    (ctx / "Dockerfile").write_text(f"FROM busybox\nRUN echo {marker} > /marker\nCMD [\"cat\", \"/marker\"]\n")
    ref = f"{registry}/team/app:v1"
    daemon.cli("build", "-q", "-t", ref, str(ctx))
    try:
        out = daemon.cli("push", ref).stdout.decode()
        assert f"The push refers to repository [{registry}/team/app]" in out and ": Pushed" in out
        pushed = out.strip().splitlines()[-1]
        assert pushed.startswith("v1: digest: sha256:")
        digest = pushed.split()[2]
        assert _manifest_digest(registry, "team/app", "v1") == digest
        again = daemon.cli("push", ref).stdout.decode()
        assert "Layer already exists" in again and ": Pushed" not in again
        image_id = json.loads(daemon.cli("image", "inspect", ref).stdout)[0]["Id"]
        daemon.cli("rmi", ref)
        pulled = daemon.cli("pull", ref).stdout.decode()
        assert "Already exists" in pulled  # busybox's layer was never removed
        assert f"Digest: {digest}" in pulled and f"Status: Downloaded newer image for {ref}" in pulled
        info = json.loads(daemon.cli("image", "inspect", ref).stdout)[0]
        assert info["Id"] == image_id and f"{registry}/team/app@{digest}" in info["RepoDigests"]
        assert daemon.cli("run", "--rm", ref).stdout.decode().strip() == marker
        assert "Image is up to date" in daemon.cli("pull", ref).stdout.decode()
        import http.client
        conn = http.client.HTTPConnection("localhost")
        conn.sock = socket.socket(socket.AF_UNIX)
        conn.sock.connect(str(daemon.sock))
        conn.request("GET", f"/v1.45/distribution/{ref}/json")
        dist = json.loads(conn.getresponse().read())
        conn.close()
        assert dist["Descriptor"]["digest"] == digest and dist["Platforms"][0]["os"] == "linux"
        missing = daemon.cli("pull", f"{registry}/team/nope:1", check=False)
        assert missing.returncode == 1 and b"not found" in missing.stderr
    finally:
        daemon.cli("rmi", "-f", ref, check=False)


def test_stock_docker_cli_push_and_pull(daemon: LiveDaemon, registry: str) -> None:
    if shutil.which("docker") is None:
        pytest.skip("docker CLI not installed")
    ref = f"{registry}/compat/busybox:{unique('t')}"
    daemon.docker("tag", "busybox", ref)
    try:
        out = daemon.docker("push", ref).stdout.decode()
        assert "digest: sha256:" in out
        daemon.docker("rmi", ref)
        pulled = daemon.docker("pull", ref).stdout.decode()
        assert "Status: Downloaded newer image" in pulled or "Image is up to date" in pulled
        assert daemon.docker("run", "--rm", ref, "echo", "pulled").stdout == b"pulled\n"
    finally:
        daemon.docker("rmi", ref, check=False)


def _registry_tags(host: str, repo: str) -> list[str]:
    with urllib.request.urlopen(f"http://{host}/v2/{repo}/tags/list", timeout=5) as resp:
        return sorted(json.loads(resp.read())["tags"])


def test_push_and_pull_all_tags(daemon: LiveDaemon, registry: str, tmp_path: Path) -> None:
    """``push -a`` / ``pull -a`` (and the stock docker CLI's): every tag of the repository, one
    closing status line; a tag together with -a is refused before anything is sent."""
    repo = f"{registry}/every/{unique('r')}"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM busybox\nRUN echo {unique('m')} > /m\n")
    daemon.cli("tag", "busybox", f"{repo}:plain")
    daemon.cli("build", "-q", "-t", f"{repo}:built", str(ctx))
    refs = [f"{repo}:plain", f"{repo}:built"]
    try:
        bad = daemon.cli("push", "-a", f"{repo}:plain", check=False)
        assert bad.returncode == 1 and b"tag can't be used with --all-tags/-a" in bad.stderr
        nothing = daemon.cli("push", "-a", f"{registry}/every/none", check=False)
        assert nothing.returncode == 1 and b"An image does not exist locally with the tag" in nothing.stderr
        out = daemon.cli("push", "-a", repo).stdout.decode()
        assert out.count("The push refers to repository") == 1
        assert "built: digest: sha256:" in out and "plain: digest: sha256:" in out
        assert _registry_tags(registry, repo.split("/", 1)[1]) == ["built", "plain"]
        ids = {r: json.loads(daemon.cli("image", "inspect", r).stdout)[0]["Id"] for r in refs}
        daemon.cli("rmi", *refs)
        pulled = daemon.cli("pull", "-a", repo).stdout.decode()
        assert "built: Pulling from" in pulled and "plain: Pulling from" in pulled
        assert pulled.count("Status: ") == 1 and f"Status: Downloaded newer image for {repo}\n" in pulled
        assert pulled.splitlines()[-1] == repo
        for line in pulled.splitlines():  # a layer that was here is "Already exists", nothing more
            if line.endswith(": Already exists"):
                assert f"{line.split(':')[0]}: Pull complete" not in pulled
        assert {r: json.loads(daemon.cli("image", "inspect", r).stdout)[0]["Id"] for r in refs} == ids
        again = daemon.cli("pull", "-a", repo).stdout.decode()
        assert f"Status: Image is up to date for {repo}" in again
        bad = daemon.cli("pull", "-a", f"{repo}:plain", check=False)
        assert bad.returncode == 1 and b"tag can't be used with --all-tags/-a" in bad.stderr
        single = daemon.cli("pull", repo, check=False)  # a bare name without -a is :latest only
        assert single.returncode == 1 and b"Using default tag: latest" in single.stdout
        assert b"not found" in single.stderr
        if shutil.which("docker") is not None:
            daemon.cli("rmi", *refs)
            docker_out = daemon.docker("pull", "-a", repo).stdout.decode()
            assert "Downloaded newer image" in docker_out
            assert {r: json.loads(daemon.cli("image", "inspect", r).stdout)[0]["Id"] for r in refs} == ids
            assert "digest: sha256:" in daemon.docker("push", "-a", repo).stdout.decode()
    finally:
        daemon.cli("rmi", "-f", *refs, check=False)


def test_run_pulls_a_missing_image(daemon: LiveDaemon, registry: str) -> None:
    ref = f"{registry}/run/busybox:{unique('t')}"
    daemon.cli("tag", "busybox", ref)
    daemon.cli("push", ref)
    daemon.cli("rmi", ref)
    try:
        never = daemon.cli("run", "--rm", "--pull=never", ref, "true", check=False)
        assert never.returncode == 125 and b"No such image" in never.stderr
        res = daemon.cli("run", "--rm", ref, "echo", "ran")
        assert res.stdout == b"ran\n"
        assert f"Unable to find image '{ref}' locally".encode() in res.stderr
        again = daemon.cli("run", "--rm", "--pull=always", ref, "echo", "again")
        assert again.stdout == b"again\n" and b"Image is up to date" in again.stderr
        bad = daemon.cli("run", "--rm", "--pull=sometimes", ref, check=False)
        assert bad.returncode == 125 and b"invalid pull option" in bad.stderr
    finally:
        daemon.cli("rmi", ref, check=False)


def test_registry_mirror_serves_docker_hub_names(daemon: LiveDaemon, registry: str, tmp_path: Path) -> None:
    """``--registry-mirror``: ``docker.io/library/x`` is fetched from the mirror (the test never
    reaches Docker Hub: the name exists only on the loopback mirror)."""
    from tests.conftest import start_daemon, stop_daemon
    name = unique("mirrored")
    daemon.cli("tag", "busybox", f"{registry}/library/{name}:1")
    daemon.cli("push", f"{registry}/library/{name}:1")
    daemon.cli("rmi", f"{registry}/library/{name}:1")
    mirrored = start_daemon(tmp_path / "mirrored", "--registry-mirror", f"http://{registry}")
    try:
        out = mirrored.cli("pull", f"{name}:1").stdout.decode()
        assert f"Pulling from library/{name}" in out and f"docker.io/library/{name}:1" in out
        assert mirrored.cli("run", "--rm", f"{name}:1", "echo", "via-mirror").stdout == b"via-mirror\n"
    finally:
        stop_daemon(mirrored)


def test_login_then_push_and_pull_with_basic_auth(daemon: LiveDaemon, tmp_path: Path) -> None:
    """``dockyard login`` checks the password with the registry and stores it where the docker CLI
    does; push and pull then authenticate with it (Basic, answered after a 401 challenge)."""
    import os
    import warnings
    with warnings.catch_warnings():  # crypt: bcrypt through libxcrypt (deprecated, still in 3.11)
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt

    from tests.conftest import BIN
    port = free_port()
    (tmp_path / "htpasswd").write_text("alice:" + crypt.crypt("s3cret", crypt.mksalt(crypt.METHOD_BLOWFISH)) + "\n")
    cfg = tmp_path / "registry.yml"
    cfg.write_text(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: "
                   f"{tmp_path / 'data'}\nhttp:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd:\n"
                   f"    realm: test\n    path: {tmp_path / 'htpasswd'}\n")
    proc = subprocess.Popen(["docker-registry", "serve", str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    env = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "docker-config")}

    def cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([str(BIN / "dockyard"), "-H", daemon.host, *args], input=stdin,
                              capture_output=True, env=env, timeout=60)

    host = f"127.0.0.1:{port}"
    ref = f"{host}/private/busybox:1"
    try:
        time.sleep(0.3)
        daemon.cli("tag", "busybox", ref)
        denied = cli("push", ref)
        assert denied.returncode == 1 and b"unauthorized" in denied.stderr.lower()
        wrong = cli("login", "-u", "alice", "--password-stdin", host, stdin=b"nope\n")
        assert wrong.returncode == 1 and not (tmp_path / "docker-config" / "config.json").exists()
        ok = cli("login", "-u", "alice", "--password-stdin", host, stdin=b"s3cret\n")
        assert ok.returncode == 0 and ok.stdout == b"Login Succeeded\n"
        stored = json.loads((tmp_path / "docker-config" / "config.json").read_text())
        assert host in stored["auths"]
        assert cli("push", ref).returncode == 0
        daemon.cli("rmi", ref)
        assert cli("pull", ref).returncode == 0
        out = cli("logout", host)
        assert out.stdout == f"Removing login credentials for {host}\n".encode()
        assert host not in json.loads((tmp_path / "docker-config" / "config.json").read_text())["auths"]
    finally:
        daemon.cli("rmi", ref, check=False)
        proc.terminate()
        proc.wait(10)


def test_pull_resumes_or_restarts_an_interrupted_download(daemon: LiveDaemon, registry: str,
                                                          tmp_path: Path) -> None:
    """A partial ingest left by an interrupted pull is continued (Range); one holding wrong bytes
    fails verification, is dropped, and the download starts over: the pull succeeds either way."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN head -c 3000000 /dev/urandom > /blob\n")
    ref = f"{registry}/resume/app:{unique('t')}"
    daemon.cli("build", "-q", "-t", ref, str(ctx))
    daemon.cli("push", ref)
    info = json.loads(daemon.cli("image", "inspect", ref).stdout)[0]
    layer = info["RootFS"]["Layers"][-1]  # uncompressed in our store: its digest is the diff id
    blob = daemon.data_root / "content" / "blobs" / "sha256" / layer.split(":")[1]
    data = blob.read_bytes()
    try:
        for partial in (data[: len(data) // 2], b"x" * (len(data) // 2)):
            daemon.cli("rmi", ref)
            assert not blob.exists()
            ingest = daemon.data_root / "content" / "ingest"
            ingest.mkdir(parents=True, exist_ok=True)
            # what an interrupted pull leaves: the writer's ingest for ref "pull-<digest>"
            import hashlib
            d = ingest / hashlib.sha256(f"pull-{layer}".encode()).hexdigest()
            d.mkdir()
            (d / "ref").write_text(f"pull-{layer}")
            (d / "data").write_bytes(partial)
            daemon.cli("pull", ref)
            assert blob.read_bytes() == data
            assert not d.exists()
    finally:
        daemon.cli("rmi", ref, check=False)


def test_build_pulls_a_missing_base_image(daemon: LiveDaemon, registry: str, tmp_path: Path) -> None:
    base = f"{registry}/base/bb:{unique('t')}"
    daemon.cli("tag", "busybox", base)
    daemon.cli("push", base)
    daemon.cli("rmi", base)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {base}\nRUN echo built-on-pulled > /x\n")
    tag = unique("onpulled")
    try:
        out = daemon.cli("build", "--progress=plain", "-t", tag, str(ctx)).stdout.decode()
        assert f"Status: Downloaded newer image for {base}" in out
        assert daemon.cli("run", "--rm", tag, "cat", "/x").stdout == b"built-on-pulled\n"
        again = daemon.cli("build", "--progress=plain", "--pull", "-t", tag, str(ctx)).stdout.decode()
        assert "Image is up to date" in again and "Using cache" in again
    finally:
        daemon.cli("rmi", tag, base, check=False)
