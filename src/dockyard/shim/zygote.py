"""A shim launcher with everything pre-imported: forks a ``dockyard-shim`` per request.

A fresh ``dockyard-shim`` interpreter costs ~25-30 ms before it does any work (interpreter start-up
plus imports of the shim and the built-in runtime); that is the largest single item on the
``docker run`` path. The daemon keeps one of these per event loop (``shim.client.Zygote``) and
sends it the shim's command line; the zygote forks, and the child runs ``dockyard.shim.main.main``
exactly as the exec'd script would (new session, stdio on /dev/null, stderr to the zygote so flag
errors still reach the spawner, then the usual fork-and-exit that detaches the real shim).

    python -m dockyard.shim.zygote        # requests on stdin, replies on stdout

Request: one JSON line, the shim's argv (without the program name). Reply: one JSON line
``{"status": N, "stderr": "..."}``: the exit status and stderr of the first shim process, i.e. what
the spawner of an exec'd ``dockyard-shim`` sees. The zygote exits at EOF on stdin (the daemon
went away); shims it started are detached and live on.
"""

from __future__ import annotations

import os
import sys

from dockyard.runtime import jsonio
from dockyard.shim import main as shim_main
from dockyard.shim.ocicli import preload_builtin_runtime


def _child(argv: list[str], err_w: int) -> None:
    """In the forked child: become what an exec'd shim would be, run it, never return."""
    code = 1
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(err_w, 2)
        os.closerange(3, 65536)  # the request pipes and the zygote's own fds are not the shim's
        shim_main.main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException as exc:
        try:
            os.write(2, f"dockyard-shim: {exc}\n".encode())
        except OSError:
            pass
    finally:
        try:
            sys.stderr.flush()
        finally:
            os._exit(code)


def _launch(argv: list[str]) -> dict[str, object]:
    err_r, err_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(err_r)
        _child(argv, err_w)
    os.close(err_w)
    chunks = []
    # EOF once the first process exited and the detached shim swapped its stderr for /dev/null
    while chunk := os.read(err_r, 65536):
        chunks.append(chunk)
    os.close(err_r)
    _, status = os.waitpid(pid, 0)
    return {"status": os.waitstatus_to_exitcode(status),
            "stderr": b"".join(chunks).decode("utf-8", "replace")}


def serve() -> None:
    preload_builtin_runtime()
    stdin = sys.stdin.buffer
    while line := stdin.readline():
        try:
            argv = jsonio.loads(line)
            if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
                raise ValueError("request must be a JSON list of strings")
            reply = _launch(argv)
        except Exception as exc:  # answer and keep serving: the daemon falls back to exec
            reply = {"status": -1, "stderr": f"zygote: {exc}"}
        sys.stdout.write(jsonio.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve()
