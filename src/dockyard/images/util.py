"""Small pure helpers of the image service: chain IDs, names, times, Docker's glob matching."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dockyard.errors import InvalidArgument
from dockyard.oci import reference
from dockyard.oci.digest import Digest

_GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
           "armv6l": "arm", "i386": "386", "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x",
           "riscv64": "riscv64"}


def host_arch() -> str:
    """The host's architecture in GOARCH spelling (what image configs carry)."""
    machine = platform.machine()
    return _GOARCH.get(machine, machine)


def chain_ids(diff_ids: list[str]) -> list[str]:
    """OCI image-spec chain IDs: ChainID(L0)=DiffID(L0), ChainID(Ln)=sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    out: list[str] = []
    for diff_id in diff_ids:
        if not out:
            out.append(diff_id)
        else:
            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {diff_id}".encode()).hexdigest())
    return out


def short_id(image_id: str) -> str:
    """Docker's TruncateID: drop the algorithm, keep 12 hex characters."""
    return image_id.partition(":")[2][:12] if ":" in image_id else image_id[:12]


def normalise_tag(name: str) -> str:
    """``busybox`` → ``docker.io/library/busybox:latest``; digests are refused for tags."""
    ref = reference.parse(name)
    if ref.digest is not None:
        raise InvalidArgument(f"refusing to create a tag with a digest reference: {name}")
    return str(ref)


def familiar(name: str) -> str:
    """Stored normalised name → ``busybox:latest`` as Docker prints it."""
    try:
        return reference.parse(name, default_tag=False).familiar()
    except InvalidArgument:
        return name


def parse_created(text: Any) -> int:
    """RFC 3339 (nanoseconds allowed) → unix seconds; 0 when absent or unparsable (Docker's zero time)."""
    if not isinstance(text, str) or not text:
        return 0
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", text.strip())
    if not m:
        return 0
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    try:
        dt = datetime.fromisoformat(m.group(1) + tz)
    except ValueError:
        return 0
    return int(dt.timestamp())


def rfc3339_now() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond:06d}000Z"


def glob_match(pattern: str, text: str) -> bool:
    """Go's ``path.Match``: ``*`` and ``?`` never cross ``/``; ``[...]`` classes; ``\\`` escapes."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                return False
            body = pattern[i + 1:end]
            if body.startswith("^"):
                body = "^" + body[1:].replace("\\", "\\\\")
            else:
                body = body.replace("\\", "\\\\")
            out.append(f"[{body}]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    try:
        return re.fullmatch("".join(out), text) is not None
    except re.error:
        return False


def load_json(data: bytes, what: str) -> dict[str, Any]:
    """Parse a JSON object or raise InvalidArgument naming ``what``."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"{what}: malformed JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise InvalidArgument(f"{what}: expected a JSON object")
    return obj


def config_diff_ids(config: dict[str, Any], what: str = "image config") -> list[str]:
    """``rootfs.diff_ids`` validated as digests."""
    rootfs = config.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
        raise InvalidArgument(f"{what}: rootfs.type must be \"layers\"")
    diff_ids = rootfs.get("diff_ids") or []
    if not isinstance(diff_ids, list):
        raise InvalidArgument(f"{what}: rootfs.diff_ids must be a list")
    out = []
    for d in diff_ids:
        try:
            out.append(str(Digest.parse(str(d))))
        except InvalidArgument as exc:
            raise InvalidArgument(f"{what}: bad diff id: {exc}") from exc
    return out


def content_size(top: Path) -> int:
    """Bytes of the files under ``top`` (directories not counted, hard links once), as Docker sizes layers."""
    seen: set[int] = set()
    size = 0
    stack = [str(top)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                    continue
                st = e.stat(follow_symlinks=False)
                if st.st_ino not in seen:
                    seen.add(st.st_ino)
                    size += st.st_size
    return size
