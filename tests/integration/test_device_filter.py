"""cgroup v2 device filtering: the eBPF program built from OCI device rules, attached for real.

The host is cgroup v1, but a device program works on any cgroup2 directory: each test mounts the
cgroup2 hierarchy at a temp dir, makes a child cgroup, attaches the filter, moves a probe process
into it and checks what it may open and mknod. Everything is detached, removed and unmounted after.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.errors import InvalidArgument
from dockyard.runtime.linux import devicefilter
from dockyard.runtime.linux.cgroups import Cgroup, with_default_devices

DENY_ALL = {"allow": False, "access": "rwm"}
NULL = {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
ZERO = {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"}

# the probe waits for a line on stdin (sent once it is in the cgroup), then runs each op
PROBE = r"""
import errno, json, os, sys
sys.stdin.readline()
out = []
for op in sys.argv[1:]:
    kind, _, arg = op.partition(":")
    try:
        if kind == "mknod":
            path, major, minor = arg.split(":")
            os.mknod(path, 0o600 | 0o020000, os.makedev(int(major), int(minor)))
            os.unlink(path)
        else:
            os.close(os.open(arg, {"r": os.O_RDONLY, "w": os.O_WRONLY}[kind]))
        out.append("ok")
    except OSError as exc:
        out.append(errno.errorcode[exc.errno])
print(json.dumps(out))
"""


@pytest.fixture
def cgroup2() -> Iterator[Path]:
    """A fresh child cgroup of a cgroup2 hierarchy mounted for this test."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    mnt = Path(tempfile.mkdtemp(prefix="dy-cg2-"))
    child = mnt / f"dy-devfilter-{uuid.uuid4().hex[:10]}"
    subprocess.run(["mount", "-t", "cgroup2", "none", str(mnt)], check=True)
    try:
        child.mkdir()
        yield child
    finally:
        try:
            if child.exists():
                for pid in (child / "cgroup.procs").read_text().split():
                    _kill(int(pid))
                devicefilter.remove(str(child))
                child.rmdir()
        finally:
            subprocess.run(["umount", str(mnt)], check=True)
            mnt.rmdir()


def _kill(pid: int) -> None:
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass


def probe(cgroup: Path, *ops: str) -> list[str]:
    """Run ``ops`` ("r:/dev/null", "w:/dev/zero", "mknod:PATH:MAJOR:MINOR") inside ``cgroup``."""
    proc = subprocess.Popen([sys.executable, "-c", PROBE, *ops], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        (cgroup / "cgroup.procs").write_text(str(proc.pid))
        out, _ = proc.communicate("go\n", timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    return list(json.loads(out))


@pytest.mark.root
def test_allow_list_lets_through_only_the_listed_nodes(cgroup2: Path) -> None:
    devicefilter.apply(str(cgroup2), [DENY_ALL, NULL])
    assert probe(cgroup2, "r:/dev/null", "w:/dev/null", "r:/dev/zero") == ["ok", "ok", "EPERM"]
    assert devicefilter.programs(str(cgroup2)) == [devicefilter.PROG_NAME]


@pytest.mark.root
def test_update_replaces_the_program(cgroup2: Path) -> None:
    devicefilter.apply(str(cgroup2), [DENY_ALL, NULL])
    devicefilter.apply(str(cgroup2), [DENY_ALL, NULL, ZERO])
    assert devicefilter.programs(str(cgroup2)) == [devicefilter.PROG_NAME]  # not stacked
    assert probe(cgroup2, "r:/dev/zero", "r:/dev/full") == ["ok", "EPERM"]
    devicefilter.apply(str(cgroup2), [DENY_ALL, ZERO])
    assert probe(cgroup2, "r:/dev/null", "r:/dev/zero") == ["EPERM", "ok"]


@pytest.mark.root
def test_access_modes_and_mknod(cgroup2: Path) -> None:
    read_only_null = {**NULL, "access": "r"}
    mknod_any = {"allow": True, "type": "c", "access": "m"}  # major/minor absent = any
    devicefilter.apply(str(cgroup2), [DENY_ALL, read_only_null])
    tmp = tempfile.mkdtemp(prefix="dy-mknod-")
    try:
        node = f"{tmp}/n"
        assert probe(cgroup2, "r:/dev/null", "w:/dev/null", f"mknod:{node}:1:5") == ["ok", "EPERM", "EPERM"]
        devicefilter.apply(str(cgroup2), [DENY_ALL, read_only_null, mknod_any])
        assert probe(cgroup2, f"mknod:{node}:1:5", "r:/dev/zero") == ["ok", "EPERM"]
    finally:
        os.rmdir(tmp)


@pytest.mark.root
def test_deny_list_after_allow_all(cgroup2: Path) -> None:
    devicefilter.apply(str(cgroup2), [{"allow": True, "access": "rwm"}, {**ZERO, "allow": False}])
    assert probe(cgroup2, "r:/dev/null", "r:/dev/zero", "w:/dev/full") == ["ok", "EPERM", "ok"]


@pytest.mark.root
def test_runtime_cgroup_set_filters_on_v2(cgroup2: Path) -> None:
    """The runtime's Cgroup.set on a v2 directory installs the filter with runc's default nodes."""
    mnt, name = cgroup2.parent, cgroup2.name
    cg = Cgroup(f"/{name}", mount_root=str(mnt), v2=True)
    cg.set(with_default_devices({"devices": [DENY_ALL]}, []))
    assert probe(cgroup2, "r:/dev/null", "w:/dev/zero", "r:/dev/loop-control") == ["ok", "ok", "EPERM"]
    cg.set({"pids": {}})  # an update without device rules leaves the filter alone
    assert devicefilter.programs(str(cgroup2)) == [devicefilter.PROG_NAME]


# ------------------------------------------------------------------ rule semantics (no kernel needed)


def test_emulation_follows_cgroup_v1() -> None:
    allow, exc = devicefilter.emulate([DENY_ALL, NULL, {**NULL, "access": "m"}, ZERO,
                                       {**ZERO, "allow": False, "access": "w"}])
    assert (allow, exc) == (False, {("c", 1, 3): 7, ("c", 1, 5): 2 | 1})
    # an "a" rule resets everything before it
    assert devicefilter.emulate([NULL, {"allow": True, "type": "a"}]) == (True, {})
    assert devicefilter.emulate([]) == (False, {})


def test_emulation_refuses_holes_in_wildcards() -> None:
    with pytest.raises(InvalidArgument, match="punch a hole"):
        devicefilter.emulate([DENY_ALL, {"allow": True, "type": "c", "major": 1, "access": "rw"},
                              {**NULL, "allow": False, "access": "r"}])
    with pytest.raises(InvalidArgument, match="invalid device access"):
        devicefilter.emulate([{**NULL, "access": "rx"}])


def test_program_shape() -> None:
    # 6 loads + per block: type test [+3 access] [+major] [+minor] + verdict + exit; then default
    code = devicefilter.assemble([DENY_ALL, NULL, {"allow": True, "type": "b", "access": "r"}])
    assert len(code) // 8 == 6 + (1 + 3 + 2) + (1 + 1 + 1 + 2) + 2
    assert code[-16:-8] == bytes([0xB4, 0, 0, 0, 0, 0, 0, 0])  # default: return 0 (deny)
