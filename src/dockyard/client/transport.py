"""HTTP/1.1 over the daemon's socket (unix or tcp, tcp optionally in TLS), hand-written for start-up
speed; hijacked connections.

Error mapping: a refused/missing socket raises ``Unavailable`` with Docker's "Cannot connect"
text; an API error status raises the ``dockyard.errors`` category for that status, with the
daemon's ``message`` and the HTTP status kept on the exception as ``.status``. A failed TLS
handshake (or the daemon's TLS alert) raises ``TLSFailure``; unreadable TLS files ``InvalidArgument``.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Iterator, Mapping

from dockyard import errors
from dockyard.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~3 ms to import on every CLI run
    import ssl
    from typing import Any

    from dockyard.client.tls import TLSSettings

API_VERSION = "1.45"
DEFAULT_HOST = "unix:///run/dockyard/dockyard.sock"
USER_AGENT = "dockyard-cli/0.1"

_STATUS_ERRORS: dict[int, type[errors.DockyardError]] = {
    304: errors.NotModified,
    400: errors.InvalidArgument,
    403: errors.PermissionDenied,
    404: errors.NotFound,
    409: errors.Conflict,
    412: errors.FailedPrecondition,
    503: errors.Unavailable,
}


# what urllib.parse.quote never escapes; a plain id, name or flag value needs no urllib (~2.5 ms)
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


def quote(text: str, safe: str = "/") -> str:
    """``urllib.parse.quote``, imported only when something needs escaping."""
    if _UNRESERVED.issuperset(text) or _UNRESERVED.union(safe).issuperset(text):
        return text
    from urllib.parse import quote as _quote
    return _quote(text, safe=safe)


def query_string(pairs: list[tuple[str, str]]) -> str:
    """``urlencode(pairs, quote_via=quote)``."""
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)


def api_error(status: int, message: str) -> errors.DockyardError:
    """The error category for an HTTP status, carrying ``.status``."""
    cls = _STATUS_ERRORS.get(status, errors.Internal)
    err = cls(message)
    err.status = status  # type: ignore[attr-defined]
    return err


class DaemonUnreachable(errors.Unavailable):
    """The daemon socket is not there or refuses connections."""


class TLSFailure(DaemonUnreachable):
    """The TLS handshake with the daemon failed, or the daemon ended it with an alert."""


class Host(Record):
    __slots__ = ("address", "port", "scheme", "tls")

    def __init__(self, scheme: str, address: str, port: int = 0, tls: TLSSettings | None = None) -> None:
        self.scheme = scheme    # "unix" | "tcp"
        self.address = address  # socket path, or host
        self.port = port
        self.tls = tls          # tcp only: https

    def with_tls(self, tls: TLSSettings) -> Host:
        return Host(self.scheme, self.address, self.port, tls)

    @property
    def url(self) -> str:
        return f"unix://{self.address}" if self.scheme == "unix" else f"tcp://{self.address}:{self.port}"


def parse_host(text: str) -> Host:
    """``unix:///path``, ``tcp://host:port`` (``http://`` accepted as tcp)."""
    if text.startswith("unix://"):
        path = text[len("unix://"):]
        if not path.startswith("/"):
            raise errors.InvalidArgument(f"invalid host {text!r}: unix socket path must be absolute")
        return Host("unix", path)
    for prefix in ("tcp://", "http://"):
        if text.startswith(prefix):
            hostport = text[len(prefix):].rstrip("/")
            host, sep, port = hostport.rpartition(":")
            if not sep or not port.isdigit():
                raise errors.InvalidArgument(f"invalid host {text!r}: expected tcp://host:port")
            return Host("tcp", host.strip("[]") or "127.0.0.1", int(port))
    if text.startswith("/"):
        return Host("unix", text)
    raise errors.InvalidArgument(f"invalid host {text!r}: expected unix:///path or tcp://host:port")


class HTTPError(Exception):
    """A response the daemon should never send (bad status line, truncated chunk)."""


class NoResponse(HTTPError):
    """The connection closed before a status line arrived."""


