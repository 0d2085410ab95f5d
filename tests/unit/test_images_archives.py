"""Builders of test images: layer tars, configs, docker-archive (old and new) and OCI layout tars.

Everything is made from bytes written here; nothing is pulled. Imported by the image tests.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_bytes(entries: list[tuple[str, bytes | None]], *, raw_names: bool = False) -> bytes:
    """A tar of (name, content) entries; content None makes a directory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass
class Layer:
    tar: bytes                  # uncompressed layer tar
    gzip: bool = False

    @property
    def diff_id(self) -> str:
        return sha(self.tar)

    @property
    def blob(self) -> bytes:
        return gzip.compress(self.tar, mtime=0) if self.gzip else self.tar

    @property
    def media_type(self) -> str:
        return OCI_LAYER_GZIP if self.gzip else OCI_LAYER


def layer(files: dict[str, bytes], *, gz: bool = False) -> Layer:
    entries: list[tuple[str, bytes | None]] = []
    dirs: set[str] = set()
    for name in sorted(files):
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i]) + "/"
            if d not in dirs:
                dirs.add(d)
                entries.append((d, None))
        entries.append((name, files[name]))
    return Layer(tar_bytes(entries), gz)


@dataclass
class Image:
    layers: list[Layer]
    tags: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    created: str = "2024-01-02T03:04:05.123456789Z"
    diff_ids: list[str] | None = None   # override to make a lying config

    @property
    def config(self) -> bytes:
        doc = {
            "architecture": "amd64", "os": "linux", "created": self.created,
            "config": {"Cmd": ["/bin/sh"], "Labels": self.labels},
            "rootfs": {"type": "layers",
                       "diff_ids": self.diff_ids if self.diff_ids is not None else [x.diff_id for x in self.layers]},
            "history": [{"created": self.created, "created_by": f"ADD layer{i}"} for i in range(len(self.layers))]
            + [{"created": self.created, "created_by": "CMD [\"/bin/sh\"]", "empty_layer": True}],
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @property
    def id(self) -> str:
        return sha(self.config)

    @property
    def manifest(self) -> bytes:
        doc = {
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": self.id, "size": len(self.config)},
            "layers": [{"mediaType": x.media_type, "digest": sha(x.blob), "size": len(x.blob)} for x in self.layers],
        }
        return json.dumps(doc, separators=(",", ":")).encode()


def _tar(members: dict[str, bytes], extra: list[tarfile.TarInfo] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
        for info in extra or []:
            tar.addfile(info)
    return buf.getvalue()


def docker_archive_old(images: list[Image], extra: list[tarfile.TarInfo] | None = None) -> bytes:
    """Pre-25 ``docker save``: ``<id>.json`` configs, ``<v1id>/layer.tar`` layers, manifest.json."""
    members: dict[str, bytes] = {}
    manifest = []
    for img in images:
        cfg_name = img.id.split(":")[1] + ".json"
        members[cfg_name] = img.config
        paths = []
        for i, lay in enumerate(img.layers):
            v1 = hashlib.sha256(f"{img.id}{i}".encode()).hexdigest()
            members[f"{v1}/layer.tar"] = lay.blob
            members[f"{v1}/VERSION"] = b"1.0"
            paths.append(f"{v1}/layer.tar")
        manifest.append({"Config": cfg_name, "RepoTags": img.tags or None, "Layers": paths})
    members["manifest.json"] = json.dumps(manifest).encode()
    return _tar(members, extra)


def docker_archive_blobs(images: list[Image]) -> bytes:
    """manifest.json with ``blobs/sha256/<hex>`` paths but no OCI index (a trimmed Docker 25 save)."""
    members: dict[str, bytes] = {}
    manifest = []
    for img in images:
        members["blobs/sha256/" + img.id.split(":")[1]] = img.config
        paths = []
        for lay in img.layers:
            p = "blobs/sha256/" + sha(lay.blob).split(":")[1]
            members[p] = lay.blob
            paths.append(p)
        manifest.append({"Config": "blobs/sha256/" + img.id.split(":")[1], "RepoTags": img.tags, "Layers": paths})
    members["manifest.json"] = json.dumps(manifest).encode()
    return _tar(members)


def oci_layout(images: list[Image], *, nested: bool = False, ref_name_only: bool = False) -> bytes:
    members: dict[str, bytes] = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}'}
    entries = []
    for img in images:
        members["blobs/sha256/" + img.id.split(":")[1]] = img.config
        for lay in img.layers:
            members["blobs/sha256/" + sha(lay.blob).split(":")[1]] = lay.blob
        man = img.manifest
        members["blobs/sha256/" + sha(man).split(":")[1]] = man
        desc: dict[str, object] = {"mediaType": OCI_MANIFEST, "digest": sha(man), "size": len(man)}
        if nested:
            inner = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
                {**desc, "platform": {"architecture": "s390x-not-here", "os": "linux"},
                 "digest": "sha256:" + "0" * 64},
                {**desc, "platform": {"architecture": _host_arch(), "os": "linux"}},
            ]}).encode()
            members["blobs/sha256/" + sha(inner).split(":")[1]] = inner
            desc = {"mediaType": OCI_INDEX, "digest": sha(inner), "size": len(inner)}
        for tag in img.tags or [None]:
            entry = dict(desc)
            if tag is not None:
                entry["annotations"] = ({"org.opencontainers.image.ref.name": tag} if ref_name_only else
                                        {"io.containerd.image.name": tag,
                                         "org.opencontainers.image.ref.name": tag.rsplit(":", 1)[-1]})
            entries.append(entry)
    members["index.json"] = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
    return _tar(members)


def _host_arch() -> str:
    import platform
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(m, m)


def read_tar(data: bytes) -> dict[str, bytes]:
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar.getmembers():
            if m.isreg():
                f = tar.extractfile(m)
                assert f is not None
                out[m.name] = f.read()
    return out
