"""Images through real overlayfs: load/import, unpack with whiteouts, mount the rootfs, run busybox in it."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.content import ContentStore
from dockyard.images import ImageService
from dockyard.images.util import chain_ids
from dockyard.metadata.db import Database
from dockyard.mount import mount_all, unmount_all
from dockyard.snapshots import Snapshotter
from tests.unit.test_images_archives import Image, Layer, docker_archive_old, sha

pytestmark = pytest.mark.root

BUSYBOX = Path("/bin/busybox")


def _tar(entries: list[tuple[str, bytes | None, int]]) -> bytes:
    """(name, data or None for a dir, mode)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data, mode in entries:
            ti = tarfile.TarInfo(name)
            ti.mode = mode
            ti.mtime = 1_600_000_000
            if data is None:
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            else:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[ImageService]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    db = Database(tmp_path / "metadata.db")
    snaps = Snapshotter(tmp_path / "snapshots")
    yield ImageService(db, ContentStore(tmp_path / "content"), snaps, tmp_path / "tmp")
    snaps.close()
    db.close()


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Path]:
    t = tmp_path / f"rootfs-{uuid.uuid4().hex[:8]}"
    t.mkdir()
    try:
        yield t
    finally:
        if t.exists():
            unmount_all(t, detach=True)


@pytest.mark.skipif(not BUSYBOX.exists(), reason="busybox-static not installed")
def test_import_busybox_and_layer_with_whiteouts_runs(svc: ImageService, target: Path) -> None:
    base = _tar([("bin/", None, 0o755), ("bin/busybox", BUSYBOX.read_bytes(), 0o755), ("etc/", None, 0o755),
                 ("etc/gone", b"old\n", 0o644), ("data/", None, 0o755), ("data/old", b"o", 0o644)])
    base_id = svc.import_rootfs(io.BytesIO(base), f"dy-it-bb-{uuid.uuid4().hex[:6]}", ['CMD ["sh"]'], "")
    diff_id = svc.config(base_id)["rootfs"]["diff_ids"][0]
    top = Layer(_tar([("etc/", None, 0o755), ("etc/.wh.gone", b"", 0o644), ("etc/new", b"new\n", 0o644),
                      ("data/", None, 0o755), ("data/.wh..wh..opq", b"", 0o644), ("data/fresh", b"f", 0o644)]))
    img = Image([Layer(base), top], tags=[f"dy-it-app-{uuid.uuid4().hex[:6]}:latest"])
    assert img.layers[0].diff_id == diff_id
    svc.load(io.BytesIO(docker_archive_old([img])))
    chains = chain_ids([diff_id, top.diff_id])
    assert svc.unpack(img.id) == chains[-1]
    key = f"view-{uuid.uuid4().hex[:8]}"
    mount_all(svc.snapshots.view(key, chains[-1]), target)
    try:
        assert (target / "etc/new").read_text() == "new\n"
        assert not (target / "etc/gone").exists()
        assert sorted(os.listdir(target / "data")) == ["fresh"]
        out = subprocess.run(["chroot", str(target), "/bin/busybox", "cat", "/etc/new"],
                             capture_output=True, timeout=30, check=True)
        assert out.stdout == b"new\n"
    finally:
        unmount_all(target, detach=True)
        svc.snapshots.remove(key)
    # The base layer is shared by both images: removing the app keeps it.
    svc.remove(img.id, force=True)
    assert svc.snapshots.exists(chains[0]) and not svc.snapshots.exists(chains[1])
    svc.remove(base_id, force=True)
    assert not svc.snapshots.exists(chains[0])


def test_remove_image_keeps_snapshots_a_container_stacks_on(svc: ImageService, target: Path) -> None:
    rootfs = _tar([("hello.txt", b"hi\n", 0o644)])
    image_id = svc.import_rootfs(io.BytesIO(rootfs), None, [], "")
    chain = sha(rootfs)
    container_key = f"ctr-{uuid.uuid4().hex[:8]}"
    mount_all(svc.snapshots.prepare(container_key, chain), target)
    try:
        (target / "written.txt").write_text("x")
        assert (target / "hello.txt").read_text() == "hi\n"
        # A container the engine did not report (a bug upstream) must not lose its lower layer.
        items = svc.remove(image_id)
        assert [i.deleted for i in items] == [image_id]
        assert svc.snapshots.exists(chain)
        assert (target / "hello.txt").read_text() == "hi\n"
    finally:
        unmount_all(target, detach=True)
        svc.snapshots.remove(container_key)
    svc.snapshots.remove(chain)
