"""``POST /build`` (Docker's classic builder protocol) and ``POST /build/prune``.

The body is the context tar. Progress goes out as Docker's JSON stream (``{"stream": ...}``,
``{"aux": {"ID": ...}}``, ``{"errorDetail": ...}``); an error that happens before the first progress
line (a bad flag, an unparsable Dockerfile, a missing context file) is a plain HTTP error instead,
so clients print "Error response from daemon: ..." as they do with dockerd.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from dockyard.api.routes.common import (
    Routes,
    body_no_space,
    call,
    engine,
    json_response,
    qbool,
    qfilters,
    qstr,
    tmp_dir,
)
from dockyard.api.streams import stream_progress
from dockyard.api.validate import loads
from dockyard.build.context import StreamIndexer
from dockyard.build.options import BuildFailed, BuildOptions
from dockyard.errors import InvalidArgument, is_no_space
from dockyard.images.util import short_id
from dockyard.oci import reference


class EmitProgress:
    """The builder's progress as Docker's JSON messages."""

    def __init__(self, emit: Callable[[dict[str, Any]], None]) -> None:
        self.emit = emit

    def stream(self, text: str) -> None:
        self.emit({"stream": text})

    def aux(self, data: dict[str, object]) -> None:
        self.emit({"aux": data})


async def _spool_indexed(request: web.Request) -> tuple[Path, Any]:
    """The context body on disk, indexed while it arrives when it is a plain tar (see
    ``StreamIndexer``): the index is ready about when the last byte is."""
    tmp = tmp_dir(request)
    try:
        fd, name = tempfile.mkstemp(prefix="build-", suffix=".tar", dir=tmp)
    except OSError as exc:
        if is_no_space(exc):
            raise await body_no_space(request, tmp, exc) from exc
        raise
    indexer = StreamIndexer(Path(name), tmp)
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := await request.content.read(1 << 20):
                out.write(chunk)
                indexer.feed(chunk)
        return Path(name), await asyncio.to_thread(indexer.result)
    except BaseException as exc:
        tree = await asyncio.to_thread(indexer.result)
        if tree is not None:
            tree.close()
        Path(name).unlink(missing_ok=True)
        if is_no_space(exc):
            raise await body_no_space(request, tmp, exc) from exc
        raise


def _json_param(request: web.Request, name: str, kind: type) -> Any:
    raw = qstr(request, name)
    if not raw:
        return kind()
    value = loads(raw, f"{name} parameter")
    if not isinstance(value, kind):
        raise InvalidArgument(f"invalid {name} parameter: expected a JSON {kind.__name__}")
    return value


def build_options(request: web.Request) -> BuildOptions:
    if qstr(request, "remote"):
        raise InvalidArgument("remote build contexts are not supported; send the context as the body")
    if qstr(request, "version") == "2":
        raise InvalidArgument("BuildKit sessions are not supported: use the classic builder "
                              "(DOCKER_BUILDKIT=0)")
    args = _json_param(request, "buildargs", dict)
    labels = _json_param(request, "labels", dict)
    shm = qstr(request, "shmsize")
    try:
        shm_size = int(shm) if shm else 0
    except ValueError as exc:
        raise InvalidArgument(f"invalid shmsize: {shm}") from exc
    network = qstr(request, "networkmode") or "default"
    return BuildOptions(
        context=None,  # type: ignore[arg-type]  # set once the body is unpacked
        dockerfile="",
        dockerfile_name=qstr(request, "dockerfile") or "Dockerfile",
        tags=request.query.getall("t", []),
        build_args={str(k): (None if v is None else str(v)) for k, v in args.items()},
        labels={str(k): str(v) for k, v in labels.items()},
        target=qstr(request, "target") or None,
        no_cache=qbool(request, "nocache"),
        cache_from=list(_json_param(request, "cachefrom", list)),
        network_mode=network,
        extra_hosts=[h for h in qstr(request, "extrahosts").split(",") if h],
        shm_size=shm_size,
        platform=qstr(request, "platform"),
        quiet=qbool(request, "q"),
        pull=qbool(request, "pull"),
    )


async def build(request: web.Request) -> web.StreamResponse:
    opts = build_options(request)
    for tag in opts.tags:
        reference.parse(tag)  # "invalid reference format" before the body is even read
    body, indexed = await _spool_indexed(request)

    def done(image_id: str) -> list[dict[str, Any]]:
        lines: list[dict[str, Any]] = [{"aux": {"ID": image_id}}]
        if opts.quiet:
            return [*lines, {"stream": image_id + "\n"}]
        lines.append({"stream": f"Successfully built {short_id(image_id)}\n"})
        return lines + [{"stream": f"Successfully tagged {reference.parse(t).familiar()}\n"} for t in opts.tags]

    try:
        return await stream_progress(
            request, lambda emit: engine(request).build_image(body, opts, EmitProgress(emit), indexed),
            finish=done, streamed_errors=(BuildFailed,))
    finally:
        with contextlib.suppress(FileNotFoundError):
            body.unlink()


async def prune(request: web.Request) -> web.Response:
    report = await call(engine(request).prune_build_cache, qbool(request, "all"), qfilters(request))
    return json_response({"CachesDeleted": report.deleted or None, "SpaceReclaimed": report.space_reclaimed})


ROUTES: Routes = [
    ("POST", "/build", build),
    ("POST", "/build/prune", prune),
]

