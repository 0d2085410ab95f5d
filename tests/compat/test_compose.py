"""The Python docker-compose (1.29, Debian's package) against dockyardd: apps of several services
brought up and torn down cleanly — calling each other by service name, a service built from a
Dockerfile, a user network with aliases, a named volume that outlives `down`, `exec`/`run`/`logs`,
and build → push → pull through a registry on loopback."""

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

# api is built here (a build arg, a COPY), serves on the user network `backend` under its name and
# an alias, and counts its starts in the named volume `data`, which client reads as well
APP = """\
version: "3.7"
services:
  api:
    build:
      context: ./api
      args:
        GREETING: compose
    networks:
      backend:
        aliases: [api-alias]
    volumes:
      - data:/data
  client:
    image: busybox
    depends_on: [api]
    networks: [backend]
    volumes:
      - data:/shared:ro
    command: ["sh", "-c", "for i in $$(seq 100); do wget -qO- http://api:8080/ && wget -qO- http://api-alias:8080/ && cat /shared/starts && exit 0; sleep 0.2; done; exit 1"]
networks:
  backend:
volumes:
  data:
"""

API_DOCKERFILE = """\
FROM busybox
ARG GREETING=hello
RUN mkdir -p /www && echo "$GREETING from api" > /www/index.html
COPY start.sh /start.sh
CMD ["sh", "/start.sh"]
"""

API_START = """\
n=$(cat /data/starts 2>/dev/null || echo 0)
n=$((n+1)); echo $n > /data/starts
echo "api start $n"
exec httpd -f -p 8080 -h /www
"""


def compose(d: LiveDaemon, project: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "COMPOSE_"))}
    env["DOCKER_HOST"] = d.host
    env["DOCKER_CONFIG"] = str(d.data_root.parent / "docker-config")
    return subprocess.run(["docker-compose", "--no-ansi", "-p", project.name, *args], cwd=project, env=env,
                          capture_output=True, timeout=timeout)


def ok(res: subprocess.CompletedProcess[bytes]) -> str:
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    return res.stdout.decode()


def _project(tmp_path: Path, text: str) -> Path:
    project = tmp_path / unique("proj").replace("-", "")
    project.mkdir()
    (project / "docker-compose.yml").write_text(text)
    return project


def _wait_exited(d: LiveDaemon, container: str) -> str:
    deadline = time.monotonic() + 60
    while True:
        state = d.docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", container).stdout.decode()
        if state.startswith("exited") or time.monotonic() > deadline:
            return state.strip()
        time.sleep(0.2)


def _names(d: LiveDaemon, kind: str) -> list[str]:
    return d.docker(kind, "ls", "--format", "{{.Name}}").stdout.decode().split()


