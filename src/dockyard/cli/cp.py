"""``dockyard cp``: ``docker cp``'s path rules (docker/cli cp.go and moby's archive CopyInfo /
PrepareArchiveCopy), plus several sources and a glob in a container path's last component.

``cp [OPTIONS] CONTAINER:SRC_PATH... DEST_PATH|-`` and ``cp [OPTIONS] SRC_PATH...|- CONTAINER:DEST_PATH``:
with more than one source, or a glob, the destination must be an existing directory. A glob is
served by one archive of its parent directory (``parent/.``) whose top-level members are filtered
by the pattern (``fnmatch``, a leading dot matched only explicitly, as in a shell); a path that
exists literally is never taken for a pattern.

Archives from the daemon are extracted below the destination without ever following a symlink
there (cli/cpextract.py).
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import os
import posixpath
import stat
import sys
import tarfile
import threading
from collections.abc import Callable
from typing import Any, BinaryIO, cast

from dockyard import errors
from dockyard.cli.cpextract import Extractor, Rename

GO_DIR, GO_SYMLINK, GO_DEVICE, GO_IRREGULAR = 1 << 31, 1 << 27, 1 << 26, 1 << 19
_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def add_cp_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--archive", action="store_true", help="Archive mode (copy all uid/gid information)")
    p.add_argument("-L", "--follow-link", action="store_true", help="Always follow symbol link in SRC_PATH")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="Suppress progress output during copy (automatic when no terminal is attached)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="SRC_PATH... DEST_PATH (CONTAINER:PATH or local, '-')")
    p.set_defaults(fn=cmd_cp)


# -- Go's path helpers (filepath on a POSIX client) ---------------------------------------------

def clean(path: str) -> str:
    out = posixpath.normpath(path) if path else "."
    return "/" + out.lstrip("/") if out.startswith("//") else out


def base(path: str) -> str:
    stripped = path.rstrip("/")
    return (stripped.rsplit("/", 1)[-1] if stripped else "/") if path else "."


def current_dir(path: str) -> bool:
    return base(path) == "."


def preserve(cleaned: str, original: str) -> str:
    """moby's PreserveTrailingDotOrSeparator."""
    if not current_dir(cleaned) and current_dir(original):
        cleaned = (cleaned if cleaned.endswith("/") else cleaned + "/") + "."
    if not cleaned.endswith("/") and original.endswith("/"):
        cleaned += "/"
    return cleaned


def split_dir_entry(path: str) -> tuple[str, str]:
    """moby's SplitPathDirEntry: (directory, entry), a trailing "." kept as the entry."""
    cleaned = clean(path)
    if current_dir(path) and cleaned != ".":
        cleaned += "/."
    return clean(posixpath.dirname(cleaned) or "."), base(cleaned)


def split_cp_arg(arg: str) -> tuple[str, str]:
    """``CONTAINER:PATH`` or a local path; a local path with ':' must start with '/' or '.'."""
    if arg.startswith("/"):
        return "", arg
    ctr, sep, path = arg.partition(":")
    if not sep or ctr.startswith("."):
        return "", arg
    return ctr, path


def rebase_name(path: str, resolved: str) -> tuple[str, str]:
    """moby's GetRebaseName: the resolved path with the trailing "/" or "/." of ``path``, and the
    name the archive's top entry must take when link resolution changed it."""
    if current_dir(path) and not current_dir(resolved):
        resolved += "/."
    if path.endswith("/") and not resolved.endswith("/"):
        resolved += "/"
    return resolved, (base(path) if base(path) != base(resolved) else "")


def prepare_copy(src_base: str, src_is_dir: bool, dst: str, dst_exists: bool, dst_is_dir: bool
                 ) -> tuple[str, str | None]:
    """moby's PrepareArchiveCopy: (directory to extract into, new name of the top entry or None)."""
    dst_dir, dst_base = split_dir_entry(dst)
    if dst_exists and dst_is_dir:
        return dst, None
    if dst_exists and src_is_dir:
        raise errors.InvalidArgument("cannot copy directory")
    if not dst_exists and not src_is_dir and (dst.endswith("/") or current_dir(dst)):
        raise errors.InvalidArgument("no such directory")
    return dst_dir, dst_base


