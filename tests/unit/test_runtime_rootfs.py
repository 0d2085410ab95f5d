"""dockyard-runtime: mount option parsing and symlink-safe path resolution (no root needed)."""

from __future__ import annotations

import os
from pathlib import Path

from dockyard.runtime.linux.rootfs import (
    MS_BIND,
    MS_NODEV,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_SLAVE,
    parse_options,
    secure_join,
)


def test_parse_options() -> None:
    flags, _, prop, data = parse_options(["rbind", "ro", "nosuid", "rslave", "mode=755", "size=1k", "tmpcopyup"])
    assert flags == MS_BIND | MS_REC | MS_RDONLY | MS_NOSUID
    assert prop == [MS_SLAVE | MS_REC]
    assert data == "mode=755,size=1k"
    flags, _, prop, data = parse_options(["ro", "rw", "nodev", "dev", "private"])
    assert flags & (MS_RDONLY | MS_NODEV) == 0
    assert prop == [MS_PRIVATE]
    assert data == ""


def test_secure_join_stays_inside_root(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "abs").symlink_to("/etc")
    (root / "up").symlink_to("../../../../..")
    (root / "loop").symlink_to("loop")
    (root / "rel").symlink_to("etc/sub")
    r = str(root)
    assert secure_join(r, "/etc/passwd") == os.path.join(r, "etc/passwd")
    assert secure_join(r, "/abs/passwd") == os.path.join(r, "etc/passwd")
    assert secure_join(r, "/up/etc") == os.path.join(r, "etc")
    assert secure_join(r, "/../../x") == os.path.join(r, "x")
    assert secure_join(r, "/rel/x") == os.path.join(r, "etc/sub/x")
    assert secure_join(r, "/") == r
    try:
        secure_join(r, "/loop/x")
    except Exception as exc:
        assert "too many symlinks" in str(exc)
    else:
        raise AssertionError("a symlink loop must be refused")
