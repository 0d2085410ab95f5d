"""Error categories shared by every layer.

Hierarchy (all derive from DockyardError; the API maps each to one HTTP status in
``api/errors.status_for`` and nowhere else):

    DockyardError            500  something unexpected (also: Internal)
    ├── NotFound             404  no such container / image / exec / volume / network
    ├── AlreadyExists        409  a name or tag is already taken
    ├── Conflict             409  the object is in a state that forbids the request
    ├── InvalidArgument      400  bad input: malformed JSON, bad flag value, bad reference
    ├── NotModified          304  the request asked for what already is (start a running container)
    ├── FailedPrecondition   412  a precondition the caller set does not hold
    ├── PermissionDenied     403  not allowed
    ├── Unavailable          503  a dependency is down (runtime, shim, registry)
    ├── Unsupported          501  a request this configuration cannot serve (logs of the "none" driver)
    └── Internal             500  a bug or an unexpected OS failure
        └── NoSpace          500  the data root's file system is full (ENOSPC, EDQUOT); 500 as in
                                  dockerd, where a full disk is a plain system error

Subsystems translate OSError / subprocess / netlink failures into these with ``raise … from exc``.
"""

from __future__ import annotations

import errno
import os


class DockyardError(Exception):
    """Base of all dockyard errors; ``str(err)`` is the user-facing message."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotFound(DockyardError):
    pass


class AlreadyExists(DockyardError):
    pass


class Conflict(DockyardError):
    pass


class InvalidArgument(DockyardError):
    pass


class NotModified(DockyardError):
    pass


class FailedPrecondition(DockyardError):
    pass


class PermissionDenied(DockyardError):
    pass


class Unavailable(DockyardError):
    pass


class Unsupported(DockyardError):  # moby: errdefs.NotImplemented
    pass


class Internal(DockyardError):
    pass


class NoSpace(Internal):
    pass


NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_no_space(exc: BaseException) -> bool:
    """True for a full disk or an exhausted quota, raw or already translated."""
    return isinstance(exc, NoSpace) or (isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS)


def no_space(what: str, exc: OSError | None = None) -> NoSpace:
    """``<what>: no space left on device`` — Go's wording, as dockerd reports a full disk."""
    code = exc.errno if exc is not None and exc.errno in NO_SPACE_ERRNOS else errno.ENOSPC
    reason = os.strerror(code)
    return NoSpace(f"{what}: {reason[:1].lower()}{reason[1:]}")