def rebase(name: str, old: str, new: str) -> str:
    """moby's RebaseArchiveEntries on one name ("/" as the old base means the root: "")."""
    old = "" if old == "/" else old
    if old == "" or name == old or name.startswith(old + "/"):
        return new + name[len(old):]
    return name


def human_size(n: float) -> str:
    """go-units HumanSizeWithPrecision(n, 3)."""
    i = 0
    while n >= 1000 and i < len(_UNITS) - 1:
        n, i = n / 1000, i + 1
    return f"{n:.3g}{_UNITS[i]}"


def summary(content: int, transferred: int, dest: str) -> str:
    if content != transferred:
        return f"Successfully copied {human_size(content)} (transferred {human_size(transferred)}) to {dest}\n"
    return f"Successfully copied {human_size(content)} to {dest}\n"


# -- local side ---------------------------------------------------------------------------------

def local_dest(path: str) -> tuple[str, bool, bool]:
    """moby's CopyInfoDestinationPath: (path with links followed, exists, is a directory)."""
    original = path
    for n in range(12):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            break
        if not stat.S_ISLNK(st.st_mode):
            return path, True, stat.S_ISDIR(st.st_mode)
        if n > 10:
            raise errors.InvalidArgument(f"too many symlinks in {original}")
        target = os.readlink(path)
        path = target if target.startswith("/") else clean(split_dir_entry(path)[0] + "/" + target)
    parent = split_dir_entry(path)[0]
    if not stat.S_ISDIR(os.stat(parent).st_mode):
        raise errors.InvalidArgument("not a directory")
    return path, False, False


def validate_output(path: str) -> None:
    parent = posixpath.dirname(clean(path))
    if parent and parent != "." and not os.path.exists(parent):
        raise errors.InvalidArgument(f'invalid output path: directory "{parent}" does not exist')
    with contextlib.suppress(FileNotFoundError):
        mode = os.stat(path).st_mode
        if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
            raise errors.InvalidArgument(f'invalid output path: "{path}" must be a directory or a regular file')


def host_source(path: str, follow: bool) -> tuple[str, str]:
    """moby's ResolveHostSourcePath: (path to archive, rebase name)."""
    if follow:
        return rebase_name(path, os.path.realpath(path, strict=True))
    cut = path.rfind("/") + 1  # Go's filepath.Split: the directory keeps its slash
    resolved = posixpath.join(os.path.realpath(path[:cut] or ".", strict=True), path[cut:])
    rename = base(path) if path.endswith("/") and base(path) != base(resolved) else ""
    return resolved, rename


def content_size(path: str) -> int:
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        return st.st_size if stat.S_ISREG(st.st_mode) else 0
    total = 0
    for top, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                fst = os.lstat(os.path.join(top, f))
                total += fst.st_size if stat.S_ISREG(fst.st_mode) else 0
    return total


class _Counting:
    """A reader that counts bytes: over a daemon response body, or a local pipe."""

    def __init__(self, read1: Callable[[int], bytes]) -> None:
        self.read1, self.count = read1, 0

    def read(self, n: int = -1) -> bytes:
        want = n if n >= 0 else 1 << 62
        parts: list[bytes] = []
        got = 0
        while got < want:
            data = self.read1(min(want - got, 1 << 20))
            if not data:
                break
            parts.append(data)
            got += len(data)
        self.count += got
        return b"".join(parts)


# -- copies -----------------------------------------------------------------------------------

def _say(quiet: bool, text: str) -> None:
    if not quiet:
        sys.stderr.write(text)


