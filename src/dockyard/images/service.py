"""``ImageService``: the local image store (docs/internals.md, section "images/").

Identity is the config digest. Config, manifest and layer blobs live in the content store exactly as
received; rows in ``images``/``tags``/``repo_digests`` are written only after every blob is stored
and every layer is unpacked, in one transaction, so a failed load or import leaves no image or tag.
"""

from __future__ import annotations

import builtins
import json
import lzma
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from dockyard.engine.types import (
    DeleteResponseItem,
    HistoryEntry,
    ImageDetail,
    ImageSummary,
    PruneReport,
)
from dockyard.errors import (
    DockyardError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    is_no_space,
    no_space,
)
from dockyard.images import delete, importer, load, save
from dockyard.images.archive import Archive
from dockyard.images.filters import filter_images
from dockyard.images.records import ImageRecord, ImageTable
from dockyard.images.unpack import Unpacker
from dockyard.images.util import (
    chain_ids,
    config_diff_ids,
    content_size,
    familiar,
    load_json,
    normalise_tag,
    parse_created,
)
from dockyard.metadata.db import Database
from dockyard.oci import reference
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest, is_hex_id

if TYPE_CHECKING:
    from dockyard.content import ContentStore
    from dockyard.snapshots import Snapshotter

# users(image_id) → containers using the image: plain ids (treated as stopped) or (id, running) pairs.
Users = Callable[[str], Sequence[str | tuple[str, bool]]]


@dataclass
class _Pending:
    """An image whose blobs are stored and layers unpacked, ready to be registered."""
    config: bytes
    manifest_digest: str
    chain_id: str | None
    size: int
    refs: builtins.list[str]
    digests: builtins.list[str] = field(default_factory=list)  # "repo@sha256:…" (pull)
    diff_ids: builtins.list[str] = field(default_factory=list)
    layers: builtins.list[Descriptor] = field(default_factory=list)

    @property
    def id(self) -> str:
        return str(Digest.from_bytes(self.config))


