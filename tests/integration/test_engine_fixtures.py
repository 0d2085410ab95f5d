"""Helpers for the engine's integration tests: a busybox image built locally, engine roots."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n" \
         b"app:x:1000:1000:app:/home/app:/bin/sh\n"
GROUP = b"root:x:0:\nnobody:x:65534:\napp:x:1000:\nextra:x:2000:app\n"


def _add(tar: tarfile.TarFile, name: str, data: bytes | None = None, *, mode: int = 0o644,
         kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.mode = mode
    info.type = kind
    info.linkname = link
    info.size = len(data) if data is not None else 0
    tar.addfile(info, io.BytesIO(data) if data is not None else None)


def busybox_layer() -> bytes:
    """An uncompressed layer tar: /bin/busybox with its applet links, /etc/passwd, /etc/group."""
    applets = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, check=True,
                             text=True).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("bin", "etc", "tmp", "root", "home", "proc", "sys", "dev"):
            _add(tar, d, kind=tarfile.DIRTYPE, mode=0o1777 if d == "tmp" else 0o755)
        _add(tar, "bin/busybox", BUSYBOX.read_bytes(), mode=0o755)
        for applet in sorted(set(applets)):
            if applet != "busybox":
                _add(tar, f"bin/{applet}", kind=tarfile.SYMTYPE, link="busybox", mode=0o777)
        _add(tar, "etc/passwd", PASSWD)
        _add(tar, "etc/group", GROUP)
    return buf.getvalue()


def busybox_archive(path: Path, tag: str) -> None:
    """A docker-archive (``docker save`` format) with one busybox layer, tagged ``tag``."""
    layer = busybox_layer()
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({
        "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, "amd64"),
        "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "engine test"}],
    }).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [tag],
                            "Layers": [f"{diff_id[7:]}/layer.tar"]}]).encode()
    with tarfile.open(path, "w") as tar:
        _add(tar, config_name, config)
        _add(tar, f"{diff_id[7:]}", kind=tarfile.DIRTYPE, mode=0o755)
        _add(tar, f"{diff_id[7:]}/layer.tar", layer)
        _add(tar, "manifest.json", manifest)


def runtimes_available() -> list[str]:
    import shutil
    import sys
    found = []
    if shutil.which("runc"):
        found.append("runc")
    if Path(sys.executable).with_name("dockyard-runtime").exists():
        found.append("dockyard-runtime")
    return found


def mounted(path: Path) -> bool:
    target = str(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)


def cgroup_dirs(parent: str, cid: str) -> list[Path]:
    base = Path("/sys/fs/cgroup")
    return [d / parent / cid for d in base.iterdir() if (d / parent / cid).exists()]


# -- an Engine in unique roots, run inside one event loop per test ----------------------------
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import shutil  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Awaitable, Callable  # noqa: E402
from typing import Any  # noqa: E402

from tests.cleanup import kill_processes_naming, unmount_under  # noqa: E402

TAG = "busybox:latest"


async def open_engine(base: Path, exec_root: Path, runtime: str) -> Any:
    from dockyard.engine.engine import Engine, EngineConfig
    tag = exec_root.name[-8:]
    cfg = EngineConfig(data_root=base / "data", exec_root=exec_root, default_runtime=runtime,
                       bridge=f"dyb{tag}", firewall_table=f"dytest_{tag}")
    engine = await Engine.open(cfg)
    archive = base / "busybox.tar"
    if not archive.exists():
        busybox_archive(archive, TAG)
    with contextlib.suppress(Exception):
        engine.images.resolve(TAG)
        return engine
    await engine.load_images(archive)
    return engine


def run_with_engine(tmp_path: Path, runtime: str,
                    body: Callable[[Any, Path, Path, dict[str, Any]], Awaitable[None]]) -> None:
    """Run ``body(engine, base, exec_root, holder)`` in a fresh loop (a body that reopens the engine
    stores the new one in ``holder["engine"]``); afterwards remove every container and
    kill/unmount/rmdir whatever is left, pass or fail."""
    exec_root = Path(f"/run/dyeng-{uuid.uuid4().hex[:8]}")  # short: unix socket paths ≤ 108 bytes
    state: dict[str, Any] = {}

    async def main() -> None:
        engine = await open_engine(tmp_path, exec_root, runtime)
        state["engine"] = engine
        try:
            await body(engine, tmp_path, exec_root, state)
        finally:
            engine = state["engine"]  # the body may have reopened it
            for rec in engine.store.all():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(engine.remove_container(rec.id, force=True), 30)
            await engine.close()

    try:
        asyncio.run(main())
    finally:
        kill_processes_naming(exec_root)
        unmount_under(tmp_path)
        ids = [d.name for d in (tmp_path / "data" / "containers").glob("*")] \
            if (tmp_path / "data" / "containers").exists() else []
        for cid in ids:
            for d in cgroup_dirs("dockyard", cid):
                with contextlib.suppress(OSError):
                    d.rmdir()
        shutil.rmtree(exec_root, ignore_errors=True)
