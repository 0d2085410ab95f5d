"""Stream helpers for layers: decompression by magic number, hashing readers and writers."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
from typing import Any, BinaryIO, cast

from dockyard.errors import InvalidArgument
from dockyard.oci.digest import Digest

CHUNK = 1 << 20

_GZIP = b"\x1f\x8b"
_ZSTD = b"\x28\xb5\x2f\xfd"
_BZIP2 = b"BZh"
_XZ = b"\xfd7zXZ\x00"


def is_compressed(head: bytes) -> bool:
    """Whether ``head`` (the first bytes of a stream) starts with a compression magic ``decompressed`` knows."""
    return head.startswith((_GZIP, _ZSTD, _BZIP2, _XZ))


class PrefixedReader:
    """Gives back bytes already read (to sniff the magic) before reading on from ``src``."""

    def __init__(self, head: bytes, src: BinaryIO) -> None:
        self._head = head
        self._src = src

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n < 0:
                data, self._head = self._head + self._src.read(), b""
                return data
            data, self._head = self._head[:n], self._head[n:]
            if len(data) < n:
                data += self._src.read(n - len(data))
            return data
        return self._src.read(n)

    def readable(self) -> bool:
        return True


def _read_at_least(src: BinaryIO, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = src.read(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


def decompressed(src: BinaryIO) -> BinaryIO:
    """``src`` decompressed according to its magic number (gzip, zstd, bzip2, xz or plain)."""
    head = _read_at_least(src, 6)
    raw = cast(BinaryIO, PrefixedReader(head, src))
    if head.startswith(_GZIP):
        return cast(BinaryIO, gzip.GzipFile(fileobj=raw, mode="rb"))
    if head.startswith(_ZSTD):
        try:
            import zstandard
        except ImportError:
            raise InvalidArgument("zstd layers need the zstandard module") from None
        reader: Any = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
        return cast(BinaryIO, reader)
    if head.startswith(_BZIP2):
        return cast(BinaryIO, bz2.BZ2File(raw))
    if head.startswith(_XZ):
        return cast(BinaryIO, lzma.LZMAFile(raw))
    return raw


class HashingReader:
    """Counts and hashes everything read through it."""

    def __init__(self, src: BinaryIO) -> None:
        self._src = src
        self.hasher = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._src.read(n)
        except (OSError, EOFError, ValueError) as exc:
            # gzip/zstd/lzma report corrupt or truncated input in their own ways.
            raise InvalidArgument(f"layer stream is corrupt: {exc}") from exc
        self.hasher.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    def digest(self) -> Digest:
        return Digest.from_hasher(self.hasher)


class HashingWriter:
    """Passes writes to ``out`` while hashing them; ``tell`` counts bytes (tarfile asks for it)."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.hasher = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._out.write(data)
        self.hasher.update(data)
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._out.flush()

    def digest(self) -> Digest:
        return Digest.from_hasher(self.hasher)


class ForwardReader:
    """A sequential stream that tarfile's seekable mode ("r:") can use: ``seek`` may only move
    forward (skipped bytes are read and discarded) or back over the last byte read (tarfile checks
    for truncation that way). This avoids the copy-heavy buffering of tarfile's stream mode."""

    def __init__(self, src: HashingReader) -> None:
        self._src = src
        self._pos = 0
        self._pending = b""  # bytes to give back before reading on
        self._last = b""

    def read(self, n: int = -1) -> bytes:
        parts = []
        if self._pending:
            take = self._pending if n < 0 else self._pending[:n]
            self._pending = self._pending[len(take):]
            parts.append(take)
            n = n - len(take) if n >= 0 else n
        while n != 0:
            chunk = self._src.read(n if n > 0 else CHUNK)
            if not chunk:
                break
            parts.append(chunk)
            if n > 0:
                n -= len(chunk)
        data = b"".join(parts)
        self._pos += len(data)
        if data:
            self._last = data[-1:]
        return data

    def unread(self, data: bytes) -> None:
        self._pending = data + self._pending
        self._pos -= len(data)

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == 1:
            pos += self._pos
        elif whence != 0:
            raise OSError("layer stream cannot seek from its end")
        if pos == self._pos - 1 and self._last:
            self.unread(self._last)
        elif pos < self._pos:
            raise OSError(f"layer stream cannot seek back from {self._pos} to {pos}")
        while self._pos < pos:
            if not self.read(min(CHUNK, pos - self._pos)):
                break
        return self._pos

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True
