"""``/_ping``, ``/version``, ``/info``, ``/events``, ``/system/df``."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from dockyard.api.models_images import render_event, render_info, render_version
from dockyard.api.routes.common import Routes, aiterate, call, engine, json_response, qfilters
from dockyard.api.streams import json_line
from dockyard.engine.events import Subscription, event_window
from dockyard.errors import InvalidArgument

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


_SEQ_TYPES = ("application/x-ndjson", "application/json-seq")


async def events(request: web.Request) -> web.StreamResponse:
    since, until = event_window(request.query.get("since", ""), request.query.get("until", ""))
    stream = engine(request).events(since, until, qfilters(request))
    accept = request.headers.get("Accept", "")
    # as dockerd: NDJSON or JSON text sequences on request, else the historical application/json
    media = next((t for t in _SEQ_TYPES if t in accept), "application/json")
    prefix = b"\x1e" if media == "application/json-seq" else b""
    writing = False

    def dropped() -> None:
        # The bus dropped this subscriber for falling behind. If we are stuck writing, the client
        # is not reading: abort the connection rather than wait on it (the stream ends either way).
        if writing and request.transport is not None:
            request.transport.abort()

    if isinstance(stream, Subscription):
        stream.on_drop = dropped
    items = aiterate(stream)
    resp = web.StreamResponse(headers={"Content-Type": media})
    # Docker sends the headers at once so clients know the subscription is live.
    await resp.prepare(request)
    try:
        async for event in items:
            writing = True
            await resp.write(prefix + json_line(render_event(event)))
            writing = False
    except ConnectionError:
        pass        # the client went away, or was dropped above
    finally:
        await items.aclose()
    return resp


def _rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e9):09d}Z"


async def disk_usage(request: web.Request) -> web.Response:
    from dockyard.api.models import render_summary
    from dockyard.api.models_images import render_image_summary

    types = set(request.query.getall("type", []))
    bad = types - {"container", "image", "volume", "build-cache"}
    if bad:
        raise InvalidArgument(f"invalid type: {sorted(bad)[0]}")
    du = await call(engine(request).disk_usage, types)
    body: dict[str, Any] = {}
    if not types or "image" in types:
        body["LayersSize"] = du.layers_size
        body["Images"] = [render_image_summary(i) for i in du.images]
    if not types or "container" in types:
        body["Containers"] = [{**render_summary(rec), "SizeRw": size, "SizeRootFs": size}
                              for rec, size in du.containers]
    if not types or "volume" in types:
        from dockyard.api.routes.volumes import render_volume
        eng = engine(request)
        body["Volumes"] = [render_volume(eng, v, u) for v, u in du.volumes]
    if not types or "build-cache" in types:
        body["BuildCache"] = [{
            "ID": b.id, "Parent": b.parent, "Parents": [b.parent], "Type": "regular",
            "Description": b.description, "InUse": b.in_use, "Shared": False, "Size": b.size,
            "CreatedAt": _rfc3339(b.created), "LastUsedAt": _rfc3339(b.last_used), "UsageCount": 1,
        } for b in du.build_cache]
    return json_response(body)


ROUTES: Routes = [
    ("GET", "/_ping", ping),
    ("HEAD", "/_ping", ping),
    ("GET", "/version", version),
    ("GET", "/info", info),
    ("GET", "/events", events),
    ("GET", "/system/df", disk_usage),
]