class _Body:
    """Reads one HTTP/1.1 response body: Content-Length, chunked, or until EOF."""

    def __init__(self, fp: Any, headers: dict[str, str], status: int, method: str) -> None:
        self.fp = fp
        self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        no_body = method == "HEAD" or status in (204, 304) or 100 <= status < 200
        self.remaining: int | None = 0 if no_body else (int(length) if length and not self.chunked else None)
        self.chunk_left = 0
        self.done = self.remaining == 0

    def read1(self, size: int = 65536) -> bytes:
        if self.done:
            return b""
        if self.chunked:
            if self.chunk_left == 0:
                line = self.fp.readline()
                if not line:
                    raise HTTPError("connection closed inside a chunked body")
                self.chunk_left = int(line.split(b";")[0].strip() or b"0", 16)
                if self.chunk_left == 0:
                    while self.fp.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    self.done = True
                    return b""
            data = self.fp.read1(min(size, self.chunk_left))
            if not data:
                raise HTTPError("connection closed inside a chunk")
            self.chunk_left -= len(data)
            if self.chunk_left == 0:
                self.fp.readline()  # the CRLF after each chunk
            return data
        want = size if self.remaining is None else min(size, self.remaining)
        data = self.fp.read1(want)
        if self.remaining is not None:
            self.remaining -= len(data)
            if not data and self.remaining > 0:
                raise HTTPError("connection closed before the whole body arrived")
        if not data or self.remaining == 0:
            self.done = True
        return data

    def read(self) -> bytes:
        parts: list[bytes] = []
        while True:
            data = self.read1(1 << 20)
            if not data:
                return b"".join(parts)
            parts.append(data)


