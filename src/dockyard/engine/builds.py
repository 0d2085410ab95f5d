"""Builds inside the engine: RUN steps as real containers, the context, the finished image.

The Dockerfile logic lives in ``dockyard.build``; this module gives it what only the engine has
(containers, images) and turns a POST /build into an image. A RUN container is an ordinary
container (same runtime, isolation and network mode as ``docker run``) created on the step's state,
which is not a registered image; it is removed when the step ends, whatever the outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dockyard.build.builder import Builder
from dockyard.build.cache import BuildCache
from dockyard.build.context import context_from_file
from dockyard.build.layers import LayerStore
from dockyard.build.options import BuildFailed, BuildOptions, Progress, RunResult, RunSpec
from dockyard.build.state import State
from dockyard.engine.filters import until_match
from dockyard.engine.types import ContainerConfig, CreateOptions, HealthConfig, HostConfig, PruneReport
from dockyard.errors import DockyardError, InvalidArgument, NotFound
from dockyard.images.util import chain_ids, normalise_tag
from dockyard.oci import reference
from dockyard.oci.digest import Digest


class EngineExecutor:
    def __init__(self, engine: Any, progress: Progress | None = None, pull: bool = False) -> None:
        self.engine = engine
        self.progress = progress
        self.always_pull = pull       # `build --pull`: fetch base images even when present
        self.pulled: set[str] = set()

    async def base(self, ref: str) -> State:
        """A base image as a state; pulled first when missing (or with --pull), as docker does."""
        images = self.engine.images
        image_id = None
        if not (self.always_pull and ref not in self.pulled):
            with contextlib.suppress(NotFound):
                image_id = images.resolve(ref)
        if image_id is None:
            await self._pull(ref)
            image_id = images.resolve(ref)
        await asyncio.to_thread(images.unpack, image_id)
        return State.from_image(images.config(image_id), image_id)

    async def _pull(self, ref: str) -> None:
        from dockyard.engine.distribution import pull

        def emit(msg: dict[str, Any]) -> None:
            status = msg.get("status")
            if self.progress is not None and status and status not in ("Downloading", "Extracting"):
                self.progress.stream(f"{msg['id']}: {status}\n" if msg.get("id") else f"{status}\n")

        try:
            await pull(self.engine, ref, "", None, emit)
        except DockyardError as exc:
            raise type(exc)(f"{ref}: {exc}") from exc
        self.pulled.add(ref)

    async def run(self, state: State, spec: RunSpec, output: Callable[[bytes], None],
                  created: Callable[[str], None]) -> RunResult:
        eng = self.engine
        cfg = ContainerConfig(image=state.image_ref, cmd=list(spec.argv), entrypoint=[""], env=list(spec.env),
                              user=spec.user, working_dir=spec.workdir,
                              healthcheck=HealthConfig(test=["NONE"]))
        host = HostConfig(binds=list(spec.binds), network_mode=spec.network, tmpfs=dict(spec.tmpfs),
                          shm_size=spec.shm_size, extra_hosts=list(spec.extra_hosts))
        cid, _ = await eng.containers.create(CreateOptions(config=cfg, host_config=host),
                                             base=(state.image_ref, state.config, state.chain_id))
        try:
            created(cid)
            session = await eng.attach(cid, False, True, True)
            await eng.start_container(cid)
            while (item := await session.read()) is not None:
                output(item[1])
            code, _ = await eng.wait_container(cid, "not-running")
            rec = eng.get_container(cid)
            if rec.state.oom_killed:
                raise BuildFailed("the RUN step was killed: out of memory", 137)
            return RunResult(cid, code, Path(eng.snapshots.upper_dir(rec.snapshot_key)))
        except BaseException:
            await self.cleanup(cid)
            raise

    async def cleanup(self, container_id: str) -> None:
        with contextlib.suppress(DockyardError):
            await asyncio.shield(self.engine.remove_container(container_id, force=True))


async def build_image(engine: Any, body: Path, opts: BuildOptions, progress: Progress,
                      indexed: Any = None) -> str:
    """Run a build from a context archive; returns the new image's ID (tags applied)."""
    tags = [normalise_tag(t) for t in opts.tags]  # a bad -t fails before anything runs
    root = Path(engine.config.data_root)
    work = root / "tmp"
    work.mkdir(parents=True, exist_ok=True)
    ctx = await asyncio.to_thread(context_from_file, body, work, opts.dockerfile_name, indexed)
    try:
        opts.context = ctx.tree
        opts.dockerfile = ctx.dockerfile_text
        layers = LayerStore(engine.snapshots, engine.content, work)
        cache = BuildCache(engine.db, engine.content, engine.snapshots)
        builder = Builder(opts, EngineExecutor(engine, progress, opts.pull), layers, cache, progress,
                          cache_mounts=root / "build" / "cache-mounts")
        state = await builder.build()
        if opts.labels:
            state = state.copy()
            state.run_config["Labels"] = {**(state.run_config.get("Labels") or {}), **opts.labels}
        descriptors = [layers.descriptor(d) for d in state.diff_ids]
        image_id: str = await asyncio.to_thread(engine.images.add_image, state.blob(), descriptors, None, tags)
        for tag in tags:
            engine.bus.publish("image", "tag", image_id, {"name": reference.parse(tag).familiar()})
        return image_id
    finally:
        await asyncio.to_thread(ctx.close)


def prune_cache(engine: Any, filters: dict[str, list[str]]) -> PruneReport:
    """Forget the build cache and free the layers, snapshots and configs only it kept alive
    (images and containers keep theirs). ``until=<duration|timestamp>`` keeps newer entries."""
    cache = BuildCache(engine.db, engine.content, engine.snapshots)
    for key in filters:
        if key != "until":
            raise InvalidArgument(f"invalid filter '{key}'")
    everything = cache.records()
    records = [r for r in everything if until_match(r.last_used, filters.get("until", []))]
    kept = [r for r in everything if r not in records]
    images = list(engine.images.table.all())
    used_chains = {c for rec in images for c in rec.chains}
    used_blobs = {d for rec in images for d in rec.diff_ids} | {rec.id for rec in images}
    for r in kept:  # what the surviving cache entries need stays too
        state = cache.state(r.result)
        if state is not None:
            used_chains.update(chain_ids(state.diff_ids))
            used_blobs.update(state.diff_ids)
            used_blobs.add(r.result)
    report = PruneReport()
    cache.forget([r.key for r in records])
    for r in records:
        report.deleted.append(r.key.split(":", 1)[-1][:25])
        state = cache.state(r.result)
        if state is None:
            continue
        for chain in reversed(chain_ids(state.diff_ids)):
            if chain in used_chains or not engine.snapshots.exists(chain):
                continue
            try:
                engine.snapshots.remove(chain)
            except DockyardError:  # a child (another entry's layer, a container) still uses it
                break
        for blob in [*state.diff_ids, r.result]:
            if blob in used_blobs:
                continue
            digest = Digest.parse(blob)
            if engine.content.exists(digest):
                report.space_reclaimed += engine.content.info(digest).size
                engine.content.delete(digest)
            used_blobs.add(blob)
    return report
