"""Overlayfs snapshotter (modelled on containerd's overlay snapshotter).

Each snapshot owns ``<root>/<id>/{fs,work}`` where ``<id>`` is a short number, so long
``lowerdir=`` lists stay within one page of mount data. Crash ordering:

* create: build ``<root>/new-<rand>/{fs,work}``, then in one transaction insert the row and rename
  the temp dir to ``<id>``; the rename happens before COMMIT, so a committed row always has its dir.
* remove: delete the row (COMMIT), then rename ``<id>`` to ``rm-<id>`` and delete it.

At open, any ``new-*``/``rm-*`` dir and any numeric dir without a row is a leftover and is removed.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from dockyard.errors import (
    AlreadyExists,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    is_no_space,
    no_space,
)
from dockyard.mount import Mount
from dockyard.snapshots.metadata import MetaStore, Row, SnapshotInfo


class Snapshotter:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise Internal(f"cannot create snapshot root {self.root}: {exc.strerror}") from exc
        self.meta = MetaStore(self.root / "metadata.db")
        self._cleanup()

    def close(self) -> None:
        self.meta.close()

    def checkpoint(self) -> None:
        self.meta.checkpoint()

    def _cleanup(self) -> None:
        known = self.meta.all_ids()
        for entry in os.scandir(self.root):
            if not entry.is_dir(follow_symlinks=False):
                continue
            name = entry.name
            stale = name.startswith(("new-", "rm-")) or (name.isdigit() and int(name) not in known)
            if stale:
                shutil.rmtree(entry.path, ignore_errors=True)

    # -- paths and mounts ----------------------------------------------------------------------

    def _dir(self, sid: int) -> Path:
        return self.root / str(sid)

    def _fs(self, sid: int) -> Path:
        return self._dir(sid) / "fs"

    def _require(self, key: str) -> Row:
        row = self.meta.get(key)
        if row is None:
            raise NotFound(f"snapshot {key}: not found")
        return row

    def _mounts(self, row: Row) -> list[Mount]:
        chain = self.meta.chain(row)
        parents = chain[1:]
        if not parents:
            return [Mount("bind", str(self._fs(row.id)), ("rbind", "ro" if row.kind == "view" else "rw"))]
        lower = ":".join(str(self._fs(p.id)) for p in parents)
        if row.kind == "view":
            if len(parents) == 1:
                return [Mount("bind", str(self._fs(parents[0].id)), ("rbind", "ro"))]
            return [Mount("overlay", "overlay", (f"lowerdir={lower}",))]
        if row.kind == "committed":
            # A committed snapshot is read-only content: show it with its parents.
            lower = ":".join(str(self._fs(p.id)) for p in chain)
            if len(chain) == 1:
                return [Mount("bind", str(self._fs(row.id)), ("rbind", "ro"))]
            return [Mount("overlay", "overlay", (f"lowerdir={lower}",))]
        return [Mount("overlay", "overlay", (
            f"lowerdir={lower}",
            f"upperdir={self._fs(row.id)}",
            f"workdir={self._dir(row.id) / 'work'}",
            "index=off",
        ))]

    # -- public API ----------------------------------------------------------------------------

    def prepare(self, key: str, parent: str | None, labels: dict[str, str] | None = None) -> list[Mount]:
        return self._create(key, parent, "active", labels or {})

    def view(self, key: str, parent: str | None, labels: dict[str, str] | None = None) -> list[Mount]:
        return self._create(key, parent, "view", labels or {})

    def _create(self, key: str, parent: str | None, kind: str, labels: dict[str, str]) -> list[Mount]:
        if not key:
            raise InvalidArgument("snapshot key must not be empty")
        tmp = self.root / f"new-{uuid.uuid4().hex[:12]}"
        try:
            (tmp / "fs").mkdir(parents=True, mode=0o755)
            os.chmod(tmp / "fs", 0o755)  # mkdir's mode is masked by the umask
            (tmp / "work").mkdir(mode=0o700)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if is_no_space(exc):
                raise no_space(f"cannot create snapshot {key}", exc) from exc
            raise Internal(f"cannot create snapshot {key}: {exc.strerror}") from exc
        placed: Path | None = None  # set once tmp is renamed into place, until the row is committed
        try:
            with self.meta.transaction() as conn:
                if self.meta.get(key, conn) is not None:
                    raise AlreadyExists(f"snapshot {key}: already exists")
                parent_id: int | None = None
                if parent is not None:
                    prow = self.meta.get(parent, conn)
                    if prow is None:
                        raise NotFound(f"parent snapshot {parent}: not found")
                    if prow.kind != "committed":
                        raise FailedPrecondition(f"parent snapshot {parent} is not committed")
                    parent_id = prow.id
                sid = self.meta.insert(conn, key, parent_id, kind, labels)
                target = self._dir(sid)
                if target.exists():  # a leftover of a rolled-back id
                    shutil.rmtree(target)
                os.rename(tmp, target)
                placed = target
                row = self.meta.get_id(sid, conn)
                assert row is not None
                mounts = self._mounts(row)  # same connection: sees the uncommitted row
            placed = None
        except OSError as exc:
            raise Internal(f"cannot create snapshot {key}: {exc.strerror}") from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            if placed is not None:  # the transaction rolled back: its directory must go too
                shutil.rmtree(placed, ignore_errors=True)
        return mounts

    def commit(self, name: str, key: str, labels: dict[str, str] | None = None) -> None:
        """Turn the active snapshot ``key`` into the committed snapshot ``name`` (same directory)."""
        with self.meta.transaction() as conn:
            row = self.meta.get(key, conn)
            if row is None:
                raise NotFound(f"snapshot {key}: not found")
            if row.kind != "active":
                raise FailedPrecondition(f"snapshot {key} is {row.kind}, only active snapshots can be committed")
            if self.meta.get(name, conn) is not None:
                raise AlreadyExists(f"snapshot {name}: already exists")
            merged = dict(row.labels)
            merged.update(labels or {})
            conn.execute("UPDATE snapshots SET key = ?, kind = 'committed', labels = ? WHERE id = ?",
                         (name, json.dumps(merged, sort_keys=True), row.id))
        # The work dir is only needed while the snapshot is writable.
        shutil.rmtree(self._dir(row.id) / "work", ignore_errors=True)

    def mounts(self, key: str) -> list[Mount]:
        return self._mounts(self._require(key))

    def stat(self, key: str) -> SnapshotInfo:
        row = self._require(key)
        parent = None
        if row.parent_id is not None:
            prow = self.meta.get_id(row.parent_id)
            parent = prow.key if prow else None
        return SnapshotInfo(row.key, parent, row.kind, row.labels, row.created)

    def exists(self, key: str) -> bool:
        return self.meta.get(key) is not None

    def upper_dir(self, key: str) -> Path:
        return self._fs(self._require(key).id)

    def usage(self, key: str) -> tuple[int, int]:
        """(bytes, inodes) of the snapshot's own fs dir; hardlinked inodes count once."""
        top = self.upper_dir(key)
        seen: set[int] = set()
        size = 0
        stack = [str(top)]
        while stack:
            d = stack.pop()
            with os.scandir(d) as it:
                for e in it:
                    st = e.stat(follow_symlinks=False)
                    if st.st_ino in seen:
                        continue
                    seen.add(st.st_ino)
                    size += st.st_size
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
        return size, len(seen)

    def remove(self, key: str) -> None:
        with self.meta.transaction() as conn:
            row = self.meta.get(key, conn)
            if row is None:
                raise NotFound(f"snapshot {key}: not found")
            if self.meta.has_children(conn, row.id):
                raise FailedPrecondition(f"cannot remove snapshot {key}: it has children")
            conn.execute("DELETE FROM snapshots WHERE id = ?", (row.id,))
        src = self._dir(row.id)
        doomed = self.root / f"rm-{row.id}"
        try:
            os.rename(src, doomed)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise Internal(f"cannot remove snapshot {key} dir: {exc.strerror}") from exc
        shutil.rmtree(doomed, ignore_errors=True)

    def walk(self) -> Iterator[SnapshotInfo]:
        return self.meta.walk()

    def fsck(self) -> list[tuple[str, str, Callable[[], None] | None]]:
        """(subject, problem, repair or None): directories without a row (left by a crash between
        the two, or by hand) and rows whose directory is gone."""
        out: list[tuple[str, str, Callable[[], None] | None]] = []
        known = self.meta.all_ids()
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            if entry.is_dir(follow_symlinks=False) and (entry.name.startswith(("new-", "rm-")) or (
                    entry.name.isdigit() and int(entry.name) not in known)):
                out.append((entry.path, "snapshot directory without a record",
                            _remover(entry.path)))
        for info in self.meta.walk():
            row = self.meta.get(info.key)
            if row is not None and not self._fs(row.id).is_dir():
                out.append((info.key, f"its directory {self._dir(row.id)} is missing: whatever uses it "
                            "cannot be mounted (remove the image or container, then pull or build again)",
                            None))
        return out


def _remover(path: str) -> Callable[[], None]:
    return lambda: shutil.rmtree(path)
