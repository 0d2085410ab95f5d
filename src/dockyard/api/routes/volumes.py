"""``/volumes``: list, create, inspect, remove, prune."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from dockyard.api.routes.common import Routes, body_json, engine, json_response, no_content, qbool, qfilters
from dockyard.api.validate import Fields
from dockyard.engine.types import VolumeRecord


def render_volume(eng: Any, vol: VolumeRecord, usage: tuple[int, int] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "CreatedAt": vol.created[:19] + "Z" if vol.created else "", "Driver": vol.driver,
        "Labels": vol.labels or None, "Mountpoint": str(eng.volumes.mountpoint(vol.name)), "Name": vol.name,
        "Options": vol.options or None, "Scope": "local",
    }
    if usage is not None:
        out["UsageData"] = {"Size": usage[0], "RefCount": usage[1]}
    return out


async def list_volumes(request: web.Request) -> web.Response:
    eng = engine(request)
    vols = eng.volumes.list(qfilters(request))
    return json_response({"Volumes": [render_volume(eng, v) for v in vols], "Warnings": None})


async def create(request: web.Request) -> web.Response:
    f = Fields(await body_json(request, "volume create request"), "VolumeCreateRequest")
    eng = engine(request)
    vol = await asyncio.to_thread(eng.volumes.create, f.text("Name"), f.text("Driver"),
                                  f.str_map("DriverOpts"), f.str_map("Labels"))
    return json_response(render_volume(eng, vol), status=201)


async def inspect(request: web.Request) -> web.Response:
    eng = engine(request)
    return json_response(render_volume(eng, eng.volumes.get(request.match_info["name"])))


async def remove(request: web.Request) -> web.Response:
    await asyncio.to_thread(engine(request).volumes.remove, request.match_info["name"], qbool(request, "force"))
    return no_content()


async def prune(request: web.Request) -> web.Response:
    deleted, reclaimed = await asyncio.to_thread(engine(request).volumes.prune, qfilters(request))
    return json_response({"VolumesDeleted": deleted or None, "SpaceReclaimed": reclaimed})


ROUTES: Routes = [
    ("GET", "/volumes", list_volumes),
    ("POST", "/volumes/create", create),
    ("POST", "/volumes/prune", prune),
    ("GET", "/volumes/{name}", inspect),
    ("DELETE", "/volumes/{name}", remove),
]