def copy_from(c: Any, ctr: str, src: str, dst: str, follow: bool, quiet: bool) -> None:
    if dst != "-":
        dst = preserve(os.path.abspath(dst), dst)
        validate_output(dst)
    renamed = ""
    if follow:
        with contextlib.suppress(errors.DockyardError):
            st = c.stat_path(ctr, src)
            if st.get("mode", 0) & GO_SYMLINK:
                target = st.get("linkTarget", "")
                if not target.startswith("/"):
                    target = clean(split_dir_entry(src)[0] + "/" + target)
                src, renamed = rebase_name(src, target)
    st, resp = c.get_archive(ctr, src)
    body = _Counting(resp.body.read1)
    is_dir = bool(st.get("mode", 0) & GO_DIR)
    try:
        if dst == "-":
            out = sys.stdout.buffer
            while chunk := body.read(1 << 20):
                out.write(chunk)
            out.flush()
            return
        src_base = split_dir_entry(src)[1]
        path, exists, dst_is_dir = local_dest(dst)
        into, new = prepare_copy(renamed or src_base, is_dir, path, exists, dst_is_dir)
        top = new if new is not None else (renamed or src_base)
        old = "" if src_base == "/" else src_base
        ex = Extractor(into, lambda name: rebase(name, old, top))
        try:
            ex.run(cast(BinaryIO, body))
        finally:
            ex.close()
    finally:
        resp.close()
    _say(quiet, summary(body.count if is_dir else int(st.get("size", 0)), body.count, dst))


def _glob_parts(path: str) -> tuple[str, str] | None:
    """(parent, pattern) when the last component of a container path is a glob."""
    parent, pattern = split_dir_entry(path)
    return (parent, pattern) if any(ch in pattern for ch in "*?[") else None


def _matches(pattern: str) -> Rename:
    def rename(name: str) -> str | None:
        rel = name[2:] if name.startswith("./") else None
        if not rel:
            return None
        first = rel.split("/", 1)[0]
        if first.startswith(".") and not pattern.startswith("."):
            return None  # as a shell: hidden names only for an explicit dot
        return rel if fnmatch.fnmatchcase(first, pattern) else None
    return rename


def copy_glob(c: Any, ctr: str, parent: str, pattern: str, dst: str, quiet: bool) -> None:
    """One archive of ``parent/.``; only the members under a matching top-level name are kept."""
    rename = _matches(pattern)
    _, resp = c.get_archive(ctr, parent.rstrip("/") + "/.")
    body = _Counting(resp.body.read1)
    found = [0, 0]  # members kept, bytes of their files

    def seen(m: tarfile.TarInfo) -> None:
        if rename(m.name) is not None:
            found[0] += 1
            found[1] += m.size if m.isreg() else 0

    try:
        if dst == "-":
            with tarfile.open(fileobj=cast(BinaryIO, body), mode="r|") as tf, \
                    tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.PAX_FORMAT) as out:
                for m in tf:
                    seen(m)
                    name = rename(m.name)
                    if name is not None:
                        m.name = name
                        if m.islnk():
                            m.linkname = rename(m.linkname) or m.linkname
                        out.addfile(m, tf.extractfile(m) if m.isreg() else None)
        else:
            ex = Extractor(dst, rename)
            try:
                ex.run(cast(BinaryIO, body), seen)
            finally:
                ex.close()
    finally:
        resp.close()
    matched, size = found
    if not matched:
        raise errors.NotFound(f"Could not find the file {parent.rstrip('/')}/{pattern} in container {ctr}")
    if dst != "-":
        _say(quiet, summary(size, body.count, dst))


def copy_to(c: Any, src: str, ctr: str, dst: str, copy_uid_gid: bool, follow: bool, quiet: bool) -> None:
    if src != "-":
        src = preserve(os.path.abspath(src), src)
    dst_path, exists, is_dir = dst, False, False
    with contextlib.suppress(errors.DockyardError):
        st = c.stat_path(ctr, dst)
        if st.get("mode", 0) & GO_SYMLINK:
            target = st.get("linkTarget", "")
            dst_path = target if target.startswith("/") else clean(split_dir_entry(dst)[0] + "/" + target)
            st = c.stat_path(ctr, dst_path)
        mode = st.get("mode", 0)
        if mode & (GO_DEVICE | GO_IRREGULAR):
            raise errors.InvalidArgument(f'destination "{ctr}:{dst}" must be a directory or a regular file: '
                                         f'got {"a device" if mode & GO_DEVICE else "an irregular file"}')
        exists, is_dir = True, bool(mode & GO_DIR)
    if src == "-":
        if not is_dir:
            raise errors.InvalidArgument(f'destination "{ctr}:{dst}" must be a directory')
        c.put_archive(ctr, dst_path, sys.stdin.buffer, copy_uid_gid=copy_uid_gid)
        return
    resolved, renamed = host_source(src, follow)
    src_is_dir = stat.S_ISDIR(os.lstat(resolved).st_mode)
    src_base = split_dir_entry(resolved)[1]
    into, new = prepare_copy(renamed or src_base, src_is_dir, dst_path, exists, is_dir)
    sent = _send(c, ctr, into, resolved, new if new is not None else (renamed or src_base), copy_uid_gid)
    _say(quiet, summary(content_size(resolved), sent, f"{ctr}:{dst_path}"))


