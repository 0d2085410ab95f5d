"""Pure checks of what clients send: repository names, tags, digests, and manifests (what a manifest
refers to, its subject and its referrer descriptor). No I/O."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from dockyard.errors import InvalidArgument
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest
from dockyard.registry.errors import RegistryError

# distribution-spec: <name> and <reference> grammar.
_NAME_RE = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*")
_TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
MAX_NAME = 255
MAX_MANIFEST = 4 * 1024 * 1024

ACCEPTED = frozenset({mt.OCI_MANIFEST, mt.OCI_INDEX, mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST_LIST})
_NONDISTRIBUTABLE = ("foreign", "nondistributable")


def check_name(name: str) -> str:
    if len(name) > MAX_NAME or not _NAME_RE.fullmatch(name):
        raise RegistryError("NAME_INVALID", detail={"name": name})
    return name


def check_tag(tag: str) -> str:
    if not _TAG_RE.fullmatch(tag):
        raise RegistryError("TAG_INVALID", f"invalid tag {tag!r}", detail={"tag": tag})
    return tag


def parse_digest(text: str) -> Digest:
    try:
        return Digest.parse(text)
    except InvalidArgument as exc:
        raise RegistryError("DIGEST_INVALID", str(exc), detail={"digest": text}) from exc


def parse_reference(text: str) -> Digest | str:
    """A manifest reference: a digest (contains ':') or a tag."""
    return parse_digest(text) if ":" in text else check_tag(text)


@dataclass(frozen=True)
class Manifest:
    """What the registry needs to know about one manifest."""
    media_type: str
    blobs: tuple[Digest, ...] = ()        # config and layers: must be blobs of the repository
    children: tuple[Digest, ...] = ()     # index entries: must be manifests of the repository
    subject: Digest | None = None
    artifact_type: str = ""
    annotations: dict[str, str] = field(default_factory=dict)

    def referrer_descriptor(self, digest: Digest, size: int) -> dict[str, Any]:
        """The descriptor of this manifest in its subject's referrers index."""
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": str(digest), "size": size}
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


def _invalid(message: str) -> RegistryError:
    return RegistryError("MANIFEST_INVALID", message, detail={"reason": message})


def _descriptor(obj: Any, where: str) -> Descriptor:
    try:
        return Descriptor.from_json(obj)
    except InvalidArgument as exc:
        raise _invalid(f"{where}: {exc}") from exc


def _media_type(content_type: str | None, obj: dict[str, Any]) -> str:
    declared = obj.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise _invalid("mediaType must be a string")
    ctype = (content_type or "").split(";")[0].strip()
    if ctype in ACCEPTED:
        if declared and declared != ctype:
            raise _invalid(f"mediaType {declared} does not match Content-Type {ctype}")
        return ctype
    if declared in ACCEPTED:
        return str(declared)
    if declared:
        raise _invalid(f"unsupported manifest media type {declared}")
    if ctype and ctype not in ("application/json", "application/octet-stream"):
        raise _invalid(f"unsupported manifest media type {ctype}")
    if "manifests" in obj:
        return mt.OCI_INDEX
    if "config" in obj:
        return mt.OCI_MANIFEST
    raise _invalid("cannot tell the manifest's media type: no Content-Type and no mediaType")


def parse_manifest(content_type: str | None, data: bytes) -> Manifest:
    """Parse and check a manifest body; MANIFEST_INVALID names what is wrong."""
    if len(data) > MAX_MANIFEST:
        raise RegistryError("SIZE_INVALID", f"manifest larger than {MAX_MANIFEST} bytes", status=413)
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _invalid(f"manifest is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise _invalid("manifest must be a JSON object")
    media_type = _media_type(content_type, obj)
    if obj.get("schemaVersion") != 2:
        raise _invalid(f"schemaVersion must be 2, not {obj.get('schemaVersion')!r}")
    artifact_type = obj.get("artifactType", "")
    if not isinstance(artifact_type, str):
        raise _invalid("artifactType must be a string")
    annotations = obj.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values()):
        raise _invalid("annotations must map strings to strings")
    subject = None
    if obj.get("subject") is not None:
        subject = _descriptor(obj["subject"], "subject").digest
    blobs: list[Digest] = []
    children: list[Digest] = []
    if media_type in mt.INDEXES:
        entries = obj.get("manifests")
        if not isinstance(entries, list):
            raise _invalid("an index needs a manifests list")
        children = [_descriptor(e, f"manifests[{i}]").digest for i, e in enumerate(entries)]
    else:
        config = _descriptor(obj.get("config"), "config")
        layers = obj.get("layers")
        if not isinstance(layers, list):
            raise _invalid("a manifest needs a layers list")
        blobs.append(config.digest)
        for i, raw in enumerate(layers):
            layer = _descriptor(raw, f"layers[{i}]")
            # Foreign / non-distributable layers with URLs live elsewhere (distribution skips them too).
            if isinstance(raw, dict) and raw.get("urls") and any(w in layer.media_type for w in _NONDISTRIBUTABLE):
                continue
            blobs.append(layer.digest)
        if not artifact_type:
            artifact_type = config.media_type
    return Manifest(media_type, tuple(blobs), tuple(children), subject, artifact_type,
                    {str(k): str(v) for k, v in annotations.items()})


def accepts(accept_headers: list[str], media_type: str) -> bool:
    """Content negotiation as distribution does it, but lenient when the client states no preference:
    no Accept header or a wildcard accepts anything; an explicit list must name the stored type."""
    listed: list[str] = []
    for header in accept_headers:
        listed.extend(part.split(";")[0].strip().lower() for part in header.split(","))
    listed = [m for m in listed if m]
    if not listed or "*/*" in listed or "application/*" in listed:
        return True
    return media_type.lower() in listed
