"""overlay_changes over hand-made overlay layers: whiteouts, opaque dirs, copied-up parents."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard.engine.changes import ADDED, DELETED, MODIFIED, Change, overlay_changes

pytestmark = pytest.mark.root


def whiteout(path: Path) -> None:
    os.mknod(path, 0o600 | 0o020000, os.makedev(0, 0))


def test_overlay_changes(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    for d in ("etc", "gone", "opq", "same", "var/log"):
        (lower / d).mkdir(parents=True)
    (lower / "etc/passwd").write_text("root\n")
    (lower / "gone/x").write_text("x")
    (lower / "opq/old").write_text("old")
    upper.mkdir()
    (upper / "etc").mkdir()
    (upper / "etc/passwd").write_text("root\nme\n")
    st = os.stat(lower / "etc")
    os.utime(upper / "etc", ns=(st.st_atime_ns, st.st_mtime_ns))  # a copied-up parent only
    whiteout(upper / "gone")
    (upper / "opq").mkdir()
    os.setxattr(upper / "opq", "trusted.overlay.opaque", b"y")
    (upper / "opq/new").write_text("new")
    (upper / "new-dir").mkdir()
    (upper / "new-dir/f").write_text("f")
    changes = overlay_changes(upper, [lower])
    assert changes == [
        Change("/etc/passwd", MODIFIED),
        Change("/gone", DELETED),
        Change("/new-dir", ADDED),
        Change("/new-dir/f", ADDED),
        Change("/opq", DELETED),          # removed and recreated (moby reports the deletion)
        Change("/opq/new", ADDED),
    ]


def test_whiteout_in_a_lower_layer_means_added(tmp_path: Path) -> None:
    bottom, middle, upper = tmp_path / "b", tmp_path / "m", tmp_path / "u"
    for d in (bottom, middle, upper):
        d.mkdir()
    (bottom / "f").write_text("1")
    whiteout(middle / "f")
    (upper / "f").write_text("2")
    assert overlay_changes(upper, [middle, bottom]) == [Change("/f", ADDED)]
