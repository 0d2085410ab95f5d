"""The registry client's auth dance against an in-process registry on loopback: Bearer tokens from
the challenge's realm (with Basic credentials to the token endpoint), cached per scope; refusals."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
from aiohttp import web

from dockyard.errors import PermissionDenied
from dockyard.remotes.client import Credentials, Registry

MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {}, "layers": []}).encode()


def _app(calls: dict[str, Any]) -> web.Application:
    async def token(request: web.Request) -> web.Response:
        calls["token"] = calls.get("token", 0) + 1
        calls["scope"] = request.query.get("scope")
        auth = request.headers.get("Authorization", "")
        if auth != "Basic " + base64.b64encode(b"alice:s3cret").decode():
            return web.Response(status=401)
        return web.json_response({"token": "tok-" + request.query.get("scope", "")})

    async def manifest(request: web.Request) -> web.Response:
        repo = request.match_info["repo"]
        if request.headers.get("Authorization") != f"Bearer tok-repository:{repo}:pull":
            realm = f"http://{request.host}/token"
            return web.json_response(
                {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}, status=401,
                headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="test",'
                                             f'scope="repository:{repo}:pull"'})
        return web.Response(body=MANIFEST, content_type="application/vnd.oci.image.manifest.v1+json",
                            headers={"Docker-Content-Digest": "sha256:" + "0" * 64})

    app = web.Application()
    app.router.add_get("/token", token)
    app.router.add_get("/v2/{repo:.+}/manifests/{ref}", manifest)
    return app


async def _with_registry(fn: Any) -> Any:
    calls: dict[str, Any] = {}
    runner = web.AppRunner(_app(calls))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        return await fn(f"127.0.0.1:{port}", calls)
    finally:
        await runner.cleanup()


def test_bearer_token_from_realm_cached_per_scope() -> None:
    async def body(host: str, calls: dict[str, Any]) -> None:
        async with Registry(host, creds=Credentials("alice", "s3cret")) as reg:
            data, media, _ = await reg.manifest("team/app", "1")
            assert data == MANIFEST and media == "application/vnd.oci.image.manifest.v1+json"
            await reg.manifest("team/app", "2")
        assert calls["token"] == 1 and calls["scope"] == "repository:team/app:pull"

    asyncio.run(_with_registry(body))


def test_wrong_credentials_are_refused() -> None:
    async def body(host: str, calls: dict[str, Any]) -> None:
        async with Registry(host, creds=Credentials("alice", "wrong")) as reg:
            with pytest.raises(PermissionDenied, match="unauthorized"):
                await reg.manifest("team/app", "1")
        async with Registry(host) as anonymous:
            with pytest.raises(PermissionDenied):
                await anonymous.manifest("team/app", "1")

    asyncio.run(_with_registry(body))