class Connection:
    """One HTTP/1.1 request/response over a stream socket (unix or tcp). Hand-written instead of
    http.client, whose import (email, ssl, …) costs ~15 ms on every CLI run."""

    def __init__(self, host: Host, timeout: float | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.sock = connect(host, timeout, ssl_context)
        self.method = "GET"

    def request(self, method: str, url: str, body: Any, headers: Mapping[str, str]) -> None:
        self.method = method
        chunked = headers.get("Transfer-Encoding") == "chunked"
        hdrs = dict(headers)
        if body is None and method in ("POST", "PUT"):
            hdrs["Content-Length"] = "0"
        elif isinstance(body, (bytes, bytearray)):
            hdrs["Content-Length"] = str(len(body))
        elif hasattr(body, "send_to"):  # a body that knows its length and writes itself (a context tar)
            hdrs["Content-Length"] = str(body.size)
        head = f"{method} {url} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
        if isinstance(body, (bytes, bytearray)):
            self.sock.sendall(head.encode("latin-1") + bytes(body))
            return
        self.sock.sendall(head.encode("latin-1"))
        if hasattr(body, "send_to"):
            body.send_to(self.sock)
            return
        if body is not None and chunked:
            while True:
                block = body.read(1 << 20)
                if not block:
                    break
                self.sock.sendall(b"%x\r\n%s\r\n" % (len(block), block))
            self.sock.sendall(b"0\r\n\r\n")

    def getresponse(self) -> tuple[int, dict[str, str], _Body]:
        fp = self.sock.makefile("rb")
        line = fp.readline(65537)
        if not line:
            raise NoResponse("the daemon closed the connection without a response")
        parts = line.decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise HTTPError(f"malformed status line {line[:80]!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        while True:
            hline = fp.readline(65537)
            if hline in (b"\r\n", b"\n", b""):
                break
            key, _, value = hline.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        return status, headers, _Body(fp, headers, status, self.method)

    def close(self) -> None:
        self.sock.close()


def connect(host: Host, timeout: float | None = None, ssl_context: ssl.SSLContext | None = None
            ) -> socket.socket:
    """A connected stream socket; with ``ssl_context`` (tcp) the TLS handshake is done on return.
    A failed handshake raises ``TLSFailure``; other failures the ``OSError`` of the connect."""
    if host.scheme == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target: Any = host.address
    else:
        sock = socket.socket(socket.AF_INET6 if ":" in host.address else socket.AF_INET)
        target = (host.address, host.port)
    if timeout is not None:
        sock.settimeout(timeout)
    try:
        sock.connect(target)
    except OSError:
        sock.close()
        raise
    if ssl_context is None or host.scheme != "tcp":
        return sock
    try:
        return ssl_context.wrap_socket(sock, server_hostname=host.address)
    except OSError as exc:
        sock.close()
        if _is_tls_error(exc):
            raise tls_failure(host, exc) from exc
        raise


def _is_tls_error(exc: BaseException) -> bool:
    ssl = sys.modules.get("ssl")  # loaded whenever TLS is in use; never imported just to check
    return ssl is not None and isinstance(exc, ssl.SSLError)


def tls_failure(host: Host, exc: BaseException) -> TLSFailure:
    from dockyard.client.tls import describe_failure
    return TLSFailure(f"error during connect: TLS with {host.url} failed: {describe_failure(exc)}")


def _body_error(exc: BaseException) -> errors.Unavailable:
    return errors.Unavailable(f"error reading response from daemon: {exc}")


class Response:
    """A response whose status was already checked; body read on demand."""

    def __init__(self, conn: Connection, status: int, headers: dict[str, str], body: _Body) -> None:
        self.conn = conn
        self.status = status
        self.headers = headers
        self.body = body

    def read(self) -> bytes:
        try:
            return self.body.read()
        except (OSError, HTTPError) as exc:
            raise _body_error(exc) from exc
        finally:
            self.conn.close()

    def json(self) -> Any:
        data = self.read()
        return json.loads(data) if data.strip() else None

    def iter_chunks(self, size: int = 65536) -> Iterator[bytes]:
        try:
            while True:
                try:
                    chunk = self.body.read1(size)
                except (OSError, HTTPError) as exc:  # the daemon went away mid-stream
                    raise _body_error(exc) from exc
                if not chunk:
                    return
                yield chunk
        finally:
            self.conn.close()

    def iter_json(self) -> Iterator[Any]:
        """Concatenated/newline-separated JSON objects (progress streams, events)."""
        decoder = json.JSONDecoder()
        buf = ""
        for chunk in self.iter_chunks():
            buf += chunk.decode("utf-8", "replace")
            while True:
                buf = buf.lstrip()
                if not buf:
                    break
                try:
                    obj, end = decoder.raw_decode(buf)
                except json.JSONDecodeError:
                    break
                buf = buf[end:]
                yield obj
        if buf.strip():
            yield json.loads(buf)

    def close(self) -> None:
        self.conn.close()


class Transport:
    """Issues requests to ``/v1.45/...`` on the daemon."""

    def __init__(self, host: Host, timeout: float | None = None) -> None:
        self.host = host
        self.timeout = timeout
        self._ssl_context: ssl.SSLContext | None = None

    def ssl_context(self) -> ssl.SSLContext | None:
        """The client TLS context (built once, on first use), for tcp hosts with TLS settings."""
        if self.host.tls is None or self.host.scheme != "tcp":
            return None
        if self._ssl_context is None:
            self._ssl_context = self.host.tls.context()
        return self._ssl_context

    def unreachable(self, exc: OSError | None = None) -> DaemonUnreachable:
        if isinstance(exc, PermissionError):  # the daemon may well be running: say what is wrong
            err = DaemonUnreachable(
                f"permission denied while trying to connect to the dockyard daemon socket at {self.host.url}: "
                f"connect: permission denied (run as root, or as a member of the socket's group)")
        else:
            err = DaemonUnreachable(
                f"Cannot connect to the dockyard daemon at {self.host.url}. Is the daemon running?")
        if exc is not None:
            err.__cause__ = exc
        return err

    @staticmethod
    def url(path: str, params: Mapping[str, Any] | None = None) -> str:
        url = f"/v{API_VERSION}{path}"
        if params:
            pairs: list[tuple[str, str]] = []
            for key, value in params.items():
                if value is None:
                    continue
                values = value if isinstance(value, (list, tuple)) else [value]
                for v in values:
                    if isinstance(v, bool):
                        v = "1" if v else "0"
                    pairs.append((key, str(v)))
            if pairs:
                url += "?" + query_string(pairs)
        return url

    def send(self, method: str, path: str, params: Mapping[str, Any] | None = None,
             body: Any = None, headers: Mapping[str, str] | None = None) -> tuple[Connection, str]:
        """Send a request without reading the response (the wait-before-start trick)."""
        hdrs = {"User-Agent": USER_AGENT, "Host": "api"}
        data: Any = None
        if body is not None:
            if isinstance(body, (bytes, bytearray)) or hasattr(body, "read") or hasattr(body, "send_to"):
                data = body
                hdrs["Content-Type"] = "application/x-tar"
            else:
                data = json.dumps(body).encode()
                hdrs["Content-Type"] = "application/json"
        if headers:
            hdrs.update(headers)
        if hasattr(data, "read") and "Content-Length" not in hdrs:
            hdrs["Transfer-Encoding"] = "chunked"
        ctx = self.ssl_context()
        try:
            conn = Connection(self.host, self.timeout, ctx)
        except (FileNotFoundError, ConnectionRefusedError, ConnectionResetError) as exc:
            raise self.unreachable(exc) from exc
        except OSError as exc:
            if isinstance(exc, socket.gaierror) or exc.errno in (13,):
                raise self.unreachable(exc) from exc
            raise errors.Unavailable(f"error during connect: {exc}") from exc
        try:
            conn.request(method, self.url(path, params), data, hdrs)
        except OSError as exc:
            conn.close()
            if _is_tls_error(exc):
                raise tls_failure(self.host, exc) from exc
            raise errors.Unavailable(f"error sending request to daemon: {exc}") from exc
        except BaseException:
            conn.close()  # a body that failed half-way: the daemon sees it cut short and keeps nothing
            raise
        return conn, method

    def receive(self, conn: Connection) -> Response:
        try:
            status, headers, body = conn.getresponse()
            if status >= 400:
                data = body.read()
                conn.close()
                raise api_error(status, _error_message(data, status))
        except (OSError, HTTPError, ValueError) as exc:
            conn.close()
            if _is_tls_error(exc):
                raise tls_failure(self.host, exc) from exc
            if isinstance(exc, NoResponse) and self.host.scheme == "tcp":
                if self.host.tls is not None:  # a daemon refusing our certificate may just hang up
                    raise TLSFailure(
                        f"error during connect: TLS with {self.host.url} failed: the daemon closed the "
                        "connection without answering (most likely it did not accept the client certificate: "
                        "it wants one signed by its CA, see --tlscert/--tlskey or DOCKER_CERT_PATH)") from exc
                raise errors.Unavailable(
                    f"the daemon at {self.host.url} closed the connection without answering; if it "
                    "listens with TLS, pass --tlsverify (and --tlscacert/--tlscert/--tlskey)") from exc
            raise errors.Unavailable(f"error reading response from daemon: {exc}") from exc
        return Response(conn, status, headers, body)

    def request(self, method: str, path: str, params: Mapping[str, Any] | None = None,
                body: Any = None, headers: Mapping[str, str] | None = None) -> Response:
        conn, _ = self.send(method, path, params, body, headers)
        return self.receive(conn)

    def hijack(self, path: str, params: Mapping[str, Any] | None = None, body: Any = None) -> tuple[
            socket.socket, bytes]:
        """POST with ``Upgrade: tcp``; returns the raw socket and bytes already read past the
        headers. Accepts 101 (and 200 from daemons that do not switch protocols)."""
        ctx = self.ssl_context()
        try:
            sock = connect(self.host, None, ctx)
        except OSError as exc:
            raise self.unreachable(exc) from exc
        data = json.dumps(body).encode() if body is not None else b""
        head = (f"POST {self.url(path, params)} HTTP/1.1\r\nHost: api\r\nUser-Agent: {USER_AGENT}\r\n"
                f"Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\n\r\n")
        buf = b""
        try:
            sock.sendall(head.encode() + data)
            while b"\r\n\r\n" not in buf:
                chunk = sock.recv(65536)
                if not chunk:
                    sock.close()
                    raise errors.Unavailable("daemon closed the connection during attach")
                buf += chunk
        except OSError as exc:
            sock.close()
            if _is_tls_error(exc):
                raise tls_failure(self.host, exc) from exc
            raise errors.Unavailable(f"error during attach: {exc}") from exc
        header, _, rest = buf.partition(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        if status in (101, 200):
            return sock, rest
        hdrs = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        length = int(hdrs.get("content-length", "0") or 0)
        body_bytes = rest
        if "chunked" in hdrs.get("transfer-encoding", ""):
            while not body_bytes.endswith(b"0\r\n\r\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body_bytes += chunk
            body_bytes = _dechunk(body_bytes)
        else:
            while len(body_bytes) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body_bytes += chunk
        sock.close()
        raise api_error(status, _error_message(body_bytes, status))


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2:]
    return out


def _error_message(data: bytes, status: int) -> str:
    try:
        obj = json.loads(data)
        if isinstance(obj, dict) and "message" in obj:
            return str(obj["message"])
    except ValueError:
        pass
    text = data.decode("utf-8", "replace").strip()
    return text or f"daemon returned HTTP {status}"


def host_from_env(flag: str | None, tls: TLSSettings | None = None, context: str | None = None) -> Host:
    """The daemon to talk to, as docker picks it: the ``--context`` flag (refused with ``-H``), the
    ``-H`` flag, ``DOCKYARD_HOST`` (or ``DOCKER_HOST``), ``DOCKER_CONTEXT``, the ``currentContext``
    of ``$DOCKER_CONFIG/config.json``, else the default socket. ``tls`` (the flags and environment)
    applies to tcp hosts not taken from a context; a context brings its own TLS files."""
    if flag and context:
        raise errors.InvalidArgument("conflicting options: cannot specify both --host and --context")
    text = flag or ("" if context else os.environ.get("DOCKYARD_HOST") or os.environ.get("DOCKER_HOST"))
    if not text:
        name = context or os.environ.get("DOCKER_CONTEXT") or current_context()
        if name and name != "default":
            from dockyard.client.contexts import context_host  # only when a context is in use
            return context_host(name)
    host = parse_host(text or DEFAULT_HOST)
    return host.with_tls(tls) if tls is not None and host.scheme == "tcp" else host


def current_context() -> str:
    """``currentContext`` of the docker CLI's config.json ("" when unset or unreadable; the
    ``context`` commands report a broken file). Read here, not in ``contexts``, to keep the
    common case free of imports."""
    path = os.path.join(os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker"), "config.json")
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read() or b"{}")
    except (OSError, ValueError):
        return ""
    name = data.get("currentContext") if isinstance(data, dict) else None
    return name if isinstance(name, str) else ""
