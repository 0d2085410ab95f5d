"""``dockyard tls generate``: the files, their modes, names and usages, and a mutual-TLS handshake with
them (over a socketpair: no network)."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from dockyard import errors
from dockyard.cli.tlscmd import generate, main
from dockyard.client.tls import TLSSettings

FILES = ("ca.pem", "ca-key.pem", "server-cert.pem", "server-key.pem", "cert.pem", "key.pem")


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_files_modes_names_usages(tmp_path: Path) -> None:
    d = tmp_path / "tls"
    result = generate(d, ["build.example.com", "10.0.0.7", "::1"], days=10)
    assert sorted(p.name for p in d.iterdir()) == sorted(FILES)
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    for name in FILES:
        want = 0o600 if name.endswith("key.pem") else 0o644
        assert stat.S_IMODE((d / name).stat().st_mode) == want, name
    ca, server, client = _cert(d / "ca.pem"), _cert(d / "server-cert.pem"), _cert(d / "cert.pem")
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for leaf in (server, client):
        leaf.verify_directly_issued_by(ca)
        assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        days = leaf.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
        assert datetime.timedelta(days=9) < days <= datetime.timedelta(days=10)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "build.example.com"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1"),
                                                       ipaddress.ip_address("10.0.0.7"), ipaddress.ip_address("::1")]
    assert list(server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH]
    assert list(client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH]
    assert result.hosts == ("localhost", "127.0.0.1", "build.example.com", "10.0.0.7", "::1")


def test_refuses_to_overwrite_and_bad_input(tmp_path: Path) -> None:
    d = tmp_path / "tls"
    generate(d, [])
    before = (d / "ca.pem").read_bytes()
    with pytest.raises(errors.AlreadyExists, match=r"already holds ca-key\.pem, ca\.pem"):
        generate(d, [])
    assert (d / "ca.pem").read_bytes() == before
    generate(d, [], force=True)
    assert (d / "ca.pem").read_bytes() != before
    with pytest.raises(errors.InvalidArgument, match="invalid --days 0"):
        generate(tmp_path / "x", [], days=0)
    with pytest.raises(errors.InvalidArgument, match="invalid --host 'tcp://a:1'"):
        generate(tmp_path / "x", ["tcp://a:1"])
    assert not (tmp_path / "x").exists()


def test_main_prints_how_to_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "tls"
    assert main(["generate", "--dir", str(d), "--host", "a.example,10.1.1.1", "--days", "3"]) == 0
    out = capsys.readouterr().out
    assert (f"dockyardd -H unix:///run/dockyard/dockyard.sock -H tcp://a.example:2376 \\\n"
            f"    --tlsverify --tlscacert {d}/ca.pem \\\n"
            f"    --tlscert {d}/server-cert.pem --tlskey {d}/server-key.pem") in out
    assert f"DOCKER_HOST=tcp://a.example:2376 DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH={d}" in out
    assert main(["generate", "--dir", str(d)]) == 1
    assert "Error: " in capsys.readouterr().err


def _handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, name: str = "localhost") -> bytes:
    """Mutual TLS over a socketpair; returns what the server read (b"" when it refused)."""
    a, b = socket.socketpair()
    a.settimeout(10)
    b.settimeout(10)
    got: list[bytes] = []

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(a, server_side=True) as s:
                got.append(s.recv(100))
                s.sendall(b"pong")
        except (ssl.SSLError, OSError):
            got.append(b"")

    t = threading.Thread(target=serve)
    t.start()
    try:
        with client_ctx.wrap_socket(b, server_hostname=name) as c:
            c.sendall(b"ping")
            c.recv(100)
    except (ssl.SSLError, OSError):
        pass
    t.join(10)
    return got[0]


def test_generated_certificates_do_mutual_tls(tmp_path: Path) -> None:
    d, other = tmp_path / "tls", tmp_path / "other"
    generate(d, [])
    generate(other, [])
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(d / "ca.pem"))
    server.load_cert_chain(str(d / "server-cert.pem"), str(d / "server-key.pem"))
    server.verify_mode = ssl.CERT_REQUIRED
    good = TLSSettings(True, str(d / "ca.pem"), str(d / "cert.pem"), str(d / "key.pem"))
    assert _handshake(server, good.context()) == b"ping"
    assert _handshake(server, good.context(), "127.0.0.1") == b"ping"
    # no client certificate, or one from another CA: the server refuses
    assert _handshake(server, TLSSettings(True, str(d / "ca.pem")).context()) == b""
    foreign = TLSSettings(True, str(d / "ca.pem"), str(other / "cert.pem"), str(other / "key.pem"))
    assert _handshake(server, foreign.context()) == b""
    # the client refuses a daemon its CA did not sign, and a name not in the certificate
    assert _handshake(server, TLSSettings(True, str(other / "ca.pem"), str(d / "cert.pem"),
                                          str(d / "key.pem")).context()) == b""
    assert _handshake(server, good.context(), "elsewhere.example") == b""
    # --tls without --tlsverify: encrypted, the daemon is not checked
    assert _handshake(server, TLSSettings(False, "", str(d / "cert.pem"), str(d / "key.pem")).context(),
                      "elsewhere.example") == b"ping"
