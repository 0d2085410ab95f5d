"""``Engine``: the API's only entry. Composes storage, images, containers, execs, events, system."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.engine import shims
from dockyard.engine.containers import ContainerStore, parse_rfc3339
from dockyard.engine.create import validate_resources
from dockyard.engine.events import EventBus
from dockyard.engine.execs import ExecService
from dockyard.engine.health import HealthMonitor
from dockyard.engine.imageapi import ImageFacade
from dockyard.engine.lifecycle import ContainerService
from dockyard.engine.names import validate_name
from dockyard.engine.spec import linux_resources
from dockyard.engine.streams import StreamSession
from dockyard.engine.system import info_facts, ncpu, version_facts
from dockyard.engine.types import (
    ContainerRecord,
    CreateOptions,
    Event,
    ExecConfig,
    ExecRecord,
    ListOptions,
    LogEntry,
    LogsOptions,
    PruneReport,
    Resources,
    RestartPolicy,
)
from dockyard.errors import Conflict, InvalidArgument, NotFound, Unsupported
from dockyard.metadata import Database

log = logging.getLogger(__name__)


def _default_runtimes() -> dict[str, str]:
    found = {}
    for name in ("dockyard-runtime", "runc", "crun"):
        path = shims.find_runtime(name)
        if path:
            found[name] = path
    return found


@dataclass
class EngineConfig:
    data_root: Path = Path("/var/lib/dockyard")
    exec_root: Path = Path("/run/dockyard")
    default_runtime: str = "dockyard-runtime"
    runtimes: dict[str, str] = field(default_factory=_default_runtimes)
    log_max_size: int = 20 * 1000 * 1000
    log_max_file: int = 5
    cgroup_parent: str = "dockyard"
    insecure_registries: list[str] = field(default_factory=list)   # plain HTTP allowed (hosts, CIDRs)
    registry_mirrors: list[str] = field(default_factory=list)      # tried first for docker.io pulls
    default_registry: str = ""      # serves docker.io names instead of Docker Hub (no fallback)
    bridge: str = "dy0"             # the default bridge network's device (dockerd's --bridge)
    firewall_table: str = "dockyard"  # the nftables table (inet family) of this engine's rules
    userns_remap: str = ""          # dockerd's --userns-remap: "default" | USER[:GROUP]
    address_pools: list[tuple[str, int]] = field(default_factory=list)  # [] = Docker's default pools
    live_restore: bool = True       # shown in /info; the daemon stops containers at exit when off


class Engine(ImageFacade):
    def __init__(self, config: EngineConfig, db: Database, content: Any, snapshots: Any,
                 images: Any) -> None:
        self.config = config
        self.db = db
        self.content = content
        self.snapshots = snapshots
        self.images = images
        self.bus = EventBus()
        self.store = ContainerStore(db)
        self.containers = ContainerService(config, self.store, self.bus, images, snapshots)
        self.execs = ExecService(self.containers)
        self.health = HealthMonitor(self.execs)
        self.containers.on_start.append(self.health.start)
        self.containers.on_exit.append(self.health.stop)
        from dockyard.engine.endpoints import Endpoints
        from dockyard.engine.netapi import NetworkEngine
        from dockyard.engine.networks import NetworkService
        from dockyard.network.firewall import Firewall
        from dockyard.network.ipam import IPAM
        self.network_service = NetworkService(
            db, bridge_name=config.bridge, firewall=Firewall(config.firewall_table),
            in_use=lambda nid: self.endpoints.users(nid), emit=self._network_event,
            ipam=IPAM(db, list(config.address_pools) or None))
        self.endpoints = Endpoints(self.network_service, self.store)
        self.containers.endpoints = self.endpoints
        self.networks = NetworkEngine(self.network_service, self.endpoints, self.containers)
        from dockyard.engine.archive import ArchiveService
        self.archive = ArchiveService(self.containers)
        from dockyard.engine.volumes import VolumeService
        self.volumes = VolumeService(db, Path(config.data_root) / "volumes", self.store, self._volume_event)
        self.containers.volumes = self.volumes

    def _volume_event(self, vol: Any, action: str, extra: dict[str, str]) -> None:
        self.bus.publish("volume", action, vol.name, extra)

    def _network_event(self, rec: Any, action: str, extra: dict[str, str]) -> None:
        self.bus.publish("network", action, rec.id, {"name": rec.name, "type": rec.driver, **extra})

    @classmethod
    async def open(cls, config: EngineConfig) -> Engine:
        from dockyard.content import ContentStore
        from dockyard.images import ImageService
        from dockyard.snapshots import Snapshotter

        data_root, exec_root = Path(config.data_root), Path(config.exec_root)
        for d in (data_root, data_root / "containers", data_root / "tmp", exec_root / "shims"):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(data_root, 0o710)
        db = Database(data_root / "metadata.db")
        content = ContentStore(data_root / "content")
        snapshots = Snapshotter(data_root / "snapshots")
        images = ImageService(db, content, snapshots, data_root / "tmp")
        content.prune_ingests(keep=content.resumable)   # what a crash cut short and nothing resumes
        engine = cls(config, db, content, snapshots, images)
        engine.bus.open_journal(data_root / "events")   # since/until replay across restarts
        await engine.network_service.open()
        await engine.containers.restore()
        from dockyard.engine.check import collect_at_start
        for found in await asyncio.to_thread(collect_at_start, engine):
            log.info("collected %s %s: %s", found.kind, found.subject, found.problem)
        await engine.endpoints.collect(busy=lambda cid: engine.containers.lock(cid).locked())
        for rec in engine.store.all():
            if rec.state.status == "running" and rec.id in engine.containers.running:
                engine.health.start(rec.id)
        return engine

    async def close(self) -> None:
        """Leaves containers running; the next open() reattaches to their shims."""
        self.bus.close()   # ends event streams, flushes the journal
        self.health.close()
        await self.containers.close()
        await self.endpoints.close()
        with contextlib.suppress(Exception):
            await self.network_service.close(containers_running=any(r.state.running for r in self.store.all()))
        for closer in (getattr(self.snapshots, "close", None), self.db.close):
            if closer is not None:
                with contextlib.suppress(Exception):
                    closer()

    # -- system -----------------------------------------------------------------------------
    def version(self) -> dict[str, Any]:
        return version_facts()

    def info(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for rec in self.store.all():
            counts[rec.state.status] = counts.get(rec.state.status, 0) + 1
        try:
            n_images = len(self.images.list(all=False, filters={}))
        except Exception:
            n_images = 0
        facts = info_facts(data_root=Path(self.config.data_root), runtimes=self.config.runtimes,
                           default_runtime=self.config.default_runtime, counts=counts, images=n_images)
        if self.containers.remap is not None:   # as dockerd: "name=userns" when remapping
            facts["security_options"].append("name=userns")
        facts.update(live_restore_enabled=self.config.live_restore, debug=log.isEnabledFor(logging.DEBUG),
                     registry_mirrors=list(self.config.registry_mirrors),
                     insecure_registries=list(self.config.insecure_registries))
        return facts

    def events(self, since: float | None = None, until: float | None = None,
               filters: dict[str, list[str]] | None = None) -> AsyncIterator[Event]:
        """Past events from ``since`` (bounded history), then live ones until ``until``."""
        return self.bus.subscribe(since, until, filters or {})

    # -- containers -------------------------------------------------------------------------
    async def create_container(self, opts: CreateOptions) -> tuple[str, list[str]]:
        return await self.containers.create(opts)

    async def list_containers(self, opts: ListOptions) -> list[ContainerRecord]:
        from dockyard.engine.filters import filter_containers
        recs = self.store.all()
        if not opts.all and not opts.filters.get("status") and opts.limit <= 0:
            recs = [r for r in recs if r.state.running]
        recs = filter_containers(recs, opts.filters, self.images)
        if opts.limit > 0:
            recs = recs[: opts.limit]
        return recs

    def get_container(self, ref: str) -> ContainerRecord:
        rec = self.store.get(ref)
        rec.graph_driver_data = self._graph_driver_data(rec)
        return rec

    def _graph_driver_data(self, rec: ContainerRecord) -> dict[str, str]:
        """overlay2's GraphDriver.Data as Docker reports it, from the container's snapshot mounts."""
        if not rec.snapshot_key or not self.snapshots.exists(rec.snapshot_key):
            return {}
        data: dict[str, str] = {"MergedDir": str(self.containers.cdir(rec.id) / "rootfs")}
        for mount in self.snapshots.mounts(rec.snapshot_key):
            if mount.type != "overlay":
                data["UpperDir"] = mount.source
                continue
            for opt in mount.options:
                key, _, value = opt.partition("=")
                name = {"lowerdir": "LowerDir", "upperdir": "UpperDir", "workdir": "WorkDir"}.get(key)
                if name:
                    data[name] = value
        return data

    async def start_container(self, ref: str) -> None:
        await self.containers.start(ref)

    async def stop_container(self, ref: str, timeout: int | None = None, signal: str | None = None) -> None:
        await self.containers.stop(ref, timeout, signal)

    async def restart_container(self, ref: str, timeout: int | None = None, signal: str | None = None) -> None:
        rec = self.store.get(ref)
        if rec.state.running:
            await self.containers.stop(rec.id, timeout, signal)
        await self.containers.start(rec.id)
        self.containers.emit(self.store.get(rec.id), "restart")

    async def kill_container(self, ref: str, signal: str = "KILL") -> None:
        await self.containers.kill(ref, signal)

    async def wait_container(self, ref: str, condition: str = "not-running") -> tuple[int, str]:
        return await self.containers.wait(ref, condition)

    async def remove_container(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        rec = self.store.get(ref)
        await self.containers.remove(rec.id, force, volumes)
        self.execs.forget_container(rec.id)

    def readable_logs(self, ref: str) -> ContainerRecord:
        """The container, if its log driver keeps something ``logs`` can read (checked before a
        streamed response starts, so the refusal is a plain 501 as from dockerd)."""
        rec = self.store.get(ref)
        if rec.host_config.log_config.type not in ("json-file", "", "local"):
            raise Unsupported("configured logging driver does not support reading")
        return rec

    async def logs(self, ref: str, opts: LogsOptions) -> AsyncIterator[LogEntry]:
        from dockyard.shim.jsonlog import follow_log, read_log
        rec = self.readable_logs(ref)
        cid = rec.id

        def stopped() -> bool:
            try:
                return not self.store.get(cid).state.running
            except NotFound:
                return True

        wanted = {s for s, on in (("stdout", opts.stdout), ("stderr", opts.stderr)) if on}
        if opts.follow and rec.state.running:
            async for entry in follow_log(rec.log_path, opts.since, opts.until, opts.tail, stop=stopped):
                if entry.stream in wanted:
                    yield entry
            return
        loop = asyncio.get_running_loop()
        entries = await loop.run_in_executor(
            None, lambda: list(read_log(rec.log_path, opts.since, opts.until, opts.tail)))
        for entry in entries:
            if entry.stream in wanted:
                yield entry

    async def attach(self, ref: str, stdin: bool, stdout: bool, stderr: bool, logs: bool = False,
                     stream: bool = True) -> StreamSession:
        rec = self.store.get(ref)
        prefix: list[tuple[int, bytes]] = []
        if logs:
            async for entry in self.logs(rec.id, LogsOptions(stdout=stdout, stderr=stderr)):
                prefix.append((1 if entry.stream == "stdout" or rec.config.tty else 2, entry.data))
        session = StreamSession(tty=rec.config.tty, stdin=stdin, stdout=stdout, stderr=stderr, prefix=prefix,
                                stdin_once=rec.config.stdin_once)
        if not stream:
            session.end()
            return session
        self.containers.emit(rec, "attach")
        run = self.containers.running.get(rec.id)
        if run is not None and rec.state.running:
            session.connect(await run.shim.attach(stdin=stdin, stdout=stdout, stderr=stderr,
                                                  stdin_once=rec.config.stdin_once))
        elif rec.state.status == "created":
            self.containers.pending_attach.setdefault(rec.id, []).append(session)
        else:
            session.end()  # an exited container: logs (if asked) and then the end
        return session

    async def resize(self, ref: str, height: int, width: int) -> None:
        rec = self.store.get(ref)
        run = self.containers.running.get(rec.id)
        if run is None or not rec.state.running:
            raise Conflict(f"Container {rec.id} is not running")
        await run.shim.resize(height=height, width=width)
        self.containers.emit(rec, "resize", {"height": str(height), "width": str(width)})

    async def top(self, ref: str, ps_args: str = "") -> tuple[list[str], list[list[str]]]:
        from dockyard.engine.top import top
        rec = self.store.get(ref)
        if not rec.state.running:
            raise Conflict(f"Container {rec.id} is not running")
        return await top(self.containers.runtime_path(rec.runtime),
                         self.containers.runtime_root(rec.runtime), rec.id, ps_args)

    async def rename(self, ref: str, new_name: str) -> None:
        if not ref or not new_name:
            raise InvalidArgument("Neither old nor new names may be empty")
        rec = self.store.get(ref)
        canonical = new_name if new_name.startswith("/") else "/" + new_name
        if canonical == "/" + rec.name:
            raise InvalidArgument("Renaming a container with the same name as its current name")
        # dockerd's texts (compose matches "Error when allocating new name: Conflict.")
        prefix = "Error when allocating new name: "
        try:
            name = validate_name(canonical)
        except InvalidArgument as exc:
            raise InvalidArgument(prefix + str(exc)) from exc
        owner = self.store.name_owner(name)
        if owner is not None:
            from dockyard.engine.containers import name_conflict
            conflict = name_conflict(name, owner)
            raise type(conflict)(prefix + str(conflict))
        old = rec.name
        rec.name = name
        self.store.save(rec)
        if rec.state.running:
            self.endpoints.refresh(rec)  # the new name resolves, the old one no longer
        self.containers.emit(rec, "rename", {"oldName": "/" + old})

    async def pause(self, ref: str) -> None:
        rec = self.store.get(ref)
        run = self.containers.running.get(rec.id)
        if run is None or not rec.state.running:
            raise Conflict(f"Container {rec.id} is not running")
        if rec.state.status == "paused":
            raise Conflict(f"Container {rec.id} is already paused")
        await run.shim.pause()
        self.health.stop(rec.id)   # as moby: no probes while frozen, the status turns unhealthy
        rec = self.store.get(rec.id)
        rec.state.status = "paused"
        self.store.save(rec)
        self.containers.emit(rec, "pause")

    async def unpause(self, ref: str) -> None:
        rec = self.store.get(ref)
        run = self.containers.running.get(rec.id)
        if run is None or rec.state.status != "paused":
            raise Conflict(f"Container {rec.id} is not paused")
        await run.shim.resume()
        rec.state.status = "running"
        self.store.save(rec)
        self.health.start(rec.id)
        self.containers.emit(rec, "unpause")

    async def update_container(self, ref: str, resources: Resources | None,
                               restart_policy: RestartPolicy | None) -> list[str]:
        rec = self.store.get(ref)
        warnings: list[str] = []
        # everything is checked before anything changes: a rejected update leaves the record as it was
        if restart_policy is not None and rec.host_config.auto_remove and restart_policy.name not in ("", "no"):
            raise Conflict(f"Cannot update container {rec.id}: Restart policy cannot be updated because "
                           "AutoRemove is enabled for the container")
        merged = None
        if resources is not None:
            merged = _merge_resources(rec.host_config.resources, resources)
            warnings += validate_resources(merged, ncpu())
            run = self.containers.running.get(rec.id)
            if run is not None and rec.state.running:
                res = linux_resources(merged)
                res.pop("devices", None)
                await run.shim.update(resources=res)
        if restart_policy is not None:
            rec.host_config.restart_policy = restart_policy
        if merged is not None:
            rec.host_config.resources = merged
        self.store.save(rec)
        self.containers.emit(rec, "update")
        return warnings

    async def prune_containers(self, filters: dict[str, list[str]]) -> PruneReport:
        from dockyard.engine.filters import label_match, until_match
        report = PruneReport()
        for rec in self.store.all():
            if rec.state.running or rec.state.status == "removing":
                continue
            if not until_match(parse_rfc3339(rec.created), filters.get("until", [])):
                continue
            if not label_match(rec.config.labels, filters.get("label", []), filters.get("label!", [])):
                continue
            size = 0
            with contextlib.suppress(Exception):
                size = int(self.snapshots.usage(rec.snapshot_key)[0])
            await self.remove_container(rec.id)
            report.deleted.append(rec.id)
            report.space_reclaimed += size
        self.bus.publish("container", "prune", "", {"reclaimed": str(report.space_reclaimed)})
        return report

    # -- exec -------------------------------------------------------------------------------
    async def create_exec(self, ref: str, config: ExecConfig) -> str:
        return self.execs.create(ref, config)

    def exec_inspect(self, exec_id: str) -> ExecRecord:
        return self.execs.inspect(exec_id)

    async def start_exec(self, exec_id: str, detach: bool = False) -> StreamSession | None:
        return await self.execs.start(exec_id, detach)

    async def resize_exec(self, exec_id: str, height: int, width: int) -> None:
        await self.execs.resize(exec_id, height, width)

    def container_stats(self, ref: str, stream: bool = True, one_shot: bool = False
                        ) -> AsyncIterator[dict[str, Any]]:
        """Docker's StatsResponse samples of a container (engine/stats.py)."""
        from dockyard.engine import stats
        return stats.collect(self, ref, stream=stream, one_shot=one_shot)

    async def system_check(self, repair: bool) -> list[Any]:
        """Verify (and with ``repair`` mend) the store; see engine/check.py."""
        from dockyard.engine.check import check
        return await asyncio.to_thread(check, self, repair)

    async def disk_usage(self, types: set[str]) -> Any:
        from dockyard.engine.diskusage import disk_usage
        return await asyncio.to_thread(disk_usage, self, types)

    async def commit_container(self, opts: Any) -> str:  # engine.commit.CommitOptions
        from dockyard.engine.commit import commit
        return await commit(self, opts)

    async def container_changes(self, ref: str) -> list[Any]:  # engine.changes.Change
        from dockyard.engine.commit import container_changes
        return await asyncio.to_thread(container_changes, self, ref)

    def export_container(self, ref: str) -> AsyncIterator[bytes]:
        from dockyard.engine.commit import export
        return export(self, ref)


def _merge_resources(old: Resources, new: Resources) -> Resources:
    """``docker update`` changes only the fields that were given (non-zero)."""
    merged = Resources(**vars(old))
    for key, value in vars(new).items():
        if value not in (0, "", None, False) and value != []:
            setattr(merged, key, value)
    if new.memory and not new.memory_swap and old.memory_swap > 0 and old.memory_swap < new.memory:
        merged.memory_swap = 0
    return merged

