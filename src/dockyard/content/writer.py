"""Resumable ingest writer of the local content store.

An ingest lives in ``ingest/<sha256(ref)>/`` with ``data`` (the bytes so far), ``ref`` (the ref text)
and ``startedat``; an exclusive ``flock`` on ``lock`` keeps a second writer of the same ref out
(per open file description, so it also works between two writers in one process).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from dockyard.errors import Internal, InvalidArgument, Unavailable, is_no_space, no_space
from dockyard.oci.digest import Digest

_CHUNK = 1 << 20


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Writer:
    """Writes one blob; ``commit`` makes it visible, ``abort`` drops it, ``close`` keeps it resumable."""

    def __init__(self, blob_path: Callable[[Digest], Path], ingest_dir: Path, ref: str,
                 expected: Digest | None, size: int | None) -> None:
        self._blob_path = blob_path
        self.ref = ref
        self.dir = ingest_dir
        self.expected = expected
        self.size = size
        self._closed = False
        self._committed = False
        algorithm = expected.algorithm if expected is not None else "sha256"
        self._hasher = hashlib.new(algorithm)
        ingest_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(ingest_dir / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(self._lock_fd)
            raise Unavailable(f"ref {ref} locked: another writer is active") from exc
        try:
            self._open_data(ingest_dir)
        except BaseException as exc:
            os.close(self._lock_fd)
            if is_no_space(exc):
                raise no_space(f"cannot store {ref} in {ingest_dir.parent.parent}") from exc
            raise

    def _open_data(self, ingest_dir: Path) -> None:
        ref_file = ingest_dir / "ref"
        if not ref_file.exists():
            ref_file.write_text(self.ref)
            (ingest_dir / "startedat").write_text(str(time.time()))
        self._fd = os.open(ingest_dir / "data", os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        # Resume: re-hash what an earlier writer of this ref left behind.
        self.offset = 0
        while chunk := os.pread(self._fd, _CHUNK, self.offset):
            self._hasher.update(chunk)
            self.offset += len(chunk)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._check_open()
        view = memoryview(data)
        total = len(view)
        while view:
            try:
                n = os.write(self._fd, view)
            except OSError as exc:
                self.offset += total - len(view)
                if is_no_space(exc):
                    raise no_space(f"cannot store {self.ref} in {self.dir.parent.parent}", exc) from exc
                raise
            self._hasher.update(view[:n])
            view = view[n:]
        self.offset += total
        return total

    def digest(self) -> Digest:
        return Digest.from_hasher(self._hasher.copy())

    def commit(self, expected: Digest | None = None, size: int | None = None) -> Digest:
        """fsync → verify size and digest → rename into blobs/ → fsync the directory."""
        self._check_open()
        expected = expected or self.expected
        size = size if size is not None else self.size
        actual = self.digest()
        try:
            os.fsync(self._fd)
        except OSError as exc:
            if is_no_space(exc):
                raise no_space(f"cannot sync ingest {self.ref}", exc) from exc
            raise Internal(f"cannot sync ingest {self.ref}: {exc.strerror}") from exc
        if size is not None and self.offset != size:
            self.abort()
            raise InvalidArgument(f"commit of {self.ref} failed: size {self.offset} does not match "
                                  f"expected size {size}")
        if expected is not None and actual != expected:
            self.abort()
            raise InvalidArgument(f"commit of {self.ref} failed: digest {actual} does not match "
                                  f"expected digest {expected}")
        target = self._blob_path(actual)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                os.fchmod(self._fd, 0o444)
                # rename is atomic; a concurrent commit of the same digest just replaces identical bytes.
                os.rename(self.dir / "data", target)
                fsync_dir(target.parent)
        except OSError as exc:
            if is_no_space(exc):
                raise no_space(f"cannot commit {self.ref} as {actual}", exc) from exc
            raise Internal(f"cannot commit {self.ref} as {actual}: {exc.strerror}") from exc
        self._committed = True
        self._finish(remove=True)
        return actual

    def abort(self) -> None:
        """Drop the ingest and its bytes."""
        if not self._closed:
            self._finish(remove=True)

    def close(self) -> None:
        """Release the ref but keep the bytes, so a later ``writer(ref)`` resumes at ``offset``."""
        if not self._closed:
            self._finish(remove=False)

    def _finish(self, remove: bool) -> None:
        self._closed = True
        os.close(self._fd)
        if remove:
            shutil.rmtree(self.dir, ignore_errors=True)
        os.close(self._lock_fd)  # unlock last so nobody reopens a half-removed ingest

    def _check_open(self) -> None:
        if self._closed:
            raise InvalidArgument(f"writer for {self.ref} is closed")

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self._committed:
            self.abort()
