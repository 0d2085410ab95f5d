"""The CLI against a tiny HTTP server on a unix socket: error texts and exit codes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.cli.main import main
from tests.fakedaemon import JSONHandler, UnixServer, serve


class _Handler(JSONHandler):
    def do_GET(self) -> None:
        self.server.paths.append(self.path)  # type: ignore[attr-defined]
        if self.path.startswith("/v1.45/containers/json"):
            self.send_json(200, [{"Id": "f" * 64, "Names": ["/c1"], "Image": "busybox", "Command": "sh",
                              "Created": 0, "State": "exited", "Status": "Exited (0) 1 second ago"}])
        else:
            self.send_json(404, {"message": f"No such container: {self.path.split('/')[3]}"})

    def do_POST(self) -> None:
        self.server.paths.append(self.path)  # type: ignore[attr-defined]
        self.send_json(404, {"message": f"No such container: {self.path.split('/')[3]}"})


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[str, UnixServer]]:
    sock = tmp_path / "d.sock"
    with serve(sock, _Handler, paths=[]) as srv:
        yield f"unix://{sock}", srv


def test_not_found_error(daemon: tuple[str, UnixServer], capsys: pytest.CaptureFixture[str]) -> None:
    host, _ = daemon
    assert main(["-H", host, "stop", "x"]) == 1
    assert capsys.readouterr().err == "Error response from daemon: No such container: x\n"


def test_inspect_missing(daemon: tuple[str, UnixServer], capsys: pytest.CaptureFixture[str]) -> None:
    host, _ = daemon
    assert main(["-H", host, "inspect", "--type", "container", "nope"]) == 1
    out = capsys.readouterr()
    assert out.out == "[]\n" and out.err == "Error: No such container: nope\n"


def test_ps_quiet_and_format(daemon: tuple[str, UnixServer], capsys: pytest.CaptureFixture[str]) -> None:
    host, srv = daemon
    assert main(["-H", host, "ps", "-a", "-q"]) == 0
    assert capsys.readouterr().out == "f" * 12 + "\n"
    assert main(["-H", host, "container", "ls", "-a", "--format", "{{.Names}}\\t{{.Status}}"]) == 0
    assert capsys.readouterr().out == "c1\tExited (0) 1 second ago\n"
    assert srv.paths[0] == "/v1.45/containers/json?all=1"  # type: ignore[attr-defined]


def test_run_create_error_exits_125(daemon: tuple[str, UnixServer], capsys: pytest.CaptureFixture[str]) -> None:
    host, _ = daemon
    assert main(["-H", host, "run", "--rm", "busybox", "true"]) == 125
    assert "Error response from daemon:" in capsys.readouterr().err


def test_missing_daemon(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                        monkeypatch: pytest.MonkeyPatch) -> None:
    sock = tmp_path / "none.sock"
    monkeypatch.setenv("DOCKYARD_HOST", f"unix://{sock}")
    assert main(["ps"]) == 1
    assert capsys.readouterr().err == (
        f"Cannot connect to the dockyard daemon at unix://{sock}. Is the daemon running?\n")


@pytest.mark.parametrize("argv", [["run", "--rm", "busybox", "true"], ["container", "create", "busybox"],
                                  ["rm", "-f", "x"], ["start", "x"]])
def test_missing_daemon_is_one_line(argv: list[str], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """No "Error response from daemon:" when there is no daemon; run/create exit 125 as docker's."""
    sock = tmp_path / "none.sock"
    code = main(["-H", f"unix://{sock}", *argv])
    assert code == (125 if argv[0] == "run" or argv[1] == "create" else 1)
    assert capsys.readouterr().err == (
        f"Cannot connect to the dockyard daemon at unix://{sock}. Is the daemon running?\n")


def test_global_host_flag_builds_only_the_command_parser() -> None:
    """``-H URL run`` must not be mistaken for an unknown command (that builds all ~60 parsers)."""
    from dockyard.cli.main import _command_index
    assert _command_index(["-H", "unix:///x", "run", "busybox"]) == 2
    assert _command_index(["--host", "unix:///x", "-D", "ps"]) == 3
    assert _command_index(["ps", "-a"]) == 0


def test_socket_without_permission_says_so(tmp_path: Path) -> None:
    """A user who may not open the socket is told that, not that the daemon is down."""
    import os
    import socket
    import subprocess
    import sys
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to another user")
    tmp_path.chmod(0o755)
    sock_path = tmp_path / "root-only.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(sock_path))
    listener.listen()
    sock_path.chmod(0o600)
    try:
        res = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                              sys.executable, "-m", "dockyard.cli.main", "-H", f"unix://{sock_path}", "ps"],
                             capture_output=True, text=True, timeout=30, cwd="/")
    finally:
        listener.close()
    assert res.returncode == 1
    assert res.stderr.startswith(
        f"permission denied while trying to connect to the dockyard daemon socket at unix://{sock_path}"), res.stderr
