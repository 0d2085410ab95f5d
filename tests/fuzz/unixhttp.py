"""A ``requests`` adapter that sends HTTP over a unix socket (the daemon's API socket)."""

from __future__ import annotations

import socket
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool

BASE_URL = "http://dockyard"  # the host part is never resolved: every connection goes to the socket


class _UnixConnection(HTTPConnection):
    def __init__(self, path: str, **kwargs: Any) -> None:
        super().__init__("localhost", **kwargs)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout if isinstance(self.timeout, int | float) else None)
        sock.connect(self.socket_path)
        self.sock = sock


class _UnixPool(HTTPConnectionPool):
    def __init__(self, path: str, **kwargs: Any) -> None:
        super().__init__("localhost", **kwargs)
        self.socket_path = path

    def _new_conn(self) -> HTTPConnection:
        return _UnixConnection(self.socket_path, timeout=self.timeout.connect_timeout)


class UnixAdapter(HTTPAdapter):
    def __init__(self, path: str) -> None:
        super().__init__(pool_connections=1, pool_maxsize=4, max_retries=0)
        self._pool = _UnixPool(path, maxsize=4, timeout=urllib3.Timeout(connect=10, read=60))

    def get_connection_with_tls_context(self, request: Any, verify: Any, proxies: Any = None,
                                        cert: Any = None) -> HTTPConnectionPool:
        return self._pool

    def close(self) -> None:
        self._pool.close()
        super().close()


def unix_session(path: str) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxies from the environment: this is a local socket
    session.mount(BASE_URL + "/", UnixAdapter(path))
    return session
