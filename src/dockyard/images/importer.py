"""``docker import``: a rootfs tar (plain, gzip, bzip2, xz or zstd) becomes a one-layer image.

The layer is stored uncompressed (its digest is then its diff ID) with Docker's rootfs diff media
type; the manifest is OCI.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import secrets
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from dockyard.errors import InvalidArgument
from dockyard.images.changes import apply_changes
from dockyard.images.util import host_arch, rfc3339_now
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest

if TYPE_CHECKING:
    from dockyard.content import ContentStore

_CHUNK = 1 << 20


class _Prefixed(io.RawIOBase):
    """Re-attach bytes already read (for sniffing) in front of the rest of a stream."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self.head = head
        self.rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        if self.head:
            n = min(len(buf), len(self.head))
            buf[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.rest.read(len(buf))
        buf[:len(data)] = data
        return len(data)


def decompressed(src: BinaryIO) -> BinaryIO:
    """A reader yielding the uncompressed tar, whatever compression ``src`` uses."""
    head = src.read(6)
    raw = io.BufferedReader(_Prefixed(head, src), _CHUNK)
    if head.startswith(b"\x1f\x8b"):
        return cast(BinaryIO, gzip.GzipFile(fileobj=raw, mode="rb"))
    if head.startswith(b"BZh"):
        return cast(BinaryIO, bz2.BZ2File(raw, "rb"))
    if head.startswith(b"\xfd7zXZ\x00"):
        return cast(BinaryIO, lzma.LZMAFile(raw, "rb"))
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        try:
            import zstandard
        except ImportError as exc:
            raise InvalidArgument("zstd-compressed import needs the zstandard module") from exc
        return cast(BinaryIO, zstandard.ZstdDecompressor().stream_reader(raw))
    return cast(BinaryIO, raw)


def store_rootfs(content: ContentStore, src: BinaryIO) -> Descriptor:
    """Decompress ``src`` into the content store; the descriptor's digest is the diff ID."""
    stream = decompressed(src)
    with content.writer(f"import-{secrets.token_hex(8)}") as w:
        try:
            while chunk := stream.read(_CHUNK):
                w.write(chunk)
        except (OSError, EOFError, lzma.LZMAError) as exc:
            raise InvalidArgument(f"cannot read the imported archive: {exc}") from exc
        size = w.offset
        if size == 0:
            raise InvalidArgument("the imported archive is empty")
        digest = w.commit()
    return Descriptor(mt.DOCKER_LAYER, digest, size)


def build_config(diff_id: Digest, changes: list[str], message: str) -> bytes:
    inner: dict[str, Any] = {}
    apply_changes(inner, changes)
    created = rfc3339_now()
    config = {
        "architecture": host_arch(),
        "config": inner,
        "created": created,
        "history": [{"created": created, "created_by": "", "comment": message or "Imported from -"}],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [str(diff_id)]},
    }
    return json.dumps(config, separators=(",", ":")).encode()


def oci_manifest(config: bytes, layers: list[Descriptor]) -> bytes:
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": str(Digest.from_bytes(config)), "size": len(config)},
        "layers": [d.to_json() for d in layers],
    }
    return json.dumps(doc, separators=(",", ":")).encode()
