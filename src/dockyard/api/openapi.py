"""An OpenAPI 3 description of the endpoints dockyardd serves, generated from the aiohttp router.

The list of operations comes from the router itself (``served_endpoints``), so it cannot drift
from what the daemon answers; only the request parameters and bodies come from the table in
``api/openapi_params.py`` (field names and types as the handlers read them, which are Docker's).
Every route is served twice, bare and under ``/v{api_version}``; the description holds each once
(bare) and names the prefix in ``x-version-prefix``.

``served_endpoints`` is the reusable part: (method, path, handler) for every served route, e.g. to
compare dockyard's endpoints with Docker's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from dockyard.api.models_images import API_VERSION
from dockyard.api.openapi_params import OPERATIONS, Operation

VERSION_PREFIX = "/v{api_version}"
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}")


@dataclass(frozen=True)
class Endpoint:
    """One served route: ``path`` in OpenAPI form (``/containers/{id}/json``, regex parts dropped)."""
    method: str
    path: str
    handler: str  # "module.function", e.g. "dockyard.api.routes.containers.create"

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.path)

    @property
    def path_params(self) -> list[str]:
        return _PARAM.findall(self.path)


def _route_path(resource: Any) -> str:
    info = resource.get_info()
    raw = info.get("formatter") or info.get("path") or resource.canonical
    return _PARAM.sub(lambda m: "{" + m.group(1) + "}", raw)


def served_endpoints(app: web.Application | None = None) -> list[Endpoint]:
    """Every (method, path) the app routes, once: the ``/v{api_version}`` duplicates are dropped
    (each bare route has one). Without ``app``, a fresh ``build_app`` (no engine is needed to
    enumerate routes)."""
    if app is None:
        from dockyard.api.app import build_app
        app = build_app(None, Path("/nonexistent"))
    out: list[Endpoint] = []
    seen: set[tuple[str, str]] = set()
    for route in app.router.routes():
        path = _route_path(route.resource)
        if path.startswith(VERSION_PREFIX):
            continue
        handler = route.handler
        ep = Endpoint(route.method, path, f"{handler.__module__}.{getattr(handler, '__name__', repr(handler))}")
        if ep.key not in seen:
            seen.add(ep.key)
            out.append(ep)
    return out


def versioned_paths(app: web.Application | None = None) -> set[str]:
    """The paths served under the version prefix, with the prefix stripped (for checking that
    every bare route has its versioned twin)."""
    if app is None:
        from dockyard.api.app import build_app
        app = build_app(None, Path("/nonexistent"))
    out = set()
    for route in app.router.routes():
        path = _route_path(route.resource)
        if path.startswith(VERSION_PREFIX):
            out.add(path[len(VERSION_PREFIX):])
    return out


def _path_parameter(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}


def _operation(ep: Endpoint, spec: Operation | None) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": f"{ep.method.lower()}:{ep.path}",
        "x-handler": ep.handler,
        "responses": {"default": {"description": "Docker's response for this endpoint"}},
    }
    params = [_path_parameter(n) for n in ep.path_params]
    if spec is not None:
        params += [dict(p) for p in spec.query]
        params += [dict(h) for h in spec.headers]
        if spec.body is not None:
            op["requestBody"] = {"required": spec.body_required,
                                 "content": {spec.media_type: {"schema": spec.body}}}
        if spec.summary:
            op["summary"] = spec.summary
    if params:
        op["parameters"] = params
    return op


def describe(app: web.Application | None = None) -> dict[str, Any]:
    """The OpenAPI 3.0 document for the routes ``app`` serves (a fresh app when None)."""
    paths: dict[str, dict[str, Any]] = {}
    for ep in served_endpoints(app):
        paths.setdefault(ep.path, {})[ep.method.lower()] = _operation(ep, OPERATIONS.get(ep.key))
    return {
        "openapi": "3.0.3",
        "info": {"title": "dockyard Engine API", "version": API_VERSION,
                 "description": "The Docker Engine API endpoints dockyardd serves (generated from its router)."},
        "x-version-prefix": VERSION_PREFIX,
        "paths": paths,
    }


def undocumented(app: web.Application | None = None) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(served routes with no parameter entry, parameter entries with no served route): both
    empty when the table and the router agree."""
    served = {ep.key for ep in served_endpoints(app)}
    return sorted(served - OPERATIONS.keys()), sorted(OPERATIONS.keys() - served)
