"""Overlayfs snapshotter (modelled on containerd's overlay snapshotter).

Each snapshot owns ``<root>/<id>/{fs,work}`` where ``<id>`` is a short number, so long
``lowerdir=`` lists stay within one page of mount data. Crash ordering:

* create: build ``<root>/new-<rand>/{fs,work}``, then in one transaction insert the row and rename
  the temp dir to ``<id>``; the rename happens before COMMIT, so a committed row always has its dir.
  ``prepare_on_layer`` does this for two snapshots (a filled committed layer and an active one on
  it) in one transaction.
* remove: delete the row (COMMIT), then rename ``<id>`` to ``rm-<id>`` and delete it; ``remove_all``
  deletes several rows in one transaction, then their directories.

At open, any ``new-*``/``rm-*`` dir and any numeric dir without a row is a leftover and is removed.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
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
        tmp = self._make_tmp(key, work=True)
        placed: list[Path] = []  # directories renamed into place, until their rows are committed
        try:
            with self.meta.transaction() as conn:
                self._absent(conn, key)
                sid = self._insert(conn, tmp, key, self._parent_id(conn, parent), kind, labels, placed)
                row = self.meta.get_id(sid, conn)
                assert row is not None
                mounts = self._mounts(row)  # same connection: sees the uncommitted row
            placed.clear()
        except OSError as exc:
            raise Internal(f"cannot create snapshot {key}: {exc.strerror}") from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            for target in placed:  # the transaction rolled back: its directory must go too
                shutil.rmtree(target, ignore_errors=True)
        return mounts

    def prepare_on_layer(self, key: str, layer: str, parent: str | None,
                         fill: Callable[[Path, list[Path]], None]) -> list[Mount]:
        """The committed snapshot ``layer`` on ``parent`` and the active snapshot ``key`` on it, in
        one transaction: what ``prepare(tmp, parent)``, filling its upper dir, ``commit(layer,
        tmp)`` and ``prepare(key, layer)`` leave, with one commit of the metadata instead of
        three. ``fill(fs_dir, lower_dirs)`` writes the layer's files first (``lower_dirs``: the
        parent's layers, topmost first, as an active snapshot's ``lowerdir=`` lists them)."""
        if not key or not layer:
            raise InvalidArgument("snapshot key must not be empty")
        lowers_of: int | None = None
        lowers: list[Path] = []
        if parent is not None:
            prow = self._require(parent)
            lowers_of = prow.id
            lowers = [self._fs(r.id) for r in self.meta.chain(prow)]
        tmps: list[Path] = []
        placed: list[Path] = []
        try:
            layer_tmp = self._make_tmp(layer, work=False)   # committed: read-only, no work dir
            tmps.append(layer_tmp)
            key_tmp = self._make_tmp(key, work=True)
            tmps.append(key_tmp)
            fill(layer_tmp / "fs", lowers)
            with self.meta.transaction() as conn:
                self._absent(conn, key)
                self._absent(conn, layer)
                parent_id = self._parent_id(conn, parent)
                if parent_id != lowers_of:  # replaced since the layer was filled on top of it
                    raise NotFound(f"parent snapshot {parent}: not found")
                layer_id = self._insert(conn, layer_tmp, layer, parent_id, "committed", {}, placed)
                sid = self._insert(conn, key_tmp, key, layer_id, "active", {}, placed)
                row = self.meta.get_id(sid, conn)
                assert row is not None
                mounts = self._mounts(row)
            placed.clear()
        except OSError as exc:
            raise Internal(f"cannot create snapshot {key}: {exc.strerror}") from exc
        finally:
            for path in tmps + placed:  # tmps renamed into place are gone; placed: rolled back
                shutil.rmtree(path, ignore_errors=True)
        return mounts

    def _make_tmp(self, key: str, work: bool) -> Path:
        """``<root>/new-<rand>/fs`` (and ``work``): a snapshot's directory before it has a row."""
        tmp = self.root / f"new-{uuid.uuid4().hex[:12]}"
        try:
            (tmp / "fs").mkdir(parents=True, mode=0o755)
            os.chmod(tmp / "fs", 0o755)  # mkdir's mode is masked by the umask
            if work:
                (tmp / "work").mkdir(mode=0o700)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if is_no_space(exc):
                raise no_space(f"cannot create snapshot {key}", exc) from exc
            raise Internal(f"cannot create snapshot {key}: {exc.strerror}") from exc
        return tmp

    def _parent_id(self, conn: sqlite3.Connection, parent: str | None) -> int | None:
        if parent is None:
            return None
        prow = self.meta.get(parent, conn)
        if prow is None:
            raise NotFound(f"parent snapshot {parent}: not found")
        if prow.kind != "committed":
            raise FailedPrecondition(f"parent snapshot {parent} is not committed")
        return prow.id

    def _absent(self, conn: sqlite3.Connection, key: str) -> None:
        if self.meta.get(key, conn) is not None:
            raise AlreadyExists(f"snapshot {key}: already exists")

    def _insert(self, conn: sqlite3.Connection, tmp: Path, key: str, parent_id: int | None, kind: str,
                labels: dict[str, str], placed: list[Path]) -> int:
        """Insert the row and rename ``tmp`` to its directory (inside the caller's transaction)."""
        sid = self.meta.insert(conn, key, parent_id, kind, labels)
        target = self._dir(sid)
        if target.exists():  # a leftover of a rolled-back id
            shutil.rmtree(target)
        os.rename(tmp, target)
        placed.append(target)
        return sid

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
            row = self._delete_row(conn, key)
        self._remove_dir(key, row)

    def remove_all(self, keys: list[str]) -> None:
        """Remove those of ``keys`` that exist, in order (children before their parents), with one
        commit of the metadata; then their directories."""
        with self.meta.transaction() as conn:
            rows = [(key, self._delete_row(conn, key)) for key in keys if self.meta.get(key, conn) is not None]
        for key, row in rows:
            self._remove_dir(key, row)

    def _delete_row(self, conn: sqlite3.Connection, key: str) -> Row:
        row = self.meta.get(key, conn)
        if row is None:
            raise NotFound(f"snapshot {key}: not found")
        if self.meta.has_children(conn, row.id):
            raise FailedPrecondition(f"cannot remove snapshot {key}: it has children")
        conn.execute("DELETE FROM snapshots WHERE id = ?", (row.id,))
        return row

    def _remove_dir(self, key: str, row: Row) -> None:
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
