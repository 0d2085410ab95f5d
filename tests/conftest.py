"""Shared test fixtures: root gating and a live daemon (own socket, data root, exec root)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cleanup import remove_network_leftovers, stop_and_clean

BIN = Path(sys.executable).parent
IS_ROOT = os.geteuid() == 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if IS_ROOT:
        return
    skip = pytest.mark.skip(reason="needs root (namespaces, mounts, cgroups)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


@dataclass
class LiveDaemon:
    """A dockyardd started for the tests, with its own socket and roots."""
    proc: subprocess.Popen[bytes]
    sock: Path
    data_root: Path
    exec_root: Path
    log: Path

    @property
    def host(self) -> str:
        return f"unix://{self.sock}"

    def cli(self, *args: str, input: bytes | None = None, timeout: float = 60,
            check: bool = True) -> subprocess.CompletedProcess[bytes]:
        """Run the dockyard CLI against this daemon."""
        res = subprocess.run([str(BIN / "dockyard"), "-H", self.host, *args], input=input,
                             capture_output=True, timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"dockyard {' '.join(args)} exited {res.returncode}: "
                                 f"{res.stderr.decode(errors='replace')}")
        return res

    def docker(self, *args: str, input: bytes | None = None, timeout: float = 60,
               check: bool = True, env_extra: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess[bytes]:
        """Run the stock docker CLI against this daemon."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env.update(env_extra or {})
        env["DOCKER_HOST"] = self.host
        env["DOCKER_CONFIG"] = str(self.data_root.parent / "docker-config")
        res = subprocess.run(["docker", *args], input=input, capture_output=True, timeout=timeout, env=env)
        if check and res.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {res.returncode}: "
                                 f"{res.stderr.decode(errors='replace')}")
        return res


def daemon_argv(base: Path) -> tuple[list[str], Path, Path, Path]:
    """dockyardd's command line for a test daemon under ``base`` without its -H: (argv, socket,
    data root, exec root)."""
    tag = uuid.uuid4().hex[:8]
    # Unix socket paths are limited to 108 bytes and shims live at <exec-root>/shims/<64 hex>/:
    # keep the exec root short.
    exec_root = Path(f"/run/dy-{tag}")
    data_root = base / "data"
    argv = [str(BIN / "dockyardd"), "--data-root", str(data_root),
            "--exec-root", str(exec_root), "--log-level", "debug",
            # never Docker Hub: a name without a registry goes to a closed port on loopback
            "--default-registry", "127.0.0.1:1",
            # a bridge and an nftables table of its own: test daemons never share or touch dy0
            "--bridge", f"dyb{tag}", "--firewall-table", f"dytest_{tag}"]
    return argv, exec_root / "dockyard.sock", data_root, exec_root


def start_daemon(base: Path, *extra: str) -> LiveDaemon:
    argv, sock, data_root, exec_root = daemon_argv(base)
    log = base / "dockyardd.log"
    data_root.mkdir(parents=True, exist_ok=True)
    # pytest's temp dirs are 0700; a user namespace's root must pass through them to its bundle,
    # as it passes through /var/lib on a real host
    for parent in data_root.parents:
        if str(parent) in ("/", tempfile.gettempdir()):
            break
        parent.chmod(parent.stat().st_mode | 0o001)
    with open(log, "wb") as logf:
        proc = subprocess.Popen(
            [*argv, "-H", f"unix://{sock}", *extra],
            # a scratch working directory: whatever a bug does to "." never reaches the checkout
            stdout=logf, stderr=subprocess.STDOUT, start_new_session=True, cwd=base)
    return _wait_up(LiveDaemon(proc, sock, data_root, exec_root, log))


def restart_daemon(d: LiveDaemon, kill: bool = True) -> LiveDaemon:
    """The same daemon (flags, roots) started again after SIGKILL (``kill``) or SIGTERM: live
    restore means its containers keep running across the gap."""
    d.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    d.proc.wait(30)
    with open(d.log, "ab") as logf:
        proc = subprocess.Popen(list(d.proc.args), stdout=logf, stderr=subprocess.STDOUT,  # type: ignore[arg-type]
                                start_new_session=True, cwd=d.data_root.parent)
    return _wait_up(LiveDaemon(proc, d.sock, d.data_root, d.exec_root, d.log))


def _wait_up(d: LiveDaemon) -> LiveDaemon:
    proc, log = d.proc, d.log
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"dockyardd exited {proc.returncode}: {log.read_text()[-3000:]}")
        if d.sock.exists() and d.cli("version", check=False).returncode == 0:
            return d
        time.sleep(0.05)
    stop_daemon(d)
    raise AssertionError(f"dockyardd did not come up: {log.read_text()[-3000:]}")


def stop_daemon(d: LiveDaemon, host_network: bool = True) -> None:
    """Remove every container, stop the daemon, and leave no mount, cgroup or file behind.
    ``host_network=False``: its bridges and nft table are not looked for on the host (a daemon
    in a network namespace of its own, whose links go with the namespace)."""
    if d.proc.poll() is None:
        ids = d.cli("ps", "-aq", check=False).stdout.split()
        if ids:
            d.cli("rm", "-f", *[i.decode() for i in ids], check=False, timeout=120)
    stop_and_clean(d.proc, d.exec_root, d.data_root)
    if host_network:
        remove_network_leftovers(d.proc.args, d.data_root)  # type: ignore[arg-type]
    shutil.rmtree(d.data_root, ignore_errors=True)


@pytest.fixture(scope="session")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDaemon]:
    """One live daemon for the session, with busybox:latest bootstrapped."""
    if not IS_ROOT:
        pytest.skip("needs root")
    d = start_daemon(tmp_path_factory.mktemp("dockyardd"))
    try:
        d.cli("bootstrap", "busybox", timeout=120)
        yield d
    finally:
        stop_daemon(d)


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
