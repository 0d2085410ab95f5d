"""The one place where error categories become HTTP statuses (moby's httpstatus.FromError)."""

from __future__ import annotations

import json

from aiohttp import web

from dockyard import errors

# Order matters only for subclasses; the categories are siblings today.
_STATUS: tuple[tuple[type[errors.DockyardError], int], ...] = (
    (errors.NotFound, 404),
    (errors.AlreadyExists, 409),
    (errors.Conflict, 409),
    (errors.InvalidArgument, 400),
    (errors.NotModified, 304),
    (errors.FailedPrecondition, 412),
    (errors.PermissionDenied, 403),
    (errors.Unavailable, 503),
    (errors.Unsupported, 501),
)


def status_for(exc: BaseException) -> int:
    """HTTP status for an exception: its dockyard category, else 500."""
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def message_for(exc: BaseException) -> str:
    """The user-facing text of an error: a dockyard error's own message; an OSError that escaped
    its subsystem in Go's words (``open /path: no space left on device``), never ``[Errno 28] ...``."""
    if isinstance(exc, OSError) and not isinstance(exc, errors.DockyardError) and exc.strerror:
        reason = exc.strerror[:1].lower() + exc.strerror[1:]
        return f"{exc.filename}: {reason}" if exc.filename is not None else reason
    return str(exc) or type(exc).__name__


def error_response(exc: BaseException) -> web.Response:
    """Docker's error body: ``{"message": "..."}`` (304 carries no body, as in moby)."""
    status = status_for(exc)
    if status == 304:
        return web.Response(status=304)
    message = message_for(exc)
    return web.Response(
        status=status,
        body=json.dumps({"message": message}).encode() + b"\n",
        content_type="application/json",
    )
