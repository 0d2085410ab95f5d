"""The package layering of DESIGN.md §4, checked on the source: a module imports only from its own
layer or layers to its left; the client chain never imports server code; the runtime imports only
oci, mount and errors."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "dockyard"

LAYERS: list[set[str]] = [
    {"errors", "oci", "dockerignore", "record", "__init__"},
    {"content", "metadata", "mount", "snapshots", "diff", "remotes"},
    {"images", "build", "network", "volumes", "runtime", "shim"},
    {"engine"},
    {"api", "registry", "daemon"},
]
CLIENT = {"client", "cli"}
# Data-only modules that lower layers may import although they sit in a higher package.
DATA_ONLY = {"dockyard.engine.types"}
RUNTIME_ALLOWED = {"oci", "mount", "errors", "__init__", "runtime"}
# The registry server is a separate program reachable through the dockyard command:
# cli/main.py hands `dockyard registry ...` to it (lazily) before building the client parser.
# the registry server is a separate program reached through `dockyard registry`: main hands over
# to it, and the help/docs generator reads its flags (nothing of it runs in the client)
SEPARATE_PROGRAMS = {("cli/main.py", "dockyard.registry.main"), ("cli/helptext.py", "dockyard.registry.main")}


def _layer_of(pkg: str) -> int:
    for i, layer in enumerate(LAYERS):
        if pkg in layer:
            return i
    raise AssertionError(f"package {pkg} is in no layer; add it to LAYERS in {__file__}")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return [m for m in out if m == "dockyard" or m.startswith("dockyard.")]


def _package(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 else rel.stem


MODULES = sorted(SRC.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_respect_layers(path: Path) -> None:
    pkg = _package(path)
    for mod in _imports(path):
        parts = mod.split(".")
        if len(parts) < 2 or mod in DATA_ONLY:
            continue
        target = parts[1]
        if (str(path.relative_to(SRC)), mod) in SEPARATE_PROGRAMS:
            continue
        if pkg in CLIENT:
            assert target in CLIENT | {"errors", "oci", "dockerignore", "record", "__init__"}, \
                f"{path}: client code imports {mod}"
            continue
        assert target not in CLIENT, f"{path}: server code imports client module {mod}"
        if pkg == "runtime":
            assert target in RUNTIME_ALLOWED, f"{path}: runtime imports {mod}"
            continue
        assert _layer_of(target) <= _layer_of(pkg), f"{path}: {pkg} imports {mod} from a higher layer"
