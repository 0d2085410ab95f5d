"""Wire formats of Docker's streaming endpoints: stdcopy framing, detach keys, JSON lines, hijack."""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import web

from dockyard.api.errors import message_for
from dockyard.errors import InvalidArgument

MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"
DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"

STDIN, STDOUT, STDERR, SYSTEMERR = 0, 1, 2, 3


def frame(stream: int, data: bytes) -> bytes:
    """stdcopy: ``[stream u8][0 0 0][len u32 BE][data]``."""
    return struct.pack(">BxxxL", stream, len(data)) + data


def unframe(buf: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """Split complete stdcopy frames off ``buf``; returns the frames and the incomplete rest."""
    frames: list[tuple[int, bytes]] = []
    while len(buf) >= 8:
        stream, size = struct.unpack(">BxxxL", buf[:8])
        if len(buf) < 8 + size:
            break
        frames.append((stream, buf[8:8 + size]))
        buf = buf[8 + size:]
    return frames, buf


def json_line(obj: Any) -> bytes:
    return json.dumps(obj).encode() + b"\r\n"


def parse_detach_keys(spec: str) -> bytes:
    """Docker's detach-key syntax: comma-separated ``ctrl-<x>`` or single characters."""
    if spec == "":
        spec = DEFAULT_DETACH_KEYS
    out = bytearray()
    for key in spec.split(","):
        if len(key) == 1:
            out.append(ord(key))
            continue
        if key.lower().startswith("ctrl-") and len(key) == 6:
            ch = key[5].lower()
            if "a" <= ch <= "z":
                out.append(ord(ch) - ord("a") + 1)
                continue
            specials = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}
            if ch in specials:
                out.append(specials[ch])
                continue
        raise InvalidArgument(f"Invalid detach keys ({spec}) provided")
    return bytes(out)


