"""``HEAD``/``GET``/``PUT /containers/{id}/archive``: what ``docker cp`` speaks.

The path's stat travels in the ``X-Docker-Container-Path-Stat`` header as base64 of moby's
``PathStat`` JSON, whose ``mode`` is a Go ``os.FileMode`` (type bits high, permissions low).
"""

from __future__ import annotations

import base64
import contextlib
import json
import stat
import time

from aiohttp import web

from dockyard.api.routes.common import (
    Routes,
    aiterate,
    call,
    engine,
    first_item,
    qbool,
    qstr,
    send_stream,
    spool_body,
)
from dockyard.engine.archive import PathStat

STAT_HEADER = "X-Docker-Container-Path-Stat"

# Go's os.FileMode bits (io/fs)
GO_DIR, GO_SYMLINK, GO_DEVICE, GO_PIPE, GO_SOCKET = 1 << 31, 1 << 27, 1 << 26, 1 << 25, 1 << 24
GO_SETUID, GO_SETGID, GO_CHARDEV, GO_STICKY = 1 << 23, 1 << 22, 1 << 21, 1 << 20


def go_file_mode(mode: int) -> int:
    """A POSIX st_mode as Go's ``os.Lstat`` reports it."""
    out = mode & 0o777
    fmt = stat.S_IFMT(mode)
    out |= {stat.S_IFDIR: GO_DIR, stat.S_IFLNK: GO_SYMLINK, stat.S_IFBLK: GO_DEVICE,
            stat.S_IFCHR: GO_DEVICE | GO_CHARDEV, stat.S_IFIFO: GO_PIPE, stat.S_IFSOCK: GO_SOCKET}.get(fmt, 0)
    for bit, go in ((stat.S_ISUID, GO_SETUID), (stat.S_ISGID, GO_SETGID), (stat.S_ISVTX, GO_STICKY)):
        if mode & bit:
            out |= go
    return out


def rfc3339_nano(ns: int) -> str:
    """Go's time.Time JSON (RFC 3339, trailing zeros of the fraction dropped), in UTC."""
    secs, frac = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + "Z"


def encode_stat(st: PathStat) -> str:
    doc = {"name": st.name, "size": st.size, "mode": go_file_mode(st.mode), "mtime": rfc3339_nano(st.mtime_ns),
           "linkTarget": st.link_target}
    return base64.b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode()


async def head(request: web.Request) -> web.Response:
    st = await call(engine(request).archive.stat, request.match_info["id"], qstr(request, "path"))
    return web.Response(headers={STAT_HEADER: encode_stat(st)})


async def get(request: web.Request) -> web.StreamResponse:
    chunks = aiterate(engine(request).archive.get(request.match_info["id"], qstr(request, "path")))
    st = await first_item(chunks)  # the stat: errors (404, …) come before the headers go out
    return await send_stream(request, chunks, {"Content-Type": "application/x-tar", STAT_HEADER: encode_stat(st)})


async def put(request: web.Request) -> web.Response:
    body = await spool_body(request, "cp-")  # bodies can be large: a private file under <data-root>/tmp
    try:
        await call(engine(request).archive.put, request.match_info["id"], qstr(request, "path"), body,
                   qbool(request, "noOverwriteDirNonDir"), qbool(request, "copyUIDGID"))
    finally:
        with contextlib.suppress(FileNotFoundError):
            body.unlink()
    return web.Response(status=200)


ROUTES: Routes = [
    ("HEAD", "/containers/{id}/archive", head),
    ("GET", "/containers/{id}/archive", get),
    ("PUT", "/containers/{id}/archive", put),
]
