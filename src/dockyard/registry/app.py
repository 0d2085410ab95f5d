"""The registry's aiohttp Application: OCI distribution spec v1.1 routes, error bodies, upkeep."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from dockyard.errors import DockyardError
from dockyard.oci import mediatypes as mt
from dockyard.oci.digest import Digest
from dockyard.registry import blobs
from dockyard.registry.auth import Auth, scope_for
from dockyard.registry.blobs import STORAGE, UPLOAD_LOCKS, Handler
from dockyard.registry.errors import RegistryError, error_response
from dockyard.registry.manifests import (
    MAX_MANIFEST,
    accepts,
    check_name,
    parse_digest,
    parse_manifest,
    parse_reference,
)
from dockyard.registry.storage import RegistryStorage

log = logging.getLogger("dockyard.registry")

API_VERSION_HEADER = {"Docker-Distribution-API-Version": "registry/2.0"}
UPLOAD_TTL = web.AppKey("upload_ttl", float)
_WRITER_IDLE = 300.0
_UPKEEP_EVERY = 60.0


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DockyardError as exc:
        if not isinstance(exc, RegistryError):
            log.warning("%s %s: %s", request.method, request.path, exc)
        return error_response(exc)
    except web.HTTPMethodNotAllowed as exc:
        return error_response(RegistryError("UNSUPPORTED", f"method {request.method} not allowed here",
                                            headers={"Allow": ",".join(sorted(exc.allowed_methods))}))
    except web.HTTPException:
        raise
    except (ConnectionError, HttpProcessingError) as exc:
        # The client hung up mid-body; an upload keeps what arrived and can resume.
        log.info("%s %s: client went away: %s", request.method, request.path, exc)
        return error_response(RegistryError("BLOB_UPLOAD_INVALID", f"request body interrupted: {exc}"))
    except Exception as exc:
        log.exception("handler for %s %s failed", request.method, request.path)
        return error_response(exc)


async def _api_version(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(API_VERSION_HEADER)


def _storage(request: web.Request) -> RegistryStorage:
    return request.app[STORAGE]


async def base(request: web.Request) -> web.Response:
    return web.json_response({})


# -- pagination (tags/list, _catalog) ----------------------------------------------------------------

def _page(request: web.Request, items: list[str], path: str) -> tuple[list[str], dict[str, str]]:
    text = request.query.get("n")
    last = request.query.get("last")
    if last:
        items = [i for i in items if i > last]
    if text is None or text == "":
        return items, {}
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise RegistryError("PAGINATION_NUMBER_INVALID", f"invalid n={text!r}", detail={"n": text})
    page = items[:n]
    if n == 0 or len(items) <= n:
        return page, {}
    return page, {"Link": f'<{path}?n={n}&last={quote(page[-1], safe="")}>; rel="next"'}


async def tags_list(request: web.Request) -> web.Response:
    name = check_name(request.match_info["name"])
    tags = await asyncio.to_thread(_storage(request).tags, name)
    page, headers = _page(request, tags, f"/v2/{name}/tags/list")
    return web.json_response({"name": name, "tags": page}, headers=headers)


async def search(request: web.Request) -> web.Response:
    """Docker's registry search (``GET /v1/search?q=&n=``, what ``docker search`` asks a registry):
    repositories whose name contains the query."""
    query = request.query.get("q", "").lower()
    try:
        limit = max(1, min(int(request.query.get("n", "25")), 100))
    except ValueError as exc:
        raise RegistryError("PAGINATION_NUMBER_INVALID", "invalid n") from exc
    repos = await asyncio.to_thread(_storage(request).repositories)
    found = [r for r in repos if query in r.lower()]
    results = [{"name": r, "description": "", "star_count": 0, "is_official": False, "is_automated": False}
               for r in found[:limit]]
    return web.json_response({"num_results": len(found), "query": query, "page": 1, "num_pages": 1,
                              "page_size": limit, "results": results})


async def catalog(request: web.Request) -> web.Response:
    repos = await asyncio.to_thread(_storage(request).repositories)
    page, headers = _page(request, repos, "/v2/_catalog")
    return web.json_response({"repositories": page}, headers=headers)


# -- manifests ---------------------------------------------------------------------------------------

async def get_manifest(request: web.Request) -> web.Response:
    name = check_name(request.match_info["name"])
    reference = parse_reference(request.match_info["reference"])
    stored = await asyncio.to_thread(_storage(request).get_manifest, name, reference)
    if not accepts(request.headers.getall("Accept", []), stored.media_type):
        raise RegistryError("MANIFEST_UNKNOWN", f"{stored.media_type} manifest found, but the Accept "
                            "header does not allow it", detail={"mediaType": stored.media_type})
    return web.Response(body=stored.data, headers={
        "Content-Type": stored.media_type, "Docker-Content-Digest": str(stored.digest),
        "Etag": f'"{stored.digest}"'})


async def _read_limited(request: web.Request, limit: int) -> bytes:
    buf = bytearray()
    async for chunk in request.content.iter_any():
        buf += chunk
        if len(buf) > limit:
            raise RegistryError("SIZE_INVALID", f"manifest larger than {limit} bytes", status=413)
    return bytes(buf)


async def put_manifest(request: web.Request) -> web.Response:
    name = check_name(request.match_info["name"])
    reference = parse_reference(request.match_info["reference"])
    data = await _read_limited(request, MAX_MANIFEST)
    manifest = parse_manifest(request.headers.get("Content-Type"), data)
    if isinstance(reference, Digest):
        digest = Digest.from_bytes(data, reference.algorithm)
        if digest != reference:
            raise RegistryError("DIGEST_INVALID", f"manifest digest is {digest}, not {reference}",
                                detail={"digest": str(reference)})
        tag = None
    else:
        digest, tag = Digest.from_bytes(data), reference
    await asyncio.to_thread(_storage(request).put_manifest, name, digest, data, manifest, tag)
    headers = {"Location": f"/v2/{name}/manifests/{digest}", "Docker-Content-Digest": str(digest)}
    if manifest.subject is not None:
        headers["OCI-Subject"] = str(manifest.subject)
    return web.Response(status=201, headers=headers)


async def delete_manifest(request: web.Request) -> web.Response:
    """By digest: the manifest and its tags; by tag: just the tag (distribution spec v1.1)."""
    name = check_name(request.match_info["name"])
    reference = parse_reference(request.match_info["reference"])
    storage = _storage(request)
    if isinstance(reference, Digest):
        await asyncio.to_thread(storage.delete_manifest, name, reference)
    else:
        await asyncio.to_thread(storage.delete_tag, name, reference)
    return web.Response(status=202)


# -- referrers ---------------------------------------------------------------------------------------

async def referrers(request: web.Request) -> web.Response:
    name = check_name(request.match_info["name"])
    digest = parse_digest(request.match_info["digest"])
    found = await asyncio.to_thread(_storage(request).referrers, name, digest)
    headers = {"Content-Type": mt.OCI_INDEX}
    wanted = request.query.get("artifactType")
    if wanted is not None:
        found = [d for d in found if d.get("artifactType") == wanted]
        headers["OCI-Filters-Applied"] = "artifactType"
    body: dict[str, Any] = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": found}
    return web.Response(body=json.dumps(body).encode(), headers=headers)


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/v2/", base),
    ("GET", "/v2", base),
    ("GET", "/v2/_catalog", catalog),
    ("GET", "/v1/search", search),
    ("GET", "/v2/{name:.+}/tags/list", tags_list),
    ("GET", "/v2/{name:.+}/manifests/{reference}", get_manifest),
    ("PUT", "/v2/{name:.+}/manifests/{reference}", put_manifest),
    ("DELETE", "/v2/{name:.+}/manifests/{reference}", delete_manifest),
    ("GET", "/v2/{name:.+}/referrers/{digest}", referrers),
    *blobs.ROUTES,
]


async def _upkeep(app: web.Application) -> AsyncIterator[None]:
    """Release idle upload writers and expire stale sessions while serving."""
    storage, ttl = app[STORAGE], app[UPLOAD_TTL]

    async def loop() -> None:
        while True:
            await asyncio.sleep(_UPKEEP_EVERY)
            try:
                await asyncio.to_thread(storage.close_idle_writers, _WRITER_IDLE)
                expired = await asyncio.to_thread(storage.expire_uploads, ttl)
                if expired:
                    log.info("expired %d stale upload(s)", len(expired))
            except Exception:
                log.exception("upload upkeep failed")

    task = asyncio.create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


AUTH = web.AppKey("auth", Auth)


@web.middleware
async def _authorize(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request but the token endpoint needs what ``auth.scope_for`` says it does."""
    auth = request.app[AUTH]
    if request.path == "/token":
        return await handler(request)
    decision = auth.check(request.headers.get("Authorization", ""), scope_for(request.method, request.path),
                          realm=f"{request.scheme}://{request.host}/token")
    if decision.ok:
        return await handler(request)
    code = "UNAUTHORIZED" if decision.status == 401 else "DENIED"
    headers = {"WWW-Authenticate": decision.challenge} if decision.challenge else {}
    return error_response(RegistryError(code, headers=headers))


async def token(request: web.Request) -> web.Response:
    """The distribution token endpoint: ``GET /token?service=&scope=…`` (Basic credentials optional)."""
    status, body = request.app[AUTH].token_response(request.headers.get("Authorization", ""),
                                                    request.query.getall("scope", []))
    return web.json_response(body, status=status)


def build_app(storage: RegistryStorage, upload_ttl: float = 24 * 3600.0, auth: Auth | None = None
              ) -> web.Application:
    middlewares = [_errors] if auth is None or auth.mode == "none" else [_errors, _authorize]
    app = web.Application(middlewares=middlewares, client_max_size=0)
    app[AUTH] = auth or Auth()
    if auth is not None and auth.mode == "token":
        app.router.add_get("/token", token)
    app[STORAGE] = storage
    app[UPLOAD_TTL] = upload_ttl
    app[UPLOAD_LOCKS] = weakref.WeakValueDictionary()
    for method, path, handler in ROUTES:
        if method == "GET":
            app.router.add_get(path, handler)  # and HEAD
        else:
            app.router.add_route(method, path, handler)
    app.on_response_prepare.append(_api_version)
    app.cleanup_ctx.append(_upkeep)
    return app
