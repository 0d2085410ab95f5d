"""A docker-archive whose layers hold many small files: what layer unpack throughput is measured on.

Written straight to disk (layer tars first, then the archive around them), so 200 MB never sits in
memory. The files' bytes are random, so no engine can gain from compression or deduplication.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

CREATED = "1970-01-01T00:00:00Z"


def _add(tar: tarfile.TarFile, name: str, data: bytes | None, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.mode = mode if data is not None else 0o755
    if data is None:
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    else:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def write_archive(out: Path, tag: str, files: int, total_mb: int, layers: int = 4) -> None:
    """``files`` files of ``total_mb`` MB in all, in ``layers`` layers of 100 files a directory."""
    work = out.parent / (out.name + ".d")
    work.mkdir()
    size = total_mb * 1000 * 1000 // files
    per_layer = files // layers
    diff_ids: list[str] = []
    for n in range(layers):
        path = work / f"layer{n}.tar"
        with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
            _add(tar, f"l{n}/", None)
            for i in range(per_layer):
                if i % 100 == 0:
                    _add(tar, f"l{n}/d{i // 100:04d}/", None)
                _add(tar, f"l{n}/d{i // 100:04d}/f{i:06d}", os.urandom(size))
        diff_ids.append(_sha256(path))
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": CREATED,
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{d}" for d in diff_ids]},
        "history": [{"created": CREATED, "created_by": f"layer {n}"} for n in range(layers)],
    }, sort_keys=True).encode()
    config_hex = hashlib.sha256(config).hexdigest()
    manifest = [{"Config": f"blobs/sha256/{config_hex}", "RepoTags": [tag],
                 "Layers": [f"blobs/sha256/{d}" for d in diff_ids]}]
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, "blobs/", None)
        _add(tar, "blobs/sha256/", None)
        _add(tar, f"blobs/sha256/{config_hex}", config)
        for n, d in enumerate(diff_ids):
            path = work / f"layer{n}.tar"
            info = tar.gettarinfo(str(path), arcname=f"blobs/sha256/{d}")
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            with open(path, "rb") as f:
                tar.addfile(info, f)
            path.unlink()
        _add(tar, "manifest.json", json.dumps(manifest).encode())
    work.rmdir()
