"""The client's TLS settings, resolved the way the docker CLI does, and the ``ssl`` context they make.

Sources, strongest first: the flags ``--tls``, ``--tlsverify``, ``--tlscacert``, ``--tlscert``,
``--tlskey``; the environment ``DOCKER_TLS_VERIFY`` (any non-empty value turns on ``--tlsverify``),
``DOCKER_TLS`` (any non-empty value turns on ``--tls``) and ``DOCKER_CERT_PATH`` (the folder of the
default files ``ca.pem``, ``cert.pem`` and ``key.pem``; default ``~/.docker``).

``--tls`` alone encrypts without checking who answers (as docker does); ``--tlsverify`` checks the
daemon's certificate against the CA and its name against the host it was reached at. A client
certificate is presented whenever one is configured. A default client certificate that does not
exist is simply not used; a file named on the command line must exist. TLS applies to ``tcp://``
hosts only; it is ignored for unix sockets.

Importing this module does not import ``ssl``: only a TLS connection pays for it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from dockyard import errors
from dockyard.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~3 ms to import on every CLI run
    import ssl
    from typing import Any

CA_FILE = "ca.pem"
CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"


class TLSSettings(Record):  # not a dataclass: this module is imported on every CLI run
    __slots__ = ("cacert", "cert", "key", "verify")

    def __init__(self, verify: bool, cacert: str = "", cert: str = "", key: str = "") -> None:
        self.verify = verify  # check the daemon's certificate (and name) against ``cacert``
        self.cacert = cacert  # CA bundle for ``verify``; "" = the system's CAs
        self.cert = cert      # client certificate presented to the daemon; "" = none
        self.key = key

    def context(self) -> ssl.SSLContext:
        """A client context; unreadable or mismatched files raise ``InvalidArgument`` (one line)."""
        import ssl
        if bool(self.cert) != bool(self.key):
            missing = "--tlskey" if self.cert else "--tlscert"
            raise errors.InvalidArgument(f"a client certificate needs both --tlscert and --tlskey ({missing} "
                                         "is missing or its file does not exist)")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.verify:
            if self.cacert:
                _load(ctx.load_verify_locations, "CA certificate", self.cacert)
            else:
                ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.cert:
            _load(ctx.load_cert_chain, "client certificate", self.cert, self.key)
        ctx.sslsocket_class = _socket_class()
        return ctx


def _load(fn: Any, what: str, *paths: str) -> None:
    import ssl
    for path in paths:
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise errors.InvalidArgument(f"could not read TLS {what} {path}: {exc.strerror}") from exc
    try:
        fn(*paths)
    except (ssl.SSLError, ValueError) as exc:
        text = str(exc)
        reason = text.split("] ", 1)[1].split(" (_ssl.c:")[0] if "] " in text else text
        if "KEY_VALUES_MISMATCH" in text:
            reason += " (the key does not belong to the certificate)"
        raise errors.InvalidArgument(f"could not load TLS {what} {' / '.join(paths)}: {reason}") from exc


_SOCKET_CLASS: Any = None


def _socket_class() -> Any:
    """``SSLSocket`` whose ``shutdown(SHUT_WR)`` half-closes the TCP connection and keeps the TLS
    session for reading (the stdlib drops it, after which reads would return raw TLS records):
    attach/exec end their stdin that way and keep reading the container's output."""
    global _SOCKET_CLASS
    if _SOCKET_CLASS is None:
        import socket
        import ssl

        class HalfClosingSSLSocket(ssl.SSLSocket):
            def shutdown(self, how: int) -> None:
                if how == socket.SHUT_WR:
                    socket.socket.shutdown(self, how)
                else:
                    super().shutdown(how)

        _SOCKET_CLASS = HalfClosingSSLSocket
    return _SOCKET_CLASS


def cert_path(env: Mapping[str, str] | None = None) -> str:
    """``DOCKER_CERT_PATH``, else ``~/.docker``."""
    env = os.environ if env is None else env
    return os.path.expanduser(env.get("DOCKER_CERT_PATH") or "~/.docker")


def resolve(tls: bool = False, tlsverify: bool = False, tlscacert: str | None = None,
            tlscert: str | None = None, tlskey: str | None = None,
            env: Mapping[str, str] | None = None) -> TLSSettings | None:
    """The settings the flags and environment ask for, or ``None`` when TLS is off."""
    env = os.environ if env is None else env
    verify = tlsverify or bool(env.get("DOCKER_TLS_VERIFY"))
    if not (tls or verify or env.get("DOCKER_TLS")):
        return None
    base = cert_path(env)

    def client_file(given: str | None, name: str) -> str:
        if given:
            return os.path.expanduser(given)
        default = os.path.join(base, name)
        return default if os.path.isfile(default) else ""  # absent default: no client certificate

    cacert = os.path.expanduser(tlscacert) if tlscacert else os.path.join(base, CA_FILE)
    return TLSSettings(verify=verify, cacert=cacert if verify else "",
                       cert=client_file(tlscert, CERT_FILE), key=client_file(tlskey, KEY_FILE))


def describe_failure(exc: BaseException) -> str:
    """One line for a failed TLS handshake or a TLS alert from the daemon."""
    detail = getattr(exc, "verify_message", None) or ""
    text = str(exc)
    if not detail:
        reason = getattr(exc, "reason", None)
        detail = text.split("] ", 1)[1] if "] " in text else (text or str(reason or type(exc).__name__))
        detail = detail.split(" (_ssl.c:")[0]
    hint = ""
    upper = text.upper()
    if "CERTIFICATE_REQUIRED" in upper or "HANDSHAKE_FAILURE" in upper:
        hint = " (the daemon wants a client certificate signed by its CA: --tlscert/--tlskey or DOCKER_CERT_PATH)"
    elif "UNKNOWN_CA" in upper or "BAD_CERTIFICATE" in upper or "CERTIFICATE_EXPIRED" in upper:
        hint = " (the daemon did not accept the client certificate)"
    elif "WRONG_VERSION_NUMBER" in upper or "RECORD_LAYER_FAILURE" in upper:
        hint = " (is the daemon listening with TLS on this port?)"
    elif getattr(exc, "verify_message", None):
        hint = " (the daemon's certificate was not accepted: check --tlscacert and the host name)"
    return f"{detail}{hint}"
