"""The OpenAPI description is generated from the router and agrees with the parameter table
(no root, no daemon)."""

from __future__ import annotations

import schemathesis

from dockyard.api.openapi import VERSION_PREFIX, describe, served_endpoints, undocumented, versioned_paths


def test_every_route_is_described_once() -> None:
    missing, stale = undocumented()
    assert not missing, f"routes without an entry in api/openapi_params.py: {missing}"
    assert not stale, f"entries in api/openapi_params.py for routes the daemon does not serve: {stale}"
    eps = served_endpoints()
    assert len({ep.key for ep in eps}) == len(eps)
    assert not any(ep.path.startswith(VERSION_PREFIX) for ep in eps)
    assert {ep.path for ep in eps} == versioned_paths(), "every route is served bare and under /vX.Y"


def test_path_parameters_and_handlers() -> None:
    doc = describe()
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == {seg[1:-1] for seg in path.split("/") if seg.startswith("{")}, (method, path)
            assert op["x-handler"].startswith("dockyard.api.routes."), op["x-handler"]
    assert doc["paths"]["/images/{name}/json"]["get"]["x-handler"] == "dockyard.api.routes.images.inspect"
    create = doc["paths"]["/containers/create"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert create["properties"]["HostConfig"]["properties"]["Memory"]["type"] == "integer"


def test_schemathesis_loads_it() -> None:
    schema = schemathesis.openapi.from_dict(describe())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == len(served_endpoints())
