"""The API's protections against a real dockyardd: mutual TLS on TCP (dockyard CLI, stock docker CLI,
docker SDK), refused clients, the unix socket's group, and the TCP rules."""

from __future__ import annotations

import datetime
import grp
import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import BIN, LiveDaemon, free_port, start_daemon, stop_daemon

pytestmark = pytest.mark.root

DOCKYARD = str(BIN / "dockyard")
DOCKYARDD = str(BIN / "dockyardd")
DOCKER = shutil.which("docker") or "/usr/local/bin/docker"


@dataclass
class Certs:
    good: Path      # `dockyard tls generate`: ca, server and client
    other: Path     # a second, unrelated CA with its own client certificate
    expired: Path   # cert.pem/key.pem signed by good's CA, no longer valid


@dataclass
class TLSDaemon:
    d: LiveDaemon
    port: int
    certs: Certs

    @property
    def tcp(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"


def _generate(d: Path) -> None:
    res = subprocess.run([DOCKYARD, "tls", "generate", "--dir", str(d), "--days", "2"],
                         capture_output=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert b"--tlsverify --tlscacert" in res.stdout and b"DOCKER_TLS_VERIFY=1" in res.stdout


def _expired_client(good: Path, out: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca = x509.load_pem_x509_certificate((good / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((good / "ca-key.pem").read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "expired client")]))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=10))
            .not_valid_after(now - datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    out.mkdir(mode=0o700)
    (out / "ca.pem").write_bytes((good / "ca.pem").read_bytes())
    (out / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (out / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    base = tmp_path_factory.mktemp("certs")
    c = Certs(base / "good", base / "other", base / "expired")
    _generate(c.good)
    _generate(c.other)
    _expired_client(c.good, c.expired)
    return c


@pytest.fixture(scope="module")
def tlsd(certs: Certs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSDaemon]:
    port = free_port()
    g = certs.good
    d = start_daemon(tmp_path_factory.mktemp("tlsd"), "-H", f"tcp://127.0.0.1:{port}", "--tlsverify",
                     "--tlscacert", str(g / "ca.pem"), "--tlscert", str(g / "server-cert.pem"),
                     "--tlskey", str(g / "server-key.pem"))
    try:
        d.cli("bootstrap", "busybox", timeout=120)  # over the unix socket
        yield TLSDaemon(d, port, certs)
    finally:
        stop_daemon(d)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "DOCKYARD_"))}
    env["HOME"] = "/nonexistent"  # no ~/.docker defaults leak in
    env.update(extra)
    return env


def _tls_flags(ca: Path, client: Path | None) -> list[str]:
    flags = ["--tlsverify", "--tlscacert", str(ca / "ca.pem")]
    if client is not None:
        flags += ["--tlscert", str(client / "cert.pem"), "--tlskey", str(client / "key.pem")]
    return flags


def _dockyard(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DOCKYARD, *args], capture_output=True, text=True, timeout=timeout, env=env or _env())


def _probe(port: int, client: Path | None, ca: Path, version: ssl.TLSVersion) -> bytes:
    """A raw TLS client: b"HTTP/1.1 200 ..." when the daemon lets it in, b"" or an exception when not."""
    ctx = ssl.create_default_context(cafile=str(ca / "ca.pem"))
    ctx.maximum_version = version
    if client is not None:
        ctx.load_cert_chain(str(client / "cert.pem"), str(client / "key.pem"))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n")
        return s.recv(100)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_only_a_valid_client_certificate_gets_in(tlsd: TLSDaemon, version: ssl.TLSVersion) -> None:
    c = tlsd.certs
    assert _probe(tlsd.port, c.good, c.good, version).startswith(b"HTTP/1.1 200")
    for client in (None, c.other, c.expired):
        if version == ssl.TLSVersion.TLSv1_2:  # the server's verdict is part of the handshake
            with pytest.raises((ssl.SSLError, ConnectionError)):
                _probe(tlsd.port, client, c.good, version)
        else:  # TLS 1.3: the client's handshake ends first; the server then alerts or hangs up
            try:
                data = _probe(tlsd.port, client, c.good, version)
            except (ssl.SSLError, ConnectionError):
                data = b""
            assert data == b"", client
    # and the daemon is not fooled about itself: a client trusting another CA refuses it
    with pytest.raises(ssl.SSLCertVerificationError):
        _probe(tlsd.port, c.good, c.other, version)


