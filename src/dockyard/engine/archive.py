"""``docker cp`` on the engine side: stat, archive and extract a path inside a container.

``ArchiveService`` opens the container's files (the running container's merged rootfs, or its
snapshot mounted for the call, plus its mounts) as a ``ContainerFS`` (engine/ctrfs.py), where every
path is resolved one name at a time under O_PATH descriptors in the container's root; tars are
written by engine/tarwrite.py and extracted by engine/tarextract.py over those descriptors.
docs/cp.md has the rules and the differences from dockerd.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard.diff.streams import decompressed
from dockyard.engine import userns
from dockyard.engine.ctrfs import ContainerFS, Frame, check_writable, go_base, go_clean, preserve_trailing
from dockyard.engine.rootfs import resolve_user
from dockyard.engine.tarextract import TarExtractor
from dockyard.engine.tarwrite import TarWriter
from dockyard.engine.threadstream import stream_writes
from dockyard.engine.types import ContainerRecord
from dockyard.errors import Conflict, DockyardError, Internal, InvalidArgument, NotFound, PermissionDenied
from dockyard.mount import mount_all, unmount_all
from dockyard.runtime.linux import syscalls


@dataclass(frozen=True)
class PathStat:
    name: str
    size: int
    mode: int            # st_mode
    mtime_ns: int
    link_target: str = ""  # for a symlink: where it leads, resolved inside the container


def _stat(fs: ContainerFS, frame: Frame, path: str) -> PathStat:
    st = os.fstat(frame.fd)
    target = ""
    if stat.S_ISLNK(st.st_mode):  # docker: FollowSymlinkInScope, as far as the links exist
        target = "/" + "/".join(fs.resolve_names(frame.path))
    return PathStat(go_base(path), st.st_size, st.st_mode, st.st_mtime_ns, target)


class ArchiveService:
    """``HEAD``/``GET``/``PUT /containers/{id}/archive`` over a container's filesystem."""

    def __init__(self, containers: Any) -> None:  # engine.lifecycle.ContainerService
        self.containers = containers
        self.store = containers.store
        self.snapshots = containers.snapshots
        self.tmp = Path(containers.config.data_root) / "tmp"

    async def stat(self, ref: str, path: str) -> PathStat:
        _need_path(path)
        async with self._opened(ref) as (_, fs):
            return await asyncio.to_thread(self._stat_sync, fs, ref, path, path)

    def _stat_sync(self, fs: ContainerFS, ref: str, path: str, name: str) -> PathStat:
        with _os_errors(ref, path):
            frame, _ = fs.walk(path.split("/"), follow=False)
            try:
                return _stat(fs, frame, name)
            finally:
                os.close(frame.fd)

    async def get(self, ref: str, path: str) -> AsyncIterator[PathStat | bytes]:
        """The path's stat first (errors come before any byte), then its tar in chunks."""
        _need_path(path)
        abs_path = preserve_trailing(go_clean(path), path)
        top = go_base(abs_path)
        top = "" if top == "/" else top  # the root's entries are "/", "/etc", … (moby)
        async with self._opened(ref) as (rec, fs):
            def resolve() -> tuple[Frame, PathStat]:
                with _os_errors(ref, path):
                    frame, _ = fs.walk(abs_path.split("/"), follow=False)
                    try:
                        return frame, _stat(fs, frame, abs_path)
                    except BaseException:
                        os.close(frame.fd)
                        raise

            frame, st = await asyncio.to_thread(resolve)
            try:
                self.containers.emit(rec, "archive-path")
                yield st

                def produce(out: Any) -> None:
                    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
                        TarWriter(fs, tf, userns.to_container(rec.id_range)).run(frame, top)

                chunks = stream_writes(produce)
                try:
                    async for chunk in chunks:
                        yield chunk
                finally:
                    await chunks.aclose()  # the producer thread is done with the fds before they close
            finally:
                os.close(frame.fd)

    async def put(self, ref: str, path: str, body: Path, no_overwrite_dir_non_dir: bool = False,
                  copy_uid_gid: bool = False) -> None:
        """Extract the tar (optionally compressed) in ``body`` into directory ``path``."""
        _need_path(path)
        async with self._opened(ref) as (rec, fs):
            await asyncio.to_thread(self._put_sync, fs, rec, ref, path, body, no_overwrite_dir_non_dir,
                                    copy_uid_gid)
            self.containers.emit(rec, "extract-to-dir")

    def _put_sync(self, fs: ContainerFS, rec: ContainerRecord, ref: str, path: str, body: Path,
                  no_overwrite: bool, copy_uid_gid: bool) -> None:
        with _os_errors(ref, path):
            target, _ = fs.walk(go_clean(path).split("/"))
        try:
            if not stat.S_ISDIR(os.fstat(target.fd).st_mode):
                raise InvalidArgument("extraction point is not a directory")
            check_writable(target)
            owner = _owner(fs, rec.config.user, self.tmp) if copy_uid_gid and rec.config.user else None
            ex = TarExtractor(fs, target, no_overwrite, owner, userns.to_host(rec.id_range))
            try:
                with open(body, "rb") as raw:
                    if os.fstat(raw.fileno()).st_size == 0:
                        return
                    try:
                        with tarfile.open(fileobj=decompressed(raw), mode="r|") as tf:
                            for member in tf:
                                ex.entry(tf, member)
                    except tarfile.TarError as exc:
                        raise InvalidArgument(f"invalid tar archive: {exc}") from exc
                ex.finish()
            except PermissionError as exc:
                raise PermissionDenied(f"{exc.filename or path}: {exc.strerror}") from exc
            except OSError as exc:
                raise Internal(f"cannot extract to {path}: {exc.strerror or exc}") from exc
            finally:
                ex.close()
        finally:
            os.close(target.fd)

    # -- opening a container's filesystem --------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _opened(self, ref: str) -> AsyncIterator[tuple[ContainerRecord, ContainerFS]]:
        rec: ContainerRecord = self.store.get(ref)
        if rec.state.status in ("removing", "dead"):
            raise Conflict(f"container {rec.id} is marked for removal")
        if rec.state.running and (fs := await asyncio.to_thread(self._open_running, rec)) is not None:
            try:
                yield rec, fs
            finally:
                fs.close()
            return
        # stopped: its snapshot is mounted for the call, under the container lock so that start
        # (which mounts the same upper dir) waits until we are done
        async with self.containers.lock(rec.id):
            rec = self.store.get(rec.id)
            if not rec.snapshot_key or not self.snapshots.exists(rec.snapshot_key):
                raise Conflict(f"container {rec.id} has no filesystem")
            self.tmp.mkdir(mode=0o700, parents=True, exist_ok=True)
            mnt = Path(tempfile.mkdtemp(prefix="archive-", dir=self.tmp))
            try:
                fs = await asyncio.to_thread(self._open_stopped, rec, mnt)
                try:
                    yield rec, fs
                finally:
                    fs.close()
            finally:
                with contextlib.suppress(DockyardError):
                    unmount_all(mnt, detach=True)
                with contextlib.suppress(OSError):
                    os.rmdir(mnt)  # never rmtree: a mount that did not go away would lose its files

    def _open_running(self, rec: ContainerRecord) -> ContainerFS | None:
        """The merged rootfs the engine mounted for the running container; None if it is gone."""
        if not rec.bundle:
            return None
        root = Path(rec.bundle) / "rootfs"
        try:
            fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return None
        if os.fstat(fd).st_dev == os.stat(root.parent).st_dev:  # not a mount (any more)
            os.close(fd)
            return None
        return self._with_mounts(rec, fd, running=True)

    def _open_stopped(self, rec: ContainerRecord, mnt: Path) -> ContainerFS:
        try:
            mount_all(self.snapshots.mounts(rec.snapshot_key), mnt)
        except DockyardError as exc:
            raise Internal(f"cannot mount the container's filesystem: {exc}") from exc
        return self._with_mounts(rec, os.open(mnt, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC), running=False)

    def _with_mounts(self, rec: ContainerRecord, root_fd: int, running: bool) -> ContainerFS:
        host = rec.host_config
        fs = ContainerFS(root_fd, host.readonly_rootfs)
        try:
            binds: list[tuple[str, str, bool]] = [
                (src, dest, host.readonly_rootfs) for src, dest in (
                    (rec.resolv_conf_path, "/etc/resolv.conf"), (rec.hostname_path, "/etc/hostname"),
                    (rec.hosts_path, "/etc/hosts")) if src]
            tmpfs: list[tuple[str, bool]] = [(d, "ro" in o.split(",")) for d, o in host.tmpfs.items()]
            for mp in rec.mounts:
                if mp.type == "tmpfs":
                    tmpfs.append((mp.destination, not mp.rw))
                else:
                    binds.append((mp.source, mp.destination, not mp.rw))
            for src, dest, ro in binds:
                with contextlib.suppress(OSError):  # a source not there (yet): the rootfs shows
                    _add_mount(fs, dest, os.open(src, os.O_PATH | os.O_CLOEXEC), ro)
            if running and tmpfs and rec.state.pid:
                self._add_tmpfs(fs, rec.state.pid, tmpfs)
        except BaseException:
            fs.close()
            raise
        return fs

    @staticmethod
    def _add_tmpfs(fs: ContainerFS, pid: int, tmpfs: list[tuple[str, bool]]) -> None:
        """A tmpfs lives only in the container's mount namespace: reach it from the container's
        root, and only if that root is still this container's (the pid may have been reused)."""
        try:
            croot = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            a, b = os.fstat(croot), os.fstat(fs.root.fd)
            if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino):
                return
            for dest, ro in tmpfs:
                with contextlib.suppress(OSError):
                    _add_mount(fs, dest, syscalls.openat2(
                        croot, dest, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC,
                        resolve=syscalls.RESOLVE_IN_ROOT | syscalls.RESOLVE_NO_MAGICLINKS), ro)
        finally:
            os.close(croot)


