"""The build context as the docker CLI sends it: a tar of the directory minus ``.dockerignore``.

Entries are owned by 0:0 and come in a stable order (the daemon's cache looks at content, but a
stable tar keeps uploads comparable). A Dockerfile from outside the context is added under a
generated name, and the Dockerfile and ``.dockerignore`` always travel even when ignored.
"""

from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path
from typing import BinaryIO

from dockyard.dockerignore import Matcher, read_patterns
from dockyard.errors import InvalidArgument


def _ignore_file(root: Path, dockerfile_rel: str | None) -> Path | None:
    if dockerfile_rel:
        specific = root / f"{dockerfile_rel}.dockerignore"  # <Dockerfile>.dockerignore wins
        if specific.is_file():
            return specific
    plain = root / ".dockerignore"
    return plain if plain.is_file() else None


class ContextTar:
    """A planned context upload: the Dockerfile's name in the tar is known before writing."""

    def __init__(self, path: str | os.PathLike[str], dockerfile: str | None) -> None:
        self.root = Path(path).resolve()
        df = Path(dockerfile) if dockerfile else self.root / "Dockerfile"
        if not df.is_absolute():
            # -f is relative to the current directory (docker CLI); a bare name is looked up in the context
            df = (Path.cwd() / df) if (Path.cwd() / df).exists() else self.root / df
        self.dockerfile = df.resolve() if df.exists() else df
        if not self.dockerfile.is_file():
            raise InvalidArgument(f"unable to prepare context: unable to evaluate symlinks in Dockerfile "
                                  f"path: lstat {df}: no such file or directory")
        try:
            self.inside: str | None = self.dockerfile.relative_to(self.root).as_posix()
        except ValueError:
            self.inside = None
        # outside the context: shipped under a private name, as docker does
        self.name = self.inside or f".dockerfile.{os.urandom(10).hex()}"  # secrets costs 4 ms to import

    def write(self, out: BinaryIO) -> None:
        ignore = _ignore_file(self.root, self.inside)
        patterns = read_patterns(ignore.read_text()) if ignore else []
        always = {p for p in (self.inside, ".dockerignore") if p}
        # "w|": a stream, so ``out`` may be a pipe
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
            _add_tree(tf, self.root, Matcher(patterns), always)
            if self.inside is None:
                info = tarfile.TarInfo(self.name)
                info.size, info.mode = self.dockerfile.stat().st_size, 0o644
                with open(self.dockerfile, "rb") as f:
                    tf.addfile(info, f)


def tar_context(path: str | os.PathLike[str], dockerfile: str | None, out: BinaryIO) -> str:
    """Write the context at ``path`` as a tar to ``out``; returns the Dockerfile's name in it."""
    plan = ContextTar(path, dockerfile)
    plan.write(out)
    return plan.name


def _add_tree(tf: tarfile.TarFile, root: Path, matcher: Matcher, always: set[str]) -> None:
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        try:
            entries = sorted(os.scandir(root / rel_dir), key=lambda e: e.name)
        except OSError as exc:
            raise InvalidArgument(f"cannot read the build context at {root / rel_dir}: {exc.strerror}") from exc
        subdirs: list[str] = []
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            is_dir = entry.is_dir(follow_symlinks=False)
            if matcher.excluded(rel) and rel not in always:
                if is_dir and matcher.may_have_exceptions_below(rel):
                    subdirs.append(rel)  # walk it: a "!" pattern may bring something back
                continue
            _add(tf, root, rel)
            if is_dir:
                subdirs.append(rel)
        stack.extend(reversed(subdirs))


def _add(tf: tarfile.TarFile, root: Path, rel: str) -> None:
    """One entry, owned by 0:0 (no passwd lookups, unlike ``gettarinfo``: 40% faster)."""
    full = root / rel
    try:
        st = os.lstat(full)
        info = tarfile.TarInfo(rel)
        info.mode = stat.S_IMODE(st.st_mode)
        info.mtime = int(st.st_mtime)  # a fractional mtime costs a PAX header per file
        if stat.S_ISDIR(st.st_mode):
            info.type = tarfile.DIRTYPE
            tf.addfile(info)
        elif stat.S_ISLNK(st.st_mode):
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink(full)
            tf.addfile(info)
        elif stat.S_ISREG(st.st_mode):
            info.size = st.st_size
            with open(full, "rb") as f:
                tf.addfile(info, f)
        # sockets, fifos and devices are not part of a context
    except OSError as exc:
        raise InvalidArgument(f"cannot read {full}: {exc.strerror}") from exc
