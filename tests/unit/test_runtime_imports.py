"""dockyard-runtime stays in its layer and keeps its per-call import cost small."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import dockyard.runtime

RUNTIME = Path(dockyard.runtime.__file__).parent
ALLOWED = ("dockyard.runtime", "dockyard.oci", "dockyard.mount", "dockyard.errors")


def test_runtime_imports_only_its_layer() -> None:
    bad = []
    for path in RUNTIME.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                if name.startswith("dockyard") and not name.startswith(ALLOWED) and name != "dockyard":
                    bad.append(f"{path.name}: {name}")
    assert not bad


def test_start_path_imports_stay_lean() -> None:
    code = ("import sys; import dockyard.runtime.cli, dockyard.runtime.linux.init; "
            "print(' '.join(sorted(sys.modules)))")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout.split())
    heavy = {"asyncio", "aiohttp", "argparse", "json", "re", "typing", "dataclasses", "pathlib",
             "inspect", "enum", "ctypes.util", "subprocess", "socket", "dockyard.mount"}
    assert not heavy & loaded
