"""The fuzz suite's daemon: its own network namespace (so no fuzzed request can reach anything but
loopback, and every bridge, veth and nftables rule a request makes dies with the namespace), its
own roots, and a fixed set of objects (see ``harness.py``).

``DOCKYARD_FUZZ_SCALE`` (default 1) multiplies every example count; ``DOCKYARD_FUZZ_RANDOM=1``
draws new examples each run instead of the fixed, derandomized set CI runs.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IS_ROOT, LiveDaemon, _wait_up, daemon_argv, stop_daemon
from tests.fuzz.harness import Fuzzer, Stats

SCALE = float(os.environ.get("DOCKYARD_FUZZ_SCALE", "1") or "1")
DERANDOMIZE = os.environ.get("DOCKYARD_FUZZ_RANDOM", "") in ("", "0")
REPORT = os.environ.get("DOCKYARD_FUZZ_REPORT", "")

STATS = Stats()


def examples(base: int) -> int:
    return max(1, round(base * SCALE))


def start_netns_daemon(base: Path) -> LiveDaemon:
    argv, sock, data_root, exec_root = daemon_argv(base)
    data_root.mkdir(parents=True, exist_ok=True)
    for parent in data_root.parents:
        if str(parent) in ("/", "/tmp"):
            break
        parent.chmod(parent.stat().st_mode | 0o001)
    log = base / "dockyardd.log"
    # unshare execs sh, which execs dockyardd: the Popen's pid is the daemon's
    cmd = ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
           *argv, "-H", f"unix://{sock}"]
    with open(log, "wb") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True, cwd=base)
    return _wait_up(LiveDaemon(proc, sock, data_root, exec_root, log))


def stop_netns_daemon(d: LiveDaemon) -> None:
    """As every test daemon stops, except that its bridges, veths and nftables table live in its
    network namespace, which goes away with its last process (the host's ``ip``/``nft`` are never
    pointed at names a fuzzed request chose)."""
    stop_daemon(d, host_network=False)


@pytest.fixture(scope="session")
def fuzz_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDaemon]:
    if not IS_ROOT:
        pytest.skip("needs root")
    d = start_netns_daemon(tmp_path_factory.mktemp("fuzzd"))
    try:
        yield d
    finally:
        stop_netns_daemon(d)


@pytest.fixture(scope="session")
def fuzzer(fuzz_daemon: LiveDaemon) -> Iterator[Fuzzer]:
    fz = Fuzzer(fuzz_daemon, STATS)
    fz.setup()
    fz.baseline = fz.settle()
    yield fz
    fz.session.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not STATS.examples:
        return
    terminalreporter.write_line(STATS.summary())
    for failure in STATS.failures:
        terminalreporter.write_line(f"  fuzz failure: {failure.splitlines()[0][:300]}")
    if REPORT:
        Path(REPORT).write_text(json.dumps({
            "examples": STATS.examples, "requests": STATS.requests, "failures": STATS.failures,
            "statuses": {str(k): v for k, v in sorted(STATS.statuses.items())},
            "restores": STATS.restores}, indent=2) + "\n")
