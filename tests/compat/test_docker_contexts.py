"""Contexts shared with the stock docker CLI: each tool lists and uses what the other created,
over a unix socket and over TCP with TLS material in the store."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BIN, LiveDaemon, free_port, start_daemon, stop_daemon, unique

pytestmark = [pytest.mark.root, pytest.mark.compat,
              pytest.mark.skipif(shutil.which("docker") is None, reason="docker CLI not installed")]

DOCKYARD = str(BIN / "dockyard")


def _env(cfg: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "DOCKYARD_"))}
    env.update(DOCKER_CONFIG=str(cfg), HOME="/nonexistent", **extra)
    return env


def _run(tool: str, cfg: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([DOCKYARD if tool == "dockyard" else "docker", *args], env=_env(cfg),
                         capture_output=True, text=True, timeout=60)
    if check:
        assert res.returncode == 0, f"{tool} {' '.join(args)}: {res.stderr}"
    return res


def _names(tool: str, cfg: Path) -> dict[str, dict[str, object]]:
    out = _run(tool, cfg, "context", "ls", "--format", "json").stdout
    return {row["Name"]: row for row in map(json.loads, out.splitlines())}


def test_docker_context_used_by_dockyard(daemon: LiveDaemon, tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    name = unique("dk")
    _run("docker", cfg, "context", "create", name, "--description", "made by docker",
         "--docker", f"host={daemon.host}")
    rows = _names("dockyard", cfg)
    assert rows[name] == {"Current": False, "Description": "made by docker", "DockerEndpoint": daemon.host,
                          "Error": "", "Name": name}
    assert _run("dockyard", cfg, "--context", name, "version", "--format", "{{.Server.Version}}").stdout == "0.1.0\n"
    _run("docker", cfg, "context", "use", name)  # docker's current context is dockyard's too
    assert _run("dockyard", cfg, "context", "show").stdout == f"{name}\n"
    assert "busybox" in _run("dockyard", cfg, "images", "--format", "{{.Repository}}").stdout
    table = _run("dockyard", cfg, "context", "ls").stdout
    assert any(line.startswith(f"{name} *") for line in table.splitlines())


def test_dockyard_context_used_by_docker(daemon: LiveDaemon, tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    name = unique("dy")
    _run("dockyard", cfg, "context", "create", name, "--description", "made by dockyard",
         "--docker", f"host={daemon.host}")
    rows = _names("docker", cfg)
    assert rows[name] == {"Current": False, "Description": "made by dockyard", "DockerEndpoint": daemon.host,
                          "Error": "", "Name": name}
    inspect = json.loads(_run("docker", cfg, "context", "inspect", name).stdout)[0]
    assert inspect["Endpoints"]["docker"] == {"Host": daemon.host, "SkipTLSVerify": False}
    ver = _run("docker", cfg, "--context", name, "version", "--format", "{{.Server.Version}}").stdout
    assert ver == "0.1.0\n"
    _run("dockyard", cfg, "context", "use", name)
    assert _run("docker", cfg, "context", "show").stdout == f"{name}\n"
    assert "busybox" in _run("docker", cfg, "images", "--format", "{{.Repository}}").stdout
    _run("dockyard", cfg, "context", "rm", "-f", name)
    assert _run("docker", cfg, "context", "show").stdout == "default\n"
    assert name not in _names("docker", cfg)


@pytest.fixture(scope="module")
def tls_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveDaemon, str, Path]]:
    certs = tmp_path_factory.mktemp("certs") / "tls"
    res = subprocess.run([DOCKYARD, "tls", "generate", "--dir", str(certs), "--days", "2"],
                         capture_output=True, timeout=60)
    assert res.returncode == 0, res.stderr
    port = free_port()
    d = start_daemon(tmp_path_factory.mktemp("tlsctx"), "-H", f"tcp://127.0.0.1:{port}", "--tlsverify",
                     "--tlscacert", str(certs / "ca.pem"), "--tlscert", str(certs / "server-cert.pem"),
                     "--tlskey", str(certs / "server-key.pem"))
    try:
        yield d, f"tcp://127.0.0.1:{port}", certs
    finally:
        stop_daemon(d)


@pytest.mark.parametrize("creator", ["docker", "dockyard"])
def test_tls_context_both_ways(tls_daemon: tuple[LiveDaemon, str, Path], tmp_path: Path, creator: str) -> None:
    _, tcp, certs = tls_daemon
    cfg = tmp_path / "cfg"
    name = unique("tls")
    _run(creator, cfg, "context", "create", name, "--docker",
         f"host={tcp},ca={certs}/ca.pem,cert={certs}/cert.pem,key={certs}/key.pem")
    for tool in ("docker", "dockyard"):
        res = _run(tool, cfg, "--context", name, "version", "--format", "{{.Server.Version}}")
        assert res.stdout == "0.1.0\n", f"{tool}: {res.stderr}"
        material = json.loads(_run(tool, cfg, "context", "inspect", name).stdout)[0]["TLSMaterial"]
        assert material == {"docker": ["ca.pem", "cert.pem", "key.pem"]}
    # without the client certificate the daemon refuses both tools alike
    bare = unique("bare")
    _run(creator, cfg, "context", "create", bare, "--docker", f"host={tcp},ca={certs}/ca.pem")
    for tool in ("docker", "dockyard"):
        assert _run(tool, cfg, "--context", bare, "version", check=False).returncode != 0
