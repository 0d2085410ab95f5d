"""Container lifecycle: create, start and the per-container monitor (kill, stop, wait and remove
are in stopping.py, restart policies in restart.py, reattaching in liverestore.py).

One monitor task per running container awaits the shim's ``wait``; on exit it records the exit
status, emits ``die``, deletes the shim, unmounts the rootfs and handles AutoRemove. Containers keep
running when the engine closes; ``restore`` reattaches to their shims on the next open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal as _signal
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.engine import initlayer, shims, userns
from dockyard.engine.containers import ContainerStore, now_rfc3339
from dockyard.engine.create import (
    atomic_write,
    command_line,
    log_size,
    merge_image_config,
    parse_binds,
    validate_host_config,
    write_container_files,
)
from dockyard.engine.events import EventBus
from dockyard.engine.health import merge_healthcheck, validate_healthcheck
from dockyard.engine.liverestore import LiveRestore
from dockyard.engine.names import generate_name, validate_name
from dockyard.engine.restart import RestartManager, ran_for
from dockyard.engine.rootfs import make_dirs, resolve_user
from dockyard.engine.shims import Running
from dockyard.engine.spec import build_spec, cgroup_parent_of
from dockyard.engine.stopping import Stopping
from dockyard.engine.streams import StreamSession
from dockyard.engine.system import cgroup_version, ncpu
from dockyard.engine.types import ContainerRecord, CreateOptions
from dockyard.errors import (
    Conflict,
    DockyardError,
    Internal,
    InvalidArgument,
    NotFound,
    NotModified,
)
from dockyard.mount import unmount_all

if TYPE_CHECKING:
    from dockyard.engine.endpoints import Endpoints
    from dockyard.engine.engine import EngineConfig
    from dockyard.engine.volumes import VolumeService

log = logging.getLogger(__name__)


class ContainerService(Stopping, LiveRestore):
    def __init__(self, config: EngineConfig, store: ContainerStore, events: EventBus,
                 images: Any, snapshots: Any) -> None:
        self.config = config
        self.store = store
        self.events = events
        self.images = images
        self.snapshots = snapshots
        self.running: dict[str, Running] = {}
        self.pending_attach: dict[str, list[StreamSession]] = {}
        self._exit_waiters: dict[str, list[asyncio.Future[tuple[int, str]]]] = {}
        self._remove_waiters: dict[str, list[asyncio.Future[tuple[int, str]]]] = {}
        self._background: set[asyncio.Task[None]] = set()  # keeps fire-and-forget tasks alive
        self._locks: dict[str, asyncio.Lock] = {}
        self._managers: dict[str, RestartManager] = {}  # restart policies' state, in memory
        self._closing = False
        self._restoring = False
        self.endpoints: Endpoints | None = None            # networking, wired by the Engine
        self.volumes: VolumeService | None = None          # volumes, wired by the Engine
        self.on_start: list[Callable[[str], None]] = []   # hooks (healthchecks) per container id
        self.on_exit: list[Callable[[str], None]] = []
        self.remap = userns.remap_range(config.userns_remap) if config.userns_remap else None

    # -- helpers ----------------------------------------------------------------------------
    def lock(self, cid: str) -> asyncio.Lock:
        return self._locks.setdefault(cid, asyncio.Lock())

    def cdir(self, cid: str) -> Path:
        return Path(self.config.data_root) / "containers" / cid

    def state_dir(self, cid: str) -> Path:
        return Path(self.config.exec_root) / "shims" / cid

    def runtime_path(self, name: str) -> str:
        path = self.config.runtimes.get(name)
        if not path:
            raise InvalidArgument(f"Unknown runtime specified {name}")
        return path

    def runtime_root(self, name: str) -> Path:
        sub = {"runc": "runc", "dockyard-runtime": "runtime"}.get(name, name)
        return Path(self.config.exec_root) / sub

    def emit(self, rec: ContainerRecord, action: str, extra: dict[str, str] | None = None) -> None:
        attrs = dict(rec.config.labels)
        attrs.update({"image": rec.image_ref, "name": rec.name})
        attrs.update(extra or {})
        self.events.publish("container", action, rec.id, attrs)

    # -- create -----------------------------------------------------------------------------
    async def create(self, opts: CreateOptions,
                     base: tuple[str, dict[str, Any], str | None] | None = None) -> tuple[str, list[str]]:
        """``base`` (builds only): (image ID to record, image config, top chain ID) of a build
        step's state, which is not a registered image."""
        host = opts.host_config
        name = validate_name(opts.name) if opts.name else generate_name(
            lambda n: self.store.name_owner(n) is not None)
        owner = self.store.name_owner(name)
        if owner is not None:
            from dockyard.engine.containers import name_conflict
            raise name_conflict(name, owner)
        runtime = host.runtime or self.config.default_runtime
        self.runtime_path(runtime)
        if base is not None:
            image_id, image_config = base[0], base[1]
        else:
            if not opts.config.image:
                raise InvalidArgument("config.Image must not be empty")
            image_id = self.images.resolve(opts.config.image)
            image_config = self.images.config(image_id)
        validate_healthcheck(opts.config.healthcheck)
        cfg = merge_image_config(opts.config, image_config)
        cfg.healthcheck = merge_healthcheck(opts.config.healthcheck, image_config.get("config") or {})
        warnings = validate_host_config(host, cfg, ncpu())
        # user namespace refusals come before anything (a volume, an address) is made
        if userns.wants_range(host, self.remap):
            os.chmod(self.config.data_root, 0o711)  # its root must reach the bundle to pivot into it
            userns.check_reachable(Path(self.config.data_root) / "containers")
        path, args = command_line(cfg)
        networks = self.endpoints.initial(host, opts.networking) if self.endpoints else {}
        if self.volumes is not None:
            from dockyard.engine.mounts import container_mounts
            mounts = container_mounts(host, cfg, self.volumes, self.store.get)
        else:
            mounts = parse_binds(host.binds)
        cid = secrets.token_hex(32)
        if not cfg.hostname:
            # host networking shows the host's name (Docker); a joined netns shares its owner's
            cfg.hostname = os.uname().nodename if host.network_mode == "host" else cid[:12]
            if host.network_mode.startswith("container:"):
                cfg.hostname = self.store.get(host.network_mode.split(":", 1)[1]).config.hostname
        if host.init is None:
            host.init = False
        if not host.cgroupns_mode:  # dockerd's default: private on cgroup v2, host on v1
            host.cgroupns_mode = "private" if cgroup_version() == "2" else "host"
        key = f"container-{cid}"

        def filesystem() -> None:
            top = base[2] if base is not None else self.images.unpack(image_id)
            initlayer.prepare(self.snapshots, key, top)

        # unpacking may extract layers for seconds: keep the event loop free (the stores are
        # thread-safe); one trip to the thread pool for both steps
        await asyncio.get_running_loop().run_in_executor(None, filesystem)
        cdir = self.cdir(cid)
        # no await from here to the insert: no other create can take the same --userns=auto range
        id_range = userns.choose_range(host, self.remap, lambda: [
            c.id_range for c in self.store.all() if c.id_range is not None])
        try:
            files = write_container_files(cdir, cfg.hostname, host)
            rec = ContainerRecord(
                id=cid, name=name, created=now_rfc3339(), image_id=image_id,
                image_ref=opts.config.image, config=cfg, host_config=host, path=path, args=args,
                platform=image_config.get("os", "linux") or "linux", runtime=runtime,
                snapshot_key=key, bundle=str(cdir),
                # the "none" driver keeps nothing: no file, an empty LogPath (as dockerd shows it)
                log_path="" if host.log_config.type == "none" else str(cdir / f"{cid}-json.log"),
                hostname_path=str(files["hostname"]), hosts_path=str(files["hosts"]),
                resolv_conf_path=str(files["resolv.conf"]), mounts=mounts, networks=networks,
                id_range=id_range)
            if id_range is not None:  # root inside may rewrite /etc/hosts, as without a userns
                for f in files.values():
                    os.chown(f, id_range.host_uid, id_range.host_gid)
                os.chown(cdir, 0, id_range.host_gid)  # 0710: only its root may reach the bundle
            self.store.insert(rec)
        except BaseException:
            shutil.rmtree(cdir, ignore_errors=True)
            with contextlib.suppress(DockyardError, OSError):
                initlayer.remove(self.snapshots, key)
            if self.volumes is not None:  # anonymous volumes made for this container go too
                self.volumes.remove_anonymous(ContainerRecord(
                    id=cid, name=name, created="", image_id="", image_ref="", config=cfg, host_config=host,
                    mounts=mounts))
            raise
        self.emit(rec, "create")
        return cid, warnings

    # -- start ------------------------------------------------------------------------------
    async def start(self, ref: str) -> None:
        rec = self.store.get(ref)
        async with self.lock(rec.id):
            rec = self.store.get(rec.id)
            if rec.state.status == "paused":
                raise Conflict("cannot start a paused container, try unpause instead")
            if rec.state.running:
                raise NotModified(f"container {rec.id} is already running")
            if rec.state.status in ("removing", "dead"):
                raise Conflict(f"cannot start container {rec.id}: container is marked for removal")
            self._reset_restart_manager(rec, reset_count=True)
            await self._start_locked(rec)

    async def _start_locked(self, rec: ContainerRecord) -> None:
        cdir = self.cdir(rec.id)
        rootfs = cdir / "rootfs"
        rootfs.mkdir(exist_ok=True)
        unmount_all(rootfs, detach=True)
        shim = None
        try:
            userns.mount_rootfs(self.snapshots.mounts(rec.snapshot_key), rootfs, rec.id_range)
            user = resolve_user(rootfs, rec.config.user, rec.host_config.group_add)
            for mp in rec.mounts:  # Docker creates a missing bind source directory
                if mp.type == "bind" and not os.path.lexists(mp.source):
                    try:
                        os.makedirs(mp.source, 0o755, exist_ok=True)
                    except OSError as exc:
                        raise InvalidArgument(f"error while creating mount source path "
                                              f"'{mp.source}': {exc.strerror}") from exc
            if rec.config.working_dir:
                make_dirs(rootfs, rec.config.working_dir, *userns.host_ids(rec.id_range, user.uid, user.gid))
            if self.volumes is not None and self.volumes.has_work(rec):
                await asyncio.get_running_loop().run_in_executor(None, self.volumes.before_start, rec, rootfs)
            if self.endpoints is not None:
                self.endpoints.prepare(rec)
            spec = build_spec(rec, rootfs=rootfs, user=user,
                              cgroup_parent=cgroup_parent_of(rec, self.config.cgroup_parent),
                              joined=self._joined_namespaces(rec))
            # not fsynced: it is written afresh before every start and read only by the runtime
            # and execs of this run (compact: json's C encoder, not its Python indenting one)
            atomic_write(cdir / "config.json", json.dumps(spec, separators=(",", ":")), durable=False)
            state_dir = self.state_dir(rec.id)
            shims.remove_state_dir(state_dir)
            state_dir.mkdir(parents=True, mode=0o700)
            log_cfg = rec.host_config.log_config.config
            try:
                shim = await shims.spawn(
                    container_id=rec.id, bundle=cdir, state_dir=state_dir,
                    runtime=self.runtime_path(rec.runtime), runtime_root=self.runtime_root(rec.runtime),
                    log_path=rec.log_path,
                    log_max_size=log_size(log_cfg.get("max-size") or "0") or self.config.log_max_size,
                    log_max_file=int(log_cfg.get("max-file") or self.config.log_max_file),
                    tty=rec.config.tty, stdin=rec.config.open_stdin,
                    console_size=rec.host_config.console_size)
            except DockyardError as exc:
                raise _start_error(str(exc)) from exc
            if self.endpoints is not None:
                await self.endpoints.plumb(rec, shim.pid)
            for session in self.pending_attach.pop(rec.id, []):
                session.connect(await shim.attach(stdin=session.want_stdin, stdout=session.want_stdout,
                                                  stderr=session.want_stderr, stdin_once=session.stdin_once))
            started_at = now_rfc3339()
            await shim.start()
            # the init's pid came with the shim's ready record; ask only a shim that did not say
            pid = shim.pid or int((await shim.state()).get("pid", 0))
        except BaseException as exc:
            code = getattr(exc, "exit_code", None)
            if shim is not None:
                with contextlib.suppress(Exception):
                    await shim.kill(signal=int(_signal.SIGKILL), all=True)
                with contextlib.suppress(Exception):
                    await shim.delete()
            shims.remove_state_dir(self.state_dir(rec.id))
            with contextlib.suppress(DockyardError):
                unmount_all(rootfs, detach=True)
            if self.endpoints is not None:
                await self.endpoints.teardown(rec)
            for session in self.pending_attach.pop(rec.id, []):
                session.end()
            if isinstance(exc, DockyardError):
                rec.state.error = str(exc)
                rec.state.exit_code = int(code) if code is not None else 128
                self.store.save(rec)
                # As dockerd: a failed start answers next-exit waiters and honours AutoRemove
                # (the docker CLI's `run --rm` waits for `removed` after a start error).
                for fut in self._exit_waiters.pop(rec.id, []):
                    if not fut.done():
                        fut.set_result((rec.state.exit_code, rec.state.error))
                if rec.host_config.auto_remove:
                    task = asyncio.get_running_loop().create_task(self._auto_remove(rec.id))
                    self._background.add(task)
                    task.add_done_callback(self._background.discard)
            raise
        rec.state.status = "running"
        rec.state.pid = pid
        rec.state.exit_code = 0
        rec.state.error = ""
        rec.state.oom_killed = False
        rec.state.started_at = started_at
        rec.manually_stopped = False
        rec.rootfs = str(rootfs)
        self.store.save(rec)
        run = Running(shim=shim)
        self.running[rec.id] = run
        run.monitor = asyncio.create_task(self._monitor(rec.id, run), name=f"monitor-{rec.id[:12]}")
        self.emit(rec, "start")
        for hook in self.on_start:
            hook(rec.id)

    def _joined_namespaces(self, rec: ContainerRecord) -> dict[str, int]:
        """``container:<ref>`` network/pid/ipc modes: the target must be running."""
        host = rec.host_config
        joined: dict[str, int] = {}
        for kind, mode in (("network", host.network_mode), ("pid", host.pid_mode), ("ipc", host.ipc_mode)):
            if not mode.startswith("container:"):
                continue
            target = self.store.get(mode.split(":", 1)[1])
            if target.id == rec.id:
                raise InvalidArgument(f"cannot join own {kind} namespace")
            if not target.state.running or not target.state.pid:
                raise Conflict(f"cannot join {kind} namespace of a non running container: "
                               f"container {target.id} is not running")
            joined[kind] = target.state.pid
            if kind == "network":
                joined["uts"] = target.state.pid  # Docker shares the hostname with the network
        return joined

    # -- monitor ----------------------------------------------------------------------------
    async def _monitor(self, cid: str, run: Running) -> None:
        try:
            info = await run.shim.wait()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # shim died under us: use its exit file if it wrote one
            log.warning("wait on shim of %s failed: %s", cid[:12], exc)
            info = shims.read_exit(self.state_dir(cid)) or {"exit_code": 255}
        await self._handle_exit(cid, run, dict(info or {}))

    async def _handle_exit(self, cid: str, run: Running | None, info: dict[str, Any]) -> None:
        async with self.lock(cid):  # a pending restart starts only once this exit is recorded
            try:
                rec = self.store.get(cid)
            except NotFound:
                return
            code = int(info.get("exit_code", 255))
            for hook in self.on_exit:
                hook(cid)
            rec.state.exit_code = code
            rec.state.pid = 0
            rec.state.oom_killed = bool(info.get("oom_killed", False))
            rec.state.finished_at = _exited_at(info.get("exited_at"))
            delay = self._decide_restart(rec)  # status: restarting or exited
            rec.rootfs = ""
            # the runtime's delete (in the shim) runs beside the network teardown, whose veth
            # deletion mostly waits in the kernel (an RCU grace period, ~10 ms)
            deleted = (asyncio.get_running_loop().create_task(run.shim.delete())
                       if run is not None and self.endpoints is not None else None)
            if self.endpoints is not None:
                try:
                    await self.endpoints.teardown(rec)
                finally:
                    if deleted is not None and not deleted.done():
                        await asyncio.wait([deleted])
            if self.volumes is not None:
                self.volumes.after_stop(rec)
            self.store.save(rec)
            if rec.state.oom_killed:
                self.emit(rec, "oom")
            self.emit(rec, "die", {"exitCode": str(code), "execDuration": str(int(ran_for(rec)))})
            if run is not None:
                with contextlib.suppress(Exception):
                    await (deleted if deleted is not None else run.shim.delete())
            shims.remove_state_dir(self.state_dir(cid))
            with contextlib.suppress(DockyardError):
                unmount_all(self.cdir(rec.id) / "rootfs", detach=True)
            self.running.pop(cid, None)
            if run is not None:
                run.exited.set()
            for fut in self._exit_waiters.pop(cid, []):
                if not fut.done():
                    fut.set_result((code, ""))
            if delay is not None:
                self._schedule_restart(rec, delay)
        if rec.host_config.auto_remove:
            with contextlib.suppress(DockyardError):
                await self.remove(cid, force=True, volumes=True)

    async def _auto_remove(self, cid: str) -> None:
        with contextlib.suppress(DockyardError):
            await self.remove(cid, force=True, volumes=True)

    async def close(self) -> None:
        """Stop watching; the containers and their shims keep running."""
        self._closing = True
        self._drop_restart_managers()
        for run in list(self.running.values()):
            if run.monitor is not None:
                run.monitor.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await run.monitor
        self.running.clear()
        for waiters in list(self._exit_waiters.values()) + list(self._remove_waiters.values()):
            for fut in waiters:
                fut.cancel()
        await shims.close_host()


def _exited_at(value: Any) -> str:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, (int, float)) and value > 0:
        from dockyard.shim.jsonlog import format_time
        return format_time(int(value * 1e9))
    return now_rfc3339()


class StartError(InvalidArgument):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _start_error(message: str) -> DockyardError:
    """Docker's translation of runtime start failures (exit code 127 / 126)."""
    text = f"failed to create task for container: {message}: unknown"
    low = message.lower()
    if "executable file not found" in low or "no such file or directory" in low:
        return StartError(text, 127)
    if "permission denied" in low:
        return StartError(text, 126)
    err = Internal(text)
    return err