class ImageService:
    def __init__(self, db: Database, content: ContentStore, snapshots: Snapshotter, tmp_dir: Path) -> None:
        self.db = db
        self.content = content
        self.snapshots = snapshots
        self.tmp_dir = Path(tmp_dir)
        self.table = ImageTable(db)
        self.unpacker = Unpacker(content, snapshots)
        # Serialises decisions that read then change rows (register, remove, prune).
        self.lock = threading.RLock()

    # -- lookup --------------------------------------------------------------------------------

    def resolve(self, name_or_id: str) -> str:
        text = name_or_id.strip()
        if text.startswith("sha256:"):
            hex_prefix = text[len("sha256:"):]
            if is_hex_id(hex_prefix):
                found = self.table.ids_with_prefix(hex_prefix)
                if len(found) == 1:
                    return found[0]
            raise NotFound(f"No such image: {name_or_id}")
        shown = name_or_id
        try:
            ref = reference.parse(text, default_tag=False) if text else None
        except InvalidArgument:
            ref = None
        if ref is not None:
            if ref.digest is not None:
                target = self.table.digest_target(f"{ref.name}@{ref.digest}")
                if target is None:
                    target = self._by_manifest_digest(ref.name, str(ref.digest))
            else:
                full = ref.tagged_or_default()
                target = self.table.tag_target(str(full))
                shown = full.familiar()
            if target is not None:
                return target
        if is_hex_id(text):
            found = self.table.ids_with_prefix(text)
            if len(found) == 1:
                return found[0]
        raise NotFound(f"No such image: {shown}")

    def _by_manifest_digest(self, repo: str, digest: str) -> str | None:
        for row in self.db.query("SELECT id FROM images WHERE manifest_digest = ?", (digest,)):
            if any(t.startswith(repo + ":") for t in self.table.tags(row["id"])):
                return str(row["id"])
        return None

    def record(self, name_or_id: str) -> ImageRecord:
        image_id = self.resolve(name_or_id)
        rec = self.table.get(image_id)
        if rec is None:  # removed between resolve and get
            raise NotFound(f"No such image: {name_or_id}")
        return rec

    def _summary(self, rec: ImageRecord, tags: builtins.list[str], digests: builtins.list[str]) -> ImageSummary:
        inner = rec.config.get("config") or {}
        labels = inner.get("Labels") if isinstance(inner, dict) else None
        return ImageSummary(
            id=rec.id, repo_tags=[familiar(t) for t in tags], repo_digests=[familiar(d) for d in digests],
            created=parse_created(rec.config.get("created")), size=rec.size, parent_id=rec.parent or "",
            labels=dict(labels or {}))

    def get(self, name_or_id: str) -> ImageDetail:
        rec = self.record(name_or_id)
        return ImageDetail(self._summary(rec, self.table.tags(rec.id), self.table.digests(rec.id)),
                           rec.config, rec.manifest_digest or "", list(rec.diff_ids))

    def config(self, image_id: str) -> dict[str, Any]:
        return self.record(image_id).config

    def list(self, all: bool = False, filters: Mapping[str, Sequence[str] | str] | None = None) -> builtins.list[ImageSummary]:
        tags = self.table.all_tags()
        digests = self.table.all_digests()
        out = [self._summary(rec, tags.get(rec.id, []), digests.get(rec.id, [])) for rec in self.table.all()]
        out = filter_images(out, dict(filters or {}), lambda ref: self._summary(
            self.record(ref), [], []).created)
        out.sort(key=lambda s: (s.created, s.id), reverse=True)
        return out

    def history(self, name_or_id: str) -> builtins.list[HistoryEntry]:
        rec = self.record(name_or_id)
        chains = rec.chains
        raw = rec.config.get("history")
        hist = [h for h in raw if isinstance(h, dict)] if isinstance(raw, list) else []
        if not hist:
            hist = [{"created": rec.config.get("created"), "created_by": ""}] * max(1, len(chains))
        entries: builtins.list[HistoryEntry] = []
        layer = 0
        for h in hist:
            size = 0
            if not h.get("empty_layer") and layer < len(chains):
                size = self._layer_size(chains[layer])
                layer += 1
            entries.append(HistoryEntry(id="<missing>", created=parse_created(h.get("created")),
                                        created_by=str(h.get("created_by") or ""), tags=[], size=size,
                                        comment=str(h.get("comment") or "")))
        entries.reverse()
        entries[0].id = rec.id
        entries[0].tags = [familiar(t) for t in self.table.tags(rec.id)]
        return entries

    def _layer_size(self, chain: str) -> int:
        try:
            return content_size(self.snapshots.upper_dir(chain))
        except (NotFound, OSError):
            return 0

    # -- tags ----------------------------------------------------------------------------------

    def tag(self, source: str, target: str) -> None:
        image_id = self.resolve(source)
        name = normalise_tag(target)
        with self.lock, self.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM images WHERE id = ?", (image_id,)).fetchone() is None:
                raise NotFound(f"No such image: {source}")
            ImageTable.set_tag(conn, name, image_id)

    # -- adding images -------------------------------------------------------------------------

    def layers(self, rec: ImageRecord) -> builtins.list[Descriptor]:
        """Layer descriptors from the image's stored manifest."""
        if rec.manifest_digest is None:
            raise FailedPrecondition(f"image {rec.id} has no manifest in the content store")
        manifest = load_json(self.content.read_bytes(Digest.parse(rec.manifest_digest)),
                             f"manifest {rec.manifest_digest}")
        return [Descriptor.from_json(x) for x in manifest.get("layers") or []]

    def unpack(self, image_id: str) -> str | None:
        rec = self.record(image_id)
        return self.unpacker.unpack(rec.diff_ids, self.layers(rec))

    def _size(self, diff_ids: builtins.list[str]) -> int:
        return sum(self._layer_size(c) for c in chain_ids(diff_ids))

    def add_image(self, config: bytes, layers: builtins.list[Descriptor], manifest: bytes | None, refs: builtins.list[str]) -> str:
        """Register an image whose layer blobs are already in the content store (pull, build, import)."""
        diff_ids = config_diff_ids(load_json(config, "image config"))
        names: builtins.list[str] = []
        digest_names: builtins.list[str] = []
        for r in refs:
            parsed = reference.parse(r, default_tag=False)
            if parsed.digest is not None:
                digest_names.append(f"{parsed.name}@{parsed.digest}")
            else:
                names.append(str(parsed.tagged_or_default()))
        for layer in layers:
            if not self.content.exists(layer.digest):
                raise NotFound(f"layer blob {layer.digest} is not in the content store")
        image_id = self.content.put_bytes(config)
        if manifest is None:
            manifest = importer.oci_manifest(config, layers)
        manifest_digest = self.content.put_bytes(manifest)
        created: builtins.list[str] = []
        try:
            top = self.unpacker.unpack(diff_ids, layers, created)
            self._register([_Pending(config, str(manifest_digest), top, self._size(diff_ids), names,
                                    digest_names, diff_ids, layers)], created)
        except BaseException:
            self._discard_chains(created)
            raise
        return str(image_id)

    def _register(self, images: builtins.list[_Pending], created: builtins.list[str]) -> builtins.list[str]:
        """Insert rows and move tags in one transaction; returns ``docker load`` messages."""
        messages: builtins.list[str] = []
        with self.lock:
            # A removal may have dropped a shared layer between our unpack and now (it did not know
            # this image yet); under the lock no removal runs, so re-check (cheap when all exist).
            for img in images:
                self.unpacker.unpack(img.diff_ids, img.layers, created)
            self._insert(images, messages)
        return messages

    def _insert(self, images: builtins.list[_Pending], messages: builtins.list[str]) -> None:
        with self.db.transaction() as conn:
            for img in images:
                ImageTable.insert(conn, img.id, img.config, img.manifest_digest, img.chain_id, img.size)
                for name in img.refs:
                    old = ImageTable.set_tag(conn, name, img.id)
                    if old is not None:
                        messages.append(f"The image {familiar(name)} already exists, renaming the old one "
                                        f"with ID {old} to empty string")
                    messages.append(f"Loaded image: {familiar(name)}")
                for name in img.digests:
                    ImageTable.add_digest(conn, name, img.id)
                if not img.refs:
                    messages.append(f"Loaded image ID: {img.id}")

    def _discard_chains(self, created: builtins.list[str]) -> None:
        """Undo snapshots a failed load committed, unless a registered image now needs them."""
        if not created:
            return
        with self.lock:
            keep = {c for rec in self.table.all() for c in rec.chains}
            self.unpacker.remove_chains(reversed(created), keep)

    def load(self, src: BinaryIO) -> builtins.list[str]:
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        stored: builtins.list[Digest] = []
        created: builtins.list[str] = []
        try:
            return self._load(src, stored, created)
        except BaseException:
            self._discard_chains(created)
            self._discard_blobs(stored)
            raise

    def _load(self, src: BinaryIO, stored: builtins.list[Digest], created: builtins.list[str]) -> builtins.list[str]:
        with tempfile.NamedTemporaryFile(dir=self.tmp_dir, prefix="load-", suffix=".tar") as spool:
            # Decompress while spooling: random access into a gzip stream would re-inflate it per seek.
            try:
                shutil.copyfileobj(importer.decompressed(src), spool, 1 << 20)
                spool.flush()
            except (OSError, EOFError, lzma.LZMAError) as exc:
                if is_no_space(exc):   # the spool's fault, not the archive's
                    raise no_space(f"cannot unpack the image archive in {self.tmp_dir}") from exc
                raise InvalidArgument(f"invalid image archive: {exc}") from exc
            with Archive(Path(spool.name)) as archive:
                images = load.plan(archive)
                if not images:
                    raise InvalidArgument("invalid image archive: it contains no image")
                load.write(archive, images, self.content, stored)
        pending = []
        for img in images:
            assert img.manifest is not None  # set by load.write
            top = self.unpacker.unpack(img.diff_ids, img.layers, created)
            pending.append(_Pending(img.config, str(Digest.from_bytes(img.manifest)), top,
                                    self._size(img.diff_ids), img.refs, [], img.diff_ids, img.layers))
        return self._register(pending, created)

    def _discard_blobs(self, stored: builtins.list[Digest]) -> None:
        """Drop the blobs a failed load stored (on a full disk they are the space the user needs
        back), unless an image registered meanwhile uses them."""
        if not stored:
            return
        with self.lock:
            keep: set[str] = set()
            for rec in self.table.all():
                keep.update(self._blobs_of(rec))
                keep.update(rec.diff_ids)
            for digest in stored:
                if str(digest) not in keep:
                    with suppress(DockyardError, OSError):
                        self.content.delete(digest)

    def import_rootfs(self, src: BinaryIO, ref: str | None, changes: builtins.list[str], message: str) -> str:
        names = [normalise_tag(ref)] if ref else []
        importer.apply_changes({}, changes)  # reject bad changes before storing anything
        layer = importer.store_rootfs(self.content, src)
        config = importer.build_config(layer.digest, changes, message)
        manifest = importer.oci_manifest(config, [layer])
        return self.add_image(config, [layer], manifest, names)

    # -- save ----------------------------------------------------------------------------------

    def save(self, names: builtins.list[str], out: BinaryIO) -> None:
        items: dict[str, save.SaveItem] = {}

        def add(image_id: str, tags: builtins.list[str]) -> None:
            rec = self.table.get(image_id)
            if rec is None or rec.manifest_digest is None:
                raise NotFound(f"No such image: {image_id}")
            item = items.setdefault(image_id, save.SaveItem(image_id, rec.manifest_digest))
            item.tags.extend(t for t in tags if t not in item.tags)

        if not names:
            raise InvalidArgument("no images given to save")
        all_tags = self.table.all_tags()
        for name in names:
            repo_tags = self._repo_tags(name, all_tags)
            if repo_tags:
                for image_id, tag in repo_tags:
                    add(image_id, [tag])
                continue
            image_id = self.resolve(name)
            named = self._tag_named(name, image_id)
            add(image_id, [named] if named else [])
        save.save(self.content, list(items.values()), out)

    @staticmethod
    def _repo_tags(name: str, all_tags: dict[str, builtins.list[str]]) -> builtins.list[tuple[str, str]]:
        """``docker save busybox`` (a repository without tag) saves every tag of that repository."""
        if ":" in name.rpartition("/")[2] or "@" in name or name.startswith("sha256:"):
            return []
        try:
            ref = reference.parse(name, default_tag=False)
        except InvalidArgument:
            return []
        prefix = ref.name + ":"
        return [(image_id, t) for image_id, tags in all_tags.items() for t in tags if t.startswith(prefix)]

    def _tag_named(self, name: str, image_id: str) -> str | None:
        try:
            full = str(reference.parse(name))
        except InvalidArgument:
            return None
        return full if self.table.tag_target(full) == image_id else None

    # -- removal -------------------------------------------------------------------------------

    def remove(self, name_or_id: str, force: bool = False, noprune: bool = False,
               users: Users | None = None) -> builtins.list[DeleteResponseItem]:
        return delete.remove(self, name_or_id, force, users)

    def prune(self, all: bool = False, filters: Mapping[str, Sequence[str] | str] | None = None,
              users: Users | None = None) -> PruneReport:
        return delete.prune(self, all, dict(filters or {}), users)

    def delete_image(self, rec: ImageRecord) -> int:
        """Drop the rows, then the snapshots and blobs no other image needs; returns bytes freed."""
        with self.lock:
            with self.db.transaction() as conn:
                conn.execute("DELETE FROM tags WHERE image_id = ?", (rec.id,))
                conn.execute("DELETE FROM repo_digests WHERE image_id = ?", (rec.id,))
                conn.execute("DELETE FROM images WHERE id = ?", (rec.id,))
            others = self.table.all()
            keep_chains = {c for o in others for c in o.chains}
            freed = self.unpacker.remove_chains(reversed(rec.chains), keep_chains)
            keep_blobs: set[str] = set()
            for o in others:
                keep_blobs.update(self._blobs_of(o))
                # an image ID can come with more than one manifest (pulled zstd, built uncompressed):
                # the record keeps one, so an uncompressed layer blob (digest = diff ID) stays too
                keep_blobs.update(o.diff_ids)
            for digest in self._blobs_of(rec) - keep_blobs:
                try:
                    d = Digest.parse(digest)
                    size = self.content.info(d).size
                    self.content.delete(d)
                    freed += size
                except NotFound:
                    continue
        return freed

    def _blobs_of(self, rec: ImageRecord) -> set[str]:
        out = {rec.id}
        if rec.manifest_digest:
            out.add(rec.manifest_digest)
            try:
                out.update(str(d.digest) for d in self.layers(rec))
            except (NotFound, InvalidArgument, json.JSONDecodeError):
                pass
        return out
