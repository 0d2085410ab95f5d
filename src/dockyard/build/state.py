"""A build step's state: an image config (with its diff ids and history) and the top chain ID.

The state's identity is the sha256 of its config bytes, i.e. the image ID an image made from it
would get; cache keys chain from it, so an unchanged step yields the byte-identical config again.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from dockyard.images.util import chain_ids, host_arch, rfc3339_now
from dockyard.oci.digest import Digest


def encode_config(config: dict[str, Any]) -> bytes:
    return json.dumps(config, separators=(",", ":"), sort_keys=True).encode()


@dataclass
class State:
    config: dict[str, Any]                 # the whole image config document
    image_ref: str = ""                    # the local image this stage started from ("" for scratch)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def scratch(cls) -> State:
        return cls({"architecture": host_arch(), "os": "linux", "config": {},
                    "rootfs": {"type": "layers", "diff_ids": []}, "history": []})

    @classmethod
    def from_image(cls, config: dict[str, Any], image_ref: str) -> State:
        cfg = copy.deepcopy(config)
        cfg.setdefault("config", {})
        cfg.setdefault("history", [])
        cfg.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        return cls(cfg, image_ref)

    def copy(self) -> State:
        return State(copy.deepcopy(self.config), self.image_ref, dict(self.extra))

    @property
    def run_config(self) -> dict[str, Any]:
        """The ``config`` part (Env, Cmd, WorkingDir, ...)."""
        inner: dict[str, Any] = self.config.setdefault("config", {})
        return inner

    @property
    def diff_ids(self) -> list[str]:
        return list(self.config.get("rootfs", {}).get("diff_ids") or [])

    @property
    def chain_id(self) -> str | None:
        ids = chain_ids(self.diff_ids)
        return ids[-1] if ids else None

    def blob(self) -> bytes:
        return encode_config(self.config)

    @property
    def id(self) -> str:
        return str(Digest.from_bytes(self.blob()))

    def add_history(self, created_by: str, *, empty_layer: bool, comment: str = "") -> None:
        entry: dict[str, Any] = {"created": rfc3339_now(), "created_by": created_by}
        if comment:
            entry["comment"] = comment
        if empty_layer:
            entry["empty_layer"] = True
        self.config.setdefault("history", []).append(entry)
        self.config["created"] = entry["created"]

    def add_layer(self, diff_id: str) -> None:
        self.config.setdefault("rootfs", {"type": "layers", "diff_ids": []}).setdefault(
            "diff_ids", []).append(diff_id)

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.run_config.get("Env") or []:
            key, _, value = str(item).partition("=")
            out[key] = value
        return out

    def set_env(self, key: str, value: str) -> None:
        items = list(self.run_config.get("Env") or [])
        for i, item in enumerate(items):  # Docker replaces a variable in place
            if str(item).partition("=")[0] == key:
                items[i] = f"{key}={value}"
                break
        else:
            items.append(f"{key}={value}")
        self.run_config["Env"] = items
