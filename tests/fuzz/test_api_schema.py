"""Schemathesis over the OpenAPI description generated from dockyardd's own router: every served
operation gets schema-valid (positive) and schema-breaking (negative) requests — wrong types,
missing required parameters, unknown fields, huge numbers, odd strings — and each one is checked
by the harness (no 5xx, daemon alive, a rejected request changes nothing).

Path parameters are random (so mostly 404s) unless the example draws a fixture object instead,
which sends the fuzzed query and body to a real container, image, network, volume or exec.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.config import HealthCheck, SchemathesisConfig
from schemathesis.generation import GenerationMode
from schemathesis.transport.serialization import serialize_binary

from dockyard.api.openapi import describe
from tests.fuzz.conftest import DERANDOMIZE, examples
from tests.fuzz.harness import BASE_IMAGE, IDLE, IMG, NET, RUN, VOL, Fuzzer
from tests.fuzz.unixhttp import BASE_URL

pytestmark = pytest.mark.root


def _config() -> SchemathesisConfig:
    config = SchemathesisConfig()
    project = config.projects.default
    project.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                              max_examples=examples(12), deterministic=DERANDOMIZE, database="none",
                              no_shrink=True, allow_x00=True)
    project.phases.update(phases=["examples", "fuzzing"])
    project.suppress_health_check = [HealthCheck.all]  # a live daemon is slow, and that is fine
    if DERANDOMIZE:
        project.seed = 8
    return config


schema = schemathesis.openapi.from_dict(describe(), config=_config())


@schemathesis.serializer("application/x-tar")
def _tar(ctx: Any, value: Any) -> dict[str, Any]:
    return {"data": serialize_binary(value)}


# what a path parameter may be swapped for, by path prefix
_FIXTURES = {"/containers/": [RUN, IDLE], "/images/": [IMG, BASE_IMAGE], "/distribution/": [IMG],
             "/networks/": [NET, "bridge"], "/volumes/": [VOL]}
# never pointed at a live object: they wait for it to exit, or hijack the connection until it does
_NO_FIXTURE = {("POST", "/containers/{id}/wait"), ("POST", "/containers/{id}/attach")}


def _aim(case: Any, data: st.DataObject, fz: Fuzzer) -> None:
    """Point some examples at real objects, and keep every example finite."""
    op = (case.method.upper(), case.path)
    params = case.path_parameters or {}
    if params and op not in _NO_FIXTURE and data.draw(st.booleans(), label="fixture"):
        for name in params:
            if case.path.startswith("/exec/"):
                params[name] = fz.exec_id
            else:
                prefix = next(p for p in _FIXTURES if case.path.startswith(p))
                params[name] = data.draw(st.sampled_from(_FIXTURES[prefix]), label=name)
    body = case.body if isinstance(case.body, dict) else None
    if body is not None and data.draw(st.booleans(), label="fixture refs"):
        if op == ("POST", "/containers/create"):
            body["Image"] = BASE_IMAGE
        elif op in (("POST", "/networks/{id}/connect"), ("POST", "/networks/{id}/disconnect")):
            body["Container"] = RUN
    if case.query is None and params.get("id") in (RUN, IDLE) and op[1].endswith(("/stats", "/logs")):
        case.query = {}
    query = case.query if isinstance(case.query, dict) else None
    if query is not None:
        if op == ("POST", "/commit") and data.draw(st.booleans(), label="commit fixture"):
            query["container"] = RUN
        # the test never opens an endless subscription or a stop that waits for minutes
        if op == ("GET", "/events") and "until" not in query:
            query["until"] = "0.000000001" if "since" in query else "1"
        if op[1] in ("/containers/{id}/stop", "/containers/{id}/restart") and isinstance(query.get("t"), int) \
                and not 0 <= query["t"] <= 2:
            query["t"] = 1
        if op[1].startswith("/containers/{id}/") and params.get("id") in (RUN, IDLE):
            if op[1].endswith("/stats"):
                query["stream"] = "false"
            if op[1].endswith("/logs"):
                query["follow"] = "false"


@schema.parametrize()
@schema.given(data=st.data())
def test_api(case: Any, data: st.DataObject, fuzzer: Fuzzer) -> None:
    _aim(case, data, fuzzer)
    kwargs = case.as_transport_kwargs(base_url=BASE_URL)
    method = kwargs.pop("method")
    url = kwargs.pop("url")[len(BASE_URL):]
    fuzzer.send((case.method.upper(), case.path), method, url, **kwargs)
