"""The real ``dockyardd`` process: readiness, system endpoints, single-instance lock, clean shutdown,
TCP refusal, error bodies."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import ssl
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.integration.test_daemon_helpers import DOCKYARDD, Daemon, spawn, start, stop


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = start(tmp_path)
    try:
        yield d
    finally:
        stop(d)


@pytest.mark.root
def test_ping_version_info(daemon: Daemon) -> None:
    status, headers, body = daemon.request("GET", "/_ping")
    assert (status, body) == (200, b"OK")
    assert headers["api-version"] == "1.45" and headers["ostype"] == "linux"
    status, headers, body = daemon.request("HEAD", "/v1.45/_ping")
    assert status == 200 and body == b""
    version = daemon.json("GET", "/v1.45/version")
    assert version["ApiVersion"] == "1.45" and version["MinAPIVersion"] == "1.24" and version["Os"] == "linux"
    info = daemon.json("GET", "/v1.45/info")
    assert info["DockerRootDir"] == str(daemon.data_root) and info["Containers"] == 0
    status, _, body = daemon.request("GET", "/v1.99/version")
    assert status == 400 and b"client version 1.99 is too new" in body
    assert stat.S_IMODE(daemon.sock.stat().st_mode) == 0o660
    pidfile = daemon.exec_root / "dockyardd.pid"
    assert pidfile.read_text().strip() == str(daemon.proc.pid)


@pytest.mark.root
def test_malformed_json_is_400(daemon: Daemon) -> None:
    status, headers, body = daemon.request("POST", "/v1.45/containers/create", raw=b'{"Image": ')
    assert status == 400 and headers["content-type"].startswith("application/json")
    assert json.loads(body)["message"].startswith("invalid JSON in container create body")
    status, _, body = daemon.request("POST", "/containers/create", body={"Image": "busybox", "Cmd": 5})
    assert status == 400 and json.loads(body)["message"] == "invalid Config.Cmd: expected an array of strings, got a number"
    status, _, body = daemon.request("GET", "/containers/nosuch/json")
    assert status == 404 and json.loads(body) == {"message": "No such container: nosuch"}


@pytest.mark.root
def test_second_daemon_on_same_data_root_refused(daemon: Daemon, tmp_path: Path) -> None:
    proc, _, _, exec_root, log = spawn(tmp_path, data_root=daemon.data_root)
    try:
        assert proc.wait(30) == 1
        assert f"another dockyardd (pid {daemon.proc.pid}) is using data root {daemon.data_root}" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        subprocess.run(["rm", "-rf", str(exec_root)], check=False)
    assert daemon.request("GET", "/_ping")[0] == 200  # the first one is untouched


@pytest.mark.root
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_is_a_clean_exit(tmp_path: Path, sig: signal.Signals) -> None:
    d = start(tmp_path)
    try:
        d.proc.send_signal(sig)
        assert d.proc.wait(30) == 0
        assert not d.sock.exists()
        assert not (d.exec_root / "dockyardd.pid").exists()
    finally:
        stop(d)
    # the lock is released: a new daemon can take the data root
    d2 = start(tmp_path)
    stop(d2)


def test_non_loopback_tcp_refused(tmp_path: Path) -> None:
    res = subprocess.run([DOCKYARDD, "-H", "tcp://0.0.0.0:2375", "--data-root", str(tmp_path / "d"),
                          "--exec-root", str(tmp_path / "e")], capture_output=True, timeout=30)
    assert res.returncode == 1
    assert (b"refusing to listen on tcp://0.0.0.0:2375 without TLS: anyone who can reach it gets root on this "
            b"host; pass --tlsverify --tlscacert --tlscert --tlskey or listen on 127.0.0.1") in res.stderr
    assert not (tmp_path / "d").exists() and not (tmp_path / "e").exists()


def test_unknown_config_key_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "daemon.json"
    cfg.write_text('{"data-root": "/x", "debugg": true}')
    res = subprocess.run([DOCKYARDD, "--config-file", str(cfg)], capture_output=True, timeout=30)
    assert res.returncode == 1 and b"debugg" in res.stderr
    assert os.path.exists(cfg)


@pytest.mark.root
def test_loopback_tcp_listener(tmp_path: Path) -> None:
    port = free_port()
    d = start(tmp_path, "-H", f"tcp://127.0.0.1:{port}")
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/v1.45/_ping")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == b"OK"
        conn.close()
    finally:
        stop(d)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.mark.root
@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make test certificates")
def test_tlsverify_requires_a_client_certificate(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
             "-keyout", "ca-key.pem", "-out", "ca.pem", cwd=certs)
    for who in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", f"{who}-key.pem",
                 "-out", f"{who}.csr", cwd=certs)
        (certs / f"{who}.ext").write_text("subjectAltName=IP:127.0.0.1\n" if who == "server"
                                          else "extendedKeyUsage=clientAuth\n")
        _openssl("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
                 "-days", "1", "-extfile", f"{who}.ext", "-out", f"{who}.pem", cwd=certs)
    port = free_port()
    d = start(tmp_path, "-H", f"tcp://0.0.0.0:{port}", "--tlsverify", "--tlscacert", str(certs / "ca.pem"),
              "--tlscert", str(certs / "server.pem"), "--tlskey", str(certs / "server-key.pem"))
    try:
        ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        ctx.load_cert_chain(str(certs / "client.pem"), str(certs / "client-key.pem"))
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
        conn.request("GET", "/_ping")
        assert conn.getresponse().read() == b"OK"
        conn.close()
        bare = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=bare, timeout=10)
        with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
            conn.request("GET", "/_ping")
            conn.getresponse().read()
        conn.close()
    finally:
        stop(d)


def test_start_up_clears_what_a_crash_left(tmp_path: Path) -> None:
    """A build or request the daemon died in the middle of leaves snapshots, mounts and files in
    <data-root>/tmp; the next start removes them (nothing runs yet that could own them)."""
    from dockyard.mount import Mount, unmount_all
    from dockyard.snapshots import Snapshotter
    data_root = tmp_path / "data"
    snaps = Snapshotter(data_root / "snapshots")
    snaps.prepare("build-deadbeef", None)
    snaps.close()
    mnt = data_root / "tmp" / "build-mnt-crashed"
    mnt.mkdir(parents=True)
    (data_root / "tmp" / "build-ctx.tar").write_bytes(b"x")
    src = tmp_path / "src"
    src.mkdir()
    Mount("bind", str(src), ("rbind",)).mount(mnt)
    try:
        d = start(tmp_path)
        stop(d)
        snaps = Snapshotter(data_root / "snapshots")
        keys = [s.key for s in snaps.walk()]
        snaps.close()
        assert "build-deadbeef" not in keys
        assert list((data_root / "tmp").iterdir()) == []
        assert str(mnt) not in Path("/proc/self/mountinfo").read_text()
    finally:
        if mnt.exists():
            unmount_all(mnt, detach=True)
