"""A one-thread event loop over non-blocking fds (``selectors``), and its pieces: output sources,
input sinks and client connections. No asyncio: the shim is on the container start path."""

from __future__ import annotations

import contextlib
import os
import selectors
import socket

TYPE_CHECKING = False
if TYPE_CHECKING:  # collections.abc pulls in ``collections`` (~2 ms of shim start-up)
    from collections.abc import Callable

    Callback = Callable[[], None]

READ_SIZE = 65536
# A client that lets this much output pile up makes its sources pause (backpressure, like Docker's
# attach) instead of growing the shim's memory without bound.
HIGH_WATER = 4 * 1024 * 1024
MAX_REQUEST = 4 * 1024 * 1024  # one JSON request line (an exec's process object is the largest)


class Reactor:
    def __init__(self) -> None:
        self.sel = selectors.DefaultSelector()
        self._handlers: dict[int, tuple[Callback | None, Callback | None]] = {}

    def want_read(self, fd: int, cb: Callback | None) -> None:
        self._set(fd, cb, self._handlers.get(fd, (None, None))[1])

    def want_write(self, fd: int, cb: Callback | None) -> None:
        self._set(fd, self._handlers.get(fd, (None, None))[0], cb)

    def forget(self, fd: int) -> None:
        self._set(fd, None, None)

    def _set(self, fd: int, reader: Callback | None, writer: Callback | None) -> None:
        mask = (selectors.EVENT_READ if reader else 0) | (selectors.EVENT_WRITE if writer else 0)
        known = fd in self._handlers
        if not mask:
            if known:
                del self._handlers[fd]
                self.sel.unregister(fd)
            return
        self._handlers[fd] = (reader, writer)
        if known:
            self.sel.modify(fd, mask)
        else:
            try:
                self.sel.register(fd, mask)
            except KeyError:  # a stale entry of a closed fd whose number came back
                self.sel.unregister(fd)
                self.sel.register(fd, mask)

    def run_once(self, timeout: float | None) -> None:
        for key, events in self.sel.select(timeout):
            fd = key.fd
            if events & selectors.EVENT_READ:
                reader = self._handlers.get(fd, (None, None))[0]
                if reader:
                    reader()
            if events & selectors.EVENT_WRITE:
                writer = self._handlers.get(fd, (None, None))[1]
                if writer:
                    writer()


