"""A tiny HTTP server on a unix socket, standing in for the daemon in client/CLI unit tests."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any


class JSONHandler(BaseHTTPRequestHandler):
    """Quiet request handler with a JSON reply helper; tests subclass it with do_GET/do_POST."""

    def log_message(self, *args: object) -> None:
        pass

    def address_string(self) -> str:
        return "unix"

    def send_json(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@contextmanager
def serve(sock: Path, handler: type[BaseHTTPRequestHandler], **attrs: Any) -> Iterator[UnixServer]:
    """Serve ``handler`` on ``sock`` in a thread; ``attrs`` become attributes of the server."""
    srv = UnixServer(str(sock), handler)
    for key, value in attrs.items():
        setattr(srv, key, value)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
