"""dockyard-runtime lifecycle hooks: state on stdin, exit status and timeout (no root needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockyard.errors import DockyardError
from dockyard.runtime import hooks


def test_hook_gets_state_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "state.json"
    doc = hooks.state_doc("c1", "creating", 42, "/b", {"a": "b"})
    hooks.run("prestart", [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > {out}"]}], doc)
    assert json.loads(out.read_text()) == {"ociVersion": "1.0.2", "id": "c1", "status": "creating",
                                           "pid": 42, "bundle": "/b", "annotations": {"a": "b"}}


def test_failing_and_slow_hooks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = hooks.state_doc("c1", "creating", 1, "/b", {})
    with pytest.raises(DockyardError, match="exit status 1"):
        hooks.run("prestart", [{"path": "/bin/false"}], doc)
    with pytest.raises(DockyardError, match="timed out"):
        hooks.run("prestart", [{"path": "/bin/sleep", "args": ["sleep", "5"], "timeout": 1}], doc)
    with pytest.raises(DockyardError, match="must be absolute"):
        hooks.run("prestart", [{"path": "sh"}], doc)
    hooks.run_quietly("poststop", [{"path": "/bin/false"}], doc)
    assert "warning" in capsys.readouterr().err
