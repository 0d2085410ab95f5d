"""Docker's stdcopy framing and the pump between a hijacked socket and the local stdio.

Frame: ``[stream u8][0 0 0][length u32 BE][payload]`` with stream 0 stdin, 1 stdout, 2 stderr
(3 is the systemerr stream some daemons send; it ends the stream with an error message).
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable, Iterator

from dockyard.errors import Internal

HEADER = struct.Struct(">BxxxI")


class Demuxer:
    """Incremental decoder: feed bytes, get (stream, payload) frames."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> Iterator[tuple[int, bytes]]:
        self.buf += data
        while len(self.buf) >= HEADER.size:
            stream, length = HEADER.unpack_from(self.buf)
            if stream > 3:
                raise Internal(f"unrecognized stream in multiplexed output: {stream}")
            if len(self.buf) < HEADER.size + length:
                return
            payload = bytes(self.buf[HEADER.size:HEADER.size + length])
            del self.buf[:HEADER.size + length]
            yield stream, payload

    @property
    def pending(self) -> int:
        return len(self.buf)


def demux(data: bytes) -> list[tuple[int, bytes]]:
    """Decode a complete multiplexed buffer."""
    d = Demuxer()
    frames = list(d.feed(data))
    if d.pending:
        raise Internal(f"truncated multiplexed stream: {d.pending} bytes left over")
    return frames


def frame(stream: int, payload: bytes) -> bytes:
    return HEADER.pack(stream, len(payload)) + payload


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def copy_output(chunks: Iterator[bytes], tty: bool, out_fd: int = 1, err_fd: int = 2) -> str | None:
    """Write a response stream to stdout/stderr; returns a system error message (stream 3)."""
    demuxer = Demuxer()
    for chunk in chunks:
        if tty:
            _write_all(out_fd, chunk)
            continue
        for stream, payload in demuxer.feed(chunk):
            if stream == 3:
                return payload.decode("utf-8", "replace")
            _write_all(err_fd if stream == 2 else out_fd, payload)
    return None


def socket_chunks(sock: socket.socket, initial: bytes = b"") -> Iterator[bytes]:
    if initial:
        yield initial
    while True:
        try:
            chunk = sock.recv(65536)
        except OSError:
            return
        if not chunk:
            return
        yield chunk


class Pump:
    """Moves bytes between a hijacked socket and local fds: the output in the thread that calls
    ``wait()`` (blocking reads there still let signal handlers run), stdin on a daemon thread.

    ``wait()`` returns when the output side ends (the container's streams closed), which is
    what ends ``docker run``/``attach`` even if stdin is still open.
    """

    def __init__(self, sock: socket.socket, initial: bytes, tty: bool, stdin: bool,
                 in_fd: int = 0, out_fd: int = 1, err_fd: int = 2,
                 on_stdin_eof: Callable[[], None] | None = None) -> None:
        self.sock = sock
        self.tty = tty
        self.error: str | None = None
        self._initial, self._out_fd, self._err_fd, self._in_fd = initial, out_fd, err_fd, in_fd
        self._stdin = stdin
        self._on_eof = on_stdin_eof

    def start(self) -> None:
        if self._stdin:
            import threading  # here: a run without -i has no thread to start (~1 ms of import)
            threading.Thread(target=self._input, args=(self._in_fd,), daemon=True, name="pump-in").start()

    def _input(self, in_fd: int) -> None:
        try:
            while True:
                data = os.read(in_fd, 32768)
                if not data:
                    break
                self.sock.sendall(data)
        except OSError:
            return
        try:
            # half-close: the container sees EOF on its stdin, output keeps flowing
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        if self._on_eof is not None:
            self._on_eof()

    def wait(self) -> None:
        """Copy the output until it ends."""
        try:
            self.error = copy_output(socket_chunks(self.sock, self._initial), self.tty, self._out_fd,
                                     self._err_fd)
        except OSError:
            pass

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
