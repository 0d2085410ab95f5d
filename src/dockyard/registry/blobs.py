"""Blob and upload-session handlers: ``/v2/<name>/blobs/<digest>`` and ``/v2/<name>/blobs/uploads/``."""

from __future__ import annotations

import asyncio
import re
import weakref
from collections.abc import Awaitable, Callable

from aiohttp import web

from dockyard.oci.digest import Digest
from dockyard.registry.errors import RegistryError
from dockyard.registry.manifests import check_name, parse_digest
from dockyard.registry.storage import RegistryStorage

STORAGE = web.AppKey("storage", RegistryStorage)
UPLOAD_LOCKS = web.AppKey("upload_locks", weakref.WeakValueDictionary)

_CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"^(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?$")


def _storage(request: web.Request) -> RegistryStorage:
    return request.app[STORAGE]


def _name(request: web.Request) -> str:
    return check_name(request.match_info["name"])


def _upload_headers(name: str, upload_id: str, offset: int) -> dict[str, str]:
    return {"Location": f"/v2/{name}/blobs/uploads/{upload_id}", "Range": f"0-{max(offset - 1, 0)}",
            "Docker-Upload-UUID": upload_id}


def _blob_created(name: str, digest: Digest) -> web.Response:
    return web.Response(status=201, headers={"Location": f"/v2/{name}/blobs/{digest}",
                                             "Docker-Content-Digest": str(digest)})


def _upload_lock(request: web.Request, upload_id: str) -> asyncio.Lock:
    locks = request.app[UPLOAD_LOCKS]
    lock = locks.get(upload_id)
    if lock is None:
        lock = asyncio.Lock()
        locks[upload_id] = lock
    return lock


# -- blobs -------------------------------------------------------------------------------------------

async def get_blob(request: web.Request) -> web.StreamResponse:
    """GET/HEAD with ``Range: bytes=a-b`` support (206 / 416), served with sendfile."""
    name, digest = _name(request), parse_digest(request.match_info["digest"])
    path = await asyncio.to_thread(_storage(request).blob_path, name, digest)
    return web.FileResponse(path, headers={"Docker-Content-Digest": str(digest),
                                           "Content-Type": "application/octet-stream"})


async def delete_blob(request: web.Request) -> web.Response:
    name, digest = _name(request), parse_digest(request.match_info["digest"])
    await asyncio.to_thread(_storage(request).unlink_blob, name, digest)
    return web.Response(status=202, headers={"Docker-Content-Digest": str(digest)})


# -- uploads -----------------------------------------------------------------------------------------

async def _receive(request: web.Request, name: str, upload_id: str) -> int:
    """Append the request body to the session; returns the number of bytes received."""
    storage = _storage(request)
    received = 0
    buf = bytearray()
    try:
        async for chunk in request.content.iter_any():
            buf += chunk
            if len(buf) >= _CHUNK:
                await asyncio.to_thread(storage.upload_write, name, upload_id, bytes(buf))
                received += len(buf)
                buf.clear()
    finally:
        # Also after the client hung up: what arrived stays in the session, so it can resume.
        if buf:
            await asyncio.to_thread(storage.upload_write, name, upload_id, bytes(buf))
            received += len(buf)
    return received


def _check_chunk(request: web.Request, name: str, upload_id: str, offset: int) -> int | None:
    """Validate ``Content-Range`` against the session; returns the announced chunk length, if any."""
    text = request.headers.get("Content-Range")
    if text is None:
        return None
    m = _CONTENT_RANGE.match(text.strip())
    if m is None or int(m.group(2)) < int(m.group(1)) or int(m.group(1)) != offset:
        raise RegistryError("BLOB_UPLOAD_INVALID",
                            f"Content-Range {text!r} does not continue the upload at offset {offset}",
                            detail={"offset": offset}, status=416,
                            headers=_upload_headers(name, upload_id, offset))
    length = int(m.group(2)) - int(m.group(1)) + 1
    if request.content_length is not None and request.content_length != length:
        raise RegistryError("SIZE_INVALID", f"Content-Length {request.content_length} does not match "
                            f"Content-Range {text}", detail={"length": length})
    return length


