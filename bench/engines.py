"""The engines the side-by-side benchmark drives, each private to the run and removed after it.

- dockyard: a ``dockyardd`` on its own socket, data root and exec root (the tests' ``start_daemon``).
- docker: Debian's ``dockerd`` (with the containerd it starts) on a private socket and data root,
  without a bridge or iptables rules (``common.PrivateDockerd``); never the system daemon.
- podman: Debian's ``podman`` with its own ``--root``/``--runroot``, and ``podman system service``
  on a private socket for the API cases; left out when podman is not installed.

Every engine's processes carry a marker in their environment, so ``procmem`` can find exactly the
processes it runs (daemon, containerd, shims, shim host, conmon) among everyone else's.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from common import BIN, Cli, PrivateDockerd, client_env, unmount_under
from procmem import Usage, engine_pids, marker_env, usage
from tests.conftest import start_daemon, stop_daemon


@dataclass
class Engine:
    name: str
    cli: Cli                          # the engine's own CLI
    sock: Path | None                 # its Docker Engine API socket, when it has one
    marker: str                       # DYBENCH_ENGINE value its processes inherit
    roots: list[int]                  # its daemon processes (none for podman)
    run_opts: tuple[str, ...] = ("--network", "none")
    stop: Callable[[], None] = field(default=lambda: None, repr=False)

    def container_pids(self, ids: list[str]) -> list[int]:
        if not ids:
            return []
        out = self.cli("inspect", "-f", "{{.State.Pid}}", *ids)
        return [int(x) for x in out.split() if x.isdigit() and int(x) > 0]

    def memory(self, container_ids: list[str] | None = None) -> Usage:
        """RSS and PSS of everything this engine runs, the containers' own processes excepted."""
        return usage(engine_pids(self.marker, self.roots, self.container_pids(container_ids or [])))


def _marker(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def _environ(extra: dict[str, str]) -> Iterator[None]:
    """``extra`` in os.environ while a daemon that inherits it is started."""
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def start_dockyard(base: Path) -> Engine:
    marker = _marker("dockyard")
    with _environ(marker_env(marker)):
        # the tests' daemon logs at debug level; the benchmark measures the default
        daemon = start_daemon(base / "dockyardd", "--log-level", "info")
    cli = Cli("dockyard", [str(BIN / "dockyard"), "-H", daemon.host])
    return Engine("dockyard", cli, daemon.sock, marker, [daemon.proc.pid], stop=lambda: stop_daemon(daemon))


def start_docker(base: Path) -> Engine | None:
    if not (shutil.which("dockerd") and shutil.which("docker")):
        return None
    marker = _marker("docker")
    dockerd = PrivateDockerd(base / "dockerd", extra_env=marker_env(marker))
    if not dockerd.start():
        print("dockerd did not start; Docker is left out", file=sys.stderr)
        dockerd.stop()
        return None
    assert dockerd.proc is not None
    return Engine("docker", Cli("docker", ["docker"], dockerd.env), dockerd.sock, marker, [dockerd.proc.pid],
                  stop=dockerd.stop)


class PrivatePodman:
    """Rootful podman on storage of its own; its API (``podman system service``) on a private socket."""

    def __init__(self, base: Path) -> None:
        tag = uuid.uuid4().hex[:6]
        self.base = base
        self.root = base / "podman-root"
        self.runroot = Path(f"/run/dybench-podman-{tag}")
        self.sock = Path(f"/run/dybench-podman-{tag}.sock")
        self.marker = _marker("podman")
        self.argv = ["podman", "--root", str(self.root), "--runroot", str(self.runroot),
                     "--tmpdir", str(base / "podman-tmp"), "--cgroup-manager", "cgroupfs",
                     "--events-backend", "file"]
        self.service: subprocess.Popen[bytes] | None = None

    def start(self) -> Engine | None:
        # Rootful podman raises RLIMIT_NOFILE/NPROC to 1048576 in every container; a host whose
        # hard limits are lower and that lacks CAP_SYS_RESOURCE (this VM) refuses that, so the
        # containers get limits the host allows instead (a containers.conf of the run's own)
        import resource
        conf = self.base / "containers.conf"
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        nproc = 4096  # the host's own hard limit is refused too (by podman's conmon/runc chain)
        self.base.mkdir(parents=True, exist_ok=True)
        conf.write_text(f'[containers]\ndefault_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n')
        env = {**os.environ, **marker_env(self.marker), "CONTAINERS_CONF": str(conf)}
        if subprocess.run([*self.argv, "info"], capture_output=True, env=env, timeout=120).returncode != 0:
            print("podman info failed; Podman is left out", file=sys.stderr)
            self.stop()
            return None
        # the API service is not part of what a podman container costs: no marker on it
        self.service = subprocess.Popen(
            [*self.argv, "system", "service", "--time=0", f"unix://{self.sock}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, "CONTAINERS_CONF": str(conf)})
        deadline = time.monotonic() + 30
        while not self.sock.exists() and time.monotonic() < deadline and self.service.poll() is None:
            time.sleep(0.1)
        cli = Cli("podman", self.argv, env, registry_flags=("--tls-verify=false",))
        return Engine("podman", cli, self.sock if self.sock.exists() else None, self.marker, [],
                      run_opts=("--network", "none", "--pull=never"), stop=self.stop)

    def stop(self) -> None:
        env = {**os.environ, "CONTAINERS_CONF": str(self.base / "containers.conf")}
        subprocess.run([*self.argv, "rm", "-af", "-t", "0"], capture_output=True, timeout=300, env=env)
        if self.service is not None and self.service.poll() is None:
            self.service.terminate()
            try:
                self.service.wait(30)
            except subprocess.TimeoutExpired:
                self.service.kill()
                self.service.wait()
        subprocess.run([*self.argv, "system", "reset", "-f"], capture_output=True, timeout=300, env=env)
        unmount_under(self.root)
        unmount_under(self.runroot)
        shutil.rmtree(self.runroot, ignore_errors=True)
        self.sock.unlink(missing_ok=True)


def start_podman(base: Path) -> Engine | None:
    if not shutil.which("podman"):
        return None
    return PrivatePodman(base).start()


def docker_cli_to(engine: Engine, config_dir: Path) -> Cli:
    """The stock docker CLI pointed at ``engine``'s socket (same client, different engine)."""
    assert engine.sock is not None
    return Cli(f"docker CLI → {engine.name}d", ["docker"], client_env(f"unix://{engine.sock}", config_dir))


def version(argv: list[str]) -> str:
    """The first line ``argv`` prints, or "not installed"."""
    if not shutil.which(argv[0]):
        return "not installed"
    try:
        res = subprocess.run(argv, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "not installed"
    out = (res.stdout or res.stderr).decode(errors="replace").strip().splitlines()
    return out[0].strip() if out else "?"