def _plain(ti: tarfile.TarInfo) -> tarfile.TarInfo:
    ti.mtime, ti.uname, ti.gname = int(ti.mtime), "", ""  # as moby's tarballer
    return ti


def _send(c: Any, ctr: str, into: str, path: str, arcname: str, copy_uid_gid: bool) -> int:
    """Stream a tar of ``path`` (named ``arcname``) to the daemon through a pipe; bytes sent."""
    r, w = os.pipe()
    failed: list[BaseException] = []

    def produce() -> None:
        try:
            with os.fdopen(w, "wb") as out, tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
                tf.add(path, arcname=arcname, filter=_plain)
        except BrokenPipeError:
            pass  # the daemon answered before reading it all: its error is the one to show
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    with os.fdopen(r, "rb") as src:
        body = _Counting(src.read1)
        try:
            c.put_archive(ctr, into, body, copy_uid_gid=copy_uid_gid)
        except errors.DockyardError:
            if not failed:
                raise
        finally:
            src.close()  # unblocks the producer if the daemon stopped reading
            thread.join()
    if failed:
        raise failed[0]
    return body.count


def cmd_cp(c: Any, a: argparse.Namespace) -> int:
    if len(a.paths) < 2:
        raise errors.InvalidArgument('"cp" requires at least 2 arguments (SRC_PATH... DEST_PATH)')
    *sources, dest = a.paths
    if any(s == "" for s in sources):
        raise errors.InvalidArgument("source can not be empty")
    if dest == "":
        raise errors.InvalidArgument("destination can not be empty")
    quiet = bool(a.quiet) or not sys.stdout.isatty()
    dctr, dpath = split_cp_arg(dest)
    srcs = [split_cp_arg(s) for s in sources]
    many = len(srcs) > 1
    try:
        if dctr:
            if any(ctr for ctr, _ in srcs):
                raise errors.InvalidArgument("copying between containers is not supported")
            if many and ("-" in sources or not _is_dir(c, dctr, dpath)):
                raise errors.InvalidArgument(f'destination "{dest}" must be a directory')
            for _, src in srcs:
                copy_to(c, src, dctr, dpath, a.archive, a.follow_link, quiet)
            return 0
        if not all(ctr for ctr, _ in srcs):
            raise errors.InvalidArgument("must specify at least one container source" if not many else
                                         "every source must be a container path when the destination is local")
        globs = [_glob_of(c, ctr, p) for ctr, p in srcs]
        if dest == "-" and many:
            raise errors.InvalidArgument('"-" as the destination takes a single source')
        if (many or any(globs)) and dest != "-" and not os.path.isdir(dest):
            raise errors.InvalidArgument(f'destination "{dest}" must be a directory')
        for (ctr, src), glob in zip(srcs, globs, strict=True):
            if glob is not None:
                copy_glob(c, ctr, glob[0], glob[1], dest, quiet)
            else:
                copy_from(c, ctr, src, dest, a.follow_link, quiet)
        return 0
    except OSError as exc:
        what = f"{exc.filename}: " if exc.filename else ""
        raise errors.InvalidArgument(f"{what}{(exc.strerror or str(exc)).lower()}") from exc


def _stat_or_none(c: Any, ctr: str, path: str) -> dict[str, Any] | None:
    try:
        return dict(c.stat_path(ctr, path))
    except errors.NotFound:
        return None


def _is_dir(c: Any, ctr: str, path: str) -> bool:
    return bool((_stat_or_none(c, ctr, path) or {}).get("mode", 0) & GO_DIR)


def _glob_of(c: Any, ctr: str, path: str) -> tuple[str, str] | None:
    """(parent, pattern) for a glob; a path that exists literally is never taken for one."""
    parts = _glob_parts(path)
    return parts if parts is not None and _stat_or_none(c, ctr, path) is None else None
