"""Registry credentials as the docker CLI keeps them: config.json ``auths`` and credential helpers."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from dockyard.client import auth


def test_store_read_forget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    auth.store("127.0.0.1:5000", "alice", "s3cret")
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert base64.b64decode(cfg["auths"]["127.0.0.1:5000"]["auth"]) == b"alice:s3cret"
    assert (tmp_path / "config.json").stat().st_mode & 0o777 == 0o600
    header = json.loads(base64.urlsafe_b64decode(auth.header_for("127.0.0.1:5000")["X-Registry-Auth"]))
    assert header == {"username": "alice", "password": "s3cret", "serveraddress": "127.0.0.1:5000"}
    assert auth.server_of("busybox") == auth.INDEX_SERVER and auth.server_of("127.0.0.1:5000/a:1") == "127.0.0.1:5000"
    assert auth.forget("127.0.0.1:5000") and not auth.forget("127.0.0.1:5000")
    assert auth.header_for("127.0.0.1:5000") == {}


def test_credential_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    helper = tmp_path / "bin" / "docker-credential-fake"
    helper.parent.mkdir()
    helper.write_text('#!/bin/sh\nread server\necho "{\\"Username\\": \\"bob\\", \\"Secret\\": \\"from-$server\\"}"\n')
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{helper.parent}:/usr/bin:/bin")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"credHelpers": {"reg.example:443": "fake"}}))
    assert auth.credentials("reg.example:443") == {"username": "bob", "password": "from-reg.example:443",
                                                   "serveraddress": "reg.example:443"}
    assert auth.credentials("other:1") == {}