def test_dockyard_cli_flags_and_env(tlsd: TLSDaemon) -> None:
    g = tlsd.certs.good
    res = _dockyard("-H", tlsd.tcp, *_tls_flags(g, g), "version", "--format", "{{.Server.ApiVersion}}")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "1.45"
    env = _env(DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=str(g), DOCKYARD_HOST=tlsd.tcp)
    res = _dockyard("info", "--format", "{{.DockerRootDir}}", env=env)
    assert res.returncode == 0 and res.stdout.strip() == str(tlsd.d.data_root), res.stderr
    # the hijacked attach stream works over TLS too
    res = _dockyard("run", "--rm", "busybox", "echo", "over tls", env=env)
    assert (res.returncode, res.stdout) == (0, "over tls\n"), res.stderr
    # --tls alone encrypts without checking the daemon (docker's behaviour): another CA does not matter
    res = _dockyard("-H", tlsd.tcp, "--tls", "--tlscacert", str(tlsd.certs.other / "ca.pem"),
                    "--tlscert", str(g / "cert.pem"), "--tlskey", str(g / "key.pem"), "version")
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("who", ["none", "other", "expired"])
def test_dockyard_cli_refused_in_one_line(tlsd: TLSDaemon, who: str) -> None:
    c = tlsd.certs
    client = {"none": None, "other": c.other, "expired": c.expired}[who]
    res = _dockyard("-H", tlsd.tcp, *_tls_flags(c.good, client), "ps")
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert lines[0].startswith(f"error during connect: TLS with {tlsd.tcp} failed: ")
    assert "client certificate" in lines[0]


def test_dockyard_cli_errors(tlsd: TLSDaemon) -> None:
    c = tlsd.certs
    # the daemon's certificate from a CA we do not trust
    res = _dockyard("-H", tlsd.tcp, *_tls_flags(c.other, c.other), "ps")
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "certificate verify failed" in res.stderr or "self-signed" in res.stderr or "unable to get" in res.stderr
    # a file that is not there
    res = _dockyard("-H", tlsd.tcp, "--tlsverify", "--tlscacert", str(c.good / "ca.pem"),
                    "--tlscert", "/nonexistent/cert.pem", "--tlskey", str(c.good / "key.pem"), "ps")
    assert (res.returncode, res.stderr) == (
        1, "Error: could not read TLS client certificate /nonexistent/cert.pem: No such file or directory\n")
    # a key that does not belong to the certificate
    res = _dockyard("-H", tlsd.tcp, "--tlsverify", "--tlscacert", str(c.good / "ca.pem"),
                    "--tlscert", str(c.good / "cert.pem"), "--tlskey", str(c.other / "key.pem"), "ps")
    assert res.returncode == 1 and res.stderr.startswith("Error: could not load TLS client certificate")
    assert len(res.stderr.strip().splitlines()) == 1
    # plain HTTP at the TLS port: Go's answer, which the docker CLI shows too
    res = _dockyard("-H", tlsd.tcp, "ps")
    assert (res.returncode, res.stderr) == (1, "Error response from daemon: Client sent an HTTP request to an "
                                               "HTTPS server.\n")


def test_stdin_half_close_over_tls(tlsd: TLSDaemon) -> None:
    """A client ends a container's stdin by half-closing the hijacked connection (FIN from dockyard,
    TLS close_notify from the docker CLI) and keeps reading: the output must still arrive."""
    g = tlsd.certs.good
    env = _env(DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=str(g), DOCKYARD_HOST=tlsd.tcp, DOCKER_HOST=tlsd.tcp,
               DOCKER_CONFIG=str(tlsd.d.data_root.parent / "docker-config"))
    clients = [DOCKYARD] + ([DOCKER] if os.path.exists(DOCKER) else [])
    for cli in clients:
        res = subprocess.run([cli, "run", "-i", "--rm", "busybox", "sh", "-c", "cat; echo after-eof"],
                             input="from stdin\n", capture_output=True, text=True, timeout=60, env=env)
        assert (res.returncode, res.stdout) == (0, "from stdin\nafter-eof\n"), (cli, res.stderr)


