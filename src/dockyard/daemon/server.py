"""Runs the daemon: data-root lock, engine, listeners, pidfile, signal-driven clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from dockyard.api.app import build_app
from dockyard.daemon import systemd
from dockyard.daemon.config import DaemonConfig, Listener
from dockyard.daemon.reload import reload_config
from dockyard.daemon.tlsrelay import TLSRelaySite
from dockyard.errors import FailedPrecondition, InvalidArgument

log = logging.getLogger("dockyard.daemon")


class DataRootLock:
    """flock on ``<data-root>/dockyardd.lock`` holding our pid: one daemon per data root."""

    def __init__(self, data_root: Path) -> None:
        self.path = data_root / "dockyardd.lock"
        self.data_root = data_root
        self.fd = -1

    def acquire(self) -> None:
        self.data_root.mkdir(parents=True, exist_ok=True, mode=0o710)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise FailedPrecondition(
                f"another dockyardd (pid {holder}) is using data root {self.data_root}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd >= 0:
            os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing drops the flock
            self.fd = -1


def ssl_context(cfg: DaemonConfig) -> ssl.SSLContext | None:
    if not cfg.tls:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(cfg.tlscert, cfg.tlskey)
        if cfg.tlsverify:
            ctx.load_verify_locations(cfg.tlscacert)
            ctx.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise InvalidArgument(f"could not load TLS material: {exc}") from exc
    return ctx


def _prepare_unix_path(path: Path) -> None:
    """Create the socket's parent (0711) and clear a stale socket, but never steal a live one."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o711)
    if path.exists() or path.is_symlink():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()
        else:
            raise FailedPrecondition(f"socket {path} is in use by another process")
        finally:
            probe.close()


def write_pidfile(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o711)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{os.getpid()}\n")
    os.replace(tmp, path)


async def serve(cfg: DaemonConfig) -> None:
    """Run until SIGTERM/SIGINT; SIGHUP reloads the configuration. Containers keep running after
    we return (live restore) unless it is turned off."""
    from dockyard.engine.engine import Engine, EngineConfig

    passed = systemd.claim_environment()
    lock = DataRootLock(cfg.data_root)
    lock.acquire()
    created: list[Path] = []
    try:
        ctx = ssl_context(cfg)
        engine = await Engine.open(EngineConfig(
            data_root=cfg.data_root, exec_root=cfg.exec_root, default_runtime=cfg.default_runtime,
            runtimes=dict(cfg.runtimes), log_max_size=cfg.log_max_size, log_max_file=cfg.log_max_file,
            insecure_registries=list(cfg.insecure_registries), registry_mirrors=list(cfg.registry_mirrors),
            default_registry=cfg.default_registry, bridge=cfg.bridge,
            firewall_table=cfg.firewall_table, userns_remap=cfg.userns_remap,
            address_pools=list(cfg.address_pools), live_restore=cfg.live_restore))
        try:
            runner = web.AppRunner(build_app(engine, cfg.data_root), handler_cancellation=True,
                                   shutdown_timeout=2.0, access_log=None)
            await runner.setup()
            try:
                # The engine is open before any socket exists: a connect succeeds only when ready.
                for host in cfg.hosts:
                    created += await _listen(runner, host, ctx, cfg, passed)
                _warn_about_exposure(cfg)
                write_pidfile(cfg.pidfile)
                created.append(cfg.pidfile)
                log.info("API listen on %s", ", ".join(str(h) for h in cfg.hosts))
                systemd.notify("READY=1", f"MAINPID={os.getpid()}", "STATUS=API listening")
                await _wait_for_signal(lambda: _reload(cfg, engine))
                systemd.notify("STOPPING=1")
                if cfg.live_restore:
                    log.info("shutting down: containers keep running")
                else:
                    await _stop_containers(engine)
            finally:
                await runner.cleanup()
        finally:
            await engine.close()
    finally:
        for path in created:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        lock.release()


def _warn_about_exposure(cfg: DaemonConfig) -> None:
    """Say who can reach the API: the socket group, and every TCP listener without client certificates."""
    if any(h.scheme == "unix" for h in cfg.hosts):
        if cfg.socket_gid is not None:
            log.info("API socket group: %s (gid %d): its members have root-equivalent access",
                     cfg.group or "-", cfg.socket_gid)
        elif cfg.group:
            log.info("group %s does not exist: the API socket is root only (root:root 0660)", cfg.group)
    if cfg.tlsverify:
        return
    for host in cfg.hosts:
        if host.scheme == "tcp":  # off-loopback without --tlsverify was refused by check_tls
            log.warning("API listens on %s without TLS client verification: any user or process on this "
                        "host can connect and gets root-equivalent control; use the unix socket or --tlsverify",
                        host)


def _reload(cfg: DaemonConfig, engine: object) -> None:
    systemd.notify("RELOADING=1", systemd.monotonic_usec())
    try:
        reload_config(cfg, engine)
    finally:
        systemd.notify("READY=1")


async def _stop_containers(engine: Any) -> None:
    """live-restore off: stop every running container (each with its own stop timeout) first."""
    running = [r.id for r in engine.store.all() if r.state.running]
    log.info("shutting down: live-restore is off, stopping %d container(s)", len(running))
    results = await asyncio.gather(*(engine.stop_container(cid) for cid in running), return_exceptions=True)
    for cid, res in zip(running, results, strict=True):
        if isinstance(res, BaseException):
            log.warning("could not stop container %s: %s", cid[:12], res)


def _activated(runner: web.AppRunner, host: Listener, ctx: ssl.SSLContext | None, cfg: DaemonConfig,
               passed: list[int]) -> list[web.BaseSite]:
    sites: list[web.BaseSite] = []
    for sock in systemd.activated_sockets(host.address, passed):
        if sock.family != socket.AF_UNIX:
            if ctx is not None:
                raise InvalidArgument("TLS on a socket-activated TCP socket is not supported: listen with "
                                      "-H tcp://HOST:PORT instead")
            if not systemd.is_loopback(sock) and not cfg.tlsverify:
                raise InvalidArgument(f"refusing to serve activated socket {sock.getsockname()} without TLS: "
                                      "anyone who can reach it gets root on this host")
        sites.append(web.SockSite(runner, sock))
    return sites


async def _listen(runner: web.AppRunner, host: Listener, ctx: ssl.SSLContext | None,
                  cfg: DaemonConfig, passed: list[int]) -> list[Path]:
    gid = cfg.socket_gid
    if host.scheme == "fd":  # systemd bound them (and owns their paths and modes)
        for site in _activated(runner, host, ctx, cfg, passed):
            await site.start()
        return []
    if host.scheme == "unix":
        path = Path(host.address)
        _prepare_unix_path(path)
        old = os.umask(0o117)  # born 0660: never world-connectable, even for an instant
        try:
            await web.UnixSite(runner, str(path)).start()
        finally:
            os.umask(old)
        try:
            if gid is not None:
                os.chown(path, -1, gid)  # root:<group> (the daemon is root), still 0660
            os.chmod(path, 0o660)
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise FailedPrecondition(f"cannot set owner/mode of API socket {path}: {exc.strerror}") from exc
        return [path]
    if ctx is not None:  # TLS terminated by the relay: hijacked streams keep their half-close
        await TLSRelaySite(runner, host.address, host.port, ctx).start()
    else:
        await web.TCPSite(runner, host.address, host.port).start()
    return []


async def _wait_for_signal(on_hangup: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
