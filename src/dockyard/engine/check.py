"""``dockyard system check [--repair]``: verify the store against itself and the host, and mend
what a crash or a hand in the data root left behind.

Checked: every blob's content against its digest; in-flight ingests no writer holds; each image's
config, manifest and layer blobs; snapshot rows against their directories; container records
against their directories and snapshots; overlay mounts, cgroups of containers that are not
running. Repairs only ever remove what nothing can use (a blob whose bytes lie, an image whose
config is gone, an orphan directory, a stale mount or cgroup); anything a user might want back is
reported, not touched.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard.engine.spec import cgroup_parent_of
from dockyard.errors import DockyardError, Unavailable
from dockyard.mount import unmount_all
from dockyard.oci.digest import Digest

_CGROUP_ROOT = Path("/sys/fs/cgroup")
_GRACE = 30.0   # seconds an empty cgroup may be on its way to holding a container


@dataclass
class Finding:
    kind: str            # blob | ingest | image | snapshot | container | mount | cgroup
    subject: str         # digest, id, path
    problem: str
    repaired: bool = False


class _Report:
    def __init__(self, repair: bool) -> None:
        self.repair = repair
        self.findings: list[Finding] = []

    def add(self, kind: str, subject: str, problem: str, fix: Any = None) -> None:
        """Record a problem; with --repair run ``fix`` (a callable) and note whether it worked."""
        f = Finding(kind, subject, problem)
        if self.repair and fix is not None:
            try:
                fix()
                f.repaired = True
            except (DockyardError, OSError) as exc:
                f.problem += f" (repair failed: {exc})"
        self.findings.append(f)


def _sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def check(engine: Any, repair: bool) -> list[Finding]:
    """Runs in a worker thread; containers keep running throughout."""
    report = _Report(repair)
    _blobs(engine, report)
    _ingests(engine, report)
    _images(engine, report)
    _snapshots(engine, report)
    _containers(engine, report)
    _mounts_and_cgroups(engine, report)
    if repair and any(f.repaired for f in report.findings):
        engine.bus.publish("daemon", "check", "", {"repaired": str(sum(f.repaired for f in report.findings))})
    return report.findings


def collect_at_start(engine: Any) -> list[Finding]:
    """After live restore: root mounts and cgroups of containers that are not running are what a
    crash between the runtime and the record left (nothing is starting yet, so it is safe)."""
    report = _Report(repair=True)
    _mounts_and_cgroups(engine, report)
    return report.findings


def _blobs(engine: Any, report: _Report) -> None:
    content = engine.content
    for info in content.walk():
        if info.digest.algorithm != "sha256":
            continue
        path = str(content.path(info.digest))
        try:
            actual = _sha256_of(path)
        except OSError as exc:
            report.add("blob", str(info.digest), f"unreadable: {exc.strerror}")
            continue
        if actual != info.digest.hex:
            # a blob whose bytes do not match its name is worse than a missing one: every reader
            # trusts the name. Removing it lets a pull fetch it again.
            report.add("blob", str(info.digest), f"content does not match its digest (sha256:{actual[:12]}…)",
                       lambda d=info.digest: content.delete(d))


def _ingests(engine: Any, report: _Report) -> None:
    content = engine.content
    for ref, size in list(content.ingests()):
        if content.resumable(ref):
            continue   # a pull cut short: the next pull of that blob resumes it (prune removes it)
        try:
            w = content.writer(ref)
        except Unavailable:
            continue   # a pull or build is writing it right now
        w.close()
        report.add("ingest", ref, f"unfinished write of {size} bytes that nothing will resume",
                   lambda r=ref: content.abort(r))


def _images(engine: Any, report: _Report) -> None:
    images, content = engine.images, engine.content
    for rec in images.table.all():
        config_digest = Digest.parse(rec.id)
        if not content.exists(config_digest):
            report.add("image", rec.id, "its config blob is missing: the image cannot be used",
                       lambda r=rec: images.delete_image(r))
            continue
        if rec.manifest_digest is None:
            continue
        if not content.exists(Digest.parse(rec.manifest_digest)):
            report.add("image", rec.id, f"manifest {rec.manifest_digest} is missing: it cannot be "
                       "pushed or saved (it still runs); pull it again")
            continue
        try:
            layers = images.layers(rec)
        except DockyardError as exc:
            report.add("image", rec.id, f"unreadable manifest: {exc}")
            continue
        missing = [str(d.digest) for d in layers if not content.exists(d.digest)]
        if missing:
            report.add("image", rec.id, f"{len(missing)} layer blob(s) missing ({missing[0]}…): it cannot "
                       "be pushed or saved; pull it again")


def _snapshots(engine: Any, report: _Report) -> None:
    for subject, problem, fix in engine.snapshots.fsck():
        report.add("snapshot", subject, problem, fix)


def _containers(engine: Any, report: _Report) -> None:
    store, snapshots = engine.store, engine.snapshots
    records = {r.id: r for r in store.all()}
    for rec in records.values():
        if rec.snapshot_key and not snapshots.exists(rec.snapshot_key):
            report.add("container", rec.id, "its writable layer is gone: it cannot start again "
                       "(remove it with `rm`)")
        if not engine.containers.cdir(rec.id).is_dir():
            report.add("container", rec.id, f"its directory {engine.containers.cdir(rec.id)} is missing")
    cdirs = Path(engine.config.data_root) / "containers"
    for d in sorted(cdirs.iterdir()) if cdirs.is_dir() else []:
        if d.name not in records and len(d.name) == 64:
            def remove(d: Path = d) -> None:
                with contextlib.suppress(DockyardError):
                    unmount_all(d / "rootfs", detach=True)
                shutil.rmtree(d)
            report.add("container", d.name, f"directory {d} belongs to no container", remove)


def _mounts_and_cgroups(engine: Any, report: _Report) -> None:
    records = engine.store.all()
    running = {r.id for r in records if r.state.running}
    cdirs = Path(engine.config.data_root).resolve() / "containers"
    with open("/proc/self/mountinfo") as f:
        targets = [line.split()[4] for line in f]
    for target in sorted(set(targets)):
        path = Path(target.encode().decode("unicode_escape"))
        if path.parent.parent != cdirs or path.name != "rootfs":
            continue
        cid = path.parent.name
        if cid not in running:
            report.add("mount", str(path), "root file system mounted for a container that is not running",
                       lambda p=path: unmount_all(p, detach=True))
    known = {r.id for r in records}
    # the daemon's parent, and the --cgroup-parent of every container
    parents = sorted({cgroup_parent_of(r, engine.config.cgroup_parent) for r in records}
                     | {engine.config.cgroup_parent.strip("/")})
    bases = [controller_dir / parent for controller_dir in sorted(_CGROUP_ROOT.iterdir())
             if not controller_dir.is_symlink() for parent in parents] if _CGROUP_ROOT.is_dir() else []
    for base in bases:
        if not base.is_dir():
            continue
        for d in sorted(base.iterdir()):
            if not d.is_dir() or len(d.name) != 64 or d.name in running or _has_tasks(d):
                continue
            # a cgroup is empty for a moment while a container starts (and the cgroup parent may
            # be shared with another daemon): only one that has stayed so is stale
            if engine.containers.lock(d.name).locked() or (
                    d.name not in known and time.time() - d.stat().st_mtime < _GRACE):
                continue
            report.add("cgroup", str(d), "cgroup of a container that is not running",
                       lambda d=d: os.rmdir(d))


def _has_tasks(d: Path) -> bool:
    try:
        return bool((d / "cgroup.procs").read_text().strip())
    except OSError:
        return False
