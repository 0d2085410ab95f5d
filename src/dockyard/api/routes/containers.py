"""``/containers/...``: one engine call per handler, rendered as Docker JSON."""

from __future__ import annotations

import json
import re

from aiohttp import web

from dockyard.api import models
from dockyard.api.routes.common import (
    Routes,
    aiterate,
    body_json,
    call,
    engine,
    json_response,
    no_content,
    qbool,
    qfilters,
    qint,
    qopt_int,
    qstr,
)
from dockyard.api.streams import MULTIPLEXED, RAW, WebSocketConn, frame, hijack, parse_detach_keys, pump
from dockyard.api.timefmt import parse_time_param
from dockyard.engine.types import ListOptions, LogsOptions
from dockyard.errors import InvalidArgument

_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_WAIT_CONDITIONS = ("not-running", "next-exit", "removed")


def _id(request: web.Request) -> str:
    return request.match_info["id"]


async def list_containers(request: web.Request) -> web.Response:
    opts = ListOptions(all=qbool(request, "all"), limit=qint(request, "limit", -1),
                       size=qbool(request, "size"), filters=qfilters(request))
    records = await call(engine(request).list_containers, opts)
    return json_response([models.render_summary(r) for r in records])


async def create(request: web.Request) -> web.Response:
    name = qstr(request, "name")
    if name and not _NAME.match(name):
        raise InvalidArgument(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    opts = models.parse_create(await body_json(request, "container create body"), name.lstrip("/"),
                               qstr(request, "platform"))
    cid, warnings = await call(engine(request).create_container, opts)
    return json_response({"Id": cid, "Warnings": list(warnings)}, status=201)


async def inspect(request: web.Request) -> web.Response:
    return json_response(models.render_inspect(await call(engine(request).get_container, _id(request))))


async def start(request: web.Request) -> web.Response:
    await call(engine(request).start_container, _id(request))
    return no_content()


async def stop(request: web.Request) -> web.Response:
    await call(engine(request).stop_container, _id(request), qopt_int(request, "t"),
               qstr(request, "signal") or None)
    return no_content()


async def restart(request: web.Request) -> web.Response:
    await call(engine(request).restart_container, _id(request), qopt_int(request, "t"),
               qstr(request, "signal") or None)
    return no_content()


async def kill(request: web.Request) -> web.Response:
    await call(engine(request).kill_container, _id(request), qstr(request, "signal") or "KILL")
    return no_content()


async def wait(request: web.Request) -> web.StreamResponse:
    condition = qstr(request, "condition") or "not-running"
    if condition not in _WAIT_CONDITIONS:
        raise InvalidArgument(f"invalid condition: {condition!r} (expected one of {', '.join(_WAIT_CONDITIONS)})")
    eng = engine(request)
    # Resolve first so a bad reference is a plain 404; then send headers at once (clients wait on
    # them to know the wait is registered, e.g. `docker run` before it starts the container).
    ref = (await call(eng.get_container, _id(request))).id
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    try:
        code, error = await call(eng.wait_container, ref, condition)
        body = {"StatusCode": code, "Error": {"Message": error} if error else None}
    except Exception as exc:  # headers are gone: report in the body like moby does
        body = {"StatusCode": -1, "Error": {"Message": str(exc)}}
    await resp.write(json.dumps(body).encode() + b"\n")
    return resp


async def remove(request: web.Request) -> web.Response:
    if qbool(request, "link"):
        raise InvalidArgument("legacy links are not supported")
    await call(engine(request).remove_container, _id(request), qbool(request, "force"), qbool(request, "v"))
    return no_content()


def _logs_options(request: web.Request) -> LogsOptions:
    tail_raw = qstr(request, "tail", "all")
    try:
        tail = -1 if tail_raw in ("all", "") else int(tail_raw)
    except ValueError as exc:
        raise InvalidArgument(f"invalid value for tail: {tail_raw!r}") from exc
    opts = LogsOptions(
        follow=qbool(request, "follow"), stdout=qbool(request, "stdout"), stderr=qbool(request, "stderr"),
        since=parse_time_param(request.query["since"], "since") if request.query.get("since") else 0.0,
        until=parse_time_param(request.query["until"], "until") if request.query.get("until") else 0.0,
        timestamps=qbool(request, "timestamps"), tail=tail,
    )
    if not (opts.stdout or opts.stderr):
        raise InvalidArgument("Bad parameters: you must choose at least one stream")
    return opts


async def logs(request: web.Request) -> web.StreamResponse:
    opts = _logs_options(request)
    eng = engine(request)
    tty = (await call(eng.readable_logs, _id(request))).config.tty
    entries = aiterate(eng.logs(_id(request), opts))
    resp = web.StreamResponse(headers={"Content-Type": RAW if tty else MULTIPLEXED})
    await resp.prepare(request)
    try:
        async for entry in entries:
            data = entry.data
            if opts.timestamps:
                data = entry.time.encode() + b" " + data
            await resp.write(data if tty else frame(2 if entry.stream == "stderr" else 1, data))
    finally:
        await entries.aclose()
    return resp


async def attach(request: web.Request) -> web.StreamResponse:
    keys = parse_detach_keys(qstr(request, "detachKeys"))
    stdin = qbool(request, "stdin")
    session = await call(engine(request).attach, _id(request), stdin, qbool(request, "stdout"),
                         qbool(request, "stderr"), logs=qbool(request, "logs"), stream=qbool(request, "stream"))
    try:
        conn = await hijack(request, RAW if getattr(session, "tty", False) else MULTIPLEXED)
    except BaseException:
        await session.close()
        raise
    await pump(session, conn, keys, stdin)
    return conn.response


async def attach_ws(request: web.Request) -> web.StreamResponse:
    """``GET /containers/{id}/attach/ws``: attach over a websocket (web consoles use it)."""
    ws = web.WebSocketResponse()
    if not ws.can_prepare(request).ok:
        raise InvalidArgument("this endpoint speaks websocket: send an Upgrade: websocket request")
    keys = parse_detach_keys(qstr(request, "detachKeys"))
    stdin = qbool(request, "stdin")
    session = await call(engine(request).attach, _id(request), stdin, qbool(request, "stdout"),
                         qbool(request, "stderr"), logs=qbool(request, "logs"), stream=qbool(request, "stream"))
    try:
        await ws.prepare(request)
    except BaseException:
        await session.close()
        raise
    await pump(session, WebSocketConn(ws), keys, stdin, framed=False)
    await ws.close()
    return ws


async def resize(request: web.Request) -> web.Response:
    await call(engine(request).resize, _id(request), qint(request, "h", 0), qint(request, "w", 0))
    return web.Response(status=200)


async def top(request: web.Request) -> web.Response:
    titles, processes = await call(engine(request).top, _id(request), qstr(request, "ps_args") or "-ef")
    return json_response({"Titles": titles, "Processes": processes})


async def rename(request: web.Request) -> web.Response:
    name = qstr(request, "name")
    if not name:
        raise InvalidArgument("Neither old nor new names may be empty")
    if not _NAME.match(name):
        raise InvalidArgument(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    await call(engine(request).rename, _id(request), name.lstrip("/"))
    return no_content()


async def pause(request: web.Request) -> web.Response:
    await call(engine(request).pause, _id(request))
    return no_content()


async def unpause(request: web.Request) -> web.Response:
    await call(engine(request).unpause, _id(request))
    return no_content()


async def update(request: web.Request) -> web.Response:
    resources, policy = models.parse_update(await body_json(request, "container update body"))
    warnings = await call(engine(request).update_container, _id(request), resources, policy)
    return json_response({"Warnings": list(warnings or [])})


async def prune(request: web.Request) -> web.Response:
    report = await call(engine(request).prune_containers, qfilters(request))
    return json_response({"ContainersDeleted": report.deleted or None, "SpaceReclaimed": report.space_reclaimed})


ROUTES: Routes = [
    ("GET", "/containers/json", list_containers),
    ("POST", "/containers/create", create),
    ("POST", "/containers/prune", prune),
    ("GET", "/containers/{id}/json", inspect),
    ("POST", "/containers/{id}/start", start),
    ("POST", "/containers/{id}/stop", stop),
    ("POST", "/containers/{id}/restart", restart),
    ("POST", "/containers/{id}/kill", kill),
    ("POST", "/containers/{id}/wait", wait),
    ("DELETE", "/containers/{id}", remove),
    ("GET", "/containers/{id}/logs", logs),
    ("POST", "/containers/{id}/attach", attach),
    ("GET", "/containers/{id}/attach/ws", attach_ws),
    ("POST", "/containers/{id}/resize", resize),
    ("GET", "/containers/{id}/top", top),
    ("POST", "/containers/{id}/rename", rename),
    ("POST", "/containers/{id}/pause", pause),
    ("POST", "/containers/{id}/unpause", unpause),
    ("POST", "/containers/{id}/update", update),
]
