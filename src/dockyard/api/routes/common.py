"""Request parsing helpers shared by the route modules (query values, filters, engine calls,
bodies spooled to disk)."""

from __future__ import annotations

import inspect
import json
import os
import tempfile
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from aiohttp import web

from dockyard.api.validate import INT64_MAX, INT64_MIN, decode_json_object, loads
from dockyard.errors import InvalidArgument, NoSpace, is_no_space, no_space

ENGINE: web.AppKey[Any] = web.AppKey("engine", object)
DATA_ROOT: web.AppKey[Path] = web.AppKey("data_root", Path)

Routes = list[tuple[str, str, Any]]
_CHUNK = 1 << 20


def engine(request: web.Request) -> Any:
    return request.app[ENGINE]


async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call an engine method whether it is sync or async."""
    result = fn(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


async def aiterate(source: Any) -> AsyncGenerator[Any, None]:
    """Iterate an engine stream (async or sync iterator); closes it when the consumer stops early."""
    if inspect.isawaitable(source):
        source = await source
    if hasattr(source, "__aiter__"):
        try:
            async for item in source:
                yield item
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()
    else:
        try:
            for item in source:
                yield item
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()


def qstr(request: web.Request, name: str, default: str = "") -> str:
    return request.query.get(name, default)


def qbool(request: web.Request, name: str, default: bool = False) -> bool:
    """Docker's BoolValue: absent → default; "", 0, no, false, none → false; else true."""
    if name not in request.query:
        return default
    return request.query[name].strip().lower() not in ("", "0", "no", "false", "none")


def qint(request: web.Request, name: str, default: int) -> int:
    value = request.query.get(name, "")
    if value == "":
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise InvalidArgument(f"invalid value for {name}: {value!r} is not an integer") from exc
    if not INT64_MIN <= number <= INT64_MAX:  # Go's strconv.ParseInt refuses it
        raise InvalidArgument(f"invalid value for {name}: {value!r} is out of range")
    return number


def qopt_int(request: web.Request, name: str) -> int | None:
    return qint(request, name, 0) if request.query.get(name, "") != "" else None


def qfilters(request: web.Request) -> dict[str, list[str]]:
    """Docker filters: ``{"k":["v"]}`` or the legacy ``{"k":{"v":true}}``."""
    raw = request.query.get("filters", "")
    if not raw:
        return {}
    data = loads(raw, "filters")
    if not isinstance(data, dict):
        raise InvalidArgument("invalid filters: expected a JSON object")
    out: dict[str, list[str]] = {}
    for key, value in data.items():
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            out[key] = list(value)
        elif isinstance(value, dict):
            out[key] = [k for k, on in value.items() if on]
        else:
            raise InvalidArgument(f"invalid filter '{key}': expected a list of strings")
    return out


async def body_json(request: web.Request, what: str) -> dict[str, Any]:
    return decode_json_object(await request.read(), what)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(data).encode() + b"\n",
                        content_type="application/json")


def no_content() -> web.Response:
    return web.Response(status=204)


def tmp_dir(request: web.Request) -> Path:
    """``<data-root>/tmp``, created private if it is missing."""
    tmp = request.app[DATA_ROOT] / "tmp"
    tmp.mkdir(mode=0o700, parents=True, exist_ok=True)
    return tmp


async def spool_body(request: web.Request, prefix: str) -> Path:
    """Copy the request body to a private file under ``<data-root>/tmp`` (bodies can be GBs); the
    caller removes it."""
    tmp = tmp_dir(request)
    try:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tar", dir=tmp)
    except OSError as exc:
        if is_no_space(exc):
            raise await body_no_space(request, tmp, exc) from exc
        raise
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := await request.content.read(_CHUNK):
                out.write(chunk)
    except BaseException as exc:
        os.unlink(name)
        if is_no_space(exc):
            raise await body_no_space(request, tmp, exc) from exc
        raise
    return Path(name)


async def body_no_space(request: web.Request, tmp: Path, exc: BaseException) -> NoSpace:
    """The error for a request body that did not fit on disk. The rest of the body is read and
    dropped first, so the client (which is still sending) gets the answer, not a broken pipe."""
    while await request.content.read(_CHUNK):
        pass
    return no_space(f"cannot store the request body in {tmp}", exc if isinstance(exc, OSError) else None)


async def send_stream(request: web.Request, chunks: AsyncGenerator[Any, None], headers: dict[str, str],
                      first: bytes = b"") -> web.StreamResponse:
    """Stream ``first`` and the rest of ``chunks`` as the body (the caller has already taken what
    must fail before the headers go out); ``chunks`` is closed however it ends."""
    try:
        resp = web.StreamResponse(headers=headers)
        await resp.prepare(request)
        if first:
            await resp.write(first)
        async for chunk in chunks:
            await resp.write(chunk)
        await resp.write_eof()
        return resp
    finally:
        await chunks.aclose()


async def first_item(chunks: AsyncGenerator[Any, None], default: Any = None) -> Any:
    """The first item (errors such as 404 surface here, before any header); closes on failure."""
    try:
        return await chunks.__anext__()
    except StopAsyncIteration:
        return default
    except BaseException:
        await chunks.aclose()
        raise
