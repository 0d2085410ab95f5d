"""docs/api.md is what `python -m dockyard.api.coverage` makes now, and every Docker operation
dockyard does not serve says why."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

from dockyard.api import coverage
from dockyard.api.models_images import API_VERSION


def test_docs_api_md_is_current() -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        assert coverage.main([]) == 0
    current = (coverage.ROOT / "docs" / "api.md").read_text()
    assert out.getvalue() == current, "docs/api.md is stale: python -m dockyard.api.coverage > docs/api.md"


def test_every_unserved_operation_has_a_reason() -> None:
    docker = json.loads(coverage.DOCKER_API.read_text())
    assert docker["version"] == API_VERSION
    rows = coverage.compare(docker)
    assert len(rows) > 100
    assert [f"{r['method']} {r['path']}" for r in rows if r["status"] == "not implemented" and not r["reason"]] == []
    # the core of the API is served in full or in part
    served = {f"{r['method']} {r['path']}" for r in rows if r["status"] != "not implemented"}
    for op in ("POST /containers/create", "POST /build", "POST /images/create", "GET /events",
               "POST /networks/create", "POST /volumes/create", "POST /exec/{id}/start"):
        assert op in served


def test_missing_fields_are_judged_by_parent() -> None:
    ours = {"HostConfig", "HostConfig.Memory", "Labels"}
    assert not coverage._unread("HostConfig.Memory", ours)
    assert coverage._unread("HostConfig.CpuCount", ours)        # read field by field: missing
    assert not coverage._unread("Labels.x", ours)               # taken whole
    assert coverage._unread("Healthcheck", ours)
    assert not coverage._unread("Healthcheck.Test", ours)       # the parent is what is missing
