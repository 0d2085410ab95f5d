"""OCI lifecycle hooks (``hooks.prestart|createRuntime|createContainer|startContainer|poststart|poststop``).

Each hook runs with the container state JSON on stdin; a non-zero exit or a timeout fails the
lifecycle step for the create-time hooks (as the spec requires) and is only reported for
``poststart``/``poststop``.
"""

from __future__ import annotations

import os
import time

from dockyard.errors import DockyardError
from dockyard.runtime import jsonio

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def state_doc(container_id: str, status: str, pid: int, bundle: str, annotations: dict[str, str]) -> bytes:
    return jsonio.dumps({"ociVersion": "1.0.2", "id": container_id, "status": status, "pid": pid,
                         "bundle": bundle, "annotations": annotations}).encode()


def run(kind: str, hooks: list[dict[str, Any]], state: bytes) -> None:
    """Run the hooks of one kind in order; raises on the first failure."""
    for hook in hooks:
        path = hook.get("path") or ""
        if not os.path.isabs(path):
            raise DockyardError(f"{kind} hook path {path!r} must be absolute")
        args = hook.get("args") or [path]
        env = dict(e.split("=", 1) for e in hook.get("env") or [] if "=" in e)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(w)
                os.dup2(r, 0)
                os.execve(path, args, env)
            finally:
                os._exit(127)
        os.close(r)
        try:
            os.write(w, state)
        except BrokenPipeError:
            pass
        finally:
            os.close(w)
        timeout = hook.get("timeout")
        deadline = time.monotonic() + timeout if timeout else None
        while True:
            done, status = os.waitpid(pid, os.WNOHANG if deadline else 0)
            if done:
                break
            if deadline is not None and time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                raise DockyardError(f"{kind} hook {path} timed out after {timeout}s")
            time.sleep(0.005)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            raise DockyardError(f"{kind} hook {path} failed with exit status {code}")


def run_quietly(kind: str, hooks: list[dict[str, Any]], state: bytes) -> None:
    """poststart/poststop: a failing hook is reported on stderr but does not fail the command."""
    import sys

    try:
        run(kind, hooks, state)
    except (DockyardError, OSError) as exc:
        sys.stderr.write(f"dockyard-runtime: warning: {exc}\n")
