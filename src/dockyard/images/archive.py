"""Read-only access to an image archive (tar) with every member name checked before use.

Hostile names (absolute, ``..``, links leading outside the archive) reject the whole archive: a
loader must never be tricked into reading or writing something the archive does not contain.
"""

from __future__ import annotations

import posixpath
import tarfile
from pathlib import Path
from typing import IO

from dockyard.errors import InvalidArgument

_MAX_JSON = 64 << 20  # config/manifest/index members larger than this are not JSON we accept


def _clean(name: str) -> str:
    """Normalise a member name, rejecting anything that could leave the archive root."""
    raw = name
    if not name or name.startswith("/") or "\\" in name or "\x00" in name:
        raise InvalidArgument(f"invalid archive member {raw!r}: unsafe path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise InvalidArgument(f"invalid archive member {raw!r}: path leaves the archive")
    return "/".join(parts)


class Archive:
    """A tar file opened for random access; ``names`` maps cleaned member names to members."""

    def __init__(self, path: Path) -> None:
        try:
            self.tar = tarfile.open(path, "r:*")  # noqa: SIM115 - closed by close()
            members = self.tar.getmembers()
        except tarfile.ReadError as exc:
            raise InvalidArgument("invalid image archive: not a (plain, gzip, bzip2 or xz) tar archive") from exc
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise InvalidArgument(f"invalid image archive: {exc}") from exc
        self.members: dict[str, tarfile.TarInfo] = {}
        for m in members:
            name = _clean(m.name)
            if not name:
                continue
            if m.issym():
                target = m.linkname
                if target.startswith("/"):
                    raise InvalidArgument(f"invalid archive member {m.name!r}: absolute link target")
                joined = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
                if joined == ".." or joined.startswith("../"):
                    raise InvalidArgument(f"invalid archive member {m.name!r}: link leads outside the archive")
            elif m.islnk():
                _clean(m.linkname)
            self.members[name] = m

    def close(self) -> None:
        self.tar.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def has(self, name: str) -> bool:
        try:
            self._resolve(name)
        except InvalidArgument:
            return False
        return True

    def _resolve(self, name: str) -> tarfile.TarInfo:
        """Follow symlinks and hard links inside the archive to a regular file member."""
        current = _clean(name)
        for _ in range(16):
            member = self.members.get(current)
            if member is None:
                raise InvalidArgument(f"archive member {name!r} is missing")
            if member.isreg():
                return member
            if member.issym():
                current = _clean(posixpath.normpath(posixpath.join(posixpath.dirname(current), member.linkname)))
            elif member.islnk():
                current = _clean(member.linkname)
            else:
                raise InvalidArgument(f"archive member {name!r} is not a regular file")
        raise InvalidArgument(f"archive member {name!r}: too many levels of links")

    def size(self, name: str) -> int:
        return self._resolve(name).size

    def open(self, name: str) -> IO[bytes]:
        member = self._resolve(name)
        f = self.tar.extractfile(member)
        if f is None:
            raise InvalidArgument(f"archive member {name!r} is not a regular file")
        return f

    def read(self, name: str) -> bytes:
        member = self._resolve(name)
        if member.size > _MAX_JSON:
            raise InvalidArgument(f"archive member {name!r} is too large ({member.size} bytes)")
        with self.open(name) as f:
            return f.read()