@pytest.mark.skipif(not os.path.exists(DOCKER), reason="needs the docker CLI")
def test_stock_docker_cli(tlsd: TLSDaemon) -> None:
    g = tlsd.certs.good
    env = _env(DOCKER_CONFIG=str(tlsd.d.data_root.parent / "docker-config"))
    res = subprocess.run([DOCKER, *_tls_flags(g, g), "-H", tlsd.tcp, "version", "--format",
                          "{{.Server.APIVersion}}"], capture_output=True, text=True, timeout=60, env=env)
    assert res.returncode == 0 and res.stdout.strip() == "1.45", res.stderr
    env_tls = {**env, "DOCKER_HOST": tlsd.tcp, "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(g)}
    res = subprocess.run([DOCKER, "ps", "-a"], capture_output=True, text=True, timeout=60, env=env_tls)
    assert res.returncode == 0, res.stderr
    for client in (None, tlsd.certs.other, tlsd.certs.expired):
        res = subprocess.run([DOCKER, *_tls_flags(g, client), "-H", tlsd.tcp, "version"],
                             capture_output=True, text=True, timeout=60, env=env)
        assert res.returncode != 0 and "Server:" not in res.stdout, (client, res.stdout)


def test_docker_sdk(tlsd: TLSDaemon, monkeypatch: pytest.MonkeyPatch) -> None:
    docker = pytest.importorskip("docker")
    import requests
    # requests lets these override the session's CA (the one TLSConfig sets): psf/requests#3829
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(var, raising=False)
    g, base_url = tlsd.certs.good, f"https://127.0.0.1:{tlsd.port}"
    tls = docker.tls.TLSConfig(client_cert=(str(g / "cert.pem"), str(g / "key.pem")),
                               ca_cert=str(g / "ca.pem"), verify=True)
    client = docker.DockerClient(base_url=base_url, tls=tls, version="1.45")
    try:
        assert client.ping() is True
        assert client.version()["ApiVersion"] == "1.45"
    finally:
        client.close()
    for other in (None, tlsd.certs.other, tlsd.certs.expired):
        cert = (str(other / "cert.pem"), str(other / "key.pem")) if other is not None else None
        bad = docker.DockerClient(base_url=base_url, version="1.45",
                                  tls=docker.tls.TLSConfig(client_cert=cert, ca_cert=str(g / "ca.pem"), verify=True))
        try:
            with pytest.raises(requests.exceptions.ConnectionError):  # SSLError is one
                bad.ping()
        finally:
            bad.close()


def test_plain_tcp_rules(tmp_path: Path) -> None:
    port = free_port()
    # off loopback: refused at start, nothing created, even with --tls (no client verification)
    for extra in ([], ["--tls", "--tlscert", "c.pem", "--tlskey", "k.pem"]):
        res = subprocess.run([DOCKYARDD, "-H", f"tcp://0.0.0.0:{port}", *extra, "--data-root", str(tmp_path / "d"),
                              "--exec-root", str(tmp_path / "e")], capture_output=True, text=True, timeout=30)
        assert res.returncode == 1
        assert (f"refusing to listen on tcp://0.0.0.0:{port} without TLS: anyone who can reach it gets root on "
                "this host") in res.stderr
        assert not (tmp_path / "d").exists() and not (tmp_path / "e").exists()
    # on loopback: starts, with one warning line
    d = start_daemon(tmp_path / "lo", "-H", f"tcp://127.0.0.1:{port}")
    try:
        res = _dockyard("-H", f"tcp://127.0.0.1:{port}", "version", "--format", "{{.Server.ApiVersion}}")
        assert res.stdout.strip() == "1.45", res.stderr
        warnings = [ln for ln in d.log.read_text().splitlines() if "level=warning" in ln and "TLS" in ln]
        assert warnings == [
            f'{warnings[0][:warnings[0].index("level=")]}level=warning msg="API listens on tcp://127.0.0.1:{port} '
            "without TLS client verification: any user or process on this host can connect and gets "
            'root-equivalent control; use the unix socket or --tlsverify"']
    finally:
        stop_daemon(d)


def _connect_as(uid: int, gids: list[int], sock: Path) -> subprocess.CompletedProcess[str]:
    """Connect to the API socket as an unprivileged user with the given supplementary groups."""
    code = ("import socket,sys\ns=socket.socket(socket.AF_UNIX)\n"
            "try:\n s.connect(sys.argv[1])\nexcept PermissionError:\n print('denied'); sys.exit(3)\n"
            "s.sendall(b'GET /_ping HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'); print(s.recv(12).decode())\n")
    return subprocess.run(["/usr/bin/python3", "-I", "-c", code, str(sock)], capture_output=True, text=True,
                          timeout=30, user=uid, group=65534, extra_groups=gids, cwd="/")


def _groupadd() -> tuple[str, int]:
    name = f"dyg{uuid.uuid4().hex[:10]}"
    subprocess.run(["groupadd", name], check=True, capture_output=True, timeout=30)
    return name, grp.getgrnam(name).gr_gid


def test_socket_group(tmp_path: Path) -> None:
    name, gid = _groupadd()
    try:
        d = start_daemon(tmp_path / "flag", "--group", name)
        try:
            st = d.sock.stat()
            assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, gid, 0o660)
            nobody = 65534
            member = _connect_as(nobody, [gid], d.sock)
            assert member.returncode == 0 and member.stdout.startswith("HTTP/1.1 200"), member.stderr
            outsider = _connect_as(nobody, [], d.sock)
            assert (outsider.returncode, outsider.stdout.strip()) == (3, "denied")
        finally:
            stop_daemon(d)
        conf = tmp_path / "daemon.json"
        conf.write_text(json.dumps({"group": name}))
        d = start_daemon(tmp_path / "file", "--config-file", str(conf))
        try:
            assert d.sock.stat().st_gid == gid and stat.S_IMODE(d.sock.stat().st_mode) == 0o660
        finally:
            stop_daemon(d)
    finally:
        subprocess.run(["groupdel", name], check=False, capture_output=True, timeout=30)


