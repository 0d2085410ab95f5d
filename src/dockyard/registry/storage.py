"""The registry's storage interface. ``FilesystemStorage`` (filesystem.py) implements it on a local
directory; an object-store backend implements the same methods. Every method is synchronous and
thread-safe (the server calls the slow ones from worker threads) and raises ``RegistryError`` with the
distribution code that fits (BLOB_UNKNOWN, BLOB_UPLOAD_UNKNOWN, DIGEST_INVALID, MANIFEST_UNKNOWN,
MANIFEST_BLOB_UNKNOWN, NAME_UNKNOWN)."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard.content import BlobInfo
from dockyard.oci.digest import Digest
from dockyard.registry.manifests import Manifest


@dataclass(frozen=True)
class StoredManifest:
    digest: Digest
    media_type: str
    data: bytes


@dataclass(frozen=True)
class StoredBlob:
    info: BlobInfo
    mtime: float  # when it was committed


class RegistryStorage(abc.ABC):
    # -- blobs, as seen from one repository ----------------------------------------------------
    @abc.abstractmethod
    def blob_exists(self, name: str, digest: Digest) -> bool: ...

    @abc.abstractmethod
    def blob_info(self, name: str, digest: Digest) -> BlobInfo:
        """BLOB_UNKNOWN unless the blob is stored and linked to ``name``."""

    @abc.abstractmethod
    def blob_path(self, name: str, digest: Digest) -> Path:
        """A local file with the blob's bytes (an object store would hand out a URL instead)."""

    @abc.abstractmethod
    def unlink_blob(self, name: str, digest: Digest) -> None:
        """Forget the blob in ``name``; its bytes go at the next gc if nothing else uses them."""

    @abc.abstractmethod
    def mount_blob(self, name: str, digest: Digest, source: str) -> BlobInfo | None:
        """Link a blob of repository ``source`` into ``name``; None if ``source`` lacks it."""

    # -- upload sessions -----------------------------------------------------------------------
    @abc.abstractmethod
    def start_upload(self, name: str) -> str:
        """A new, empty upload session of ``name``; returns its id."""

    @abc.abstractmethod
    def upload_offset(self, name: str, upload_id: str) -> int: ...

    @abc.abstractmethod
    def upload_write(self, name: str, upload_id: str, data: bytes) -> int:
        """Append ``data``; returns the new offset."""

    @abc.abstractmethod
    def commit_upload(self, name: str, upload_id: str, digest: Digest) -> BlobInfo:
        """Verify the session's bytes against ``digest`` and make the blob visible in ``name``
        (atomically). DIGEST_INVALID on a mismatch, and then the session and its bytes are gone."""

    @abc.abstractmethod
    def cancel_upload(self, name: str, upload_id: str) -> None: ...

    @abc.abstractmethod
    def close_idle_writers(self, idle: float) -> None:
        """Release what sessions idle for ``idle`` seconds hold (their bytes stay resumable)."""

    @abc.abstractmethod
    def expire_uploads(self, max_age: float, dry_run: bool = False) -> list[str]:
        """Drop sessions idle for more than ``max_age`` seconds; returns their ids."""

    # -- manifests and tags --------------------------------------------------------------------
    @abc.abstractmethod
    def put_manifest(self, name: str, digest: Digest, data: bytes, manifest: Manifest,
                     tag: str | None) -> None:
        """Store a checked manifest; MANIFEST_BLOB_UNKNOWN if it refers to what ``name`` lacks."""

    @abc.abstractmethod
    def get_manifest(self, name: str, reference: Digest | str) -> StoredManifest: ...

    @abc.abstractmethod
    def delete_manifest(self, name: str, digest: Digest) -> None:
        """Remove the manifest from ``name`` with every tag pointing at it."""

    @abc.abstractmethod
    def delete_tag(self, name: str, tag: str) -> None: ...

    @abc.abstractmethod
    def tags(self, name: str) -> list[str]:
        """Sorted tags; NAME_UNKNOWN for a repository that does not exist."""

    @abc.abstractmethod
    def repositories(self) -> list[str]:
        """Sorted names of the repositories that hold manifests."""

    @abc.abstractmethod
    def referrers(self, name: str, digest: Digest) -> list[dict[str, Any]]:
        """Descriptors of the manifests of ``name`` whose subject is ``digest``."""

    # -- for garbage collection ----------------------------------------------------------------
    @abc.abstractmethod
    def manifest_digests(self, name: str) -> list[Digest]:
        """Every manifest of ``name`` (tagged or not) and every tag target."""

    @abc.abstractmethod
    def read_manifest(self, name: str, digest: Digest) -> tuple[str, bytes] | None:
        """(media type, bytes) of a manifest of ``name``, None if it is not there."""

    @abc.abstractmethod
    def walk_blobs(self) -> Iterator[StoredBlob]: ...

    @abc.abstractmethod
    def delete_blobs(self, digests: Iterable[Digest]) -> None:
        """Remove the blobs' bytes and every repository's links to them."""
