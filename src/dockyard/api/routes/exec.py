"""``/containers/{id}/exec`` and ``/exec/{id}/...``."""

from __future__ import annotations

from aiohttp import web

from dockyard.api import models
from dockyard.api.routes.common import Routes, body_json, call, engine, json_response, qint
from dockyard.api.streams import MULTIPLEXED, RAW, frame, hijack, parse_detach_keys, pump
from dockyard.errors import DockyardError


async def create(request: web.Request) -> web.Response:
    config = models.parse_exec(await body_json(request, "exec create body"))
    exec_id = await call(engine(request).create_exec, request.match_info["id"], config)
    return json_response({"Id": exec_id}, status=201)


async def start(request: web.Request) -> web.StreamResponse:
    """Docker's order: an unknown exec is a plain 404, then the connection is hijacked and only
    then the process starts, so its first output never races the upgrade response (clients such
    as the docker SDK read the headers through a buffer and drop bytes that arrive with them).
    A failure to start is written into the stream, as dockerd does."""
    exec_id = request.match_info["id"]
    detach, tty = models.parse_exec_start(await body_json(request, "exec start body"))
    if detach:
        await call(engine(request).start_exec, exec_id, True)
        return web.Response(status=200)
    record = await call(engine(request).exec_inspect, exec_id)
    raw = tty or record.config.tty
    conn = await hijack(request, RAW if raw else MULTIPLEXED)
    try:
        session = await call(engine(request).start_exec, exec_id, False)
    except DockyardError as exc:
        message = f"{exc}\r\n".encode()
        await conn.write(message if raw else frame(1, message))  # on stdout, framed as dockerd does
        return conn.response
    if session is not None:
        # Docker applies the default detach keys to exec sessions too.
        await pump(session, conn, parse_detach_keys(""), True)
    return conn.response


async def resize(request: web.Request) -> web.Response:
    await call(engine(request).resize_exec, request.match_info["id"], qint(request, "h", 0), qint(request, "w", 0))
    return web.Response(status=200)


async def inspect(request: web.Request) -> web.Response:
    return json_response(models.render_exec(await call(engine(request).exec_inspect, request.match_info["id"])))


ROUTES: Routes = [
    ("POST", "/containers/{id}/exec", create),
    ("POST", "/exec/{id}/start", start),
    ("POST", "/exec/{id}/resize", resize),
    ("GET", "/exec/{id}/json", inspect),
]
