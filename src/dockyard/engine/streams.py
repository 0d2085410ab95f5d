"""StreamSession: one attach or exec stream, as the API sees it.

It wraps a shim stream (``shim.client.ShimStream``: framed stdout/stderr in, raw stdin out, exit
status at the end of an exec). A session may exist before its shim stream does (attach before
start): reads and writes wait until ``connect``. Log entries can be put in front (``logs=1``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from dockyard.errors import DockyardError, Unavailable


class StreamSession:
    def __init__(self, *, tty: bool, stdin: bool = False, stdout: bool = True, stderr: bool = True,
                 prefix: list[tuple[int, bytes]] | None = None,
                 on_exit: Callable[[int], None] | None = None, stdin_once: bool = True) -> None:
        self.tty = tty
        # the client's stdin EOF closes the process's stdin (exec; a container with StdinOnce),
        # else it only ends this attach (dockerd's CopyStreams)
        self.stdin_once = stdin_once
        self.exit_code: int | None = None
        self.want_stdin, self.want_stdout, self.want_stderr = stdin, stdout, stderr
        self._prefix = list(prefix or [])
        self._stream: Any = None
        self._connected = asyncio.Event()
        self._on_exit = on_exit
        self._finished = False

    # -- wiring -----------------------------------------------------------------------------
    def connect(self, stream: Any) -> None:
        self._stream = stream
        self._connected.set()

    def end(self) -> None:
        """No stream will come (the container failed to start, was removed, or has exited)."""
        self._connected.set()

    @property
    def connected(self) -> bool:
        return self._stream is not None

    # -- API side ---------------------------------------------------------------------------
    async def read(self) -> tuple[int, bytes] | None:
        """Next (stream, data) with stream 1 or 2; None at the end of the stream."""
        if self._prefix:
            return self._prefix.pop(0)
        await self._connected.wait()
        stream = self._stream
        if stream is None:
            return None
        while True:
            item: tuple[int, bytes] | None = await stream.read()
            if item is None:
                self._finish(stream.exit_code)
                return None
            kind, data = item
            if (kind == 1 and not self.want_stdout) or (kind == 2 and not self.want_stderr):
                continue
            return kind, data

    def _finish(self, code: int | None) -> None:
        if self._finished:
            return
        self._finished = True
        if code is not None:
            self.exit_code = code
            if self._on_exit is not None:
                self._on_exit(code)

    async def write(self, data: bytes) -> None:
        await self._connected.wait()
        if self._stream is None:
            raise Unavailable("stream is closed")
        await self._stream.write(data)

    async def close_stdin(self) -> None:
        await self._connected.wait()
        if self._stream is not None:
            await self._stream.close_stdin()

    async def close(self) -> None:
        self._prefix.clear()
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(DockyardError, OSError):
                await stream.close()
        self.end()

    async def drain_to_end(self) -> None:
        """Read and discard until the end (a detached exec still needs its exit status)."""
        while await self.read() is not None:
            pass
