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
    └── Internal             500  a bug or an unexpected OS failure

Subsystems translate OSError / subprocess / netlink failures into these with ``raise … from exc``.
"""

from __future__ import annotations


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


class Internal(DockyardError):
    pass
