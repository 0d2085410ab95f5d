"""Volumes: records (``volumes`` table), the local driver's directories, create / inspect / list /
remove / prune with Docker's rules, and what containers need of them (mount sources, copy-up,
mounted devices, removal of anonymous volumes with ``rm -v``).

Which containers use a volume is read from the container records (their ``mounts``), so a volume
is "in use" exactly while some container — running or not — references it, as in Docker.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
from collections.abc import Callable
from pathlib import Path

from dockyard.engine import records
from dockyard.engine.containers import ContainerStore, now_rfc3339, parse_rfc3339
from dockyard.engine.filters import labels_match
from dockyard.engine.rootfs import resolve_in_root
from dockyard.engine.types import ContainerRecord, VolumeRecord
from dockyard.errors import Conflict, DockyardError, InvalidArgument, NotFound
from dockyard.metadata import Database
from dockyard.volumes.local import LocalDriver, check_name, check_options, copy_up

log = logging.getLogger(__name__)
ANONYMOUS = "com.docker.volume.anonymous"


class VolumeService:
    def __init__(self, db: Database, root: Path, store: ContainerStore,
                 emit: Callable[[VolumeRecord, str, dict[str, str]], None]) -> None:
        self.db = db
        self.driver = LocalDriver(root)
        self.store = store
        self.emit = emit
        self._lock = threading.Lock()   # create/remove run in worker threads too

    # -- records ----------------------------------------------------------------------------
    def _row(self, name: str) -> VolumeRecord | None:
        row = self.db.query_one("SELECT record FROM volumes WHERE name = ?", (name,))
        return records.loads(VolumeRecord, row["record"]) if row else None

    def get(self, name: str) -> VolumeRecord:
        rec = self._row(name)
        if rec is None:
            raise NotFound(f"get {name}: no such volume")
        return rec

    def all(self) -> list[VolumeRecord]:
        return [records.loads(VolumeRecord, r["record"])
                for r in self.db.query("SELECT record FROM volumes ORDER BY name")]

    def mountpoint(self, name: str) -> Path:
        return self.driver.path(name)

    # -- create -----------------------------------------------------------------------------
    def create(self, name: str = "", driver: str = "", options: dict[str, str] | None = None,
               labels: dict[str, str] | None = None, anonymous: bool = False) -> VolumeRecord:
        """A new volume, or the existing one of that name (Docker's create is idempotent)."""
        driver = driver or "local"
        if driver != "local":
            raise NotFound(f"error looking up volume plugin {driver}: plugin \"{driver}\" not found")
        opts = dict(options or {})
        if not name:
            name, anonymous = secrets.token_hex(32), True
        labels = dict(labels or {})
        if anonymous:
            labels[ANONYMOUS] = ""   # Docker 23+ marks them so, and prune goes by it
        check_name(name)
        check_options(opts)
        with self._lock:
            existing = self._row(name)
            if existing is not None:
                if opts and opts != existing.options:
                    raise Conflict(f"create {name}: volume already exists with different options")
                return existing
            rec = VolumeRecord(name=name, driver=driver, created=now_rfc3339(), labels=labels, options=opts, anonymous=anonymous)
            self.driver.create(name, opts)
            try:
                self.db.execute("INSERT INTO volumes (name, created, record) VALUES (?, ?, ?)",
                                (name, parse_rfc3339(rec.created), records.dumps(rec)))
            except BaseException:
                self.driver.remove(name)
                raise
        self.emit(rec, "create", {"driver": driver})
        return rec

    # -- users ------------------------------------------------------------------------------
    def users(self, name: str, containers: list[ContainerRecord] | None = None) -> list[str]:
        return [c.id for c in (containers if containers is not None else self.store.all())
                if any(m.type == "volume" and m.name == name for m in c.mounts)]

    # -- remove / prune ---------------------------------------------------------------------
    def remove(self, name: str, force: bool = False) -> None:
        with self._lock:
            rec = self._row(name)
            if rec is None:
                if force:
                    return
                raise NotFound(f"get {name}: no such volume")
            users = self.users(name)
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
            self.driver.unmount(name)
            self.db.execute("DELETE FROM volumes WHERE name = ?", (name,))
            self.driver.remove(name)
        self.emit(rec, "destroy", {"driver": rec.driver})

    def prune(self, filters: dict[str, list[str]]) -> tuple[list[str], int]:
        """Unused volumes: anonymous ones, or all with ``all=true`` (Docker 23+)."""
        bad = set(filters) - {"label", "label!", "all"}
        if bad:
            raise InvalidArgument(f"invalid filter '{sorted(bad)[0]}'")
        everything = any(v.lower() in ("1", "true") for v in filters.get("all", []))
        containers = self.store.all()
        removed, reclaimed = [], 0
        for rec in self.all():
            if (not everything and not rec.anonymous) or self.users(rec.name, containers):
                continue
            if not labels_match(rec.labels, filters):
                continue
            size = self.driver.size(rec.name)
            try:
                self.remove(rec.name)
            except DockyardError:
                continue
            removed.append(rec.name)
            reclaimed += size
        return removed, reclaimed

    def list(self, filters: dict[str, list[str]]) -> list[VolumeRecord]:
        bad = set(filters) - {"dangling", "driver", "label", "label!", "name"}
        if bad:
            raise InvalidArgument(f"invalid filter '{sorted(bad)[0]}'")
        containers = self.store.all()
        out = []
        for rec in self.all():
            if "name" in filters and not any(v in rec.name for v in filters["name"]):
                continue
            if "driver" in filters and rec.driver not in filters["driver"]:
                continue
            if "dangling" in filters:
                value = filters["dangling"][0].lower()
                if value not in ("1", "0", "true", "false"):
                    raise InvalidArgument(f"invalid filter 'dangling={filters['dangling'][0]}'")
                if (value in ("1", "true")) != (not self.users(rec.name, containers)):
                    continue
            if not labels_match(rec.labels, filters):
                continue
            out.append(rec)
        return out

    def usage(self, name: str) -> tuple[int, int]:
        """(size in bytes, containers referencing it)."""
        return self.driver.size(name), len(self.users(name))

    # -- containers -------------------------------------------------------------------------
    @staticmethod
    def has_work(rec: ContainerRecord) -> bool:
        """Whether ``before_start`` has anything to do (callers skip the thread-pool trip if not)."""
        return any(mp.type == "volume" for mp in rec.mounts)

    def before_start(self, rec: ContainerRecord, rootfs: Path) -> None:
        """Mount device-backed volumes and fill empty volumes from the image (copy-up), before the
        runtime bind-mounts them into the container."""
        for mp in rec.mounts:
            if mp.type != "volume":  # the mounts has_work looks for
                continue
            vol = self.get(mp.name)
            self.driver.mount(mp.name, vol.options)
            if not self.driver.is_empty(mp.name):
                continue
            data = self.driver.path(mp.name)
            if rec.id_range is not None and data.stat().st_uid == 0:
                # a fresh volume belongs to the container's root, as under Docker's userns-remap
                os.chown(data, rec.id_range.host_uid, rec.id_range.host_gid)
            if mp.nocopy or mp.subpath:
                continue
            try:
                src = resolve_in_root(rootfs, mp.destination)
            except DockyardError:
                continue
            try:
                copy_up(src, self.driver.path(mp.name))
            except OSError as exc:
                raise InvalidArgument(f"failed to copy image content of {mp.destination} into volume "
                                      f"{mp.name}: {exc.strerror}") from exc

    def after_stop(self, rec: ContainerRecord) -> None:
        """Unmount device-backed volumes no other running container still uses."""
        mounted = [m.name for m in rec.mounts if m.type == "volume"
                   and (vol := self._row(m.name)) is not None and "type" in vol.options]
        if not mounted:   # the common case: nothing to unmount, no need to look at other containers
            return
        busy = {m.name for c in self.store.all() if c.id != rec.id and c.state.running
                for m in c.mounts if m.type == "volume"}
        for name in mounted:
            if name not in busy:
                with contextlib.suppress(DockyardError):
                    self.driver.unmount(name)

    def remove_anonymous(self, rec: ContainerRecord) -> None:
        """``rm -v``: the container's anonymous volumes go with it (named ones never do)."""
        for mp in rec.mounts:
            if mp.type != "volume":
                continue
            vol = self._row(mp.name)
            if vol is not None and vol.anonymous:
                try:
                    self.remove(mp.name)
                except DockyardError as exc:  # another container still uses it: it stays
                    log.info("volume %s kept: %s", mp.name, exc)
