"""``docker save``: the tar Docker ≥ 25 writes, a docker-archive that is also an OCI image layout.

Blobs are written exactly as stored (config, manifest, layers — compressed layers stay compressed
under their own media types), so a save → load round trip keeps every digest.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

from dockyard.errors import Internal
from dockyard.images.load import NAME_ANNOTATION, REF_NAME_ANNOTATION
from dockyard.oci import mediatypes as mt
from dockyard.oci import reference
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest

if TYPE_CHECKING:
    from dockyard.content import ContentStore


@dataclass
class SaveItem:
    image_id: str
    manifest_digest: str
    tags: list[str] = field(default_factory=list)  # normalised names


def _blob_name(digest: Digest) -> str:
    return f"blobs/{digest.algorithm}/{digest.hex}"


class _TarOut:
    def __init__(self, out: BinaryIO) -> None:
        self.tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)  # noqa: SIM115
        self.mtime = int(time.time())

    def dir(self, name: str) -> None:
        info = tarfile.TarInfo(name)
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        info.mtime = self.mtime
        self.tar.addfile(info)

    def file(self, name: str, data: bytes) -> None:
        self.stream(name, io.BytesIO(data), len(data))

    def stream(self, name: str, src: BinaryIO, size: int) -> None:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mode = 0o644
        info.mtime = self.mtime
        self.tar.addfile(info, src)

    def close(self) -> None:
        self.tar.close()


def save(content: ContentStore, items: list[SaveItem], out: BinaryIO) -> None:
    tar = _TarOut(out)
    tar.dir("blobs/")
    tar.dir("blobs/sha256/")
    index_entries: list[dict[str, Any]] = []
    docker_entries: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    written: set[str] = set()

    def blob(digest: Digest) -> str:
        name = _blob_name(digest)
        if name not in written:
            info = content.info(digest)
            with content.open(digest) as f:
                tar.stream(name, f, info.size)
            written.add(name)
        return name

    for item in items:
        manifest_digest = Digest.parse(item.manifest_digest)
        manifest_bytes = content.read_bytes(manifest_digest)
        manifest = json.loads(manifest_bytes)
        if not isinstance(manifest, dict):
            raise Internal(f"stored manifest {manifest_digest} of image {item.image_id} is not a JSON object")
        config_desc = Descriptor.from_json(manifest["config"])
        layers = [Descriptor.from_json(x) for x in manifest.get("layers") or []]
        config_name = blob(config_desc.digest)
        layer_names = [blob(layer.digest) for layer in layers]
        blob(manifest_digest)
        media_type = str(manifest.get("mediaType") or mt.OCI_MANIFEST)
        base: dict[str, Any] = {"mediaType": media_type, "digest": str(manifest_digest), "size": len(manifest_bytes)}
        config = json.loads(content.read_bytes(config_desc.digest))
        platform = {k: config[k] for k in ("architecture", "os", "variant")
                    if isinstance(config, dict) and isinstance(config.get(k), str) and config[k]}
        diff_ids = ((config.get("rootfs") or {}).get("diff_ids") or []) if isinstance(config, dict) else []
        # Docker's "repositories" names the top layer by its diff ID.
        top = str(diff_ids[-1]).partition(":")[2] if diff_ids else Digest.parse(item.image_id).hex
        familiar_tags = []
        for name in item.tags:
            ref = reference.parse(name)
            tag = ref.tag or reference.DEFAULT_TAG
            entry = {**base, "annotations": {NAME_ANNOTATION: str(ref), REF_NAME_ANNOTATION: tag}}
            if platform:
                entry["platform"] = platform
            index_entries.append(entry)
            familiar_tags.append(ref.familiar())
            repositories.setdefault(ref.familiar_name, {})[tag] = top
        if not item.tags:
            # Docker lists only tagged manifests in index.json; an untagged one is listed bare so OCI
            # consumers still find it (docker load reads manifest.json).
            index_entries.append({**base, "platform": platform} if platform else base)
        docker_entries.append({"Config": config_name, "RepoTags": familiar_tags or None, "Layers": layer_names})

    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": index_entries}
    tar.file("index.json", json.dumps(index, separators=(",", ":")).encode())
    tar.file("manifest.json", json.dumps(docker_entries, separators=(",", ":")).encode() + b"\n")
    tar.file("oci-layout", json.dumps({"imageLayoutVersion": mt.OCI_LAYOUT_VERSION}).encode())
    if repositories:
        tar.file("repositories", json.dumps(repositories, separators=(",", ":")).encode() + b"\n")
    tar.close()