def test_socket_default_group(tmp_path: Path) -> None:
    try:
        want = grp.getgrnam("dockyard").gr_gid
    except KeyError:
        want = 0  # no such group on this host: root only
    d = start_daemon(tmp_path)
    try:
        st = d.sock.stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, want, 0o660)
    finally:
        stop_daemon(d)


def test_missing_group_refused_at_start(tmp_path: Path) -> None:
    name = f"dynosuch{uuid.uuid4().hex[:8]}"
    sock = tmp_path / "run" / "api.sock"
    res = subprocess.run([DOCKYARDD, "-H", f"unix://{sock}", "--group", name, "--data-root", str(tmp_path / "d"),
                          "--exec-root", str(tmp_path / "e")], capture_output=True, text=True, timeout=30)
    assert res.returncode == 1
    assert res.stderr == (f"dockyardd: group '{name}' for the API socket does not exist: create it "
                          f"(groupadd {name}) or name another with -G/--group\n")
    assert not any(p.exists() for p in (tmp_path / "d", tmp_path / "e", sock.parent))


def test_tls_command_needs_no_daemon(tmp_path: Path) -> None:
    env = _env(DOCKYARD_HOST="unix:///nonexistent.sock")
    res = _dockyard("tls", "generate", "--dir", str(tmp_path / "x"), "--host", "10.9.8.7", env=env)
    assert res.returncode == 0, res.stderr
    assert "-H tcp://10.9.8.7:2376" in res.stdout
    res = _dockyard("-H", "unix:///nonexistent.sock", "tls", "generate", "--dir", str(tmp_path / "x"), env=env)
    assert res.returncode == 1 and res.stderr.startswith("Error: ") and "--force" in res.stderr
