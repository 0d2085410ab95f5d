"""OCI content descriptor: what a manifest says about each blob it points at."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dockyard.errors import InvalidArgument
from dockyard.oci.digest import Digest


@dataclass(frozen=True)
class Platform:
    architecture: str
    os: str
    variant: str = ""

    def to_json(self) -> dict[str, str]:
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    annotations: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    platform: Platform | None = None

    @classmethod
    def from_json(cls, obj: Any) -> Descriptor:
        if not isinstance(obj, dict):
            raise InvalidArgument("descriptor must be a JSON object")
        try:
            media_type = str(obj["mediaType"])
            digest = Digest.parse(str(obj["digest"]))
            size = int(obj["size"])
        except KeyError as exc:
            raise InvalidArgument(f"descriptor lacks field {exc.args[0]!r}") from exc
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(f"descriptor has a bad field: {exc}") from exc
        if size < 0:
            raise InvalidArgument("descriptor size must not be negative")
        plat = obj.get("platform")
        platform = None
        if isinstance(plat, dict):
            platform = Platform(str(plat.get("architecture", "")), str(plat.get("os", "")),
                                str(plat.get("variant", "")))
        annotations = obj.get("annotations") or {}
        if not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values()):
            raise InvalidArgument("descriptor annotations must be an object of strings")
        return cls(media_type, digest, size, dict(annotations), platform)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": str(self.digest), "size": self.size}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        return out
