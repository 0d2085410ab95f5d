"""The aiohttp Application around an engine: routes (bare and ``/vX.Y``), version check, errors."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from dockyard.api.errors import error_response
from dockyard.api.models_images import API_VERSION, MIN_API_VERSION, SERVER_VERSION
from dockyard.api.routes import (
    archive,
    build,
    check,
    commit,
    containers,
    distribution,
    exec,
    images,
    networks,
    stats,
    system,
    volumes,
)
from dockyard.api.routes.common import DATA_ROOT, ENGINE
from dockyard.errors import DockyardError, InvalidArgument

log = logging.getLogger("dockyard.api")

_VERSION_PREFIX = r"/v{api_version:[0-9][0-9.]*}"
_COMMON_HEADERS = {
    "Api-Version": API_VERSION,
    "Docker-Experimental": "false",
    "Ostype": "linux",
    "Server": f"Docker/{SERVER_VERSION} (linux)",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _version_tuple(text: str) -> tuple[int, int]:
    parts = text.split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise InvalidArgument(f"invalid API version: {text}")
    return int(parts[0]), int(parts[1])


def check_version(text: str) -> None:
    """moby's version middleware: the client's /vX.Y must lie within [MIN_API_VERSION, API_VERSION]."""
    version = _version_tuple(text)
    if version > _version_tuple(API_VERSION):
        raise InvalidArgument(f"client version {text} is too new. Maximum supported API version is {API_VERSION}")
    if version < _version_tuple(MIN_API_VERSION):
        raise InvalidArgument(f"client version {text} is too old. Minimum supported API version is "
                              f"{MIN_API_VERSION}, please upgrade your client to a newer version")


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


@web.middleware
async def _errors_and_version(request: web.Request, handler: Handler) -> web.StreamResponse:
    log.debug("Calling %s %s", request.method, request.path)
    try:
        version = request.match_info.get("api_version")
        if version is not None:
            check_version(version)
        return await handler(request)
    except DockyardError as exc:
        return error_response(exc)
    except web.HTTPNotFound:
        return _json_error(404, "page not found")
    except web.HTTPMethodNotAllowed:
        return _json_error(405, "method not allowed")
    except web.HTTPException:
        raise
    except (ConnectionError, TimeoutError):
        raise
    except Exception as exc:
        log.exception("handler for %s %s failed", request.method, request.path)
        return error_response(exc)


async def _common_headers(request: web.Request, response: web.StreamResponse) -> None:
    for key, value in _COMMON_HEADERS.items():
        response.headers[key] = value


def build_app(engine: Any, data_root: Path) -> web.Application:
    """One app per engine. Every route exists bare and under ``/vX.Y``."""
    app = web.Application(middlewares=[_errors_and_version], client_max_size=0)
    app[ENGINE] = engine
    app[DATA_ROOT] = Path(data_root)
    for module in (system, containers, exec, images, build, distribution, commit, networks, volumes, archive,
                   check, stats):
        for method, path, handler in module.ROUTES:
            app.router.add_route(method, path, handler)
            app.router.add_route(method, _VERSION_PREFIX + path, handler)
    app.on_response_prepare.append(_common_headers)
    return app
