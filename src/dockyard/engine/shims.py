"""The engine's view of shims: spawn one for a container, reconnect to one after a restart.

Everything the engine needs from ``dockyard.shim.client`` goes through here, so the protocol
details stay in one place.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.errors import DockyardError


def shim_argv() -> list[str]:
    """The ``dockyard-shim`` script next to our interpreter, else ``python -m dockyard.shim``."""
    script = Path(sys.executable).with_name("dockyard-shim")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "dockyard.shim.main"]


def find_runtime(name: str) -> str | None:
    local = Path(sys.executable).with_name(name)
    if local.exists():
        return str(local)
    return shutil.which(name)


def _client() -> Any:
    from dockyard.shim import client  # imported lazily: the shim package lands separately
    return client


# One shim host per event loop (asyncio pipes belong to the loop that made them).
_hosts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()


def _host() -> Any:
    """The loop's shim host (``shim.host``): every container's shim lives in that one process,
    so an idle container costs kilobytes instead of a Python process (``docs/shim-host.md``).
    Only with the in-tree shim, i.e. when the exec'd fallback runs the same code."""
    if os.environ.get("DOCKYARD_SHIM_HOST", "1") == "0":  # escape hatch: a process per shim
        return None
    loop = asyncio.get_running_loop()
    host = _hosts.get(loop)
    if host is None:
        host = _hosts[loop] = _client().ShimHost()
    return host


async def close_host() -> None:
    """Let go of this loop's shim host: it takes no new container and keeps serving its own."""
    host = _hosts.pop(asyncio.get_running_loop(), None)
    if host is not None:
        await host.close()


async def spawn(*, container_id: str, bundle: Path, state_dir: Path, runtime: str, runtime_root: Path,
                log_path: str, log_max_size: int, log_max_file: int, tty: bool, stdin: bool,
                console_size: tuple[int, int] | None) -> Any:
    """Start a shim (runs ``runtime create``); returns its client once ready. Errors from the
    runtime (bad executable, bad spec) surface as DockyardError with the runtime's message."""
    return await _client().spawn(
        shim_argv(), container_id, bundle, state_dir, runtime, runtime_root, log_path,
        log_max_size=log_max_size, log_max_file=log_max_file, tty=tty, stdin=stdin,
        console_size=console_size, host=_host())


def connect(state_dir: Path) -> Any:
    return _client().ShimClient(state_dir)


async def alive(shim: Any) -> bool:
    try:
        await asyncio.wait_for(shim.state(), 5)
        return True
    except (TimeoutError, DockyardError, OSError):
        return False


def read_exit(state_dir: Path) -> dict[str, Any] | None:
    try:
        info = _client().read_exit(state_dir)
    except (DockyardError, OSError, ValueError):
        return None
    return dict(info) if info is not None else None


def remove_state_dir(state_dir: Path) -> None:
    if state_dir.exists():
        shutil.rmtree(state_dir, ignore_errors=True)
    try:
        os.rmdir(state_dir)
    except OSError:
        pass


@dataclass
class Running:
    """In-memory state of a container with a shim."""
    shim: Any
    monitor: asyncio.Task[None] | None = None
    exited: asyncio.Event = field(default_factory=asyncio.Event)
