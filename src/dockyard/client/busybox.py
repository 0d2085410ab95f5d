"""Build a docker-archive (``docker save`` format) busybox image from the host's static busybox.

Pure function of the busybox binary: fixed mtimes, owners and ordering make the same binary give
the same bytes, so the same image id.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

from dockyard.errors import FailedPrecondition, NotFound

EPOCH = 0  # fixed mtime for every entry
CREATED = "1970-01-01T00:00:00Z"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
    "nobody:x:65534:65534:nobody:/home:/bin/false\n"
)
GROUP = "root:x:0:\ndaemon:x:1:\nnobody:x:65534:\nnogroup:x:65534:\n"


def applets(busybox: Path) -> list[str]:
    """``busybox --list-full``: paths like ``bin/ls``, ``usr/sbin/chroot``."""
    try:
        out = subprocess.run([str(busybox), "--list-full"], check=True, capture_output=True,
                             timeout=10).stdout.decode()
    except (OSError, subprocess.SubprocessError) as exc:
        raise FailedPrecondition(f"cannot list applets of {busybox}: {exc}") from exc
    return sorted({line.strip().lstrip("/") for line in out.splitlines() if line.strip()})


def _check_static(data: bytes, path: Path) -> None:
    if data[:4] != b"\x7fELF":
        raise FailedPrecondition(f"{path} is not an ELF executable")
    # a dynamically linked ELF carries a PT_INTERP program header naming its loader
    if b"/lib64/ld-linux" in data[:4096] or b"/lib/ld-linux" in data[:4096] or b"ld-musl" in data[:4096]:
        raise FailedPrecondition(
            f"{path} is dynamically linked; install busybox-static (a static busybox is needed)")


def _entry(tar: tarfile.TarFile, name: str, kind: bytes, *, mode: int = 0o755, data: bytes = b"",
           link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = EPOCH
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def layer_tar(busybox_bytes: bytes, applet_paths: list[str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = {"bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "tmp", "root", "home", "var",
                "proc", "sys", "dev"}
        for path in applet_paths:
            parent = path.rsplit("/", 1)[0] if "/" in path else ""
            while parent:
                dirs.add(parent)
                parent = parent.rsplit("/", 1)[0] if "/" in parent else ""
        for d in sorted(dirs):
            mode = 0o1777 if d == "tmp" else (0o700 if d == "root" else 0o755)
            _entry(tar, d + "/", tarfile.DIRTYPE, mode=mode)
        _entry(tar, "bin/busybox", tarfile.REGTYPE, data=busybox_bytes)
        _entry(tar, "etc/group", tarfile.REGTYPE, mode=0o644, data=GROUP.encode())
        _entry(tar, "etc/passwd", tarfile.REGTYPE, mode=0o644, data=PASSWD.encode())
        for path in applet_paths:
            if path == "bin/busybox":
                continue
            depth = path.count("/")
            target = "busybox" if path.startswith("bin/") and depth == 1 else "../" * depth + "bin/busybox"
            _entry(tar, path, tarfile.SYMTYPE, mode=0o777, link=target)
    return buf.getvalue()


def build_archive(busybox: Path = Path("/bin/busybox"), tag: str = "busybox:latest",
                  arch: str = "amd64") -> bytes:
    """The docker-archive tar bytes (manifest.json, config, one layer)."""
    if not busybox.is_file():
        raise NotFound(f"{busybox} not found: install Debian's busybox-static")
    data = busybox.read_bytes()
    _check_static(data, busybox)
    layer = layer_tar(data, applets(busybox))
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = {
        "architecture": arch,
        "config": {"Cmd": ["sh"], "Env": [PATH_ENV]},
        "created": CREATED,
        "history": [{"created": CREATED, "created_by": "dockyard bootstrap busybox: ADD busybox rootfs"},
                    {"created": CREATED, "created_by": 'CMD ["sh"]', "empty_layer": True}],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_hex = hashlib.sha256(config_bytes).hexdigest()
    layer_hex = diff_id.split(":", 1)[1]
    if ":" not in tag.rsplit("/", 1)[-1]:
        tag += ":latest"
    manifest = [{"Config": f"blobs/sha256/{config_hex}", "RepoTags": [tag],
                 "Layers": [f"blobs/sha256/{layer_hex}"]}]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _entry(tar, "blobs/", tarfile.DIRTYPE)
        _entry(tar, "blobs/sha256/", tarfile.DIRTYPE)
        for hexd, blob in sorted([(config_hex, config_bytes), (layer_hex, layer)]):
            _entry(tar, f"blobs/sha256/{hexd}", tarfile.REGTYPE, mode=0o644, data=blob)
        _entry(tar, "manifest.json", tarfile.REGTYPE, mode=0o644,
               data=json.dumps(manifest, separators=(",", ":")).encode())
        repo, _, tg = tag.rpartition(":")
        _entry(tar, "repositories", tarfile.REGTYPE, mode=0o644,
               data=json.dumps({repo: {tg: layer_hex}}, separators=(",", ":")).encode())
    return out.getvalue()
