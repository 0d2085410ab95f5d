"""Unpacking layers into committed snapshots named by chain ID, once per chain, safe across threads."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable
from contextlib import suppress
from typing import TYPE_CHECKING

from dockyard.errors import AlreadyExists, DockyardError, FailedPrecondition, InvalidArgument, NotFound
from dockyard.images.util import chain_ids
from dockyard.oci.descriptor import Descriptor

if TYPE_CHECKING:
    from dockyard.content import ContentStore
    from dockyard.snapshots import Snapshotter


class Unpacker:
    def __init__(self, content: ContentStore, snapshots: Snapshotter) -> None:
        self.content = content
        self.snapshots = snapshots
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def _lock(self, chain_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(chain_id, threading.Lock())

    def is_committed(self, chain_id: str) -> bool:
        if not self.snapshots.exists(chain_id):
            return False
        return self.snapshots.stat(chain_id).kind == "committed"

    def unpack(self, diff_ids: list[str], layers: list[Descriptor], created: list[str] | None = None) -> str | None:
        """Make every layer a committed snapshot; returns the top chain ID (None without layers).

        Chain IDs this call committed are appended to ``created`` so a failing caller can undo them.
        """
        if len(diff_ids) != len(layers):
            raise InvalidArgument(f"image has {len(layers)} layers but its config lists {len(diff_ids)} diff ids")
        chains = chain_ids(diff_ids)
        parent: str | None = None
        for index, (chain, layer) in enumerate(zip(chains, layers, strict=True)):
            with self._lock(chain):
                if (not self.is_committed(chain)
                        and self._apply(index, chain, parent, layer, diff_ids[index]) and created is not None):
                    created.append(chain)
            parent = chain
        return chains[-1] if chains else None

    def _apply(self, index: int, chain: str, parent: str | None, layer: Descriptor, diff_id: str) -> bool:
        from dockyard.diff import apply_layer

        key = f"extract-{secrets.token_hex(8)}"
        self.snapshots.prepare(key, parent)
        try:
            with self.content.open(layer.digest) as stream:
                try:
                    result = apply_layer(stream, self.snapshots.upper_dir(key))
                except InvalidArgument as exc:
                    raise InvalidArgument(f"layer {index} ({layer.digest}): {exc}") from exc
            if str(result.diff_id) != diff_id:
                raise InvalidArgument(
                    f"layer {index} ({layer.digest}): content has diff id {result.diff_id}, "
                    f"but the image config says {diff_id}")
            try:
                self.snapshots.commit(chain, key)
            except AlreadyExists:
                # A racing unpack (other process) committed the same layer first: that is success.
                with suppress(DockyardError):
                    self.snapshots.remove(key)
                return False
            return True
        except BaseException:
            with suppress(DockyardError, OSError):
                self.snapshots.remove(key)
            raise

    def remove_chains(self, chains: Iterable[str], keep: set[str]) -> int:
        """Remove committed chain snapshots (pass them top-down) unless kept or stacked upon.

        Returns bytes freed (the snapshots' own usage).
        """
        freed = 0
        for chain in chains:
            if chain in keep:
                continue
            with self._lock(chain):
                try:
                    size = self.snapshots.usage(chain)[0]
                    self.snapshots.remove(chain)
                except NotFound:
                    continue
                except FailedPrecondition:
                    # Something (a container, a build) still stacks on it; its parents then fail too.
                    continue
                freed += size
        return freed
