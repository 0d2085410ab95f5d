"""A daemon upgrade: dockyardd started on a data root an early dockyard wrote (schema version 1,
a container record without any of the fields added since, not even its bundle path) migrates it
and serves it; removing that container touches nothing outside the data root."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import start_daemon, stop_daemon
from tests.unit.test_metadata_migrations import old_database

pytestmark = pytest.mark.root


def test_daemon_serves_a_data_root_from_schema_1(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    old_database(data / "metadata.db", 1)
    canary = tmp_path / "canary"     # the daemon's working directory holds this
    canary.write_text("still here")
    d = start_daemon(tmp_path)
    try:
        assert "old" in d.docker("ps", "-a", "--format", "{{.Names}}").stdout.decode().split()
        state = json.loads(d.docker("inspect", "-f", "{{json .State}}", "old").stdout)
        assert state["Status"] == "exited" and state["ExitCode"] == 3
        d.docker("rm", "old")
        assert d.docker("ps", "-aq").stdout.strip() == b""
        assert canary.read_text() == "still here"   # an empty bundle path once meant rmtree(".")
        d.cli("bootstrap", "busybox", timeout=120)   # and the new tables work
        d.docker("network", "create", "after-upgrade")
        d.docker("volume", "create", "after-upgrade")
        assert d.docker("run", "--rm", "busybox", "echo", "ok").stdout.strip() == b"ok"
        d.docker("network", "rm", "after-upgrade")
        d.docker("volume", "rm", "after-upgrade")
    finally:
        stop_daemon(d)