class Source:
    """Reads an output fd (pipe or pty master) until EOF (pty: EIO) and hands data on."""

    def __init__(self, reactor: Reactor, fd: int, stream: int, on_data: Callable[[Source, bytes], None],
                 on_eof: Callable[[Source], None], close_fd: bool = True) -> None:
        self.reactor, self.fd, self.stream = reactor, fd, stream
        self.on_data, self.on_eof = on_data, on_eof
        self.close_fd = close_fd
        self.eof = False
        self.paused = False
        os.set_blocking(fd, False)
        reactor.want_read(fd, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:  # EIO: the pty's last slave closed
            data = b""
        if data:
            self.on_data(self, data)
        else:
            self.close()
            self.on_eof(self)

    def pause(self, paused: bool) -> None:
        if self.eof or paused == self.paused:
            return
        self.paused = paused
        self.reactor.want_read(self.fd, None if paused else self._readable)

    def drain_now(self) -> None:
        """Read whatever is buffered right now (used when giving up waiting for EOF)."""
        while not self.eof:
            try:
                data = os.read(self.fd, READ_SIZE)
            except OSError:
                data = b""
            if not data:
                break
            self.on_data(self, data)

    def close(self) -> None:
        if self.eof:
            return
        self.eof = True
        self.reactor.want_read(self.fd, None)
        if self.close_fd:
            os.close(self.fd)


class Sink:
    """Buffered writes to a container's stdin (a pipe, or the pty master it shares with a Source)."""

    def __init__(self, reactor: Reactor, fd: int, close_fd: bool) -> None:
        self.reactor, self.fd, self.close_fd = reactor, fd, close_fd
        self.buf = bytearray()
        self.closing = False
        self.closed = False
        os.set_blocking(fd, False)

    def write(self, data: bytes) -> None:
        if self.closed or self.closing:
            return
        self.buf += data
        self._writable()

    def close(self) -> None:
        """Close after the buffered input is written (stdin EOF for a pipe)."""
        self.closing = True
        if not self.buf:
            self._finish()

    def abort(self) -> None:
        """Drop pending input and close now (the process is gone; its fd is about to close)."""
        self.buf.clear()
        self.closing = True
        self._finish()

    def _writable(self) -> None:
        try:
            while self.buf:
                n = os.write(self.fd, self.buf)
                del self.buf[:n]
        except BlockingIOError:
            self.reactor.want_write(self.fd, self._writable)
            return
        except OSError:  # the reader is gone; drop the input
            self.buf.clear()
            self.closing = True
        self.reactor.want_write(self.fd, None)
        if self.closing:
            self._finish()

    def _finish(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.reactor.want_write(self.fd, None)
        if self.close_fd:
            os.close(self.fd)


class Conn:
    """One client connection: a request line, then a response (and, for attach/exec, frames)."""

    def __init__(self, reactor: Reactor, sock: socket.socket,
                 on_request: Callable[[Conn, bytes], None], on_gone: Callable[[Conn], None]) -> None:
        self.reactor, self.sock, self.fd = reactor, sock, sock.fileno()
        self.on_request, self.on_gone = on_request, on_gone
        self.rbuf = b""
        self.wbuf = bytearray()
        self.streaming = False
        self.streams: set[int] = set()
        self.on_stdin: Callable[[bytes], None] | None = None
        self.on_stdin_eof: Callable[[], None] | None = None
        self.on_drained: Callable[[], None] | None = None
        self.finishing = False
        self.read_eof = False
        self.closed = False
        sock.setblocking(False)
        reactor.want_read(self.fd, self._readable)

    def pending(self) -> int:
        return len(self.wbuf)

    def send(self, data: bytes) -> None:
        if self.closed or self.finishing:
            return
        self.wbuf += data
        self._writable()

    def finish(self) -> None:
        """Half-close after everything queued is sent; close fully once the client closes too."""
        if self.closed or self.finishing:
            return
        self.finishing = True
        self._writable()

    def _readable(self) -> None:
        try:
            data = self.sock.recv(READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.read_eof = True
            self.reactor.want_read(self.fd, None)
            if self.streaming and self.on_stdin_eof is not None:
                cb, self.on_stdin_eof, self.on_stdin = self.on_stdin_eof, None, None
                cb()
            if self.finishing and not self.wbuf:
                self.close()
            elif not self.streaming:
                self.close()  # gone before (or while waiting for) its answer
            return
        if self.streaming:
            if self.on_stdin is not None:
                self.on_stdin(data)
            return
        self.rbuf += data
        if len(self.rbuf) > MAX_REQUEST and b"\n" not in self.rbuf:
            self.close()  # not a client of ours
            return
        if b"\n" in self.rbuf:
            line, _, rest = self.rbuf.partition(b"\n")
            self.rbuf = b""
            self.on_request(self, line)
            if rest and self.streaming and self.on_stdin is not None and not self.closed:
                self.on_stdin(rest)

    def _writable(self) -> None:
        if self.closed:
            return
        try:
            while self.wbuf:
                n = self.sock.send(self.wbuf)
                del self.wbuf[:n]
        except BlockingIOError:
            self.reactor.want_write(self.fd, self._writable)
            return
        except OSError:  # the client went away
            self.close()
            return
        self.reactor.want_write(self.fd, None)
        if self.on_drained is not None:
            self.on_drained()
        if self.finishing:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)
            if self.read_eof:
                self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.reactor.forget(self.fd)
        self.sock.close()
        self.on_gone(self)
