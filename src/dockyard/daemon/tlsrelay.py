"""TLS for the API's TCP listeners, terminated here instead of by asyncio's SSL transport.

asyncio's SSL transport ends the whole connection when the client half-closes (a TCP FIN, or a TLS
``close_notify`` as Go's ``CloseWrite`` sends): Docker's hijacked streams (attach, exec, run -i) end a
container's stdin exactly that way and keep reading its output, which would then be lost. So each
TLS connection is decrypted here with an ``ssl.SSLObject`` over memory BIOs, and its plaintext is
handed to the aiohttp server over an in-process socketpair, where a half-close is an ordinary EOF.
A refused client also gets the TLS alert that says why (certificate required, unknown CA, expired).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl

from aiohttp import web

log = logging.getLogger("dockyard.daemon")

HANDSHAKE_TIMEOUT = 30.0  # a client that never finishes the handshake does not hold a connection
CHUNK = 65536
_PLAIN_HTTP_REPLY = (b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
                     b"Client sent an HTTP request to an HTTPS server.\n")


class TLSRelaySite(web.BaseSite):
    """A TCP listener for ``runner`` whose connections are TLS (``ctx`` is a server context)."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, ctx: ssl.SSLContext) -> None:
        super().__init__(runner)
        self._host, self._port, self._ctx = host, port, ctx
        self._handshaking: set[asyncio.Task[object]] = set()

    @property
    def name(self) -> str:
        return f"tls://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        self._server = await asyncio.start_server(self._accept, self._host, self._port, reuse_address=True)

    async def stop(self) -> None:
        await super().stop()
        for task in list(self._handshaking):
            task.cancel()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self._ctx.wrap_bio(incoming, outgoing, server_side=True)
        task = asyncio.current_task()
        try:
            if task is not None:
                self._handshaking.add(task)
            try:
                await asyncio.wait_for(_handshake(tls, incoming, outgoing, reader, writer), HANDSHAKE_TIMEOUT)
            except (ssl.SSLError, OSError, EOFError, TimeoutError) as exc:
                log.info("TLS handshake with %s failed: %s", _peer(peer), _reason(exc))
                return
            finally:
                if task is not None:
                    self._handshaking.discard(task)
            server = self._runner.server
            if server is None:  # shutting down
                return
            app_end, relay_end = socket.socketpair()
            loop = asyncio.get_running_loop()
            try:
                await loop.connect_accepted_socket(server, app_end)
                app_reader, app_writer = await asyncio.open_connection(sock=relay_end)
            except OSError:
                app_end.close()
                relay_end.close()
                raise
            await _relay(tls, incoming, outgoing, reader, writer, app_reader, app_writer)
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS connection from %s ended: %s", _peer(peer), _reason(exc))
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def _handshake(tls: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO,
                     reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError as exc:
            if getattr(exc, "reason", None) == "HTTP_REQUEST":  # plain HTTP at a TLS port: say so, as Go does
                writer.write(_PLAIN_HTTP_REPLY)
            else:
                writer.write(outgoing.read())  # the alert telling the client why
            with contextlib.suppress(OSError):
                await writer.drain()
            raise
        else:
            writer.write(outgoing.read())  # Finished (and TLS 1.3 session tickets)
            await writer.drain()
            return
        writer.write(outgoing.read())
        await writer.drain()
        data = await reader.read(CHUNK)
        if not data:
            raise EOFError("the client closed the connection during the handshake")
        incoming.write(data)


async def _relay(tls: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 app_reader: asyncio.StreamReader, app_writer: asyncio.StreamWriter) -> None:
    """Decrypt client → app and encrypt app → client until the app side closes. The client's
    half-close (FIN or close_notify) becomes a half-close towards the app; output keeps flowing."""

    def decrypt() -> tuple[bytes, bool]:
        """Everything readable now, and whether the client sent close_notify."""
        chunks: list[bytes] = []
        while True:
            try:
                plain = tls.read(CHUNK)
            except ssl.SSLWantReadError:
                return b"".join(chunks), False
            except ssl.SSLZeroReturnError:
                return b"".join(chunks), True
            if not plain:
                return b"".join(chunks), True
            chunks.append(plain)

    async def inbound() -> None:
        try:
            while True:
                # first what is buffered already: a client's request often rides with its Finished
                plain, ended = decrypt()
                if plain:
                    app_writer.write(plain)
                if outgoing.pending:  # post-handshake messages (key update, …)
                    writer.write(outgoing.read())
                await app_writer.drain()
                if ended:
                    break  # close_notify: the client has no more to send
                data = await reader.read(CHUNK)
                if not data:
                    break  # TCP FIN
                incoming.write(data)
        except (ssl.SSLError, OSError):
            app_writer.close()  # a broken client connection: the app sees it gone
            return
        with contextlib.suppress(OSError):
            app_writer.write_eof()

    in_task = asyncio.ensure_future(inbound())
    try:
        while True:
            data = await app_reader.read(CHUNK)
            if not data:
                break
            tls.write(data)
            writer.write(outgoing.read())
            await writer.drain()
        with contextlib.suppress(ssl.SSLError):
            tls.unwrap()  # close_notify; the client's own is not waited for
        writer.write(outgoing.read())
        with contextlib.suppress(OSError):
            await writer.drain()
    finally:
        in_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await in_task
        app_writer.close()


def _peer(peer: object) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no handshake within {HANDSHAKE_TIMEOUT:.0f}s"
    text = getattr(exc, "verify_message", None) or str(exc) or type(exc).__name__
    return text.split("] ", 1)[-1].split(" (_ssl.c:")[0]
