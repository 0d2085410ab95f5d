"""Layers for build steps: change a rootfs, store the change as a layer blob, commit its snapshot.

Every layer is written once (uncompressed, so its digest is its diff ID) into the content store, and
the snapshot that produced it is committed under the new chain ID, so the next step stacks on it
without extracting anything again.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from dockyard.diff import write_layer
from dockyard.errors import AlreadyExists, DockyardError, Internal
from dockyard.images.util import chain_ids
from dockyard.mount import mount_all, unmount_all
from dockyard.oci import mediatypes as mt
from dockyard.oci.descriptor import Descriptor
from dockyard.oci.digest import Digest


def next_chain(parent_chain: str | None, diff_id: str) -> str:
    return chain_ids([parent_chain, diff_id])[-1] if parent_chain else diff_id


class LayerStore:
    def __init__(self, snapshots: Any, content: Any, tmp_dir: Path) -> None:
        self.snapshots = snapshots
        self.content = content
        self.tmp_dir = tmp_dir

    def _mountpoint(self) -> Path:
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="build-mnt-", dir=self.tmp_dir))

    def has(self, chain: str | None) -> bool:
        return chain is None or self.snapshots.exists(chain)

    def descriptor(self, diff_id: str) -> Descriptor:
        digest = Digest.parse(diff_id)
        return Descriptor(mt.DOCKER_LAYER, digest, self.content.info(digest).size)

    def mutate(self, parent: str | None, change: Callable[[Path], None]) -> str:
        """Run ``change`` on a writable mount of ``parent``; returns the new layer's diff ID."""
        key = f"build-{secrets.token_hex(8)}"
        mounts = self.snapshots.prepare(key, parent)
        try:
            target = self._mountpoint()
            try:
                mount_all(mounts, target)
                try:
                    change(target)
                finally:
                    unmount_all(target)
            finally:
                with contextlib.suppress(OSError):
                    target.rmdir()
            return self._commit(key, parent)
        except BaseException:
            self._drop(key)
            raise

    def adopt(self, parent: str | None, upper: Path) -> str:
        """Move a finished container's upper dir onto ``parent`` as a new layer (no copying: the
        container's snapshot stacks on its init layer, which must not become part of the image)."""
        key = f"build-{secrets.token_hex(8)}"
        self.snapshots.prepare(key, parent)
        try:
            dest = self.snapshots.upper_dir(key)
            try:
                for entry in os.listdir(upper):
                    os.rename(upper / entry, dest / entry)
            except OSError as exc:
                raise Internal(f"cannot move the build container's changes: {exc}") from exc
            return self._commit(key, parent)
        except BaseException:
            self._drop(key)
            raise

    def _commit(self, key: str, parent: str | None) -> str:
        with self.content.writer(f"build-layer-{secrets.token_hex(8)}") as w:
            diff_id = str(write_layer(self.snapshots.upper_dir(key), w))
            w.commit()
        chain = next_chain(parent, diff_id)
        try:
            self.snapshots.commit(chain, key)
        except AlreadyExists:  # the same layer on the same parent was built before
            self._drop(key)
        return diff_id

    def _drop(self, key: str) -> None:
        with contextlib.suppress(DockyardError, OSError):
            if self.snapshots.exists(key):
                self.snapshots.remove(key)

    @contextlib.contextmanager
    def view(self, chain: str | None) -> Iterator[Path]:
        """A read-only mount of ``chain`` (an empty dir for scratch), removed afterwards."""
        target = self._mountpoint()
        key = f"build-view-{secrets.token_hex(8)}"
        try:
            if chain is None:
                yield target
                return
            mounts = self.snapshots.view(key, chain)
            try:
                mount_all(mounts, target)
                try:
                    yield target
                finally:
                    unmount_all(target)
            finally:
                self._drop(key)
        finally:
            shutil.rmtree(target, ignore_errors=True) if chain is None else _rmdir(target)


def _rmdir(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()