class DetachMatcher:
    """Watches client input for the detach sequence; holds back a partial match until it resolves."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self._held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """Returns (bytes to forward, detached). Bytes after a detach sequence are dropped."""
        out = bytearray()
        first = self.keys[:1]
        i, n = 0, len(data)
        while i < n:
            if not self._held:
                # bulk-copy up to the next possible start of the sequence: stdin is often megabytes
                j = data.find(first, i)
                if j < 0:
                    out += data[i:]
                    break
                out += data[i:j]
                i = j
            b = data[i]
            i += 1
            candidate = self._held + bytes([b])
            if self.keys.startswith(candidate):
                if candidate == self.keys:
                    self._held = b""
                    return bytes(out), True
                self._held = candidate
                continue
            out += self._held
            self._held = b""
            if self.keys.startswith(bytes([b])):
                if len(self.keys) == 1:
                    return bytes(out), True
                self._held = bytes([b])
            else:
                out.append(b)
        return bytes(out), False


class _InputParser:
    """Receives raw client bytes after the hijack (aiohttp's payload-parser hook, as websockets use)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._eof = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if data:
            self.queue.put_nowait(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        if not self._eof:
            self._eof = True
            self.queue.put_nowait(None)


class _HijackResponse(web.StreamResponse):
    # Like aiohttp's WebSocketResponse: no chunking, no length — the body is a raw byte stream.
    _length_check = False


class _HalfCloseProtocol:
    """Stands in front of aiohttp's protocol after a hijack. A client half-close means stdin EOF,
    so keep the write side open for the remaining output (aiohttp would close the connection)."""

    def __init__(self, inner: Any, parser: _InputParser) -> None:
        self._inner = inner
        self._parser = parser

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def eof_received(self) -> bool:
        self._parser.feed_eof()
        return True


class Hijacked:
    """A connection taken over from HTTP: ``write`` raw bytes out, ``read`` raw bytes in (None = EOF)."""

    def __init__(self, response: web.StreamResponse, parser: _InputParser) -> None:
        self.response = response
        self._parser = parser

    async def write(self, data: bytes) -> None:
        await self.response.write(data)

    async def read(self) -> bytes | None:
        return await self._parser.queue.get()


async def hijack(request: web.Request, content_type: str) -> Hijacked:
    """Docker's hijack: ``101 UPGRADED`` when the client asked ``Upgrade: tcp``, else ``200 OK``; either
    way the connection then carries a raw bidirectional stream and is closed at the end."""
    upgrade = request.headers.get("Upgrade", "").lower() == "tcp"
    if upgrade:
        resp = _HijackResponse(status=101, reason="UPGRADED")
        resp.headers["Connection"] = "Upgrade"
        resp.headers["Upgrade"] = "tcp"
    else:
        resp = _HijackResponse(status=200)
    resp.headers["Content-Type"] = content_type
    resp.force_close()
    await resp.prepare(request)
    parser = _InputParser()
    protocol: Any = request.protocol
    transport = request.transport
    if transport is not None:
        transport.set_protocol(cast(asyncio.BaseProtocol, _HalfCloseProtocol(protocol, parser)))
    protocol.set_parser(parser)
    return Hijacked(resp, parser)


class WebSocketConn:
    """``attach/ws``: the container's raw streams as websocket messages — binary out (stdout and
    stderr unframed, as dockerd sends them), text or binary in; a close is EOF."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws

    async def write(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def read(self) -> bytes | None:
        from aiohttp import WSMsgType
        while True:
            msg = await self.ws.receive()
            if msg.type == WSMsgType.BINARY:
                return bytes(msg.data)
            if msg.type == WSMsgType.TEXT:
                return str(msg.data).encode()
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return None


async def pump(session: Any, conn: Hijacked | WebSocketConn, detach_keys: bytes | None, stdin: bool,
               framed: bool | None = None) -> None:
    """Bridge an engine StreamSession and a hijacked connection until the output ends or the client
    detaches or goes away. Output is framed unless the session has a tty (or ``framed`` says
    otherwise); client half-close closes the session's stdin; the session is always closed (which
    never stops the container)."""
    tty = bool(getattr(session, "tty", False))
    raw = not framed if framed is not None else tty

    async def output() -> None:
        while True:
            item = await session.read()
            if item is None:
                return
            stream, data = item
            await conn.write(data if raw else frame(stream, data))

    async def input_() -> bool:
        """Returns True when the attach is over (the client detached, or its stdin ended and that
        does not close the container's), False at a client EOF that leaves the output running."""
        matcher = DetachMatcher(detach_keys) if detach_keys else None
        while True:
            data = await conn.read()
            if data is None:
                if not stdin:
                    return False
                if getattr(session, "stdin_once", True) and not tty:
                    await session.close_stdin()
                    return False
                return True  # dockerd: the container's stdin stays open, this attach ends
            detached = False
            if matcher is not None:
                data, detached = matcher.feed(data)
            if data and stdin:
                await session.write(data)
            if detached:
                return True

    out_task = asyncio.ensure_future(output())
    in_task = asyncio.ensure_future(input_())
    try:
        pending: set[asyncio.Future[Any]] = {out_task, in_task}
        while out_task in pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if in_task in done and (in_task.exception() is not None or in_task.result()):
                break  # detached (or input failed): end the attach, leave the container alone
        if out_task.done() and not out_task.cancelled():
            exc = out_task.exception()
            if exc is not None and not isinstance(exc, ConnectionError):
                raise exc
    finally:
        for task in (out_task, in_task):
            task.cancel()
        await asyncio.gather(out_task, in_task, return_exceptions=True)
        await session.close()


async def stream_progress(request: web.Request,
                          run: Callable[[Callable[[dict[str, Any]], None]], Awaitable[Any]],
                          finish: Callable[[Any], list[dict[str, Any]]] = lambda _: [],
                          streamed_errors: tuple[type[BaseException], ...] = ()) -> web.StreamResponse:
    """Docker's JSON progress stream for a long operation (pull, push, build).

    ``run(emit)`` does the work; what it emits goes out as JSON lines, and ``finish(result)`` adds
    the closing lines. An error before the first line is a plain HTTP error (clients print "Error
    response from daemon: ..."), except ``streamed_errors``; later it is an ``errorDetail`` line
    (with the exception's ``code`` when it has one). A client that goes away cancels the work.
    """
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    task = asyncio.ensure_future(run(lambda msg: queue.put_nowait(json_line(msg))))
    task.add_done_callback(lambda _: queue.put_nowait(None))
    resp: web.StreamResponse | None = None

    async def start() -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        return response

    try:
        while (item := await queue.get()) is not None:
            resp = resp or await start()
            await resp.write(item)
        exc = task.exception()
        if exc is not None and resp is None and not isinstance(exc, streamed_errors):
            raise exc
        resp = resp or await start()
        if exc is not None:
            msg = message_for(exc)
            await resp.write(json_line({"errorDetail": {"code": getattr(exc, "code", 1), "message": msg},
                                        "error": msg}))
        else:
            for line in finish(task.result()):
                await resp.write(json_line(line))
        await resp.write_eof()
        return resp
    except (ConnectionResetError, asyncio.CancelledError):
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise
