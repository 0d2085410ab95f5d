"""``run`` against a fake daemon on a unix socket: create → attach (hijack) → wait → start → exit."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.cli.main import main
from dockyard.client.stream import frame
from tests.fakedaemon import JSONHandler, UnixServer, serve


class _Handler(JSONHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        srv = self.server
        srv.calls.append((self.path.split("?")[0], body))  # type: ignore[attr-defined]
        if self.path.startswith("/v1.45/containers/create"):
            self.send_json(201, {"Id": "abc123", "Warnings": []})
        elif "/attach" in self.path:
            assert self.headers["Upgrade"] == "tcp"
            self.wfile.write(b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
            srv.started.wait(5)  # type: ignore[attr-defined]
            self.wfile.write(frame(1, b"out\n") + frame(2, b"err\n"))
            self.wfile.flush()
            self.close_connection = True
        elif "/wait" in self.path:
            srv.started.wait(5)  # type: ignore[attr-defined]
            self.send_json(200, {"StatusCode": 3, "Error": None})
        elif "/start" in self.path:
            srv.started.set()  # type: ignore[attr-defined]
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_json(404, {"message": "page not found"})


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[str, UnixServer]]:
    sock = tmp_path / "d.sock"
    with serve(sock, _Handler, calls=[], started=threading.Event()) as srv:
        yield f"unix://{sock}", srv


def test_run_attached(daemon: tuple[str, UnixServer], capfd: pytest.CaptureFixture[str]) -> None:
    host, srv = daemon
    assert main(["-H", host, "run", "--rm", "--name", "t1", "busybox", "sh", "-c", "exit 3"]) == 3
    out = capfd.readouterr()
    assert out.out == "out\n" and out.err == "err\n"
    paths = [p for p, _ in srv.calls]  # type: ignore[attr-defined]
    assert paths[0] == "/v1.45/containers/create"
    # attach and wait are issued before start, as the docker CLI does
    assert paths.index("/v1.45/containers/abc123/start") == 3
    assert set(paths[1:3]) == {"/v1.45/containers/abc123/attach", "/v1.45/containers/abc123/wait"}
    body = json.loads(srv.calls[0][1])  # type: ignore[attr-defined]
    assert body["Cmd"] == ["sh", "-c", "exit 3"] and body["HostConfig"]["AutoRemove"] is True
