"""HTTP/1.1 over a unix socket with the stdlib client: what the tests and benchmarks use to talk to
a daemon without a CLI process in the way."""

from __future__ import annotations

import http.client
import socket
from pathlib import Path


class UnixHTTPConnection(http.client.HTTPConnection):
    """Keep-alive as http.client does it (it reconnects when the server closes)."""

    def __init__(self, path: str | Path, timeout: float = 60, host: str = "localhost") -> None:
        super().__init__(host, timeout=timeout)
        self.unix_path = str(path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock
