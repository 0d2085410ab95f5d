"""``docker commit``, ``docker diff`` and ``docker export`` over a container's snapshot.

A container stacks on ``<key>-init`` (mount stubs), which stacks on the image's top chain; the
container's own upper dir holds only what its processes changed. Commit archives that upper dir as
one uncompressed layer (digest = diff ID) on top of the image's layers, as moby's classic commit
does: an empty diff adds no layer, only a history entry with ``empty_layer``; ``created_by`` is the
container's Cmd joined by spaces. The new config is Docker's merge of the body config (or the
container's) with ``--change`` lines applied, over the container's config (daemon/commit.go).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import secrets
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.diff import tar_directory, write_layer
from dockyard.engine import userns
from dockyard.engine.changes import Change, overlay_changes
from dockyard.engine.threadstream import stream_writes
from dockyard.engine.types import ContainerConfig, ContainerRecord
from dockyard.errors import Conflict, DockyardError, Internal
from dockyard.images.changes import apply_changes
from dockyard.images.util import normalise_tag, rfc3339_now
from dockyard.mount import Mount, unmount_all
from dockyard.oci import mediatypes as mt
from dockyard.oci import reference
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest


@dataclass
class CommitOptions:
    container: str
    repo: str = ""
    tag: str = ""
    comment: str = ""
    author: str = ""
    pause: bool = True
    changes: list[str] = field(default_factory=list)
    config: ContainerConfig | None = None   # the request body; None = the container's own


# -- config ----------------------------------------------------------------------------------

def image_run_config(c: ContainerConfig) -> dict[str, Any]:
    """The image-config ``config`` object (OCI fields plus Docker's Healthcheck/OnBuild/Shell)."""
    out: dict[str, Any] = {}
    if c.user:
        out["User"] = c.user
    if c.exposed_ports:
        out["ExposedPorts"] = {k: {} for k in c.exposed_ports}
    if c.env:
        out["Env"] = list(c.env)
    if c.entrypoint:
        out["Entrypoint"] = list(c.entrypoint)
    if c.cmd:
        out["Cmd"] = list(c.cmd)
    if c.volumes:
        out["Volumes"] = {k: {} for k in c.volumes}
    if c.working_dir:
        out["WorkingDir"] = c.working_dir
    if c.labels:
        out["Labels"] = dict(c.labels)
    if c.stop_signal:
        out["StopSignal"] = c.stop_signal
    if c.args_escaped:
        out["ArgsEscaped"] = True
    if c.healthcheck is not None:
        h = c.healthcheck
        out["Healthcheck"] = {k: v for k, v in (
            ("Test", list(h.test)), ("Interval", h.interval_ns), ("Timeout", h.timeout_ns),
            ("StartPeriod", h.start_period_ns), ("StartInterval", h.start_interval_ns),
            ("Retries", h.retries)) if v}
    if c.on_build:
        out["OnBuild"] = list(c.on_build)
    if c.shell:
        out["Shell"] = list(c.shell)
    return out


def _apply_commit_changes(config: dict[str, Any], changes: list[str]) -> None:
    """As the builder dispatches them: ENTRYPOINT drops Cmd unless a CMD came before it."""
    cmd_set = False
    for change in changes:
        instr = change.strip().partition(" ")[0].upper()
        before = config.get("Cmd")
        apply_changes(config, [change])
        if instr == "CMD":
            cmd_set = True
        elif instr == "ENTRYPOINT":
            if cmd_set:
                config["Cmd"] = before
            else:
                config.pop("Cmd", None)


def merge_configs(user: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """moby's daemon/commit.go ``merge``: ``base`` (the container's config) fills what ``user``
    left empty."""
    out = copy.deepcopy(user)
    if not out.get("User") and base.get("User"):
        out["User"] = base["User"]
    ports = dict(out.get("ExposedPorts") or {})
    for port in base.get("ExposedPorts") or {}:
        ports.setdefault(port, {})
    if ports:
        out["ExposedPorts"] = ports
    env = list(out.get("Env") or [])
    keys = {e.split("=", 1)[0] for e in env}
    env += [e for e in base.get("Env") or [] if e.split("=", 1)[0] not in keys]
    if env:
        out["Env"] = env
    labels = dict(base.get("Labels") or {})
    labels.update(out.get("Labels") or {})
    if labels:
        out["Labels"] = labels
    if not out.get("Entrypoint"):
        if not out.get("Cmd") and base.get("Cmd"):
            out["Cmd"] = list(base["Cmd"])
        if "Entrypoint" not in out and base.get("Entrypoint"):
            out["Entrypoint"] = list(base["Entrypoint"])
    if "Healthcheck" not in out and base.get("Healthcheck"):
        out["Healthcheck"] = copy.deepcopy(base["Healthcheck"])
    if not out.get("WorkingDir") and base.get("WorkingDir"):
        out["WorkingDir"] = base["WorkingDir"]
    volumes = dict(out.get("Volumes") or {})
    volumes.update(base.get("Volumes") or {})
    if volumes:
        out["Volumes"] = volumes
    if not out.get("StopSignal") and base.get("StopSignal"):
        out["StopSignal"] = base["StopSignal"]
    return {k: v for k, v in out.items() if v not in (None, "")}


def commit_config(rec: ContainerRecord, opts: CommitOptions) -> dict[str, Any]:
    user = image_run_config(opts.config if opts.config is not None else rec.config)
    _apply_commit_changes(user, opts.changes)
    return merge_configs(user, image_run_config(rec.config))


def _target(opts: CommitOptions) -> str | None:
    if not opts.repo:
        return None
    return normalise_tag(f"{opts.repo}:{opts.tag}" if opts.tag else opts.repo)


# -- commit ----------------------------------------------------------------------------------

def _check_committable(rec: ContainerRecord) -> None:
    if rec.state.status == "dead":
        raise Conflict(f"You cannot commit container {rec.id} which is Dead")
    if rec.state.status == "removing":
        raise Conflict(f"You cannot commit container {rec.id} which is being removed")


async def commit(engine: Any, opts: CommitOptions) -> str:
    rec: ContainerRecord = engine.store.get(opts.container)
    _check_committable(rec)
    target = _target(opts)                      # bad names and changes fail before any write
    run_config = commit_config(rec, opts)
    # the container lock keeps start/remove out while its upper dir is archived
    async with engine.containers.lock(rec.id):
        rec = engine.store.get(rec.id)
        _check_committable(rec)
        return await _commit_locked(engine, rec, opts, run_config, target)


async def _commit_locked(engine: Any, rec: ContainerRecord, opts: CommitOptions,
                         run_config: dict[str, Any], target: str | None) -> str:
    paused = False
    if opts.pause and rec.state.status == "running":
        await engine.pause(rec.id)
        paused = True
    try:
        image_id: str = await asyncio.to_thread(_commit_sync, engine, rec, opts, run_config, target)
        familiar = reference.parse(target).familiar() if target else ""
        if target is not None:
            engine.bus.publish("image", "tag", image_id, {"name": familiar})
        # moby's order: pause, tag, commit, then the deferred unpause
        engine.containers.emit(rec, "commit", {"comment": opts.comment, "imageID": image_id,
                                               "imageRef": familiar})
    finally:
        if paused:
            with contextlib.suppress(DockyardError):
                await engine.unpause(rec.id)
    return image_id


def _store_layer(engine: Any, upper: Path, rec: ContainerRecord) -> tuple[Descriptor, bool]:
    """Archive the upper dir into the content store; (descriptor, the blob was new). A user
    namespace container's files are recorded with its own ids, not the host's."""
    with engine.content.writer(f"commit-{secrets.token_hex(8)}") as w:
        digest = write_layer(upper, w, userns.to_container(rec.id_range))
        size = w.offset
        existed = engine.content.exists(digest)
        w.commit(expected=digest, size=size)
    return Descriptor(mt.DOCKER_LAYER, digest, size), not existed


def _commit_sync(engine: Any, rec: ContainerRecord, opts: CommitOptions, run_config: dict[str, Any],
                 target: str | None) -> str:
    images = engine.images
    parent_rec = images.record(rec.image_id)
    parent = copy.deepcopy(parent_rec.config)
    layers: list[Descriptor] = list(images.layers(parent_rec))
    upper = Path(engine.snapshots.upper_dir(rec.snapshot_key))
    with os.scandir(upper) as entries:
        empty = next(entries, None) is None
    new_blob: Digest | None = None
    created = rfc3339_now()
    history: dict[str, Any] = {"created": created}
    if opts.author:
        history["author"] = opts.author
    history["created_by"] = " ".join(rec.config.cmd or [])
    if opts.comment:
        history["comment"] = opts.comment
    diff_ids = list((parent.get("rootfs") or {}).get("diff_ids") or [])
    if empty:
        history["empty_layer"] = True
    else:
        desc, fresh = _store_layer(engine, upper, rec)
        if fresh:
            new_blob = desc.digest
        layers.append(desc)
        diff_ids.append(str(desc.digest))
    for key in ("container", "container_config", "docker_version", "author", "comment"):
        parent.pop(key, None)
    config: dict[str, Any] = {**parent, "config": run_config, "created": created,
                              "history": [*(parent.get("history") or []), history],
                              "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    if opts.author:
        config["author"] = opts.author
    if opts.comment:
        config["comment"] = opts.comment
    blob = json.dumps(config, separators=(",", ":")).encode()
    try:
        return str(images.add_image(blob, layers, None, [target] if target else []))
    except BaseException:
        if new_blob is not None:  # no image was registered: drop the layer nothing else has
            with contextlib.suppress(DockyardError, OSError):
                engine.content.delete(new_blob)
        raise


# -- diff ------------------------------------------------------------------------------------

def _lower_dirs(engine: Any, key: str) -> list[Path]:
    out: list[Path] = []
    for m in engine.snapshots.mounts(key):
        for opt in m.options:
            if opt.startswith("lowerdir="):
                out.extend(Path(p) for p in opt[len("lowerdir="):].split(":"))
    return out


def container_changes(engine: Any, ref: str) -> list[Change]:
    rec: ContainerRecord = engine.store.get(ref)
    if not rec.snapshot_key or not engine.snapshots.exists(rec.snapshot_key):
        raise Conflict(f"container {rec.id} has no filesystem")
    upper = Path(engine.snapshots.upper_dir(rec.snapshot_key))
    return overlay_changes(upper, _lower_dirs(engine, rec.snapshot_key))


# -- export ----------------------------------------------------------------------------------

def _view_mount(engine: Any, key: str) -> Mount:
    """A read-only overlay of the container's upper dir over its lower layers (no work dir)."""
    upper = str(engine.snapshots.upper_dir(key))
    lowers = [str(p) for p in _lower_dirs(engine, key)]
    return Mount("overlay", "overlay", ("ro", "lowerdir=" + ":".join([upper, *lowers])))


async def export(engine: Any, ref: str) -> AsyncIterator[bytes]:
    """The container's merged filesystem as a tar stream (init-layer stubs included, as Docker)."""
    rec: ContainerRecord = engine.store.get(ref)
    _check_committable(rec)
    if not rec.snapshot_key or not engine.snapshots.exists(rec.snapshot_key):
        raise Conflict(f"container {rec.id} has no filesystem")
    tmp = Path(tempfile.mkdtemp(prefix="export-", dir=Path(engine.config.data_root) / "tmp"))
    mounted = False
    try:
        try:
            await asyncio.to_thread(_view_mount(engine, rec.snapshot_key).mount, tmp)
        except DockyardError as exc:
            raise Internal(f"cannot mount the container's filesystem: {exc}") from exc
        mounted = True
        chunks = stream_writes(lambda out: tar_directory(tmp, out, userns.to_container(rec.id_range)))
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()  # the producer thread is done with the tree before it is unmounted
    finally:
        if mounted:
            with contextlib.suppress(DockyardError):
                unmount_all(tmp, detach=True)
        with contextlib.suppress(OSError):
            os.rmdir(tmp)  # never rmtree: a mount that did not go away would lose its files
