"""Progress on a terminal, plain or nothing in a pipe; ``-q``; colour only on a terminal.

The CLI runs as a real process against a fake daemon, once on a pseudo-terminal and once with
its output going into a pipe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakedaemon import JSONHandler, serve
from tests.terminal import run_in_pty

DOCKYARD = str(Path(sys.executable).parent / "dockyard")
LAYER = "0123456789ab"
ARCHIVE = b"x" * 300_000

PULL = [
    {"status": "Pulling from library/busybox", "id": "latest"},
    {"status": "Pulling fs layer", "progressDetail": {}, "id": LAYER},
    *({"status": "Downloading", "progressDetail": {"current": n, "total": 1000},
       "progress": f"[{'=' * (n // 20)}>] {n}B/1kB", "id": LAYER} for n in (200, 600, 1000)),
    {"status": "Download complete", "progressDetail": {}, "id": LAYER},
    {"status": "Pull complete", "progressDetail": {}, "id": LAYER},
    {"status": "Digest: sha256:" + "d" * 64},
    {"status": "Status: Downloaded newer image for busybox:latest"},
]
PUSH = [
    {"status": "The push refers to repository [127.0.0.1:5000/app]"},
    {"status": "Preparing", "progressDetail": {}, "id": LAYER},
    {"status": "Pushing", "progressDetail": {"current": 0, "total": 1000}, "progress": "[>] 0B/1kB", "id": LAYER},
    {"status": "Pushed", "progressDetail": {}, "id": LAYER},
    {"status": "1: digest: sha256:" + "e" * 64 + " size: 527"},
    {"progressDetail": {}, "aux": {"Tag": "1", "Digest": "sha256:" + "e" * 64, "Size": 527}},
]


class _Handler(JSONHandler):
    def _stream(self, messages: list[dict[str, object]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        for msg in messages:
            self.wfile.write(json.dumps(msg).encode() + b"\r\n")
            self.wfile.flush()
            time.sleep(0.02)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding") == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self) -> None:
        if self.path.startswith("/v1.45/images/get"):
            self.send_response(200)
            self.send_header("Content-Type", "application/x-tar")
            self.end_headers()
            for i in range(0, len(ARCHIVE), 50_000):
                self.wfile.write(ARCHIVE[i:i + 50_000])
                self.wfile.flush()
                time.sleep(0.15)
            return
        self.send_json(404, {"message": "page not found"})

    def do_POST(self) -> None:
        srv = self.server
        srv.paths.append(self.path)  # type: ignore[attr-defined]
        path = self.path.split("?")[0]
        if path == "/v1.45/images/create":
            srv.pulled = True  # type: ignore[attr-defined]
            self._stream(PULL)
        elif path.endswith("/push"):
            self._stream(PUSH)
        elif path == "/v1.45/images/load":
            body = self._body()
            self._stream([{"stream": f"Loaded image: busybox:latest ({len(body)} bytes)\n"}])
        elif path == "/v1.45/containers/create":
            self._body()
            if getattr(srv, "pulled", False):
                srv.pulled = False  # type: ignore[attr-defined]  # the next create needs a pull again
                self.send_json(201, {"Id": "c" * 64, "Warnings": []})
            else:
                self.send_json(404, {"message": "No such image: busybox:latest"})
        elif path.endswith("/prune"):
            time.sleep(0.2)
            self.send_json(200, {})
        else:
            self.send_json(404, {"message": "page not found"})


@pytest.fixture
def host(tmp_path: Path) -> Iterator[str]:
    sock = tmp_path / "d.sock"
    with serve(sock, _Handler, paths=[]):
        yield f"unix://{sock}"


def _env(host: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "DOCKYARD_", "NO_COLOR"))}
    env.update(DOCKYARD_HOST=host, DOCKER_CONFIG="/nonexistent", TERM="xterm", **extra)
    return env


def _pipe(host: str, *args: str, **extra: str) -> subprocess.CompletedProcess[bytes]:
    res = subprocess.run([DOCKYARD, *args], env=_env(host, **extra), capture_output=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return res


def _tty(host: str, *args: str, **extra: str) -> bytes:
    code, out = run_in_pty([DOCKYARD, *args], b"", env=_env(host, **extra))
    assert code == 0, out
    return out


def test_pull_plain_lines_in_a_pipe(host: str) -> None:
    res = _pipe(host, "pull", "busybox")
    assert b"\x1b" not in res.stdout + res.stderr
    assert res.stdout.decode() == (
        "Using default tag: latest\n"
        "latest: Pulling from library/busybox\n"
        f"{LAYER}: Pulling fs layer\n"
        f"{LAYER}: Download complete\n"
        f"{LAYER}: Pull complete\n"
        f"Digest: sha256:{'d' * 64}\n"
        "Status: Downloaded newer image for busybox:latest\n"
        "docker.io/library/busybox:latest\n")


def test_pull_redraws_on_a_terminal(host: str) -> None:
    out = _tty(host, "pull", "busybox:latest")
    assert b"\x1b[1A\r\x1b[2K" + LAYER.encode() + b": Downloading [" in out  # the layer's line, redrawn
    assert out.count(LAYER.encode() + b": Pulling fs layer") == 1
    assert out.rstrip().endswith(b"docker.io/library/busybox:latest")


def test_pull_quiet_prints_only_the_reference(host: str) -> None:
    assert _pipe(host, "pull", "-q", "busybox").stdout == b"docker.io/library/busybox:latest\n"
    assert _tty(host, "image", "pull", "--quiet", "busybox").strip() == b"docker.io/library/busybox:latest"


def test_push_pipe_terminal_quiet(host: str) -> None:
    res = _pipe(host, "push", "127.0.0.1:5000/app:1")
    assert res.stdout.decode() == (
        "The push refers to repository [127.0.0.1:5000/app]\n"
        f"{LAYER}: Preparing\n{LAYER}: Pushed\n"
        f"1: digest: sha256:{'e' * 64} size: 527\n")
    assert b"\x1b[1A" in _tty(host, "push", "127.0.0.1:5000/app:1")
    assert _pipe(host, "push", "-q", "127.0.0.1:5000/app:1").stdout == b"127.0.0.1:5000/app:1\n"


def test_run_quiet_hides_the_pull(host: str) -> None:
    res = _pipe(host, "create", "-q", "busybox")
    assert res.stdout == b"c" * 64 + b"\n" and res.stderr == b""
    res = _pipe(host, "create", "busybox")
    assert b"Unable to find image 'busybox' locally" in res.stderr and b"Pull complete" in res.stderr
    assert b"\x1b" not in res.stderr


def test_load_progress_only_on_a_terminal(host: str, tmp_path: Path) -> None:
    archive = tmp_path / "img.tar"
    archive.write_bytes(ARCHIVE * 4)
    res = _pipe(host, "load", "-i", str(archive))
    assert res.stdout == b"Loaded image: busybox:latest (1200000 bytes)\n"
    out = _tty(host, "load", "-i", str(archive))
    assert b"\r\x1b[2KLoading [" in out and b"1.2MB" in out
    assert out.endswith(b"\r\x1b[2KLoaded image: busybox:latest (1200000 bytes)\r\n")
    assert b"\x1b" not in _tty(host, "load", "-q", "-i", str(archive))


def test_save_progress_on_a_terminal_stderr(host: str, tmp_path: Path) -> None:
    res = _pipe(host, "save", "busybox")
    assert res.stdout == ARCHIVE and res.stderr == b""
    out = _tty(host, "save", "-o", str(tmp_path / "out.tar"), "busybox")
    assert b"\r\x1b[2KSaving " in out and out.endswith(b"\r\x1b[2K")
    assert (tmp_path / "out.tar").read_bytes() == ARCHIVE


def test_system_prune_status_only_on_a_terminal(host: str) -> None:
    res = _pipe(host, "system", "prune", "-f")
    assert res.stdout == b"Total reclaimed space: 0B\n"
    out = _tty(host, "system", "prune", "-f")
    assert b"\r\x1b[2KDeleting unused images\xe2\x80\xa6" in out
    assert out.endswith(b"\r\x1b[2KTotal reclaimed space: 0B\r\n")


def test_colour_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    from dockyard.cli import progress

    class Tty:
        def isatty(self) -> bool:
            return True

    class Pipe:
        def isatty(self) -> bool:
            return False

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert progress.color_enabled(Tty()) and not progress.color_enabled(Pipe())  # type: ignore[arg-type]
    assert progress.sgr(Tty(), "2", "x") == "\x1b[2mx\x1b[0m"  # type: ignore[arg-type]
    monkeypatch.setenv("NO_COLOR", "1")
    assert not progress.color_enabled(Tty())  # type: ignore[arg-type]
    monkeypatch.setenv("NO_COLOR", "")
    monkeypatch.setenv("TERM", "dumb")
    assert not progress.color_enabled(Tty())  # type: ignore[arg-type]


def test_bar() -> None:
    from dockyard.cli.progress import bar
    assert bar(500_000, 1_000_000, width=10) == "[=====>    ]    500kB/1MB"
    assert bar(1_000_000, 1_000_000, width=10) == "[==========]      1MB/1MB"
    assert bar(1234, 0) == "  1.23kB"
