"""The CLI's hot path (``dockyard run``, ``ps``, ``--version``) keeps heavy or unneeded modules out:
every one costs milliseconds on every command (issue 9: CLI start under 100 ms, run --rm ≤ 0.5×
Podman's)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# typing ~3 ms, locale (argparse's gettext lookups) ~1.5 ms, ipaddress ~1.2 ms, threading ~1 ms, …
HEAVY = {"typing", "locale", "ipaddress", "threading", "csv", "dataclasses", "inspect", "ssl",
         "subprocess", "asyncio", "datetime", "urllib.parse", "hashlib", "shutil", "tempfile",
         "dockyard.client.contexts", "dockyard.cli.gotemplate"}

RUN_PATH = """
import sys
from dockyard.cli import main as m
argv = ["run", "--rm", "--network", "none", "-e", "A=1", "busybox", "true"]
p = m.build_parser("run")
a = p.parse_args(m._split_interspersed(argv, p))
from dockyard.cli.runopts import create_body
from dockyard.cli.netopts import localhost_dns_warning
body = create_body(a, a.image, a.command, None)
assert body["HostConfig"]["NetworkMode"] == "none" and body["Env"] == ["A=1"], body
localhost_dns_warning(body["HostConfig"].get("Dns") or [])
import dockyard.cli.containers, dockyard.cli.interactive, dockyard.client.api, dockyard.client.tls
from dockyard.client.stream import Pump
Pump(None, b"", tty=False, stdin=False).start()
print(" ".join(sorted(sys.modules)))
"""


def _loaded(code: str) -> set[str]:
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return set(res.stdout.split())


def test_run_path_imports_stay_lean() -> None:
    assert not HEAVY & _loaded(RUN_PATH)


def test_version_imports_stay_lean() -> None:
    code = ("import sys, contextlib, io\nfrom dockyard.cli.main import main\n"
            "with contextlib.redirect_stdout(io.StringIO()): main(['--version'])\n"
            "print(' '.join(sorted(sys.modules)))")
    loaded = _loaded(code)
    assert not HEAVY & loaded
    assert "json" not in loaded and "socket" not in loaded  # no client is made for --version


def test_build_path_imports_stay_lean(tmp_path: Path) -> None:
    """A quiet build of a plain context packs its tar without tarfile, pathlib, typing or threads
    (issue 9: a cached rebuild no slower than BuildKit's)."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("a")
    (tmp_path / "Dockerfile").write_text("FROM busybox\nCOPY src /src\n")
    code = f"""
import io, sys
from dockyard.cli import main as m
p = m.build_parser("build")
a = p.parse_args(["build", "-q", {str(tmp_path)!r}])
import dockyard.cli.build, dockyard.client.api
from dockyard.client.buildcontext import ContextTar
plan = ContextTar(a.path, a.file)
plan.write(io.BytesIO())
print(" ".join(sorted(sys.modules)))
"""
    loaded = _loaded(code)
    assert not (HEAVY | {"tarfile", "pathlib", "shutil"}) & loaded
