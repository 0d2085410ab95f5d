"""Local content-addressed blob store (modelled on containerd's core/content/local).

Layout under ``root``::

    blobs/<algorithm>/<hex>          committed blobs, mode 0444
    ingest/<sha256(ref)>/{data,ref,startedat,lock}   in-flight writes, resumable by ref

A blob becomes visible only through ``Writer.commit`` (fsync → verify → rename → fsync dir), so a
reader never sees a partial or unverified blob.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dockyard.content.writer import Writer, fsync_dir
from dockyard.errors import Internal, InvalidArgument, NotFound, Unavailable
from dockyard.oci.digest import Digest

_HEX_LEN = {"sha256": 64, "sha512": 128}
_HEXCHARS = frozenset("0123456789abcdef")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class BlobInfo:
    digest: Digest
    size: int


class ContentStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs = self.root / "blobs"
        self.ingest = self.root / "ingest"
        try:
            self.blobs.mkdir(parents=True, exist_ok=True)
            self.ingest.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise Internal(f"cannot create content store at {self.root}: {exc.strerror}") from exc

    # -- reading -------------------------------------------------------------------------------

    def _blob_path(self, digest: Digest) -> Path:
        # Digests may be built directly (not via Digest.parse): validate before touching the filesystem.
        want = _HEX_LEN.get(digest.algorithm)
        if want is None or len(digest.hex) != want or not set(digest.hex) <= _HEXCHARS:
            raise InvalidArgument(f"invalid digest {digest}")
        return self.blobs / digest.algorithm / digest.hex

    def info(self, digest: Digest) -> BlobInfo:
        try:
            st = os.stat(self._blob_path(digest))
        except FileNotFoundError:
            raise NotFound(f"content {digest}: not found") from None
        return BlobInfo(digest, st.st_size)

    def exists(self, digest: Digest) -> bool:
        return self._blob_path(digest).is_file()

    def path(self, digest: Digest) -> Path:
        p = self._blob_path(digest)
        if not p.is_file():
            raise NotFound(f"content {digest}: not found")
        return p

    def open(self, digest: Digest) -> BinaryIO:
        try:
            return open(self._blob_path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"content {digest}: not found") from None

    def read_bytes(self, digest: Digest) -> bytes:
        with self.open(digest) as f:
            return f.read()

    def walk(self) -> Iterator[BlobInfo]:
        for algo_dir in sorted(self.blobs.iterdir()):
            if algo_dir.name not in _HEX_LEN:
                continue
            for entry in sorted(os.scandir(algo_dir), key=lambda e: e.name):
                try:
                    digest = Digest(algo_dir.name, entry.name)
                    self._blob_path(digest)
                    yield BlobInfo(digest, entry.stat().st_size)
                except (InvalidArgument, FileNotFoundError):
                    continue  # stray file or deleted meanwhile

    def delete(self, digest: Digest) -> None:
        p = self._blob_path(digest)
        try:
            os.unlink(p)
        except FileNotFoundError:
            raise NotFound(f"content {digest}: not found") from None
        except OSError as exc:
            raise Internal(f"cannot delete content {digest}: {exc.strerror}") from exc
        fsync_dir(p.parent)

    # -- writing -------------------------------------------------------------------------------

    def _ingest_dir(self, ref: str) -> Path:
        if not ref:
            raise InvalidArgument("content ingest ref must not be empty")
        return self.ingest / hashlib.sha256(ref.encode()).hexdigest()

    def writer(self, ref: str, expected: Digest | None = None, size: int | None = None) -> Writer:
        """Open (or resume) the ingest named ``ref``; Unavailable if another writer holds it."""
        if expected is not None:
            self._blob_path(expected)
        return Writer(self._blob_path, self._ingest_dir(ref), ref, expected, size)

    def abort(self, ref: str) -> None:
        """Drop an ingest left behind (e.g. by a crashed pull); NotFound if there is none."""
        d = self._ingest_dir(ref)
        if not d.is_dir():
            raise NotFound(f"ingest {ref}: not found")
        self.writer(ref).abort()

    def ingests(self) -> Iterator[tuple[str, int]]:
        """(ref, bytes written so far) of every in-flight ingest."""
        for d in sorted(self.ingest.iterdir()):
            try:
                yield (d / "ref").read_text(), (d / "data").stat().st_size
            except FileNotFoundError:
                continue

    def put_bytes(self, data: bytes, expected: Digest | None = None) -> Digest:
        digest = expected or Digest.from_bytes(data)
        if self.exists(digest):
            if expected is not None and Digest.from_bytes(data, expected.algorithm) != expected:
                raise InvalidArgument(f"content does not match expected digest {expected}")
            return digest
        with self.writer(f"put-{uuid.uuid4().hex}", expected, len(data)) as w:
            w.write(data)
            return w.commit()

    def put_file(self, src: BinaryIO, expected: Digest | None = None) -> BlobInfo:
        """Stream ``src`` into the store, hashing while copying."""
        if expected is not None and self.exists(expected):
            return self.info(expected)
        with self.writer(f"put-{uuid.uuid4().hex}", expected) as w:
            buf = bytearray(_CHUNK)
            view = memoryview(buf)
            readinto = getattr(src, "readinto", None)
            while True:
                if readinto is not None:
                    n = readinto(view)
                    if not n:
                        break
                    w.write(view[:n])
                else:
                    chunk = src.read(_CHUNK)
                    if not chunk:
                        break
                    w.write(chunk)
            size = w.offset
            digest = w.commit()
        return BlobInfo(digest, size)

    @staticmethod
    def resumable(ref: str) -> bool:
        """A pull's ingest (``pull-<digest>``) picks up where it stopped; every other writer
        (build, commit, import, put) starts afresh, so its leftovers are garbage."""
        return ref.startswith("pull-")

    def prune_ingests(self, keep: Callable[[str], bool] | None = None) -> int:
        """Remove every ingest no writer holds, except those ``keep(ref)`` wants (a pull resumes
        its own); returns the bytes freed."""
        freed = 0
        for d in self.ingest.iterdir():
            ref_file = d / "ref"
            try:
                ref = ref_file.read_text()
            except FileNotFoundError:
                shutil.rmtree(d, ignore_errors=True)
                continue
            if keep is not None and keep(ref):
                continue
            try:
                w = self.writer(ref)
            except Unavailable:  # a live writer holds it
                continue
            freed += w.offset
            w.abort()
        return freed
