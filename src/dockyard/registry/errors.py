"""The distribution spec's error codes, their HTTP statuses and JSON bodies (the one place where a
registry error becomes a status)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from dockyard import errors

# code -> (status, the spec's message)
CODES: dict[str, tuple[int, str]] = {
    "BLOB_UNKNOWN": (404, "blob unknown to registry"),
    "BLOB_UPLOAD_INVALID": (400, "blob upload invalid"),
    "BLOB_UPLOAD_UNKNOWN": (404, "blob upload unknown to registry"),
    "DIGEST_INVALID": (400, "provided digest did not match uploaded content"),
    "MANIFEST_BLOB_UNKNOWN": (400, "manifest references a manifest or blob unknown to registry"),
    "MANIFEST_INVALID": (400, "manifest invalid"),
    "MANIFEST_UNKNOWN": (404, "manifest unknown to registry"),
    "NAME_INVALID": (400, "invalid repository name"),
    "NAME_UNKNOWN": (404, "repository name not known to registry"),
    "SIZE_INVALID": (400, "provided length did not match content length"),
    "TAG_INVALID": (400, "manifest tag did not match URI"),
    "PAGINATION_NUMBER_INVALID": (400, "invalid number of results requested"),
    "UNAUTHORIZED": (401, "authentication required"),
    "DENIED": (403, "requested access to the resource is denied"),
    "UNSUPPORTED": (405, "the operation is unsupported"),
    "TOOMANYREQUESTS": (429, "too many requests"),
    "UNAVAILABLE": (503, "service unavailable"),
    "UNKNOWN": (500, "unknown error"),
}

# Fallback for dockyard's generic categories raised below the registry (content store, OS errors).
_CATEGORY_CODE: tuple[tuple[type[errors.DockyardError], str], ...] = (
    (errors.Unavailable, "UNAVAILABLE"),
    (errors.InvalidArgument, "BLOB_UPLOAD_INVALID"),
)


class RegistryError(errors.DockyardError):
    """One distribution error: ``code`` picks the status unless ``status`` overrides it (e.g. a
    BLOB_UPLOAD_INVALID for an out-of-order chunk is 416); ``headers`` go on the error response."""

    def __init__(self, code: str, message: str = "", detail: Any = None, *, status: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        if code not in CODES:
            raise ValueError(f"unknown registry error code {code}")
        default_status, default_message = CODES[code]
        super().__init__(message or default_message)
        self.code = code
        self.detail = detail
        self.status = status or default_status
        self.headers = dict(headers or {})


def as_registry_error(exc: BaseException) -> RegistryError:
    if isinstance(exc, RegistryError):
        return exc
    if isinstance(exc, errors.DockyardError):
        for kind, code in _CATEGORY_CODE:
            if isinstance(exc, kind):
                return RegistryError(code, str(exc))
    return RegistryError("UNKNOWN", str(exc) or type(exc).__name__)


def error_response(exc: BaseException) -> web.Response:
    """``{"errors": [{"code", "message", "detail"}]}`` with the code's status."""
    err = as_registry_error(exc)
    entry: dict[str, Any] = {"code": err.code, "message": str(err)}
    if err.detail is not None:
        entry["detail"] = err.detail
    return web.Response(status=err.status, body=json.dumps({"errors": [entry]}).encode() + b"\n",
                        content_type="application/json", headers=err.headers)
