"""``/images/...``. Image names hold ``/`` and ``:``, so their routes match ``{name:.+}``."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from aiohttp import web

from dockyard.api.models_images import (
    render_delete_items,
    render_history,
    render_image_inspect,
    render_image_summary,
)
from dockyard.api.routes.common import (
    Routes,
    call,
    engine,
    json_response,
    qbool,
    qfilters,
    qstr,
    spool_body,
    tmp_dir,
)
from dockyard.api.streams import json_line
from dockyard.errors import InvalidArgument

_CHUNK = 1 << 20


async def list_images(request: web.Request) -> web.Response:
    images = await call(engine(request).list_images, qbool(request, "all"), qfilters(request))
    return json_response([render_image_summary(i) for i in images])


async def inspect(request: web.Request) -> web.Response:
    return json_response(render_image_inspect(await call(engine(request).inspect_image, request.match_info["name"])))


async def history(request: web.Request) -> web.Response:
    return json_response(render_history(await call(engine(request).image_history, request.match_info["name"])))


async def tag(request: web.Request) -> web.Response:
    repo = qstr(request, "repo")
    if not repo:
        raise InvalidArgument("repository name must have at least one component")
    await call(engine(request).tag_image, request.match_info["name"], repo, qstr(request, "tag"))
    return web.Response(status=201)


async def remove(request: web.Request) -> web.Response:
    items = await call(engine(request).remove_image, request.match_info["name"], qbool(request, "force"),
                       qbool(request, "noprune"))
    return json_response(render_delete_items(items))


async def prune(request: web.Request) -> web.Response:
    report = await call(engine(request).prune_images, qfilters(request))
    deleted = [{"Deleted": d} for d in report.deleted]
    return json_response({"ImagesDeleted": deleted or None, "SpaceReclaimed": report.space_reclaimed})


async def load(request: web.Request) -> web.Response:
    path = await spool_body(request, "load-")
    try:
        messages = await call(engine(request).load_images, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    body = b"".join(json_line({"stream": m + "\n"}) for m in messages)
    return web.Response(body=body, content_type="application/json")


async def _send_archive(request: web.Request, names: list[str]) -> web.StreamResponse:
    if not names:
        raise InvalidArgument("no image names given to save")
    fd, name = tempfile.mkstemp(prefix="save-", suffix=".tar", dir=tmp_dir(request))
    os.close(fd)
    path = Path(name)
    try:
        await call(engine(request).save_images, names, path)
        resp = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
        resp.content_length = path.stat().st_size
        await resp.prepare(request)
        with path.open("rb") as src:
            while chunk := src.read(_CHUNK):
                await resp.write(chunk)
        return resp
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


async def get_many(request: web.Request) -> web.StreamResponse:
    return await _send_archive(request, request.query.getall("names", []))


async def get_one(request: web.Request) -> web.StreamResponse:
    return await _send_archive(request, [request.match_info["name"]])


async def create(request: web.Request) -> web.StreamResponse:
    """``fromImage`` pulls from a registry; ``fromSrc=-`` imports the request body as a rootfs."""
    if qstr(request, "fromImage"):
        from dockyard.api.routes.distribution import pull
        return await pull(request)
    src = qstr(request, "fromSrc")
    if src != "-":
        raise InvalidArgument("fromSrc must be '-' (importing from a URL is not supported)"
                              if src else "one of fromImage or fromSrc is required")
    path = await spool_body(request, "import-")
    try:
        image_id = await call(engine(request).import_image, path, qstr(request, "repo"), qstr(request, "tag"),
                              request.query.getall("changes", []), qstr(request, "message"))
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return web.Response(body=json_line({"status": image_id}), content_type="application/json")


ROUTES: Routes = [
    ("GET", "/images/json", list_images),
    ("POST", "/images/create", create),
    ("POST", "/images/load", load),
    ("GET", "/images/get", get_many),
    ("POST", "/images/prune", prune),
    ("GET", "/images/{name:.+}/json", inspect),
    ("GET", "/images/{name:.+}/history", history),
    ("GET", "/images/{name:.+}/get", get_one),
    ("POST", "/images/{name:.+}/tag", tag),
    ("DELETE", "/images/{name:.+}", remove),
]
