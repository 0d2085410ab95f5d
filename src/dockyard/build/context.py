"""The build context on the daemon side: the POST /build body unpacked into a private directory.

The body is a tar (plain or compressed) unpacked by ``extract.extract_context``, which refuses
hostile entries (absolute names, ``..``, paths through links) and skips device nodes;
or it is a bare Dockerfile (``docker build - < Dockerfile``) with an empty context.
``.dockerignore`` (or ``<Dockerfile>.dockerignore``) is applied here too, for clients that sent
everything.
"""

from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from dockyard.build.copy import resolve_in
from dockyard.build.extract import extract_context
from dockyard.diff.streams import decompressed
from dockyard.dockerignore import Matcher, read_patterns
from dockyard.errors import InvalidArgument

_MAX_DOCKERFILE = 16 << 20


@dataclass
class BuildContext:
    root: Path
    dockerfile_text: str
    dockerfile_name: str

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _looks_like_tar(head: bytes) -> bool:
    return (len(head) >= 262 and head[257:262] == b"ustar") or (len(head) >= 512 and not head.strip(b"\0"))


def context_from_tar(stream: BinaryIO, workdir: Path, dockerfile: str = "Dockerfile") -> BuildContext:
    workdir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="build-context-", dir=workdir))
    try:
        tail = _missing_end(stream)
        plain = decompressed(stream)
        head = plain.read(512)
        if head and not _looks_like_tar(head):
            text = (head + plain.read(_MAX_DOCKERFILE)).decode("utf-8", errors="replace")
            return BuildContext(root, text, "Dockerfile")
        extract_context(cast(BinaryIO, _Joined(head, plain, tail)), root)
        name = dockerfile or "Dockerfile"
        path = resolve_in(root, name)
        if not path.is_file():
            raise InvalidArgument(f"Cannot locate specified Dockerfile: {name}")
        text = path.read_text(errors="replace")
        _apply_ignore(root, name)
        return BuildContext(root, text, name)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


def _missing_end(stream: BinaryIO) -> bytes:
    """The padding and end-of-archive blocks an uncompressed context tar lacks, if it stops right
    after its last member's data (the docker CLI sends that for ``build -f - DIR``; dockerd
    accepts it). Any other truncation stays an error."""
    try:
        pos = stream.tell()
        size = stream.seek(0, io.SEEK_END)
        stream.seek(pos)
    except (OSError, ValueError):
        return b""
    if size % 512 == 0:
        return b""
    last_end = 0
    try:
        with tarfile.open(fileobj=stream, mode="r:") as tf:
            for member in tf:
                last_end = member.offset_data + (member.size if member.isreg() else 0)
    except tarfile.TarError:
        pass
    finally:
        stream.seek(pos)
    if last_end != size:
        return b""
    return b"\0" * (-size % 512) + b"\0" * 1024


class _Joined(io.RawIOBase):
    def __init__(self, head: bytes, rest: BinaryIO, tail: bytes = b"") -> None:
        self.head = head
        self.rest = rest
        self.tail = tail

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        """Full reads (tarfile takes a short read for the end of the archive)."""
        if not self.head:
            data = self.rest.read(n)
            if self.tail and (n < 0 or len(data) < n):
                extra = self.tail if n < 0 else self.tail[:n - len(data)]
                self.tail = self.tail[len(extra):]
                data += extra
            return data
        if n < 0:
            data, self.head = self.head + self.rest.read(), b""
            return data
        data, self.head = self.head[:n], self.head[n:]
        if len(data) < n:
            data += self.rest.read(n - len(data))
        return data


def _apply_ignore(root: Path, dockerfile: str) -> None:
    ignore = None
    for candidate in (f"{dockerfile}.dockerignore", ".dockerignore"):
        path = resolve_in(root, candidate)
        if path.is_file():
            ignore = path
            break
    if ignore is None:
        return
    matcher = Matcher(read_patterns(ignore.read_text(errors="replace")))
    doomed: list[Path] = []
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        for entry in sorted((root / rel_dir).iterdir()):
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            is_dir = entry.is_dir() and not entry.is_symlink()
            if matcher.excluded(rel):
                if is_dir and matcher.may_have_exceptions_below(rel):
                    stack.append(rel)
                    continue
                doomed.append(entry)
            elif is_dir:
                stack.append(rel)
    for path in doomed:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
