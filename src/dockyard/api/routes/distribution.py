"""Pull (``POST /images/create?fromImage=``), push (``POST /images/{name}/push``) and ``POST /auth``.

Progress is Docker's JSON stream; an error before the first line is a plain HTTP error (clients
print "Error response from daemon: ..."), one after it an ``errorDetail`` line.
"""

from __future__ import annotations

import base64
import json

from aiohttp import web

from dockyard.api.routes.common import Routes, body_json, engine, json_response, qfilters, qint, qstr
from dockyard.api.streams import stream_progress
from dockyard.errors import InvalidArgument
from dockyard.oci import reference
from dockyard.remotes.client import Credentials


def registry_auth(request: web.Request) -> Credentials | None:
    """``X-Registry-Auth``: base64url JSON {username, password, serveraddress, identitytoken}."""
    raw = request.headers.get("X-Registry-Auth", "")
    if not raw:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    return Credentials(str(data.get("username") or ""), str(data.get("password") or ""),
                       str(data.get("identitytoken") or ""))


def _name_only(text: str) -> bool:
    """A bare repository name: dockerd then pulls or pushes every tag (``docker pull/push -a``;
    the docker CLI and SDK send ``tag=latest`` otherwise)."""
    ref = reference.parse(text, default_tag=False)
    return ref.tag is None and ref.digest is None


async def pull(request: web.Request) -> web.StreamResponse:
    image = qstr(request, "fromImage")
    tag = qstr(request, "tag")
    if tag and "@" not in image:
        image = f"{image}@{tag}" if tag.startswith("sha256:") else f"{image}:{tag}"
    all_tags = _name_only(image)
    creds = registry_auth(request)
    return await stream_progress(
        request, lambda emit: engine(request).pull_image(image, qstr(request, "platform"), creds, emit, all_tags))


async def push(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if qstr(request, "tag"):
        name = f"{name}:{qstr(request, 'tag')}"
    all_tags = _name_only(name)
    creds = registry_auth(request)
    return await stream_progress(request, lambda emit: engine(request).push_image(name, creds, emit, all_tags))


async def auth(request: web.Request) -> web.Response:
    body = await body_json(request, "auth body")
    creds = Credentials(str(body.get("username") or ""), str(body.get("password") or ""))
    await engine(request).login(str(body.get("serveraddress") or ""), creds)
    return json_response({"Status": "Login Succeeded", "IdentityToken": ""})


async def distribution(request: web.Request) -> web.Response:
    return json_response(await engine(request).inspect_remote(request.match_info["name"],
                                                               registry_auth(request)))


async def search(request: web.Request) -> web.Response:
    term = qstr(request, "term")
    if not term:
        raise InvalidArgument("term is required")
    limit = qint(request, "limit", 25)
    if not 1 <= limit <= 100:
        raise InvalidArgument(f"limit {limit} is outside the range of [1, 100]")
    results = await engine(request).search_images(term, limit, registry_auth(request))
    for key in qfilters(request):
        if key not in ("stars", "is-official", "is-automated"):
            raise InvalidArgument(f"invalid filter '{key}'")
    return json_response(results)


ROUTES: Routes = [
    ("GET", "/images/search", search),
    ("POST", "/images/{name:.+}/push", push),
    ("GET", "/distribution/{name:.+}/json", distribution),
    ("POST", "/auth", auth),
]
