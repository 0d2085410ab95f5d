"""``docker load``: read a docker-archive or an OCI image layout into the content store.

Two phases: ``plan`` parses and checks every JSON document, digest, size and referenced member
without touching the store; ``write`` then streams blobs into the content store (verified again by
digest on commit). Registration of rows happens in the service, after unpacking, in one transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from dockyard.errors import InvalidArgument
from dockyard.images.archive import Archive
from dockyard.images.util import config_diff_ids, host_arch, load_json, normalise_tag
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest

if TYPE_CHECKING:
    from dockyard.content import ContentStore

NAME_ANNOTATION = "io.containerd.image.name"
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"


@dataclass
class LoadedImage:
    """One image of an archive; ``layers`` are the member names and, once written, descriptors."""
    config: bytes
    config_member: str
    diff_ids: list[str]
    layer_members: list[str]
    layer_descs: list[Descriptor | None]
    manifest: bytes | None = None           # byte-exact when the archive had one (OCI layout)
    manifest_member: str = ""
    refs: list[str] = field(default_factory=list)  # normalised tags

    @property
    def id(self) -> str:
        return str(Digest.from_bytes(self.config))

    @property
    def layers(self) -> list[Descriptor]:
        return [d for d in self.layer_descs if d is not None]


def plan(archive: Archive) -> list[LoadedImage]:
    """Parse and validate the archive; nothing is written."""
    if archive.has("index.json") and archive.has("oci-layout"):
        images = _plan_oci(archive)
        if archive.has("manifest.json"):
            # Docker ≥ 25 writes both; manifest.json may carry tags the index lacks.
            by_id = {img.id: img for img in images}
            for extra in _plan_docker(archive):
                img = by_id.get(extra.id)
                if img is not None:
                    img.refs.extend(r for r in extra.refs if r not in img.refs)
    elif archive.has("manifest.json"):
        images = _plan_docker(archive)
    else:
        raise InvalidArgument("invalid image archive: neither manifest.json nor an OCI layout (oci-layout, index.json)")
    # One image may be named by several entries: merge them.
    merged: dict[str, LoadedImage] = {}
    for img in images:
        prev = merged.get(img.id)
        if prev is None:
            merged[img.id] = img
        else:
            prev.refs.extend(r for r in img.refs if r not in prev.refs)
    return list(merged.values())


def _check_config(data: bytes, member: str) -> tuple[dict[str, Any], list[str]]:
    config = load_json(data, f"archive member {member!r}")
    return config, config_diff_ids(config, f"archive member {member!r}")


def _plan_docker(archive: Archive) -> list[LoadedImage]:
    try:
        entries = json.loads(archive.read("manifest.json"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"archive member 'manifest.json': malformed JSON: {exc}") from exc
    if not isinstance(entries, list):
        raise InvalidArgument("archive member 'manifest.json': expected a JSON list")
    out = []
    for n, entry in enumerate(entries):
        what = f"archive member 'manifest.json' entry {n}"
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
            raise InvalidArgument(f"{what}: lacks \"Config\"")
        layers = entry.get("Layers") or []
        tags = entry.get("RepoTags") or []
        if not isinstance(layers, list) or not all(isinstance(x, str) for x in layers):
            raise InvalidArgument(f"{what}: \"Layers\" must be a list of paths")
        if not isinstance(tags, list) or not all(isinstance(x, str) for x in tags):
            raise InvalidArgument(f"{what}: \"RepoTags\" must be a list of names")
        config_member = entry["Config"]
        data = archive.read(config_member)
        _, diff_ids = _check_config(data, config_member)
        if config_member.startswith("blobs/"):
            _check_blob_name(config_member, data)
        if len(diff_ids) != len(layers):
            raise InvalidArgument(f"{what}: {len(layers)} layers but the config lists {len(diff_ids)} diff ids")
        for layer in layers:
            archive.size(layer)  # raises when missing
        refs = []
        for tag in tags:
            try:
                refs.append(normalise_tag(tag))
            except InvalidArgument as exc:
                raise InvalidArgument(f"{what}: bad RepoTag {tag!r}: {exc}") from exc
        out.append(LoadedImage(data, config_member, diff_ids, list(layers), [None] * len(layers), refs=refs))
    return out


def _check_blob_name(member: str, data: bytes) -> None:
    parts = member.split("/")
    if len(parts) == 3 and parts[0] == "blobs":
        want = f"{parts[1]}:{parts[2]}"
        got = str(Digest.from_bytes(data, parts[1])) if parts[1] in ("sha256", "sha512") else want
        if got != want:
            raise InvalidArgument(f"archive member {member!r}: content has digest {got}")


def _blob_member(desc: Descriptor) -> str:
    return f"blobs/{desc.digest.algorithm}/{desc.digest.hex}"


def _read_blob(archive: Archive, desc: Descriptor) -> tuple[bytes, str]:
    member = _blob_member(desc)
    if not archive.has(member):
        raise InvalidArgument(f"archive lacks blob {desc.digest} (member {member!r})")
    data = archive.read(member)
    if len(data) != desc.size:
        raise InvalidArgument(f"archive member {member!r}: size {len(data)} does not match descriptor size {desc.size}")
    got = Digest.from_bytes(data, desc.digest.algorithm)
    if got != desc.digest:
        raise InvalidArgument(f"archive member {member!r}: content has digest {got}, expected {desc.digest}")
    return data, member


def _ref_from_annotations(ann: dict[str, str]) -> str | None:
    name = ann.get(NAME_ANNOTATION)
    if not name:
        ref_name = ann.get(REF_NAME_ANNOTATION, "")
        # A bare tag ("latest") names no repository; only full references become tags.
        if ":" in ref_name or "/" in ref_name:
            name = ref_name
    if not name:
        return None
    try:
        return normalise_tag(name)
    except InvalidArgument as exc:
        raise InvalidArgument(f"archive index.json: bad image name annotation {name!r}: {exc}") from exc


def _plan_oci(archive: Archive) -> list[LoadedImage]:
    layout = load_json(archive.read("oci-layout"), "archive member 'oci-layout'")
    if "imageLayoutVersion" not in layout:
        raise InvalidArgument("archive member 'oci-layout': lacks imageLayoutVersion")
    index = load_json(archive.read("index.json"), "archive member 'index.json'")
    out: list[LoadedImage] = []
    for n, raw in enumerate(_manifest_list(index, "index.json")):
        try:
            desc = Descriptor.from_json(raw)
        except InvalidArgument as exc:
            raise InvalidArgument(f"archive member 'index.json' manifests[{n}]: {exc}") from exc
        ref = _ref_from_annotations(desc.annotations)
        img = _resolve_manifest(archive, desc, depth=0)
        if ref is not None:
            img.refs.append(ref)
        out.append(img)
    return out


def _manifest_list(index: dict[str, Any], what: str) -> list[Any]:
    manifests = index.get("manifests")
    if not isinstance(manifests, list):
        raise InvalidArgument(f"archive member {what!r}: \"manifests\" must be a list")
    return manifests


def _resolve_manifest(archive: Archive, desc: Descriptor, depth: int) -> LoadedImage:
    if depth > 4:
        raise InvalidArgument(f"index {desc.digest}: indexes nested too deeply")
    if desc.media_type in mt.INDEXES:
        data, member = _read_blob(archive, desc)
        index = load_json(data, f"archive member {member!r}")
        chosen = _pick_platform(archive, index, member)
        return _resolve_manifest(archive, chosen, depth + 1)
    if desc.media_type not in mt.MANIFESTS:
        raise InvalidArgument(f"descriptor {desc.digest}: unsupported media type {desc.media_type!r}")
    data, member = _read_blob(archive, desc)
    manifest = load_json(data, f"archive member {member!r}")
    what = f"archive member {member!r}"
    try:
        config_desc = Descriptor.from_json(manifest.get("config"))
        raw_layers = manifest.get("layers") or []
        if not isinstance(raw_layers, list):
            raise InvalidArgument("\"layers\" must be a list")
        layers = [Descriptor.from_json(x) for x in raw_layers]
    except InvalidArgument as exc:
        raise InvalidArgument(f"{what}: {exc}") from exc
    config, config_member = _read_blob(archive, config_desc)
    _, diff_ids = _check_config(config, config_member)
    if len(diff_ids) != len(layers):
        raise InvalidArgument(f"{what}: {len(layers)} layers but the config lists {len(diff_ids)} diff ids")
    members = []
    for layer in layers:
        if layer.media_type not in mt.LAYERS:
            raise InvalidArgument(f"{what}: layer {layer.digest} has unsupported media type {layer.media_type!r}")
        lm = _blob_member(layer)
        if not archive.has(lm):
            raise InvalidArgument(f"archive lacks blob {layer.digest} (member {lm!r})")
        if archive.size(lm) != layer.size:
            raise InvalidArgument(f"archive member {lm!r}: size {archive.size(lm)} does not match descriptor size {layer.size}")
        members.append(lm)
    return LoadedImage(config, config_member, diff_ids, members, list(layers), manifest=data, manifest_member=member)


def _pick_platform(archive: Archive, index: dict[str, Any], member: str) -> Descriptor:
    candidates = []
    for n, raw in enumerate(_manifest_list(index, member)):
        try:
            d = Descriptor.from_json(raw)
        except InvalidArgument as exc:
            raise InvalidArgument(f"archive member {member!r} manifests[{n}]: {exc}") from exc
        if d.annotations.get("vnd.docker.reference.type") == "attestation-manifest":
            continue
        if d.platform is None or (d.platform.os in ("linux", "") and d.platform.architecture in (host_arch(), "")):
            candidates.append(d)
    present = [d for d in candidates if archive.has(_blob_member(d))]
    if not present:
        raise InvalidArgument(f"archive member {member!r}: no manifest for platform linux/{host_arch()}")
    return present[0]


def _digest_of_blob_name(member: str) -> Digest | None:
    """``blobs/sha256/<hex>`` names its content: hold the member to it."""
    parts = member.split("/")
    if len(parts) == 3 and parts[0] == "blobs":
        try:
            return Digest.parse(f"{parts[1]}:{parts[2]}")
        except InvalidArgument:
            return None
    return None


def _sniff_media_type(head: bytes) -> str:
    if head.startswith(b"\x1f\x8b"):
        return mt.DOCKER_LAYER_GZIP
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return mt.OCI_LAYER_ZSTD
    return mt.DOCKER_LAYER


def write(archive: Archive, images: list[LoadedImage], content: ContentStore,
          stored: list[Digest] | None = None) -> None:
    """Stream every referenced blob into the content store and settle each image's manifest.
    The blobs that were not there before are appended to ``stored`` (a failed load removes them)."""
    new = stored if stored is not None else []

    def note(digest: Digest | None) -> bool:
        return digest is not None and not content.exists(digest)

    for img in images:
        fresh = note(Digest.parse(img.id))
        config_digest = content.put_bytes(img.config, Digest.parse(img.id))
        if fresh:
            new.append(config_digest)
        for i, member in enumerate(img.layer_members):
            known = img.layer_descs[i]
            with archive.open(member) as f:
                head = f.read(4)
            with archive.open(member) as f:
                try:
                    if known is not None and content.exists(known.digest):
                        info_digest, info_size = known.digest, content.info(known.digest).size
                    else:
                        expected = known.digest if known is not None else _digest_of_blob_name(member)
                        fresh = note(expected)   # unknown without a digest to go by: then it stays
                        info = content.put_file(cast(BinaryIO, f), expected)
                        info_digest, info_size = info.digest, info.size
                        if fresh:
                            new.append(info_digest)
                except InvalidArgument as exc:
                    raise InvalidArgument(f"archive member {member!r}: content does not match its digest "
                                          f"({exc})") from exc
            if known is not None:
                if info_size != known.size:
                    raise InvalidArgument(f"archive member {member!r}: size {info_size} does not match "
                                          f"descriptor size {known.size}")
            else:
                img.layer_descs[i] = Descriptor(_sniff_media_type(head), info_digest, info_size)
        if img.manifest is None:
            img.manifest = docker_manifest(len(img.config), config_digest, img.layers)
        fresh = note(Digest.from_bytes(img.manifest))
        manifest_digest = content.put_bytes(img.manifest)
        if fresh:
            new.append(manifest_digest)


def docker_manifest(config_size: int, config_digest: Digest, layers: list[Descriptor]) -> bytes:
    """A Docker schema2 manifest for an image that arrived without one (docker-archive)."""
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST,
        "config": {"mediaType": mt.DOCKER_CONFIG, "size": config_size, "digest": str(config_digest)},
        "layers": [d.to_json() for d in layers],
    }
    return json.dumps(doc, indent=3).encode()
