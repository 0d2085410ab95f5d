"""``dockyard completion bash|zsh``: the bash script run for real, with COMP_WORDS/COMP_CWORD set as
bash sets them and COMPREPLY read back."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.cli import completion

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("completion") / "dockyard.bash"
    res = subprocess.run([str(BIN / "dockyard"), "completion", "bash"], capture_output=True, timeout=60)
    assert res.returncode == 0, res.stderr
    path.write_bytes(res.stdout)
    return path


def complete(script: Path, *words: str, host: str = "unix:///nonexistent/dockyard.sock",
             timeout: float = 30) -> list[str]:
    """COMPREPLY for the command line ``words`` (the last one is being completed). Without -H in
    ``words`` the names come from DOCKER_HOST, here a socket nobody listens on."""
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    prog = (f"source {script}\nCOMP_WORDS=({quoted})\nCOMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))\n"
            "_dockyard\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n")
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "DOCKER_HOST": host,
           "DOCKYARD_HOST": host}
    res = subprocess.run(["bash", "--norc", "--noprofile", "-c", prog], capture_output=True, text=True,
                         timeout=timeout, env=env)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    return [w for w in res.stdout.splitlines() if w]


def test_commands_and_subcommands(script: Path) -> None:
    top = complete(script, "dockyard", "")
    assert {"run", "ps", "container", "network", "volume", "image", "completion"} <= set(top)
    assert complete(script, "dockyard", "ru") == ["run"]
    assert complete(script, "dockyard", "network", "c") == ["connect", "create"]
    assert complete(script, "dockyard", "-D", "vol") == ["volume"]
    assert complete(script, "dockyard", "-H", "unix:///x", "ima") == ["image", "images"]


def test_flags_come_from_the_parsers(script: Path) -> None:
    assert complete(script, "dockyard", "run", "--net") == ["--net", "--network", "--network-alias"]
    assert {"-a", "--all", "-q", "--quiet", "--format"} <= set(complete(script, "dockyard", "ps", "-"))
    assert complete(script, "dockyard", "network", "create", "--ipam-") == ["--ipam-driver", "--ipam-opt"]
    assert complete(script, "dockyard", "--tlsv") == ["--tlsverify"]


def test_choices(script: Path) -> None:
    assert complete(script, "dockyard", "completion", "") == ["bash", "zsh"]
    assert complete(script, "dockyard", "build", "--progress", "p") == ["plain"]
    assert complete(script, "dockyard", "build", "--progress=r") == ["rawjson"]


def test_no_daemon_means_no_names_and_no_noise(script: Path) -> None:
    """Names come from the daemon; with none listening the answer is empty, fast and silent."""
    assert complete(script, "dockyard", "start", "", timeout=10) == []
    assert complete(script, "dockyard", "run", "--rm", "", timeout=10) == []
    # after run's IMAGE comes the container's own command: nothing of ours to offer
    assert complete(script, "dockyard", "run", "busybox", "--") == []


def test_script_is_generated_from_one_spec() -> None:
    spec = completion.spec()
    assert "--hostname" in spec.flags["run"] and "-h" in spec.flags["run"]
    assert "--help" in spec.flags["run"] and "-h" not in spec.value_flags["ps"]
    assert spec.args["container run"] == ["images", "none"]
    assert spec.args["network connect"] == ["networks", "containers"]
    assert "--network=networks" in spec.flag_kinds["run"]


def test_zsh_script() -> None:
    text = completion.zsh_script()
    assert text.startswith("#compdef dockyard\n") and "bashcompinit" in text
    assert "setopt localoptions ksharrays" in text and "complete -F _dockyard dockyard" in text
    zsh = shutil.which("zsh")
    if zsh is None:
        pytest.skip("zsh is not installed: its script shares the bash logic tested above")
    res = subprocess.run([zsh, "-n", "-c", text], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
