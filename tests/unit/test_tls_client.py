"""The CLI's TLS settings: flags and DOCKER_* environment, defaults, errors; host parsing with TLS."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard import errors
from dockyard.cli.main import _command_index, build_parser
from dockyard.client.tls import TLSSettings, describe_failure, resolve
from dockyard.client.transport import Host, Transport, host_from_env


def _files(d: Path, *names: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for n in names:
        (d / n).write_text("x")
    return d


def test_off_unless_asked() -> None:
    assert resolve(env={}) is None
    assert resolve(tlscacert="/x/ca.pem", tlscert="/x/c.pem", tlskey="/x/k.pem", env={}) is None
    assert resolve(env={"DOCKER_TLS_VERIFY": "", "DOCKER_CERT_PATH": "/x"}) is None


def test_tlsverify_flag_uses_cert_path_defaults(tmp_path: Path) -> None:
    certs = _files(tmp_path / "certs", "ca.pem", "cert.pem", "key.pem")
    got = resolve(tlsverify=True, env={"DOCKER_CERT_PATH": str(certs)})
    assert got == TLSSettings(verify=True, cacert=str(certs / "ca.pem"), cert=str(certs / "cert.pem"),
                              key=str(certs / "key.pem"))


def test_env_turns_on_verify(tmp_path: Path) -> None:
    certs = _files(tmp_path / "c", "ca.pem", "cert.pem", "key.pem")
    # any non-empty value, as with docker (even "0")
    for value in ("1", "true", "0"):
        got = resolve(env={"DOCKER_TLS_VERIFY": value, "DOCKER_CERT_PATH": str(certs)})
        assert got is not None and got.verify and got.cacert == str(certs / "ca.pem")
    got = resolve(env={"DOCKER_TLS": "1", "DOCKER_CERT_PATH": str(certs)})
    assert got is not None and not got.verify and got.cert == str(certs / "cert.pem")


def test_default_cert_path_is_home_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    _files(tmp_path / ".docker", "ca.pem", "cert.pem", "key.pem")
    got = resolve(tlsverify=True, env={})
    assert got == TLSSettings(True, str(tmp_path / ".docker/ca.pem"), str(tmp_path / ".docker/cert.pem"),
                              str(tmp_path / ".docker/key.pem"))


def test_flags_beat_env(tmp_path: Path) -> None:
    env_dir = _files(tmp_path / "env", "ca.pem", "cert.pem", "key.pem")
    got = resolve(tlsverify=True, tlscacert="/f/ca.pem", tlscert="/f/c.pem", tlskey="/f/k.pem",
                  env={"DOCKER_CERT_PATH": str(env_dir)})
    assert got == TLSSettings(True, "/f/ca.pem", "/f/c.pem", "/f/k.pem")


def test_absent_default_client_cert_is_not_used(tmp_path: Path) -> None:
    certs = _files(tmp_path / "c", "ca.pem")
    got = resolve(tlsverify=True, env={"DOCKER_CERT_PATH": str(certs)})
    assert got == TLSSettings(True, str(certs / "ca.pem"), "", "")


def test_tls_without_verify_ignores_the_ca(tmp_path: Path) -> None:
    certs = _files(tmp_path / "c", "ca.pem", "cert.pem", "key.pem")
    got = resolve(tls=True, tlscacert="/elsewhere/ca.pem", env={"DOCKER_CERT_PATH": str(certs)})
    assert got == TLSSettings(False, "", str(certs / "cert.pem"), str(certs / "key.pem"))


def test_missing_files_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(errors.InvalidArgument, match=r"^could not read TLS CA certificate /nope/ca.pem: "
                                                     r"No such file or directory$"):
        TLSSettings(True, "/nope/ca.pem").context()
    with pytest.raises(errors.InvalidArgument, match=r"^could not read TLS client certificate /nope/c.pem"):
        TLSSettings(False, "", "/nope/c.pem", "/nope/k.pem").context()
    with pytest.raises(errors.InvalidArgument, match="needs both --tlscert and --tlskey"):
        TLSSettings(False, "", "/x/c.pem", "").context()
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(errors.InvalidArgument, match=r"^could not load TLS CA certificate .*junk.pem"):
        TLSSettings(True, str(junk)).context()


def test_contexts() -> None:
    ctx = TLSSettings(False).context()
    assert ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    ctx = TLSSettings(True, "").context()  # verify against the system's CAs
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname


def test_tls_applies_to_tcp_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKYARD_HOST", raising=False)
    settings = TLSSettings(True, "/c/ca.pem")
    assert host_from_env("tcp://127.0.0.1:2376", settings) == Host("tcp", "127.0.0.1", 2376, settings)
    assert host_from_env("unix:///run/x.sock", settings).tls is None
    assert Transport(host_from_env("unix:///run/x.sock", settings)).ssl_context() is None
    monkeypatch.setenv("DOCKYARD_HOST", "tcp://localhost:2376")
    assert host_from_env(None, settings).tls == settings
    assert host_from_env(None).tls is None


def test_global_flags_parse_and_command_index() -> None:
    argv = ["--tlsverify", "--tlscacert", "ca.pem", "--tlscert", "c.pem", "--tlskey", "k.pem",
            "-H", "tcp://127.0.0.1:2376", "version"]
    assert _command_index(argv) == 9
    assert _command_index(["--tls", "--tlscert=c.pem", "ps"]) == 2
    a = build_parser("version").parse_args(argv)
    assert (a.tls, a.tlsverify, a.tlscacert, a.tlscert, a.tlskey, a.host, a.verb) == (
        False, True, "ca.pem", "c.pem", "k.pem", "tcp://127.0.0.1:2376", "version")


def test_describe_failure() -> None:
    err = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
                                          "self-signed certificate (_ssl.c:992)")
    err.verify_message = "self-signed certificate"
    assert describe_failure(err).startswith("self-signed certificate (the daemon's certificate was not accepted")
    alert = ssl.SSLError(1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required "
                            "(_ssl.c:2578)")
    assert describe_failure(alert) == ("tlsv13 alert certificate required (the daemon wants a client certificate "
                                       "signed by its CA: --tlscert/--tlskey or DOCKER_CERT_PATH)")
    plain = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:992)")
    assert describe_failure(plain) == "wrong version number (is the daemon listening with TLS on this port?)"


def test_cli_without_tls_imports_neither_ssl_nor_cryptography() -> None:
    code = ("import sys\nfrom dockyard.cli.main import main\n"
            "main(['-H', 'unix:///nonexistent/dockyard.sock', 'ps'])\n"
            "print(sorted(m for m in ('ssl', 'cryptography') if m in sys.modules))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")})
    assert res.stdout.strip().splitlines()[-1] == "[]", res.stderr
