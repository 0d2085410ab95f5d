"""Issue 8, disk full: a daemon whose data root is a small ext4 file system (a loop device).

With the file system filled close to the brim, pull, build, load and a chatty container's log
writes fail with an error that names the lack of space (never a traceback), the daemon keeps
answering, what was stored before is intact (``system check`` finds nothing, the old image runs,
the old container and volume keep their data), nothing half-written is left (no new image, tag,
snapshot, ingest, container directory or spool file), and once the filler is deleted the same
operation succeeds.

HTTP status, as dockerd: pull, build and load stream their progress, so a failure after the first
progress line is an ``errorDetail`` line in a 200 response; before it (a request body that cannot
be spooled) it is a 500 — moby has no error category for ENOSPC and answers it as a system error.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cleanup import stop_process
from tests.conftest import BIN, LiveDaemon, free_port, start_daemon, stop_daemon, unique
from tests.unixhttp import UnixHTTPConnection as _UnixHTTP

pytestmark = [pytest.mark.root, pytest.mark.timeout(900)]

DISK_MB = 320
NO_SPACE = "no space left on device"
LAYER_MB = 24


# ------------------------------------------------------------------------------- the small disk

@contextlib.contextmanager
def small_fs(base: Path, mb: int) -> Iterator[Path]:
    """An ext4 file system of ``mb`` MiB in a file, mounted at ``base/data`` (where ``start_daemon``
    puts the data root); unmounted and its loop device detached however the test ends."""
    image = base / f"disk-{uuid.uuid4().hex[:8]}.img"
    mnt = base / "data"
    mnt.mkdir()
    with image.open("wb") as f:
        f.truncate(mb << 20)
    # -m 0: no blocks reserved for root (the daemon is root and would use them)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], check=True, capture_output=True)
    dev = subprocess.run(["losetup", "--find", "--show", str(image)], check=True, capture_output=True,
                         text=True).stdout.strip()
    try:
        subprocess.run(["mount", "-t", "ext4", dev, str(mnt)], check=True, capture_output=True)
        try:
            yield mnt
        finally:
            if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True)
        image.unlink(missing_ok=True)


class Filler:
    """Files that take all but ``leave`` bytes of the data root's free space."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / f"filler-{uuid.uuid4().hex[:8]}"
        self.rest = root / f"filler-{uuid.uuid4().hex[:8]}-rest"

    def free(self) -> int:
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize

    def fill(self, leave: int) -> None:
        self.drop()
        size = self.free() - max(leave, 1 << 20)   # the extent tree of the file needs room too
        assert size > 0, f"only {self.free()} bytes free, wanted to leave {leave}"
        subprocess.run(["fallocate", "-l", str(size), str(self.path)], check=True)
        if leave == 0:   # the last blocks, written until the file system refuses
            with self.rest.open("wb", buffering=0) as f:
                for chunk in (b"\0" * 65536, b"\0" * 4096):
                    with contextlib.suppress(OSError):
                        while True:
                            f.write(chunk)
        os.sync()

    def drop(self) -> None:
        self.path.unlink(missing_ok=True)
        self.rest.unlink(missing_ok=True)
        os.sync()


# ------------------------------------------------------------------------------- raw API calls

