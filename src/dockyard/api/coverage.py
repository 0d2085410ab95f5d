"""How much of Docker's Engine API dockyardd serves: the table in ``docs/api.md``.

Two inputs, both generated:
- Docker's side: ``docs/api/docker-v1.45.json``, the operations of the Engine API version dockyard
  speaks with their query parameters and request-body fields, extracted from Docker's own API
  description (moby's ``api/docs/v1.45.yaml``) by ``--extract``. Only names are kept.
- dockyard's side: the daemon's router (``api.openapi.served_endpoints``) and the parameter table
  the fuzzer uses (``api.openapi_params``), i.e. what the handlers actually read.

An operation is *implemented* when dockyard serves it and reads every query parameter and body
field Docker documents (bodies compared two levels deep, e.g. ``HostConfig.Devices``), *partial*
when it serves it without some of them (they are listed), *not implemented* when it does not serve
it — each of those has its reason in ``REASONS``.

    python -m dockyard.api.coverage --extract moby/api/docs/v1.45.yaml > docs/api/docker-v1.45.json
    python -m dockyard.api.coverage > docs/api.md
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
DOCKER_API = ROOT / "docs" / "api" / "docker-v1.45.json"
_PARAM = re.compile(r"\{[^}]*\}")

# Why an operation Docker has is not served, by tag (Docker's grouping) or "METHOD path".
REASONS: dict[str, str] = {
    "Swarm": "Swarm mode is out of scope: dockyard is a single-host engine",
    "Node": "Swarm mode is out of scope: dockyard is a single-host engine",
    "Service": "Swarm mode is out of scope: dockyard is a single-host engine",
    "Task": "Swarm mode is out of scope: dockyard is a single-host engine",
    "Secret": "Swarm secrets belong to Swarm mode, which is out of scope",
    "Config": "Swarm configs belong to Swarm mode, which is out of scope",
    "Plugin": "managed engine plugins are not supported: the volume and network drivers are built in",
    "PUT /volumes/{name}": "it updates cluster (CSI) volumes, a Swarm feature, which is out of scope",
    "Session": "BuildKit's session protocol (gRPC over a hijacked connection) is not spoken: "
               "builds go through POST /build with the context in the body",
}


def _names(schema: Any, defs: dict[str, Any], depth: int, prefix: str = "") -> list[str]:
    """Property names of ``schema`` (``$ref`` and ``allOf`` resolved), nested up to ``depth``."""
    schema = _resolve(schema, defs)
    props: dict[str, Any] = {}
    for part in [schema, *[_resolve(s, defs) for s in schema.get("allOf", [])]]:
        props.update(part.get("properties") or {})
    out = []
    for name, sub in props.items():
        out.append(prefix + name)
        if depth > 1:
            out += _names(sub, defs, depth - 1, f"{prefix}{name}.")
    return out


def _resolve(schema: Any, defs: dict[str, Any]) -> dict[str, Any]:
    while isinstance(schema, dict) and "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    return schema if isinstance(schema, dict) else {}


def extract(swagger: dict[str, Any]) -> dict[str, Any]:
    """The operations of a Swagger 2.0 Engine API description, as names only."""
    defs = swagger.get("definitions") or {}
    ops = []
    for path, methods in swagger["paths"].items():
        for method, op in methods.items():
            if method == "parameters":
                continue
            params = op.get("parameters") or []
            body = next((p for p in params if p.get("in") == "body"), None)
            ops.append({
                "method": method.upper(), "path": path, "id": op.get("operationId", ""),
                "tag": (op.get("tags") or [""])[0],
                "query": sorted(p["name"] for p in params if p.get("in") == "query"),
                "body": sorted(_names(body.get("schema"), defs, 2)) if body else [],
            })
    return {"version": swagger["info"]["version"], "operations": ops}


def _key(method: str, path: str) -> tuple[str, str]:
    return method, _PARAM.sub("{}", path)


def _unread(field: str, ours: set[str]) -> bool:
    """A Docker body field dockyard does not read. A nested one counts only when its parent is
    read field by field (a parent we take whole, or do not take at all, is judged by itself)."""
    if field in ours:
        return False
    parent, dot, _ = field.partition(".")
    if not dot:
        return True
    return parent in ours and any(f.startswith(parent + ".") for f in ours)


def compare(docker: dict[str, Any]) -> list[dict[str, Any]]:
    from dockyard.api.openapi import served_endpoints
    from dockyard.api.openapi_params import OPERATIONS

    served = {_key(ep.method, ep.path): ep for ep in served_endpoints()}
    rows = []
    for op in docker["operations"]:
        ep = served.get(_key(op["method"], op["path"]))
        row = {**op, "status": "not implemented", "missing": [], "reason": ""}
        if ep is None:
            row["reason"] = REASONS.get(f"{op['method']} {op['path']}") or REASONS.get(op["tag"], "")
        else:
            spec = OPERATIONS.get(ep.key)
            query = {p["name"] for p in spec.query} if spec else set()
            body = set(_names(spec.body, {}, 2)) if spec and spec.body else set()
            missing = [f"?{q}" for q in op["query"] if q not in query]
            missing += [f for f in op["body"] if _unread(f, body)]
            row["missing"] = missing
            row["status"] = "partial" if missing else "implemented"
        rows.append(row)
    return rows


def render(docker: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    counts = {s: sum(r["status"] == s for r in rows) for s in ("implemented", "partial", "not implemented")}
    out = [
        "# Docker Engine API coverage",
        "",
        "Generated by `python -m dockyard.api.coverage > docs/api.md` (a test keeps it current): every",
        f"operation of Docker's Engine API {docker['version']} description (the version dockyard speaks), "
        "compared with",
        "what dockyardd's router serves and the query parameters and body fields its handlers read.",
        "Fields are compared two levels deep (`HostConfig.Devices`); a field listed as missing is",
        "accepted in the request and ignored. Extra endpoints dockyard serves (e.g. `POST /system/check`)",
        "are listed at the end.",
        "",
        f"**{counts['implemented']} implemented, {counts['partial']} partial, "
        f"{counts['not implemented']} not implemented** of {len(rows)} operations.",
        "",
    ]
    for tag in dict.fromkeys(r["tag"] for r in rows):
        out += [f"## {tag}", "", "| operation | status | not read / why not |", "|---|---|---|"]
        for r in (r for r in rows if r["tag"] == tag):
            note = r["reason"] if r["status"] == "not implemented" else ", ".join(f"`{m}`" for m in r["missing"])
            out.append(f"| `{r['method']} {r['path']}` | {r['status']} | {note} |")
        out.append("")
    from dockyard.api.openapi import served_endpoints
    known = {_key(o["method"], o["path"]) for o in docker["operations"]}
    extra = [ep for ep in served_endpoints() if _key(ep.method, ep.path) not in known]
    if extra:
        out += ["## dockyard's own", "", "| operation | what |", "|---|---|"]
        out += [f"| `{ep.method} {ep.path}` | `{ep.handler}` |" for ep in extra]
        out.append("")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--extract"] and len(argv) == 2:
        import yaml  # PyYAML: only to regenerate the extract from Docker's description
        print(json.dumps(extract(yaml.safe_load(Path(argv[1]).read_text())), indent=1))
        return 0
    docker = json.loads(DOCKER_API.read_text())
    sys.stdout.write(render(docker, compare(docker)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