def _net_links(d: LiveDaemon, network: str) -> set[str]:
    """The network's bridge and the host ends of the veths on it (this daemon's only: other test
    daemons on the machine make links of their own meanwhile)."""
    nid = d.docker("network", "inspect", "-f", "{{.Id}}", network).stdout.decode().strip()
    bridge = "dy-" + nid[:12]
    out = subprocess.run(["ip", "-o", "link", "show", "master", bridge], capture_output=True, text=True,
                         check=True).stdout
    return {bridge} | {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def _all_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def test_compose_two_services_by_name(daemon: LiveDaemon, tmp_path: Path) -> None:
    project = _project(tmp_path, COMPOSE)
    net = f"{project.name}_default"
    links: set[str] = set()
    try:
        ok(compose(daemon, project, "up", "-d"))
        assert net in _names(daemon, "network")
        links = _net_links(daemon, net)
        assert len(links) >= 2  # the bridge and the veth of web (client may be gone already)
        assert _wait_exited(daemon, f"{project.name}_client_1").split() == ["exited", "0"]
        assert "served-by-web" in ok(compose(daemon, project, "logs", "client"))
    finally:
        res = compose(daemon, project, "down", "-t", "1")
    ok(res)
    assert net not in _names(daemon, "network")
    assert daemon.docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={project.name}").stdout == b""
    assert not links & _all_links()


def test_compose_app_with_build_network_and_volume(daemon: LiveDaemon, tmp_path: Path) -> None:
    project = _project(tmp_path, APP)
    (project / "api").mkdir()
    (project / "api" / "Dockerfile").write_text(API_DOCKERFILE)
    (project / "api" / "start.sh").write_text(API_START)
    name = project.name
    net, vol, image = f"{name}_backend", f"{name}_data", f"{name}_api"
    links: set[str] = set()
    try:
        built = ok(compose(daemon, project, "build"))
        assert f"Successfully tagged {image}:latest" in built
        ok(compose(daemon, project, "up", "-d"))
        assert net in _names(daemon, "network") and vol in _names(daemon, "volume")
        links = _net_links(daemon, net)
        assert _wait_exited(daemon, f"{name}_client_1").split() == ["exited", "0"]
        logs = ok(compose(daemon, project, "logs", "--no-color"))
        assert logs.count("compose from api") == 2 and "api start 1" in logs
        ps = ok(compose(daemon, project, "ps"))
        assert f"{name}_api_1" in ps and "Up" in ps
        # exec into the running service and a one-off container on the same network and volume
        assert ok(compose(daemon, project, "exec", "-T", "api", "cat", "/data/starts")) == "1\n"
        out = ok(compose(daemon, project, "run", "--rm", "-T", "client", "wget", "-qO-", "http://api-alias:8080/"))
        assert out.endswith("compose from api\n")
        # down keeps the named volume: the next up's api finds its count there
        ok(compose(daemon, project, "down", "-t", "1"))
        assert net not in _names(daemon, "network") and vol in _names(daemon, "volume")
        assert not links & _all_links()
        ok(compose(daemon, project, "up", "-d"))
        links = _net_links(daemon, net)
        deadline = time.monotonic() + 30
        while (starts := compose(daemon, project, "exec", "-T", "api", "cat", "/data/starts").stdout) != b"2\n":
            assert time.monotonic() < deadline, starts
            time.sleep(0.2)
    finally:
        res = compose(daemon, project, "down", "-v", "--rmi", "local", "-t", "1")
    ok(res)
    assert net not in _names(daemon, "network") and vol not in _names(daemon, "volume")
    assert image not in daemon.docker("images", "--format", "{{.Repository}}").stdout.decode().split()
    assert daemon.docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={name}").stdout == b""
    assert not links & _all_links()


def test_compose_build_push_pull_loopback_registry(daemon: LiveDaemon, registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A service with both `build` and `image` on a loopback registry: compose build, push, then
    with the local image gone, compose pull and up run what the registry holds."""
    ref = f"{registry.host}/compose/{unique('api')}:1"
    project = _project(tmp_path, f'version: "3.7"\nservices:\n  api:\n    build: ./api\n    image: {ref}\n'
                                 "    volumes: [data:/data]\nvolumes:\n  data:\n")
    (project / "api").mkdir()
    (project / "api" / "Dockerfile").write_text(API_DOCKERFILE)
    (project / "api" / "start.sh").write_text(API_START)
    try:
        ok(compose(daemon, project, "build"))
        pushed = compose(daemon, project, "push")
        ok(pushed)
        assert "digest: sha256:" in pushed.stdout.decode() + pushed.stderr.decode()
        assert registry.tags(ref.split("/", 1)[1].rsplit(":", 1)[0]) == ["1"]
        daemon.docker("rmi", ref)
        ok(compose(daemon, project, "pull"))
        assert daemon.docker("image", "inspect", "-f", "{{len .RepoDigests}}", ref).stdout == b"1\n"
        ok(compose(daemon, project, "up", "-d"))
        deadline = time.monotonic() + 30
        while "api start 1" not in (logs := ok(compose(daemon, project, "logs", "--no-color", "api"))):
            assert time.monotonic() < deadline, logs
            time.sleep(0.2)
        assert ok(compose(daemon, project, "exec", "-T", "api", "cat", "/www/index.html")) == "hello from api\n"
    finally:
        res = compose(daemon, project, "down", "-v", "--rmi", "all", "-t", "1")
    ok(res)
    assert ref.rsplit(":", 1)[0] not in daemon.docker("images", "--format", "{{.Repository}}").stdout.decode().split()
