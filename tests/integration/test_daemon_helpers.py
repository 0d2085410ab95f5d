"""Start a real ``dockyardd`` subprocess on a unique socket and talk raw HTTP to it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cleanup import stop_and_clean
from tests.unixhttp import UnixHTTPConnection

DOCKYARDD = str(Path(sys.executable).parent / "dockyardd")


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    sock: Path
    data_root: Path
    exec_root: Path
    log: Path

    def request(self, method: str, path: str, body: Any = None, raw: bytes | None = None,
                timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
        conn = UnixHTTPConnection(self.sock, timeout)
        try:
            data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
            headers = {"Content-Type": "application/json"} if data is not None else {}
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, body: Any = None, expect: int = 200, **kw: Any) -> Any:
        status, _, data = self.request(method, path, body, **kw)
        assert status == expect, f"{method} {path}: {status} {data!r}"
        return json.loads(data) if data.strip() else None


def spawn(base: Path, *extra: str, data_root: Path | None = None, exec_root: Path | None = None
          ) -> tuple[subprocess.Popen[bytes], Path, Path, Path, Path]:
    exec_root = exec_root or Path(f"/run/dyt-{uuid.uuid4().hex[:8]}")
    data_root = data_root or base / "data"
    sock = exec_root / "api.sock"
    log = base / f"dockyardd-{uuid.uuid4().hex[:6]}.log"
    with open(log, "wb") as logf:
        proc = subprocess.Popen([DOCKYARDD, "-H", f"unix://{sock}", "--data-root", str(data_root),
                                 "--exec-root", str(exec_root), "--log-level", "debug",
                                 "--default-registry", "127.0.0.1:1", *extra],  # never Docker Hub
                                stdout=logf, stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=base)   # never the checkout: see tests/conftest.start_daemon
    return proc, sock, data_root, exec_root, log


def start(base: Path, *extra: str) -> Daemon:
    proc, sock, data_root, exec_root, log = spawn(base, *extra)
    d = Daemon(proc, sock, data_root, exec_root, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"dockyardd exited {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            if d.request("GET", "/_ping", timeout=2)[0] == 200:
                return d
        except OSError:
            pass
        time.sleep(0.05)
    stop(d)
    raise AssertionError(f"dockyardd did not come up: {log.read_text()[-3000:]}")


def stop(d: Daemon) -> None:
    stop_and_clean(d.proc, d.exec_root, d.data_root)
