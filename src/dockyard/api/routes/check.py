"""``POST /system/check`` (dockyard's own; Docker has none): verify the store, optionally repair."""

from __future__ import annotations

from aiohttp import web

from dockyard.api.routes.common import Routes, call, engine, json_response, qbool


async def system_check(request: web.Request) -> web.Response:
    findings = await call(engine(request).system_check, qbool(request, "repair"))
    return json_response({"Findings": [
        {"Kind": f.kind, "Subject": f.subject, "Problem": f.problem, "Repaired": f.repaired}
        for f in findings]})


ROUTES: Routes = [
    ("POST", "/system/check", system_check),
]
