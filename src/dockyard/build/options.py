"""What a build is asked to do, what it needs from the engine, and how it reports progress."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from dockyard.build.state import State
from dockyard.build.trees import Tree
from dockyard.errors import DockyardError

# Docker's predefined ARGs: usable with --build-arg without an ARG line, kept out of history.
PROXY_ARGS = frozenset({"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
                        "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"})


class BuildFailed(DockyardError):
    """A step failed (a RUN's non-zero exit, a missing COPY source, ...); ``code`` is the exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class BuildOptions:
    context: Tree                       # the build context (already filtered by .dockerignore)
    dockerfile: str                     # the Dockerfile's text
    dockerfile_name: str = "Dockerfile"
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str | None] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    cache_from: list[str] = field(default_factory=list)
    network_mode: str = "default"
    extra_hosts: list[str] = field(default_factory=list)
    shm_size: int = 0
    platform: str = ""
    quiet: bool = False
    pull: bool = False                  # --pull: refresh base images from their registry


@dataclass
class RunSpec:
    argv: list[str]
    env: list[str]
    user: str
    workdir: str
    network: str
    extra_hosts: list[str]
    shm_size: int
    binds: list[str]                    # "src:dst[:ro]" host bind mounts (cache, bind and secret mounts)
    tmpfs: dict[str, str]
    stdin: bytes | None = None


@dataclass
class RunResult:
    container_id: str
    exit_code: int
    upper: Path                         # the container's writable layer (valid until cleanup)


class Executor(Protocol):
    """The engine side of a build: base images and RUN containers."""

    async def base(self, ref: str) -> State: ...

    async def run(self, state: State, spec: RunSpec, output: Callable[[bytes], None],
                  created: Callable[[str], None]) -> RunResult:
        """Create the container (``created(id)`` then), run it to its end, return its upper dir."""
        ...

    async def cleanup(self, container_id: str) -> None: ...


class Progress(Protocol):
    def stream(self, text: str) -> None: ...

    def aux(self, data: dict[str, object]) -> None: ...
