"""Docker's exit codes through the dockyard CLI against a live daemon (125 dockyard failed, 126 the
command cannot be invoked, 127 it is not there, else the container's own), and shell completion
filled in with the daemon's names."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import LiveDaemon, unique
from tests.unit.test_cli_completion import complete

pytestmark = pytest.mark.root


@pytest.mark.parametrize("command,status,words", [
    (["nosuchcmd"], 127, 'exec: "nosuchcmd": executable file not found in $PATH'),
    (["/nonexistent/x"], 127, "no such file or directory"),
    (["/etc/passwd"], 126, "permission denied"),
    (["/etc"], 126, "permission denied"),  # a directory: EACCES, as Go's exec.LookPath says
    (["sh", "-c", "exit 3"], 3, ""),
    (["true"], 0, ""),
])
@pytest.mark.parametrize("detach", [False, True])
def test_run_exit_codes(daemon: LiveDaemon, command: list[str], status: int, words: str, detach: bool) -> None:
    if detach and status < 125:
        status = 0  # -d reports only whether the container started
    res = daemon.cli("run", "--rm", *(["-d"] if detach else []), "busybox", *command, check=False)
    assert res.returncode == status, res.stderr
    assert words in res.stderr.decode()


def test_run_daemon_failure_is_125(daemon: LiveDaemon) -> None:
    res = daemon.cli("run", "--rm", "--network", unique("no-such-net"), "busybox", "true", check=False)
    assert res.returncode == 125 and b"not found" in res.stderr


def test_exec_exit_codes(daemon: LiveDaemon) -> None:
    name = unique("exec")
    daemon.cli("run", "-d", "--name", name, "busybox", "sleep", "60")
    try:
        res = daemon.cli("exec", name, "nosuchcmd", check=False)
        # dockerd records 126 for an exec that could not start, and says why on the stream
        assert res.returncode == 126
        assert b'"nosuchcmd": executable file not found' in res.stdout + res.stderr
        assert b"Traceback" not in res.stderr
        assert daemon.cli("exec", name, "sh", "-c", "exit 4", check=False).returncode == 4
    finally:
        daemon.cli("rm", "-f", name, check=False)


def test_completion_offers_the_daemons_names(daemon: LiveDaemon, tmp_path: Path) -> None:
    script = tmp_path / "dockyard.bash"
    script.write_bytes(daemon.cli("completion", "bash").stdout)
    name, net, vol = unique("comp"), unique("compnet"), unique("compvol")
    daemon.cli("create", "--name", name, "busybox", "true")
    daemon.cli("network", "create", net)
    daemon.cli("volume", "create", vol)
    try:
        assert name in complete(script, "dockyard", "-H", daemon.host, "start", "")
        assert complete(script, "dockyard", "-H", daemon.host, "rm", "-f", name[:8]) == [name]
        assert "busybox:latest" in complete(script, "dockyard", "-H", daemon.host, "run", "--rm", "")
        # bash splits image:tag at ':' and wants only what follows it back
        assert complete(script, "dockyard", "-H", daemon.host, "rmi", "busybox", ":", "lat") == ["latest"]
        assert net in complete(script, "dockyard", "-H", daemon.host, "run", "--network", "")
        assert net in complete(script, "dockyard", "-H", daemon.host, "network", "connect", "")
        assert name in complete(script, "dockyard", "-H", daemon.host, "network", "connect", net, "")
        assert vol in complete(script, "dockyard", "-H", daemon.host, "volume", "rm", "")
        # DOCKER_HOST works too (no -H on the line)
        assert name in complete(script, "dockyard", "inspect", "", host=daemon.host)
    finally:
        for args in (["rm", "-f", name], ["network", "rm", net], ["volume", "rm", vol]):
            daemon.cli(*args, check=False)