async def _append(request: web.Request, name: str, upload_id: str) -> int:
    """Check the chunk's range, stream it in; returns the new offset."""
    storage = _storage(request)
    offset = await asyncio.to_thread(storage.upload_offset, name, upload_id)
    length = _check_chunk(request, name, upload_id, offset)
    received = await _receive(request, name, upload_id)
    if length is not None and received != length:
        raise RegistryError("SIZE_INVALID", f"received {received} bytes, Content-Range announced {length}",
                            detail={"received": received, "expected": length})
    return offset + received


async def _commit(request: web.Request, name: str, upload_id: str, digest: Digest) -> web.Response:
    await asyncio.to_thread(_storage(request).commit_upload, name, upload_id, digest)
    return _blob_created(name, digest)


async def start_upload(request: web.Request) -> web.Response:
    """POST: cross-repository mount, monolithic upload (``?digest=``), or a new session."""
    name = _name(request)
    storage = _storage(request)
    mount = request.query.get("mount")
    if mount is not None:
        digest = parse_digest(mount)
        source = request.query.get("from")
        if source is not None:
            mounted = await asyncio.to_thread(storage.mount_blob, name, digest, check_name(source))
            if mounted is not None:
                return _blob_created(name, digest)
    upload_id = await asyncio.to_thread(storage.start_upload, name)
    want = request.query.get("digest")
    if want is not None:
        digest = parse_digest(want)
        try:
            async with _upload_lock(request, upload_id):
                await _append(request, name, upload_id)
                return await _commit(request, name, upload_id, digest)
        except BaseException:
            await _cancel_quietly(storage, name, upload_id)
            raise
    return web.Response(status=202, headers=_upload_headers(name, upload_id, 0))


async def _cancel_quietly(storage: RegistryStorage, name: str, upload_id: str) -> None:
    try:
        await asyncio.to_thread(storage.cancel_upload, name, upload_id)
    except RegistryError:
        pass  # already committed or dropped


async def upload_status(request: web.Request) -> web.Response:
    name, upload_id = _name(request), request.match_info["uuid"]
    offset = await asyncio.to_thread(_storage(request).upload_offset, name, upload_id)
    return web.Response(status=204, headers=_upload_headers(name, upload_id, offset))


async def patch_upload(request: web.Request) -> web.Response:
    """A chunk with ``Content-Range: a-b`` (must start at the current offset, else 416), or, without
    it, a streamed append of the whole body."""
    name, upload_id = _name(request), request.match_info["uuid"]
    async with _upload_lock(request, upload_id):
        offset = await _append(request, name, upload_id)
    return web.Response(status=202, headers=_upload_headers(name, upload_id, offset))


async def finish_upload(request: web.Request) -> web.Response:
    """PUT ``?digest=``, optionally with a last chunk: verify and make the blob visible."""
    name, upload_id = _name(request), request.match_info["uuid"]
    want = request.query.get("digest")
    if not want:
        raise RegistryError("DIGEST_INVALID", "digest query parameter missing")
    digest = parse_digest(want)
    async with _upload_lock(request, upload_id):
        await _append(request, name, upload_id)
        return await _commit(request, name, upload_id, digest)


async def cancel_upload(request: web.Request) -> web.Response:
    name, upload_id = _name(request), request.match_info["uuid"]
    async with _upload_lock(request, upload_id):
        await asyncio.to_thread(_storage(request).cancel_upload, name, upload_id)
    return web.Response(status=204)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/v2/{name:.+}/blobs/uploads/", start_upload),
    ("POST", "/v2/{name:.+}/blobs/uploads", start_upload),
    ("GET", "/v2/{name:.+}/blobs/uploads/{uuid}", upload_status),
    ("PATCH", "/v2/{name:.+}/blobs/uploads/{uuid}", patch_upload),
    ("PUT", "/v2/{name:.+}/blobs/uploads/{uuid}", finish_upload),
    ("DELETE", "/v2/{name:.+}/blobs/uploads/{uuid}", cancel_upload),
    ("GET", "/v2/{name:.+}/blobs/{digest}", get_blob),
    ("DELETE", "/v2/{name:.+}/blobs/{digest}", delete_blob),
]
