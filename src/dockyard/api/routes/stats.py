"""``GET /containers/{id}/stats``: newline-delimited StatsResponse JSON, streamed or one sample."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

from aiohttp import web

from dockyard.api.routes.common import Routes, aiterate, engine, first_item, qbool, send_stream


def _line(sample: dict[str, Any]) -> bytes:
    # Go's json.Encoder: compact, one object per line
    return json.dumps(sample, separators=(",", ":")).encode() + b"\n"


async def _lines(samples: AsyncGenerator[Any, None]) -> AsyncGenerator[bytes, None]:
    try:
        async for sample in samples:
            yield _line(sample)
    finally:
        await samples.aclose()


async def container_stats(request: web.Request) -> web.StreamResponse:
    samples = aiterate(engine(request).container_stats(
        request.match_info["id"], stream=qbool(request, "stream", True), one_shot=qbool(request, "one-shot")))
    first = await first_item(samples)  # a 404 or 400 goes out as a plain error, before any header
    body = _line(first) if first is not None else b""
    return await send_stream(request, _lines(samples), {"Content-Type": "application/json"}, first=body)


ROUTES: Routes = [
    ("GET", "/containers/{id}/stats", container_stats),
]