def _owner(fs: ContainerFS, user: str, tmp_root: Path) -> tuple[int, int]:
    """copyUIDGID: everything goes to the container's user (moby's tarCopyOptions), as the
    container's own passwd and group files (copied out safely) say."""
    tmp = Path(tempfile.mkdtemp(prefix="cp-user-", dir=tmp_root))
    try:
        (tmp / "etc").mkdir()
        for name in ("passwd", "group"):
            (tmp / "etc" / name).write_text(fs.read_text(f"/etc/{name}"))
        found = resolve_user(tmp, user)
        return found.uid, found.gid
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _add_mount(fs: ContainerFS, dest: str, fd: int, ro: bool) -> None:
    try:
        fs.add_mount(dest, fd, ro)
    except BaseException:
        os.close(fd)
        raise


def _need_path(path: str) -> None:
    if not path:
        raise InvalidArgument("bad parameter: path cannot be empty")
    if "\x00" in path:
        raise InvalidArgument("bad parameter: path contains a NUL byte")


@contextlib.contextmanager
def _os_errors(ref: str, path: str) -> Iterator[None]:
    """dockerd's answers: a missing path is NotFound with its text, the rest name the path."""
    try:
        yield
    except FileNotFoundError as exc:
        raise NotFound(f"Could not find the file {path} in container {ref}") from exc
    except OSError as exc:
        why = (exc.strerror or str(exc)).lower()  # Go's lower-case errno texts
        if exc.errno in (errno.ENOTDIR, errno.ELOOP, errno.ENAMETOOLONG):
            raise InvalidArgument(f"lstat {path}: {why}") from exc
        raise Internal(f"{path}: {why}") from exc
