"""``POST /commit``, ``GET /containers/{id}/changes`` and ``GET /containers/{id}/export``."""

from __future__ import annotations

from aiohttp import web

from dockyard.api import models
from dockyard.api.routes.common import (
    Routes,
    aiterate,
    call,
    engine,
    first_item,
    json_response,
    qbool,
    qstr,
    send_stream,
)
from dockyard.api.validate import Fields, decode_json_object
from dockyard.engine.commit import CommitOptions


async def commit(request: web.Request) -> web.Response:
    raw = await request.read()
    body = decode_json_object(raw, "commit body")
    # an empty or null body means "the container's own config"; {} is merged the same way
    config = models.parse_config(Fields(body, "Config")) if raw.strip() not in (b"", b"null") else None
    repo, tag = qstr(request, "repo"), qstr(request, "tag")  # a tag without repo is ignored (moby)
    opts = CommitOptions(container=qstr(request, "container"), repo=repo, tag=tag,
                         comment=qstr(request, "comment"), author=qstr(request, "author"),
                         pause=qbool(request, "pause", True), changes=request.query.getall("changes", []),
                         config=config)
    image_id = await call(engine(request).commit_container, opts)
    return json_response({"Id": image_id}, status=201)


async def changes(request: web.Request) -> web.Response:
    items = await call(engine(request).container_changes, request.match_info["id"])
    return json_response([{"Path": c.path, "Kind": c.kind} for c in items] or None)


async def export(request: web.Request) -> web.StreamResponse:
    chunks = aiterate(engine(request).export_container(request.match_info["id"]))
    first = await first_item(chunks, b"")  # errors (404, mount failure) before the headers go out
    return await send_stream(request, chunks, {"Content-Type": "application/x-tar"}, first)


ROUTES: Routes = [
    ("POST", "/commit", commit),
    ("GET", "/containers/{id}/changes", changes),
    ("GET", "/containers/{id}/export", export),
]
