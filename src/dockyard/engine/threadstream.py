"""Bytes written by blocking code in a worker thread, streamed to the event loop with backpressure.

``stream_writes(produce)`` runs ``produce(writer)`` in the default executor and yields what it
writes in chunks of about 1 MiB; the queue between them holds four chunks, so a slow consumer
slows the producer. Closing the stream early makes the producer's next write raise
``WriterCancelled`` (the stream swallows it) and waits until the producer thread is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator, Callable
from typing import Any

_CHUNK = 1 << 20


class WriterCancelled(Exception):
    """Raised in the producer thread by ``QueueWriter`` once the consumer has gone away."""


class QueueWriter:
    """File-like sink that hands chunks to the event loop with backpressure (bounded queue)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[bytes | None],
                 cancel: threading.Event) -> None:
        self.loop, self.queue, self.cancel = loop, queue, cancel
        self.buf = bytearray()

    def write(self, data: bytes) -> int:
        self.buf += data
        if len(self.buf) >= _CHUNK:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self.buf:
            self._put(bytes(self.buf))
            self.buf.clear()

    def _put(self, item: bytes | None) -> None:
        fut = asyncio.run_coroutine_threadsafe(self.queue.put(item), self.loop)
        while True:
            if self.cancel.is_set():
                fut.cancel()
                raise WriterCancelled()
            try:
                fut.result(timeout=0.2)
                return
            except TimeoutError:
                continue

    def close(self) -> None:
        self.flush()
        self._put(None)

    def abandon(self) -> None:
        """End the stream without what is still buffered (the producer failed)."""
        with contextlib.suppress(WriterCancelled):
            self._put(None)


async def stream_writes(produce: Callable[[Any], object]) -> AsyncGenerator[bytes, None]:
    """Run ``produce(writer)`` in a thread (its result is ignored) and yield what it writes; an
    exception it raises is raised here after the chunks it had flushed."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=4)
    cancel = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        writer = QueueWriter(loop, queue, cancel)
        try:
            produce(writer)
            writer.close()
        except WriterCancelled:
            pass
        except BaseException as exc:
            errors.append(exc)
            writer.abandon()

    task = loop.run_in_executor(None, run)
    try:
        while (chunk := await queue.get()) is not None:
            yield chunk
        await task
        if errors:
            raise errors[0]
    finally:
        cancel.set()
        with contextlib.suppress(BaseException):
            await asyncio.shield(task)