def api(d: LiveDaemon, method: str, path: str, body: bytes | None = None,
        headers: dict[str, str] | None = None, timeout: float = 180) -> tuple[int, bytes]:
    conn = _UnixHTTP(d.sock, timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def stream_error(status: int, body: bytes) -> str:
    """The error of a JSON progress stream (200 + ``errorDetail``) or of a plain error response."""
    if status != 200:
        return str(json.loads(body)["message"])
    for line in body.decode().splitlines():
        if line.strip():
            msg = json.loads(line)
            if "errorDetail" in msg:
                assert msg["error"] == msg["errorDetail"]["message"]
                return str(msg["error"])
    return ""


def assert_clear_no_space(what: str, status: int, body: bytes) -> str:
    msg = stream_error(status, body)
    assert NO_SPACE in msg.lower(), f"{what}: HTTP {status}: {body.decode(errors='replace')[-2000:]}"
    assert "Traceback" not in msg and "Errno" not in msg, f"{what}: {msg}"
    print(f"{what}: HTTP {status}: {msg}")
    return msg


# ------------------------------------------------------------------------------- store snapshots

def store_state(d: LiveDaemon) -> dict[str, Any]:
    """What a failed operation must not change: images and tags, snapshot, container and ingest
    directories, spool files."""
    status, body = api(d, "GET", "/images/json?all=1")
    assert status == 200, body
    images = sorted((i["Id"], tuple(sorted(i.get("RepoTags") or []))) for i in json.loads(body))
    root = d.data_root

    def names(sub: str) -> list[str]:
        p = root / sub
        return sorted(n for n in os.listdir(p) if not n.startswith("metadata.db")) if p.is_dir() else []

    return {"images": images, "blobs": names("content/blobs/sha256"), "snapshots": names("snapshots"),
            "containers": names("containers"), "volumes": names("volumes"), "ingest": names("content/ingest"),
            "tmp": names("tmp")}


def assert_healthy(d: LiveDaemon, before: dict[str, Any], what: str) -> None:
    assert d.proc.poll() is None, f"the daemon died during {what}"
    status, body = api(d, "GET", "/_ping")
    assert (status, body) == (200, b"OK"), f"after {what}: /_ping {status} {body!r}"
    after = store_state(d)
    assert after == before, f"{what} left state behind:\n before {before}\n after  {after}"
    status, body = api(d, "POST", "/system/check")
    assert status == 200, body
    assert json.loads(body)["Findings"] == [], f"after {what}: system check: {body.decode()}"


# ------------------------------------------------------------------------------- the registry

class Registry:
    def __init__(self, root: Path) -> None:
        self.host = f"127.0.0.1:{free_port()}"
        self.proc = subprocess.Popen([str(BIN / "dockyard"), "registry", "serve", "--addr", self.host,
                                      "--root", str(root)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        for _ in range(200):
            try:
                socket.create_connection(tuple(self.host.split(":")), timeout=1).close()  # type: ignore[arg-type]
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError("registry did not come up")

    def stop(self) -> None:
        stop_process(self.proc)


# ------------------------------------------------------------------------------- the test

def _context_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[LiveDaemon, Registry, Filler]]:
    with small_fs(tmp_path, DISK_MB) as root:
        registry = Registry(tmp_path / "registry")   # on the big disk: only the daemon's root is small
        try:
            d = start_daemon(tmp_path)
            filler = Filler(root)
            try:
                assert d.data_root == root
                yield d, registry, filler
            finally:
                filler.drop()   # room for the clean-up's own writes
                stop_daemon(d)
        finally:
            registry.stop()


def test_disk_full(env: tuple[LiveDaemon, Registry, Filler], tmp_path: Path) -> None:
    d, registry, filler = env
    d.cli("bootstrap", "busybox", timeout=120)
    # an image of one busybox layer and one of LAYER_MB random bytes, in the registry and in a tar
    ctx = tmp_path / "src-ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM busybox\nRUN dd if=/dev/urandom of=/blob bs=1M count={LAYER_MB}\n")
    ref = f"{registry.host}/diskfull/src:1"
    d.cli("build", "-q", "-t", ref, str(ctx), timeout=180)
    d.cli("push", ref, timeout=180)
    saved = tmp_path / "src.tar"
    d.cli("save", "-o", str(saved), ref, timeout=120)
    d.cli("rmi", ref)
    d.cli("builder", "prune", "-af")
    # what exists before the disk fills: a volume with data, a stopped container with a file of its own
    vol = unique("df-vol")
    d.cli("volume", "create", vol)
    d.cli("run", "--rm", "-v", f"{vol}:/data", "busybox", "sh", "-c", "echo kept > /data/f")
    keeper = unique("df-keep")
    d.cli("run", "--name", keeper, "busybox", "sh", "-c", "cat /mine 2>/dev/null; echo mine > /mine")
    before = store_state(d)

    # ---- pull: out of space while downloading, and (more room) while unpacking
    pull_path = f"/images/create?fromImage={registry.host}/diskfull/src&tag=1"
    for leave in (4 << 20, (LAYER_MB + 8) << 20):
        filler.fill(leave)
        status, body = api(d, "POST", pull_path)
        assert status == 200
        assert_clear_no_space(f"pull with {leave >> 20} MiB free", status, body)
        assert_healthy(d, before, "pull")
    res = d.cli("pull", ref, check=False)   # what a user sees: the reason, no traceback
    assert res.returncode != 0 and NO_SPACE in res.stderr.decode() and b"Traceback" not in res.stderr, res
    assert_healthy(d, before, "pull (CLI)")
    filler.drop()
    status, body = api(d, "POST", pull_path)
    assert status == 200 and stream_error(status, body) == "", body
    assert d.cli("run", "--rm", ref, "sh", "-c", "wc -c < /blob").stdout.decode().strip() == str(LAYER_MB << 20)
    d.cli("rmi", ref)

    # ---- load: out of space while the body spools, and (more room) while storing the blobs
    tar = saved.read_bytes()
    # (the body is spooled, then unpacked into a second spool, then stored: three chances to fail)
    for leave in (4 << 20, len(tar) + (8 << 20), 2 * len(tar) + (8 << 20)):
        filler.fill(leave)
        status, body = api(d, "POST", "/images/load", tar, {"Content-Type": "application/x-tar"})
        assert status == 500
        assert_clear_no_space(f"load with {leave >> 20} MiB free", status, body)
        assert_healthy(d, before, "load")
    res = d.cli("load", "-i", str(saved), check=False)
    assert res.returncode != 0 and NO_SPACE in res.stderr.decode() and b"Traceback" not in res.stderr, res
    assert_healthy(d, before, "load (CLI)")
    filler.drop()
    status, body = api(d, "POST", "/images/load", tar, {"Content-Type": "application/x-tar"})
    assert status == 200 and f"Loaded image: {ref}" in body.decode(), body
    d.cli("rmi", ref)

    # ---- build: a RUN that writes more than fits; a context that does not fit
    run_ctx = _context_tar({"Dockerfile": b"FROM busybox\nRUN dd if=/dev/zero of=/big bs=1M count=64\n"})
    filler.fill(16 << 20)
    status, body = api(d, "POST", "/build?t=diskfull/run:1&rm=1&forcerm=1", run_ctx,
                       {"Content-Type": "application/x-tar"})
    assert status == 200
    assert NO_SPACE in body.decode().lower(), body   # dd's own error, in the build output
    msg = stream_error(status, body)
    assert "returned a non-zero code" in msg, msg
    print(f"build RUN with 16 MiB free: HTTP {status}: {msg}")
    assert_healthy(d, before, "build (RUN)")
    # the RUN fits, the layer made of it does not
    layer_ctx = _context_tar({"Dockerfile": f"FROM busybox\nRUN dd if=/dev/urandom of=/big bs=1M count={LAYER_MB}\n".encode()})
    filler.fill((LAYER_MB + 12) << 20)
    status, body = api(d, "POST", "/build?t=diskfull/layer:1", layer_ctx, {"Content-Type": "application/x-tar"})
    assert status == 200
    assert_clear_no_space(f"build layer with {LAYER_MB + 12} MiB free", status, body)
    assert_healthy(d, before, "build (layer)")
    big_ctx = _context_tar({"Dockerfile": b"FROM busybox\nCOPY big /big\n", "big": os.urandom(32 << 20)})
    filler.fill(4 << 20)
    status, body = api(d, "POST", "/build?t=diskfull/copy:1", big_ctx, {"Content-Type": "application/x-tar"})
    assert status == 500   # before the first progress line: the context could not be stored
    assert_clear_no_space("build COPY with 4 MiB free", status, body)
    assert_healthy(d, before, "build (COPY)")
    filler.drop()
    for tag, body_ in (("diskfull/run:1", run_ctx), ("diskfull/layer:1", layer_ctx), ("diskfull/copy:1", big_ctx)):
        status, body = api(d, "POST", f"/build?t={tag}", body_, {"Content-Type": "application/x-tar"})
        assert status == 200 and stream_error(status, body) == "", body
        d.cli("rmi", tag)
    d.cli("builder", "prune", "-af")

    # ---- logs: a container prints far more than fits; it is not blocked, then logs resume
    sig = tmp_path / "signals"   # on the big disk: the container and the test signal each other
    sig.mkdir()
    filler.fill(4 << 20)
    talker = unique("df-log")
    cid = d.cli("run", "-d", "--name", talker, "-v", f"{sig}:/sig", "busybox", "sh", "-c",
                "yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 50000000; touch /sig/burst-done; "
                "while [ ! -e /sig/go ]; do sleep 0.1; done; echo resumed-after-free; "
                "while [ ! -e /sig/end ]; do sleep 0.1; done").stdout.decode().strip()
    # the burst ends though most of it could not be logged: the shim keeps draining its output
    for _ in range(600):
        if (sig / "burst-done").exists():
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the container's output blocked")
    log_path = d.data_root / "containers" / cid / f"{cid}-json.log"
    assert log_path.stat().st_size < 50_000_000
    assert d.cli("logs", "--tail", "1", talker).stdout.startswith(b"0123456789")   # what did fit
    filler.drop()
    (sig / "go").touch()
    for _ in range(300):   # with room again, output is logged again
        out = d.cli("logs", "--tail", "1", talker).stdout
        if out.endswith(b"resumed-after-free\n"):   # after what was left of the burst's last line
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"no log line after space came back: {out[-200:]!r}")
    for line in log_path.read_bytes().splitlines():
        json.loads(line)   # no torn entry
    # the shim said what it dropped, and that it writes again (in its own log, on the exec root)
    said = b"".join(line for p in d.exec_root.rglob("*.log") for line in p.read_bytes().splitlines()
                    if cid.encode() in line)
    assert b"dropping output until it can be written" in said and b"bytes of output were dropped" in said, said
    (sig / "end").touch()
    assert d.cli("wait", talker, timeout=120).stdout.strip() == b"0"
    d.cli("rm", talker)

    # ---- no room at all: the small writes of the metadata database fail cleanly or fit (SQLite may
    # still have room in its files); either way the next write, with room again, works
    filler.fill(0)
    vol2, ctr2 = unique("df-vol"), unique("df-ctr")
    attempts = [("POST", "/volumes/create", json.dumps({"Name": vol2}).encode()),
                ("POST", f"/containers/create?name={ctr2}", json.dumps({"Image": "busybox", "Cmd": ["true"]}).encode()),
                ("POST", "/images/busybox/tag?repo=diskfull/tagged&tag=1", None)]
    for method, path, payload in attempts:
        status, body = api(d, method, path, payload, {"Content-Type": "application/json"})
        if status >= 300:
            assert status == 500, (path, status, body)
            assert_clear_no_space(f"{path} with nothing free", status, body)
        else:
            print(f"{path} with nothing free: HTTP {status} (it fit)")
    assert api(d, "GET", "/_ping") == (200, b"OK")
    filler.drop()
    for method, path, payload in attempts:
        status, body = api(d, method, path, payload, {"Content-Type": "application/json"})
        assert status < 300 or b"already" in body, (path, status, body)   # made now, or made before
    d.cli("rm", ctr2)
    d.cli("volume", "rm", vol2)
    d.cli("rmi", "diskfull/tagged:1")

    # ---- what was there before is intact, and the engine works
    assert_healthy(d, before, "everything")
    assert d.cli("run", "--rm", "-v", f"{vol}:/data", "busybox", "cat", "/data/f").stdout == b"kept\n"
    d.cli("start", keeper)
    assert d.cli("wait", keeper).stdout.strip() == b"0"
    assert d.cli("logs", keeper).stdout == b"mine\n"   # its own file, written before the disk filled
    d.cli("rm", keeper)
    d.cli("volume", "rm", vol)
