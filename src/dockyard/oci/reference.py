"""Image references as Docker normalises them: ``busybox`` → ``docker.io/library/busybox:latest``.

Grammar (distribution/reference): ``[domain/]path[:tag][@digest]``; a first component is a domain
when it contains ``.`` or ``:`` or is ``localhost``. Path components are lowercase alphanumerics
separated by ``.``, ``_``, ``__`` or runs of ``-``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dockyard.errors import InvalidArgument
from dockyard.oci.digest import Digest

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_DOMAIN_RE = re.compile(
    r"^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
    r"(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$"
)
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$", re.ASCII)  # Go's \w; always fullmatch: $ allows a final \n
_HEX64 = re.compile(r"^[a-f0-9]{64}$")


@dataclass(frozen=True)
class Reference:
    domain: str
    path: str
    tag: str | None = None
    digest: Digest | None = None

    @property
    def name(self) -> str:
        """Fully qualified repository name: ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """Name as Docker prints it: ``busybox``, ``user/app``, ``localhost:5000/app``."""
        if self.domain == DEFAULT_DOMAIN:
            if self.path.startswith(OFFICIAL_REPO_PREFIX) and self.path.count("/") == 1:
                return self.path[len(OFFICIAL_REPO_PREFIX):]
            return self.path
        return self.name

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.domain, self.path, tag, None)

    def tagged_or_default(self) -> Reference:
        if self.tag is None and self.digest is None:
            return Reference(self.domain, self.path, DEFAULT_TAG, None)
        return self

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += ":" + self.tag
        if self.digest:
            out += "@" + str(self.digest)
        return out

    def familiar(self) -> str:
        """``busybox:latest`` style string (what ``docker images`` shows as repo:tag)."""
        out = self.familiar_name
        if self.tag:
            out += ":" + self.tag
        if self.digest:
            out += "@" + str(self.digest)
        return out


def parse(text: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalise a reference; raises InvalidArgument naming what is wrong."""
    if not text:
        raise InvalidArgument("invalid reference format: repository name must have at least one component")
    if len(text) > 255 + 129 + 136:  # name, ":" tag, "@sha512:" digest
        raise InvalidArgument("invalid reference format: repository name must not be more than 255 characters")
    remainder = text
    digest: Digest | None = None
    if "@" in remainder:
        remainder, _, dig = remainder.partition("@")
        try:
            digest = Digest.parse(dig)
        except InvalidArgument as exc:
            raise InvalidArgument(f"invalid reference format: {exc}") from exc
    tag: str | None = None
    last_slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > last_slash:
        remainder, tag = remainder[:colon], remainder[colon + 1:]
        if not _TAG_RE.fullmatch(tag):
            raise InvalidArgument(f"invalid reference format: invalid tag {tag!r}")
    if _HEX64.fullmatch(remainder) and tag is None and digest is None:
        raise InvalidArgument(
            f"invalid repository name ({remainder}), cannot specify 64-byte hexadecimal strings")
    first, sep, rest = remainder.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        domain, path = first, rest
        if not _DOMAIN_RE.fullmatch(domain):
            raise InvalidArgument(f"invalid reference format: invalid domain {domain!r}")
    else:
        domain, path = DEFAULT_DOMAIN, remainder
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_REPO_PREFIX + path
    if any(c.isupper() for c in path):
        raise InvalidArgument("invalid reference format: repository name must be lowercase")
    if not _PATH_RE.fullmatch(path):
        raise InvalidArgument(f"invalid reference format: {text!r}")
    if len(domain) + 1 + len(path) > 255:
        raise InvalidArgument("invalid reference format: repository name must not be more than 255 characters")
    ref = Reference(domain, path, tag, digest)
    return ref.tagged_or_default() if default_tag else ref
