"""The registry client side of the OCI distribution protocol (aiohttp).

Auth as Docker does it: try anonymously; on ``401`` follow ``WWW-Authenticate`` — ``Basic`` with the
caller's credentials, or ``Bearer realm=…,service=…,scope=…`` by asking the realm for a token (with
the credentials when there are any) and caching it per scope. ``localhost`` and 127.0.0.0/8 speak
plain HTTP unless told otherwise, as in Docker; every other registry needs TLS unless listed as
insecure.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from dockyard.errors import DockyardError, InvalidArgument, NotFound, PermissionDenied, Unavailable

MANIFEST_ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json",
])
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = ""
    identity_token: str = ""


def registry_host(domain: str) -> str:
    """Where a reference's domain is served (Docker Hub's API host differs from its name)."""
    return "registry-1.docker.io" if domain in ("docker.io", "index.docker.io") else domain


def is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


CERTS_DIRS = ("/etc/dockyard/certs.d", "/etc/docker/certs.d")


def _ssl_for(host: str) -> ssl.SSLContext | bool:
    """System CAs plus ``<certs.d>/<host>/*.crt`` (Docker's place for a registry's private CA) and
    a client certificate from ``client.cert``/``client.key`` when one is there."""
    dirs = [Path(d) / host for d in CERTS_DIRS if (Path(d) / host).is_dir()]
    if not dirs:
        return True
    ctx = ssl.create_default_context()
    for d in dirs:
        for ca in sorted(d.glob("*.crt")):
            ctx.load_verify_locations(cafile=str(ca))
        for cert in sorted(d.glob("*.cert")):
            key = cert.with_suffix(".key")
            if key.exists():
                ctx.load_cert_chain(str(cert), str(key))
    return ctx


@dataclass
class Registry:
    host: str                                   # "127.0.0.1:5000", "registry-1.docker.io"
    insecure: bool = False                      # plain HTTP allowed
    creds: Credentials | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    session: aiohttp.ClientSession | None = None

    scheme: str = "https"

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.host}"

    async def __aenter__(self) -> Registry:
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300),
            connector=aiohttp.TCPConnector(ssl=_ssl_for(self.host)))
        if self.insecure or is_loopback(self.host):
            # as Docker: HTTPS when the registry speaks it, plain HTTP only for insecure registries
            try:
                async with self.session.get(f"https://{self.host}/v2/",
                                            timeout=aiohttp.ClientTimeout(total=5)) as resp:
                    resp.release()
            except (aiohttp.ClientError, TimeoutError):
                self.scheme = "http"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()

    # -- requests with auth ---------------------------------------------------------------------
    async def request(self, method: str, path: str, scope: str, *, headers: Mapping[str, str] | None = None,
                      data: Any = None, allow: tuple[int, ...] = ()) -> aiohttp.ClientResponse:
        """A request that answers a 401 challenge once; statuses in ``allow`` are not errors."""
        assert self.session is not None
        url = path if path.startswith("http") else self.base + path
        for attempt in range(2):
            hdrs = dict(headers or {})
            auth = self._auth_header(scope)
            if auth:
                hdrs["Authorization"] = auth
            try:
                resp = await self.session.request(method, url, headers=hdrs, data=data, allow_redirects=True)
            except aiohttp.ClientError as exc:
                raise Unavailable(f"cannot reach registry {self.host}: {exc}") from exc
            if resp.status == 401 and attempt == 0 and await self._answer(resp, scope):
                resp.release()
                continue
            if resp.status >= 400 and resp.status not in allow:
                raise await _error(resp, self.host)
            return resp
        raise PermissionDenied(f"{self.host}: authentication required")

    def _auth_header(self, scope: str) -> str | None:
        if scope in self.tokens:
            return self.tokens[scope]
        return self.tokens.get("*")

    async def _answer(self, resp: aiohttp.ClientResponse, scope: str) -> bool:
        challenge = resp.headers.get("WWW-Authenticate", "")
        kind = challenge.split(" ", 1)[0].lower()
        params = dict(_CHALLENGE.findall(challenge))
        if kind == "basic":
            if not self.creds or not self.creds.username:
                return False
            raw = f"{self.creds.username}:{self.creds.password}".encode()
            self.tokens["*"] = "Basic " + base64.b64encode(raw).decode()
            return True
        if kind == "bearer" and params.get("realm"):
            token = await self._token(params["realm"], params.get("service", ""), scope or params.get("scope", ""))
            self.tokens[scope] = f"Bearer {token}"
            return True
        return False

    async def _token(self, realm: str, service: str, scope: str) -> str:
        assert self.session is not None
        query = {"service": service} if service else {}
        if scope:
            query["scope"] = scope
        headers = {}
        if self.creds and self.creds.username:
            raw = f"{self.creds.username}:{self.creds.password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        try:
            async with self.session.get(realm, params=query, headers=headers) as resp:
                if resp.status in (401, 403):
                    raise PermissionDenied(f"{self.host}: unauthorized: authentication required")
                if resp.status >= 400:
                    raise Unavailable(f"{self.host}: token server answered {resp.status}")
                body = await resp.json(content_type=None)
        except aiohttp.ClientError as exc:
            raise Unavailable(f"cannot reach the token server {realm}: {exc}") from exc
        token = body.get("token") or body.get("access_token")
        if not token:
            raise Unavailable(f"{self.host}: the token server sent no token")
        return str(token)

    # -- protocol ---------------------------------------------------------------------------------
    async def manifest(self, repo: str, ref: str) -> tuple[bytes, str, str]:
        """(bytes, media type, digest) of a manifest or index."""
        resp = await self.request("GET", f"/v2/{repo}/manifests/{ref}", f"repository:{repo}:pull",
                                  headers={"Accept": MANIFEST_ACCEPT}, allow=(404,))
        async with resp:
            if resp.status == 404:
                raise NotFound(f"manifest for {repo}:{ref} not found: manifest unknown")
            data = await resp.read()
            media = resp.headers.get("Content-Type", "").split(";")[0].strip()
            if not media or media == "application/json":
                media = str(json.loads(data).get("mediaType") or "")
            return data, media, resp.headers.get("Docker-Content-Digest", "")

    async def tags(self, repo: str) -> list[str]:
        """Every tag of ``repo`` (``GET /v2/<repo>/tags/list``, following ``Link: rel="next"`` pages)."""
        out: list[str] = []
        path: str | None = f"/v2/{repo}/tags/list"
        for _ in range(_MAX_TAG_PAGES):
            if path is None:
                return out
            resp = await self.request("GET", path, f"repository:{repo}:pull", allow=(404,))
            async with resp:
                if resp.status == 404:
                    raise NotFound(f"repository {repo} not found: name unknown")
                try:
                    doc = json.loads(await resp.read())
                    page = [str(t) for t in doc.get("tags") or []]
                except (ValueError, AttributeError, TypeError) as exc:
                    raise Unavailable(f"{self.host}: malformed tag list for {repo}") from exc
                out.extend(t for t in page if t not in out)
                path = _next_link(resp.headers.get("Link", ""))
                if path is not None and not path.startswith("/") and not path.startswith(self.base + "/"):
                    # credentials go only to the registry asked
                    raise Unavailable(f"{self.host}: the tag list of {repo} links to another host")
        raise Unavailable(f"{self.host}: the tag list of {repo} has more than {_MAX_TAG_PAGES} pages")

    async def blob(self, repo: str, digest: str, offset: int = 0) -> AsyncIterator[bytes]:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        resp = await self.request("GET", f"/v2/{repo}/blobs/{digest}", f"repository:{repo}:pull", headers=headers)
        async with resp:
            if offset and resp.status != 206:
                raise Unavailable(f"{self.host}: the registry cannot resume {digest}")
            async for chunk in resp.content.iter_chunked(1 << 20):
                yield chunk

    async def has_blob(self, repo: str, digest: str) -> bool:
        resp = await self.request("HEAD", f"/v2/{repo}/blobs/{digest}", f"repository:{repo}:pull,push",
                                  allow=(404,))
        resp.release()
        return resp.status == 200

    async def push_blob(self, repo: str, digest: str, size: int, body: Any) -> None:
        scope = f"repository:{repo}:pull,push"
        resp = await self.request("POST", f"/v2/{repo}/blobs/uploads/", scope)
        location = resp.headers.get("Location", "")
        resp.release()
        if not location:
            raise Unavailable(f"{self.host}: no upload location for {digest}")
        if not location.startswith("http"):
            location = self.base + location
        sep = "&" if "?" in location else "?"
        resp = await self.request("PUT", f"{location}{sep}digest={digest}", scope, data=body,
                                  headers={"Content-Type": "application/octet-stream",
                                           "Content-Length": str(size)})
        resp.release()

    async def mount_blob(self, repo: str, digest: str, source: str) -> bool:
        """Cross-repository mount: True when the registry linked ``source``'s blob into ``repo``.
        Otherwise it opened an ordinary upload session, which is cancelled here."""
        scope = f"repository:{repo}:pull,push repository:{source}:pull"
        resp = await self.request("POST", f"/v2/{repo}/blobs/uploads/?mount={digest}&from={source}", scope)
        location = resp.headers.get("Location", "")
        resp.release()
        if resp.status == 201:
            return True
        if location:
            cancel = await self.request("DELETE", location if location.startswith("http") else self.base + location,
                                        scope, allow=(404,))
            cancel.release()
        return False

    async def push_manifest(self, repo: str, ref: str, data: bytes, media_type: str) -> str:
        resp = await self.request("PUT", f"/v2/{repo}/manifests/{ref}", f"repository:{repo}:pull,push",
                                  data=data, headers={"Content-Type": media_type})
        resp.release()
        return resp.headers.get("Docker-Content-Digest", "")


_MAX_TAG_PAGES = 1000
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


def _next_link(header: str) -> str | None:
    """The next page of a paginated list (RFC 5988 ``Link``), as a path or URL."""
    m = _LINK_NEXT.search(header)
    return m.group(1) if m else None


async def _error(resp: aiohttp.ClientResponse, host: str) -> DockyardError:
    try:
        body = await resp.json(content_type=None)
        errs = body.get("errors") or []
        msg = "; ".join(f"{e.get('code', '').lower().replace('_', ' ')}: {e.get('message', '')}" for e in errs)
    except (ValueError, aiohttp.ClientError, AttributeError):
        msg = ""
    finally:
        resp.release()
    text = msg or f"{resp.status} {resp.reason}"
    if resp.status == 404:
        return NotFound(text)
    if resp.status in (401, 403):
        return PermissionDenied(f"unauthorized: {text}" if "unauthorized" not in text else text)
    if resp.status < 500:
        return InvalidArgument(f"{host}: {text}")
    return Unavailable(f"{host}: {text}")
