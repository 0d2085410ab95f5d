"""Long work against a live daemon and a loopback registry: progress redrawn on a terminal, plain
lines (and no escape sequences) in a pipe, only the reference with ``-q``."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import BIN, LiveDaemon, unique
from tests.e2e.test_share import registry  # noqa: F401  (the loopback registry fixture)
from tests.terminal import run_in_pty

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(shutil.which("docker-registry") is None, reason="docker-registry not installed")]


def _env(daemon: LiveDaemon) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "DOCKYARD_", "NO_COLOR"))}
    env.update(DOCKYARD_HOST=daemon.host, DOCKER_CONFIG=str(daemon.data_root.parent / "docker-config"),
               TERM="xterm")
    return env


def _pipe(daemon: LiveDaemon, *args: str) -> subprocess.CompletedProcess[bytes]:
    res = subprocess.run([str(BIN / "dockyard"), *args], env=_env(daemon), capture_output=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert b"\x1b" not in res.stdout + res.stderr, res.stdout
    return res


def _tty(daemon: LiveDaemon, *args: str) -> bytes:
    code, out = run_in_pty([str(BIN / "dockyard"), *args], b"", env=_env(daemon), timeout=120)
    assert code == 0, out
    return out


def test_push_pull_on_a_terminal_and_in_a_pipe(daemon: LiveDaemon, registry: str,  # noqa: F811
                                               tmp_path: Path) -> None:
    ref = f"{registry}/{unique('prog')}:1"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM busybox\nRUN echo {unique('layer')} > /own-layer\n")
    daemon.cli("build", "-q", "-t", ref, str(ctx))  # busybox's layer plus one of its own
    out = _pipe(daemon, "push", ref).stdout.decode()
    assert ": Pushed\n" in out and "1: digest: sha256:" in out
    assert _pipe(daemon, "push", "-q", ref).stdout.decode() == f"{ref}\n"
    daemon.cli("rmi", ref)
    tty = _tty(daemon, "pull", ref)
    assert b"\x1b[1A\r\x1b[2K" in tty and b": Pull complete" in tty  # a layer's line redrawn in place
    assert tty.rstrip().endswith(ref.encode())
    daemon.cli("rmi", ref)
    out = _pipe(daemon, "pull", ref).stdout.decode()
    lines = out.splitlines()
    # busybox's layer is still stored: "Already exists" and nothing more; the image's own layer
    # went with rmi: "Pulling fs layer" … "Pull complete"
    present = [line.split(":")[0] for line in lines if line.endswith(": Already exists")]
    fetched = [line.split(":")[0] for line in lines if line.endswith(": Pull complete")]
    assert len(present) == 1 and len(fetched) == 1 and not set(present) & set(fetched), lines
    assert f"{fetched[0]}: Pulling fs layer" in lines
    assert not any("Downloading" in line for line in lines)
    assert lines[-1] == ref
    daemon.cli("rmi", ref)
    assert _pipe(daemon, "pull", "-q", ref).stdout.decode() == f"{ref}\n"
    daemon.cli("rmi", ref)


def test_save_load_progress(daemon: LiveDaemon, tmp_path: Path) -> None:
    archive = tmp_path / "bb.tar"
    res = _pipe(daemon, "save", "-o", str(archive), "busybox:latest")
    assert res.stdout == b"" and res.stderr == b""
    tty = _tty(daemon, "save", "-o", str(tmp_path / "again.tar"), "busybox:latest")
    assert b"\r\x1b[2KSaving " in tty and tty.endswith(b"\r\x1b[2K")
    assert (tmp_path / "again.tar").stat().st_size == archive.stat().st_size
    assert _pipe(daemon, "load", "-i", str(archive)).stdout == b"Loaded image: busybox:latest\n"
    tty = _tty(daemon, "load", "-i", str(archive))
    assert b"\r\x1b[2KLoading [" in tty and tty.endswith(b"\r\x1b[2KLoaded image: busybox:latest\r\n")
