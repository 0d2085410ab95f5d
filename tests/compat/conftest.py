"""Fixtures of the compat tests: a registry on loopback for pull/push, and a guard that turns a
compat test's skip into a failure in CI (CI installs every client these tests drive: the docker
CLI comes with the machine, docker-compose with ``make test-deps``, the docker SDK and
testcontainers with the dev extras — a skip there means a scenario silently went untested)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cleanup import stop_process
from tests.conftest import BIN, free_port

CI = os.environ.get("CI") == "true"


_SKIPPED_IN_CI: list[str] = []


def _reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    longrepr = report.longrepr
    return str(longrepr[2] if isinstance(longrepr, tuple) else longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = (f"skipped in CI: {_reason(report)} — CI installs every client tests/compat "
                           "drives (make test-deps, the dev extras), so this scenario went untested")


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if CI and report.skipped:   # a module-level importorskip: failing here would stop the whole run
        _SKIPPED_IN_CI.append(f"{report.nodeid}: {_reason(report)}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in _SKIPPED_IN_CI:
        terminalreporter.write_line(f"FAILED (skipped in CI) {line}", red=True)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _SKIPPED_IN_CI and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


class Registry:
    """``dockyard registry serve`` on a free loopback port: plain HTTP, as Docker treats loopback."""

    def __init__(self, root: Path) -> None:
        self.host = f"127.0.0.1:{free_port()}"
        self.proc = subprocess.Popen([str(BIN / "dockyard"), "registry", "serve", "--addr", self.host,
                                      "--root", str(root)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"dockyard registry serve exited {self.proc.returncode}")
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1).close()
                return
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        self.stop()
        raise AssertionError("the registry did not come up")

    def tags(self, repo: str) -> list[str]:
        with urllib.request.urlopen(f"http://{self.host}/v2/{repo}/tags/list", timeout=5) as resp:
            return list(json.loads(resp.read())["tags"] or [])

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    server = Registry(tmp_path / "registry")
    try:
        yield server
    finally:
        server.stop()
