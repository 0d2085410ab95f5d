"""The runtime's create sync pipe: the init's pid and ``ready`` come from two processes.

Found by the load test (bench/load_bench.py): under load the container's init said ``ready``
before its parent (the setup child) had sent the init's pid, ``create`` recorded pid 0, and a later
``delete`` did ``kill(0, SIGKILL)`` — the shim host's whole process group, every container in it.
"""

from __future__ import annotations

import os
import signal

from dockyard.runtime import cli


def _pipe_with(*lines: bytes) -> int:
    r, w = os.pipe()
    for line in lines:
        os.write(w, line)
    os.close(w)
    return r


def test_ready_before_pid_still_waits_for_the_pid() -> None:
    r = _pipe_with(b'{"ready": true}\n', b'{"pid": 4242}\n')
    try:
        msgs = cli._read_sync(r)
    finally:
        os.close(r)
    assert {"pid": 4242} in msgs and {"ready": True} in msgs


def test_pid_then_ready_returns_at_ready_without_eof() -> None:
    r, w = os.pipe()
    try:
        os.write(w, b'{"pid": 7}\n{"ready": true}\n')  # the init keeps its end open until exec
        assert cli._read_sync(r) == [{"pid": 7}, {"ready": True}]
    finally:
        os.close(r)
        os.close(w)


def test_error_ends_the_read_without_a_pid() -> None:
    r, w = os.pipe()
    try:
        os.write(w, b'{"error": "boom"}\n')
        assert cli._read_sync(r) == [{"error": "boom"}]
    finally:
        os.close(r)
        os.close(w)


def test_kill_quiet_never_signals_a_process_group(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append((pid, sig)))
    cli._kill_quiet(0, signal.SIGKILL)
    cli._kill_quiet(-1, signal.SIGKILL)
    cli._kill_quiet(123, signal.SIGKILL)
    assert sent == [(123, signal.SIGKILL)]
