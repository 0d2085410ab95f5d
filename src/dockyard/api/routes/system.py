"""``/_ping``, ``/version``, ``/info``, ``/events``."""

from __future__ import annotations

from aiohttp import web

from dockyard.api.models_images import render_event, render_info, render_version
from dockyard.api.routes.common import Routes, aiterate, call, engine, json_response, qfilters
from dockyard.api.streams import json_line
from dockyard.api.timefmt import parse_time_param

_PING_HEADERS = {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache",
                 "Builder-Version": "1"}


async def ping(request: web.Request) -> web.Response:
    body = b"" if request.method == "HEAD" else b"OK"
    headers = dict(_PING_HEADERS)
    if request.method == "HEAD":
        headers["Content-Length"] = "0"
    return web.Response(body=body, headers=headers, content_type="text/plain", charset="utf-8")


async def version(request: web.Request) -> web.Response:
    return json_response(render_version(await call(engine(request).version)))


async def info(request: web.Request) -> web.Response:
    return json_response(render_info(await call(engine(request).info)))


async def events(request: web.Request) -> web.StreamResponse:
    since = parse_time_param(request.query["since"], "since") if request.query.get("since") else None
    until = parse_time_param(request.query["until"], "until") if request.query.get("until") else None
    stream = engine(request).events(since, until, qfilters(request))
    items = aiterate(stream)
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    # Docker sends the headers at once so clients know the subscription is live.
    await resp.prepare(request)
    try:
        async for event in items:
            await resp.write(json_line(render_event(event)))
    finally:
        await items.aclose()
    return resp


ROUTES: Routes = [
    ("GET", "/_ping", ping),
    ("HEAD", "/_ping", ping),
    ("GET", "/version", version),
    ("GET", "/info", info),
    ("GET", "/events", events),
]
