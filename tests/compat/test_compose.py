"""The Python docker-compose (1.29, Debian's package) against dockyardd: a two-service app where one
service calls the other by its service name, brought up and torn down cleanly."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import LiveDaemon, unique

pytestmark = [pytest.mark.root, pytest.mark.compat,
              pytest.mark.skipif(shutil.which("docker-compose") is None,
                                 reason="docker-compose not installed (make test-deps)")]

COMPOSE = """\
version: "3.7"
services:
  web:
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo served-by-web > /www/index.html && exec httpd -f -p 80 -h /www"]
  client:
    image: busybox
    depends_on: [web]
    command: ["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do printf 'GET / HTTP/1.0\\\\r\\\\n\\\\r\\\\n' | nc -w 2 web 80 && exit 0; sleep 0.3; done; exit 1"]
"""


def compose(d: LiveDaemon, project: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "COMPOSE_"))}
    env["DOCKER_HOST"] = d.host
    return subprocess.run(["docker-compose", "--no-ansi", "-p", project.name, *args], cwd=project, env=env,
                          capture_output=True, timeout=timeout)


def test_compose_two_services_by_name(daemon: LiveDaemon, tmp_path: Path) -> None:
    project = tmp_path / unique("proj").replace("-", "")
    project.mkdir()
    (project / "docker-compose.yml").write_text(COMPOSE)
    links_before = _links()
    try:
        res = compose(daemon, project, "up", "-d")
        assert res.returncode == 0, res.stderr.decode()
        net = f"{project.name}_default"
        assert net in daemon.docker("network", "ls", "--format", "{{.Name}}").stdout.decode().split()
        client = f"{project.name}_client_1"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = daemon.docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", client).stdout.decode()
            if state.startswith("exited"):
                break
            time.sleep(0.2)
        assert state.split() == ["exited", "0"], state
        logs = compose(daemon, project, "logs", "client").stdout.decode()
        assert "served-by-web" in logs
    finally:
        res = compose(daemon, project, "down", "-t", "1")
    assert res.returncode == 0, res.stderr.decode()
    assert f"{project.name}_default" not in daemon.docker("network", "ls", "--format", "{{.Name}}").stdout.decode()
    assert daemon.docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={project.name}").stdout == b""
    assert _links() == links_before


def _links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}
