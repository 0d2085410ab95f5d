"""The registry on a local directory.

Layout under ``root``::

    content/blobs/<alg>/<hex>        every blob and manifest, once, verified (dockyard's ContentStore)
    content/ingest/...               upload sessions' bytes (ContentStore ingests, ref "upload:<id>")
    uploads/<id>.json                session → repository; its mtime is the session's last activity
    repositories/<name>/_layers/<alg>/<hex>             blob linked into the repository (empty file)
    repositories/<name>/_manifests/<alg>/<hex>          manifest revision: {"mediaType", "size"}
    repositories/<name>/_tags/<tag>                     the tag's manifest digest
    repositories/<name>/_referrers/<alg>/<hex>/<alg>-<hex>  referrer descriptor, by subject digest

Name components never start with ``_``, so nested repositories (``a`` and ``a/b``) cannot collide
with the bookkeeping directories. Small files are written atomically (temp, fsync, rename, fsync dir).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from dockyard.content import BlobInfo, ContentStore, Writer
from dockyard.content.writer import fsync_dir
from dockyard.errors import InvalidArgument, NotFound, Unavailable
from dockyard.oci.digest import Digest
from dockyard.registry.errors import RegistryError
from dockyard.registry.manifests import Manifest, parse_manifest
from dockyard.registry.storage import RegistryStorage, StoredBlob, StoredManifest

_UPLOAD_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_REF_PREFIX = "upload:"


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


class FilesystemStorage(RegistryStorage):
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.content = ContentStore(self.root / "content")
        self.uploads = self.root / "uploads"
        self.repos = self.root / "repositories"
        self.uploads.mkdir(parents=True, exist_ok=True)
        self.repos.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._writers: dict[str, Writer] = {}      # open upload writers, kept between requests
        self._session_locks: dict[str, threading.Lock] = {}

    # -- paths -----------------------------------------------------------------------------------
    def _repo(self, name: str) -> Path:
        return self.repos / name

    def _link(self, name: str, digest: Digest) -> Path:
        return self._repo(name) / "_layers" / digest.algorithm / digest.hex

    def _revision(self, name: str, digest: Digest) -> Path:
        return self._repo(name) / "_manifests" / digest.algorithm / digest.hex

    def _tag(self, name: str, tag: str) -> Path:
        return self._repo(name) / "_tags" / tag

    def _referrer(self, name: str, subject: Digest, digest: Digest) -> Path:
        return (self._repo(name) / "_referrers" / subject.algorithm / subject.hex
                / f"{digest.algorithm}-{digest.hex}")

    # -- blobs -------------------------------------------------------------------------------------
    def blob_exists(self, name: str, digest: Digest) -> bool:
        return self._link(name, digest).exists() and self.content.exists(digest)

    def blob_info(self, name: str, digest: Digest) -> BlobInfo:
        if not self._link(name, digest).exists():
            raise RegistryError("BLOB_UNKNOWN", detail={"digest": str(digest)})
        try:
            return self.content.info(digest)
        except NotFound:
            raise RegistryError("BLOB_UNKNOWN", detail={"digest": str(digest)}) from None

    def blob_path(self, name: str, digest: Digest) -> Path:
        self.blob_info(name, digest)
        return self.content.path(digest)

    def _link_blob(self, name: str, digest: Digest) -> None:
        link = self._link(name, digest)
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.touch()
            fsync_dir(link.parent)

    def unlink_blob(self, name: str, digest: Digest) -> None:
        if not _unlink(self._link(name, digest)):
            raise RegistryError("BLOB_UNKNOWN", detail={"digest": str(digest)})

    def mount_blob(self, name: str, digest: Digest, source: str) -> BlobInfo | None:
        if not self.blob_exists(source, digest):
            return None
        self._link_blob(name, digest)
        return self.content.info(digest)

    # -- upload sessions -----------------------------------------------------------------------------
    def _meta(self, upload_id: str) -> Path:
        return self.uploads / f"{upload_id}.json"

    def _check_session(self, name: str, upload_id: str) -> Path:
        meta = self._meta(upload_id)
        try:
            owner = json.loads(meta.read_bytes())["name"] if _UPLOAD_ID.fullmatch(upload_id) else None
        except (FileNotFoundError, ValueError, KeyError):
            owner = None
        if owner != name:
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", detail={"uuid": upload_id})
        return meta

    def _session_lock(self, upload_id: str) -> threading.Lock:
        with self._lock:
            return self._session_locks.setdefault(upload_id, threading.Lock())

    def _writer(self, upload_id: str) -> Writer:
        """The session's writer, reopened (and its bytes re-hashed) after a restart or idle close."""
        w = self._writers.get(upload_id)
        if w is None:
            try:
                w = self.content.writer(_REF_PREFIX + upload_id)
            except Unavailable as exc:
                raise RegistryError("BLOB_UPLOAD_INVALID", f"upload {upload_id} is busy: {exc}",
                                    status=409) from exc
            self._writers[upload_id] = w
        return w

    def _forget(self, upload_id: str) -> None:
        self._writers.pop(upload_id, None)
        with self._lock:
            self._session_locks.pop(upload_id, None)
        _unlink(self._meta(upload_id))

    def start_upload(self, name: str) -> str:
        upload_id = str(uuid.uuid4())
        atomic_write(self._meta(upload_id), json.dumps({"name": name, "started": time.time()}).encode())
        return upload_id

    @contextlib.contextmanager
    def _session(self, name: str, upload_id: str) -> Iterator[Path]:
        """Hold the session's lock, and check (under it) that the session exists and is ``name``'s."""
        self._check_session(name, upload_id)
        with self._session_lock(upload_id):
            yield self._check_session(name, upload_id)

    def upload_offset(self, name: str, upload_id: str) -> int:
        with self._session(name, upload_id):
            return self._writer(upload_id).offset

    def upload_write(self, name: str, upload_id: str, data: bytes) -> int:
        with self._session(name, upload_id) as meta:
            w = self._writer(upload_id)
            w.write(data)
            os.utime(meta)
            return w.offset

    def commit_upload(self, name: str, upload_id: str, digest: Digest) -> BlobInfo:
        with self._session(name, upload_id):
            w = self._writer(upload_id)
            if w.digest().algorithm != digest.algorithm:
                # Hashed as sha256 while streaming; re-hash the bytes with the algorithm asked for.
                w.close()
                self._writers.pop(upload_id, None)
                w = self.content.writer(_REF_PREFIX + upload_id, expected=digest)
            size = w.offset
            try:
                w.commit(digest)
            except InvalidArgument as exc:  # the writer dropped the bytes already
                raise RegistryError("DIGEST_INVALID", detail={"digest": str(digest),
                                                               "reason": str(exc)}) from exc
            finally:
                self._forget(upload_id)
            self._link_blob(name, digest)
            return BlobInfo(digest, size)

    def cancel_upload(self, name: str, upload_id: str) -> None:
        with self._session(name, upload_id):
            self._writer(upload_id).abort()
            self._forget(upload_id)

    def close_idle_writers(self, idle: float) -> None:
        """Release writers of sessions idle for ``idle`` seconds (their bytes stay resumable)."""
        now = time.time()
        for upload_id, w in list(self._writers.items()):
            lock = self._session_lock(upload_id)
            if not lock.acquire(blocking=False):
                continue
            try:
                if now - self._meta(upload_id).stat().st_mtime > idle:
                    w.close()
                    self._writers.pop(upload_id, None)
            except FileNotFoundError:
                self._writers.pop(upload_id, None)
            finally:
                lock.release()

    def expire_uploads(self, max_age: float, dry_run: bool = False) -> list[str]:
        now = time.time()
        expired: list[str] = []
        for meta in sorted(self.uploads.glob("*.json")):
            upload_id = meta.stem
            try:
                if now - meta.stat().st_mtime <= max_age:
                    continue
            except FileNotFoundError:
                continue
            if dry_run:
                expired.append(upload_id)
                continue
            lock = self._session_lock(upload_id)
            if not lock.acquire(blocking=False):
                continue  # a request is writing to it right now
            try:
                w = self._writers.pop(upload_id, None)
                if w is not None:
                    w.abort()
                else:
                    self.content.abort(_REF_PREFIX + upload_id)
            except NotFound:
                pass
            except Unavailable:  # a writer in another process holds it: it is not stale
                continue
            finally:
                lock.release()
            expired.append(upload_id)
            self._forget(upload_id)
        if not dry_run:  # bytes whose session file is gone (a crash between the two removals)
            for ref, _ in list(self.content.ingests()):
                if ref.startswith(_REF_PREFIX) and not self._meta(ref[len(_REF_PREFIX):]).exists():
                    try:
                        self.content.abort(ref)
                    except (NotFound, Unavailable):
                        pass
        return expired

    # -- manifests and tags --------------------------------------------------------------------------
    def put_manifest(self, name: str, digest: Digest, data: bytes, manifest: Manifest,
                     tag: str | None) -> None:
        for blob in manifest.blobs:
            if not self.blob_exists(name, blob):
                raise RegistryError("MANIFEST_BLOB_UNKNOWN", f"blob {blob} unknown to repository {name}",
                                    detail={"digest": str(blob)})
        for child in manifest.children:
            if not self._revision(name, child).exists():
                raise RegistryError("MANIFEST_BLOB_UNKNOWN",
                                    f"manifest {child} unknown to repository {name}",
                                    detail={"digest": str(child)})
        self.content.put_bytes(data, digest)
        atomic_write(self._revision(name, digest),
                     json.dumps({"mediaType": manifest.media_type, "size": len(data)}).encode())
        if manifest.subject is not None:
            atomic_write(self._referrer(name, manifest.subject, digest),
                         json.dumps(manifest.referrer_descriptor(digest, len(data))).encode())
        if tag is not None:
            atomic_write(self._tag(name, tag), str(digest).encode())

    def _resolve(self, name: str, reference: Digest | str) -> Digest:
        if isinstance(reference, Digest):
            return reference
        try:
            return Digest.parse(self._tag(name, reference).read_text().strip())
        except (FileNotFoundError, InvalidArgument):
            raise RegistryError("MANIFEST_UNKNOWN", f"manifest unknown: tag {reference} not found",
                                detail={"tag": reference}) from None

    def read_manifest(self, name: str, digest: Digest) -> tuple[str, bytes] | None:
        try:
            media_type = str(json.loads(self._revision(name, digest).read_bytes())["mediaType"])
            return media_type, self.content.read_bytes(digest)
        except (FileNotFoundError, NotFound, ValueError, KeyError):
            return None

    def get_manifest(self, name: str, reference: Digest | str) -> StoredManifest:
        digest = self._resolve(name, reference)
        found = self.read_manifest(name, digest)
        if found is None:
            raise RegistryError("MANIFEST_UNKNOWN", detail={"digest": str(digest)})
        return StoredManifest(digest, found[0], found[1])

    def delete_manifest(self, name: str, digest: Digest) -> None:
        found = self.read_manifest(name, digest)
        if found is None:
            raise RegistryError("MANIFEST_UNKNOWN", detail={"digest": str(digest)})
        for tag in self.tags(name):
            if self._resolve(name, tag) == digest:
                _unlink(self._tag(name, tag))
        try:
            subject = parse_manifest(found[0], found[1]).subject
        except RegistryError:
            subject = None
        if subject is not None:
            _unlink(self._referrer(name, subject, digest))
        _unlink(self._revision(name, digest))

    def delete_tag(self, name: str, tag: str) -> None:
        if not _unlink(self._tag(name, tag)):
            raise RegistryError("MANIFEST_UNKNOWN", f"manifest unknown: tag {tag} not found",
                                detail={"tag": tag})

    def tags(self, name: str) -> list[str]:
        repo = self._repo(name)
        if not (repo / "_manifests").is_dir() and not (repo / "_layers").is_dir():
            raise RegistryError("NAME_UNKNOWN", detail={"name": name})
        try:
            return sorted(p.name for p in (repo / "_tags").iterdir() if not p.name.startswith("."))
        except FileNotFoundError:
            return []

    def repositories(self) -> list[str]:
        found: list[str] = []

        def walk(d: Path, prefix: str) -> None:
            for entry in sorted(os.scandir(d), key=lambda e: e.name):
                if entry.name.startswith("_") or not entry.is_dir():
                    continue
                name = prefix + entry.name
                if os.path.isdir(os.path.join(entry.path, "_manifests")):
                    found.append(name)
                walk(Path(entry.path), name + "/")
        walk(self.repos, "")
        return sorted(found)

    def referrers(self, name: str, digest: Digest) -> list[dict[str, Any]]:
        d = self._repo(name) / "_referrers" / digest.algorithm / digest.hex
        out: list[dict[str, Any]] = []
        try:
            entries = sorted(d.iterdir())
        except FileNotFoundError:
            return []
        for entry in entries:
            try:
                desc = json.loads(entry.read_bytes())
                if self._revision(name, Digest.parse(desc["digest"])).exists():
                    out.append(desc)
            except (FileNotFoundError, ValueError, KeyError, InvalidArgument):
                continue
        return out

    # -- garbage collection -----------------------------------------------------------------------
    def manifest_digests(self, name: str) -> list[Digest]:
        out: set[Digest] = set()
        revisions = self._repo(name) / "_manifests"
        for algo in revisions.iterdir() if revisions.is_dir() else ():
            for f in algo.iterdir():
                if not f.name.startswith("."):
                    out.add(Digest(algo.name, f.name))
        for tag in self.tags(name) if self._repo(name).is_dir() else ():
            try:
                out.add(self._resolve(name, tag))
            except RegistryError:
                continue
        return sorted(out)

    def walk_blobs(self) -> Iterator[StoredBlob]:
        for info in self.content.walk():
            try:
                mtime = self.content.path(info.digest).stat().st_mtime
            except (NotFound, FileNotFoundError):
                continue
            yield StoredBlob(info, mtime)

    def delete_blobs(self, digests: Iterable[Digest]) -> None:
        names = self._all_repo_dirs()
        for digest in digests:
            for name in names:
                _unlink(self._link(name, digest))
            try:
                self.content.delete(digest)
            except NotFound:
                pass

    def _all_repo_dirs(self) -> list[str]:
        """Every repository directory, with or without manifests."""
        return sorted(str(p.parent.relative_to(self.repos)) for p in self.repos.rglob("_layers"))
