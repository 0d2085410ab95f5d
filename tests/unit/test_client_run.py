"""``run`` against a fake daemon on a unix socket: create → attach (hijack) → wait → start → exit."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from dockyard.cli.main import main
from dockyard.client.stream import frame


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def address_string(self) -> str:
        return "unix"

    def _json(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        srv = self.server
        srv.calls.append((self.path.split("?")[0], body))  # type: ignore[attr-defined]
        if self.path.startswith("/v1.45/containers/create"):
            self._json(201, {"Id": "abc123", "Warnings": []})
        elif "/attach" in self.path:
            assert self.headers["Upgrade"] == "tcp"
            self.wfile.write(b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
            srv.started.wait(5)  # type: ignore[attr-defined]
            self.wfile.write(frame(1, b"out\n") + frame(2, b"err\n"))
            self.wfile.flush()
            self.close_connection = True
        elif "/wait" in self.path:
            srv.started.wait(5)  # type: ignore[attr-defined]
            self._json(200, {"StatusCode": 3, "Error": None})
        elif "/start" in self.path:
            srv.started.set()  # type: ignore[attr-defined]
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._json(404, {"message": "page not found"})


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[str, _Server]]:
    sock = tmp_path / "d.sock"
    srv = _Server(str(sock), _Handler)
    srv.calls = []  # type: ignore[attr-defined]
    srv.started = threading.Event()  # type: ignore[attr-defined]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"unix://{sock}", srv
    finally:
        srv.shutdown()
        srv.server_close()


def test_run_attached(daemon: tuple[str, _Server], capfd: pytest.CaptureFixture[str]) -> None:
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
