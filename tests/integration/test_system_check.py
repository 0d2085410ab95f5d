"""`dockyard system check [--repair]` against a live daemon whose store the test damages the way a
crash or a stray hand would: a blob whose bytes lie, a corrupt image layer, an abandoned ingest,
orphan snapshot and container directories, a stale root mount and a stale cgroup."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
from pathlib import Path

import pytest

from tests.conftest import LiveDaemon, start_daemon, stop_daemon, unique

pytestmark = pytest.mark.root


def check(d: LiveDaemon, *flags: str) -> tuple[int, list[dict[str, object]]]:
    res = d.cli("system", "check", "--format", "json", *flags, check=False, timeout=120)
    return res.returncode, [json.loads(x) for x in res.stdout.decode().splitlines() if x.strip()]


def test_system_check_finds_and_repairs(tmp_path: Path) -> None:
    d = start_daemon(tmp_path)
    cgroup: Path | None = None
    mounted: Path | None = None
    try:
        d.cli("bootstrap", "busybox", timeout=120)
        res = d.cli("system", "check")
        assert res.stdout.decode().strip() == "no problems found"
        blobs = d.data_root / "content" / "blobs" / "sha256"
        # a blob named for other bytes, and the busybox layer with a flipped byte
        liar = blobs / hashlib.sha256(b"what the name promises").hexdigest()
        liar.write_bytes(b"something else")
        layer = max(blobs.iterdir(), key=lambda p: p.stat().st_size)
        data = bytearray(layer.read_bytes())
        data[len(data) // 2] ^= 0xFF
        layer.write_bytes(bytes(data))
        # an ingest no writer holds
        ref = "build-layer-abandoned"
        ingest = d.data_root / "content" / "ingest" / hashlib.sha256(ref.encode()).hexdigest()
        ingest.mkdir(parents=True)
        (ingest / "ref").write_text(ref)
        (ingest / "data").write_bytes(b"x" * 1000)
        # orphan directories
        (d.data_root / "snapshots" / "987654" / "fs").mkdir(parents=True)
        orphan_ctr = d.data_root / "containers" / secrets.token_hex(32)
        (orphan_ctr / "rootfs").mkdir(parents=True)
        # a container that is not running but has its root mounted; a cgroup of none
        name = unique("chk")
        cid = d.docker("create", "--name", name, "busybox", "true").stdout.decode().strip()
        mounted = d.data_root / "containers" / cid / "rootfs"
        mounted.mkdir(exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "stale", str(mounted)], check=True)
        cgroup = Path(f"/sys/fs/cgroup/pids/dockyard/{cid}")   # as a crash mid-stop leaves it
        cgroup.mkdir(parents=True)

        before = sorted(os.listdir(blobs))
        rc, findings = check(d)
        kinds = {(f["Kind"], f["Subject"]) for f in findings}
        assert rc == 1 and not any(f["Repaired"] for f in findings)
        assert ("blob", f"sha256:{liar.name}") in kinds and ("blob", f"sha256:{layer.name}") in kinds
        assert ("ingest", ref) in kinds
        assert any(k == "snapshot" and s.endswith("/987654") for k, s in kinds)
        assert ("container", orphan_ctr.name) in kinds
        assert ("mount", str(mounted)) in kinds and ("cgroup", str(cgroup)) in kinds
        assert sorted(os.listdir(blobs)) == before and ingest.exists()   # a check changes nothing

        rc, findings = check(d, "--repair")
        repaired = {(f["Kind"], f["Subject"]) for f in findings if f["Repaired"]}
        assert kinds <= repaired | {(f["Kind"], f["Subject"]) for f in findings}
        for gone in (liar, layer, ingest, orphan_ctr, d.data_root / "snapshots" / "987654", cgroup):
            assert gone is not None
            assert not gone.exists(), gone
        assert str(mounted) not in Path("/proc/self/mountinfo").read_text()
        mounted = None
        # what cannot be repaired without the user is left and said: the image lost a layer blob
        rc, findings = check(d)
        assert rc == 1 and [f["Kind"] for f in findings] == ["image"]
        assert "layer blob(s) missing" in str(findings[0]["Problem"])
        # the image still runs (its unpacked layer is intact) and the container starts
        assert d.docker("run", "--rm", "busybox", "echo", "alive").stdout.decode().strip() == "alive"
        d.docker("start", "-a", name)
    finally:
        if mounted is not None:
            subprocess.run(["umount", "-l", str(mounted)], check=False)
        if cgroup is not None and cgroup.exists():
            cgroup.rmdir()
        stop_daemon(d)
