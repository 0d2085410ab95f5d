"""dockyard-runtime: command line, signals, JSON codec, state files (no root needed)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dockyard.errors import AlreadyExists, InvalidArgument, NotFound
from dockyard.runtime import jsonio
from dockyard.runtime import state as st
from dockyard.runtime.args import parse_args
from dockyard.runtime.cli import main, parse_signal
from dockyard.runtime.linux.capabilities import cap_numbers
from dockyard.runtime.linux.cgroups import _device_rule, with_default_devices


def test_parse_global_and_command_flags() -> None:
    a = parse_args(["--root", "/r", "--log=/l", "--systemd-cgroup", "create", "--bundle", "/b",
                    "--pid-file=/p", "c1"])
    assert (a.root, a.log, a.command) == ("/r", "/l", "create")
    assert (a.bundle, a.pid_file, a.console_socket, a.id) == ("/b", "/p", None, "c1")


def test_parse_defaults_and_positionals() -> None:
    a = parse_args(["kill", "c1"])
    assert (a.id, a.signal, a.all) == ("c1", "SIGTERM", None)
    a = parse_args(["kill", "--all", "c1", "KILL"])
    assert (a.id, a.signal, a.all) == ("c1", "KILL", True)
    assert parse_args(["create", "c1"]).bundle == "."
    assert parse_args(["ps", "-f", "json", "c1"]).format == "json"
    assert parse_args(["exec", "-d", "-p", "/p.json", "c1"]).detach is True


@pytest.mark.parametrize("argv", [[], ["nope"], ["start"], ["start", "a", "b"], ["create", "--bogus", "x"],
                                  ["create", "--bundle"], ["ps", "--format", "yaml", "c1"]])
def test_parse_rejects(argv: list[str]) -> None:
    with pytest.raises(InvalidArgument):
        parse_args(argv)


def test_main_reports_errors_with_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--root", str(tmp_path), "state", "missing"]) == 1
    assert "container does not exist: missing" in capsys.readouterr().err
    assert main(["--root", str(tmp_path), "state", "../etc"]) == 1
    assert "invalid container id" in capsys.readouterr().err


def test_parse_signal() -> None:
    assert parse_signal("9") == 9
    assert parse_signal("KILL") == 9
    assert parse_signal("SIGTERM") == 15
    assert parse_signal("hup") == 1
    with pytest.raises(InvalidArgument):
        parse_signal("SIGNOPE")


def test_jsonio_matches_json() -> None:
    doc = {"a": [1, -2.5, None, True, False, "é\"\\\n"], "b": {"c": {}}, "d": []}
    assert json.loads(jsonio.dumps(doc)) == doc
    assert jsonio.loads(json.dumps(doc, indent=2)) == doc
    assert jsonio.loads(b' {"x": 1}\n') == {"x": 1}
    for bad in ("", "{", '{"a": }', "{} x", "[1,]"):
        with pytest.raises(InvalidArgument):
            jsonio.loads(bad)


def test_state_roundtrip_and_ids(tmp_path: Path) -> None:
    root = str(tmp_path / "root")
    st.make_dir(root, "c1")
    with pytest.raises(AlreadyExists):
        st.make_dir(root, "c1")
    s = st.ContainerState(id="c1", bundle="/b", pid=os.getpid(), pid_start=st.proc_start_time(os.getpid()),
                          cgroup_path="/dockyard/c1", annotations={"k": "v"})
    st.save(root, s)
    back = st.load(root, "c1")
    assert back.to_dict() == s.to_dict()
    assert st.init_alive(back)
    back.pid_start = "1"
    assert not st.init_alive(back)
    assert os.listdir(os.path.join(root, "c1")) == ["state.json"]  # no temp files left
    with pytest.raises(NotFound):
        st.load(root, "c2")
    for bad in ("", "../x", "a/b", ".hidden", "x" * 129, "a b"):
        with pytest.raises(InvalidArgument):
            st.check_id(bad)
    st.check_id("Abc_1.2+3-4")


def test_capability_names() -> None:
    assert cap_numbers(["CAP_CHOWN", "kill", "CAP_NOPE", "CAP_CHECKPOINT_RESTORE"], 40) == [0, 5, 40]
    assert cap_numbers(["CAP_CHECKPOINT_RESTORE"], 39) == []  # unknown to this kernel: skipped


def test_device_rules() -> None:
    assert _device_rule({"allow": False, "access": "rwm"}) == "a"
    assert _device_rule({"type": "c", "major": 1, "minor": 3, "access": "rw"}) == "c 1:3 rw"
    assert _device_rule({"type": "b", "major": None, "minor": -1}) == "b *:* rwm"
    res = with_default_devices({"devices": [{"allow": False, "access": "rwm"}]},
                               [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}])
    rules = res["devices"]
    assert rules[0] == {"allow": False, "access": "rwm"}  # the spec's deny-all stays first
    assert {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"} in rules
    # linux.devices nodes get no rule of their own: the spec's resources.devices decide (runc)
    assert not any(r.get("major") == 10 and r.get("minor") == 229 for r in rules)


def test_seccomp_actions_and_conditions() -> None:
    from dockyard.runtime.linux import seccomp

    assert seccomp.action("SCMP_ACT_ERRNO", 13, None) == seccomp.ACT_ERRNO | 13
    assert seccomp.action("SCMP_ACT_ERRNO", None, 38) == seccomp.ACT_ERRNO | 38
    assert seccomp.action("SCMP_ACT_ERRNO", None, None) == seccomp.ACT_ERRNO | 1
    assert seccomp.action("SCMP_ACT_KILL_PROCESS", None, None) == seccomp.ACT_KILL_PROCESS
    with pytest.raises(InvalidArgument):
        seccomp.action("SCMP_ACT_NOPE", None, None)
    a0 = {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}
    a1 = {"index": 1, "value": 2, "op": "SCMP_CMP_EQ"}
    a0b = {"index": 0, "value": 3, "op": "SCMP_CMP_EQ"}
    assert seccomp.condition_sets([]) == [[]]
    assert seccomp.condition_sets([a0, a1]) == [[a0, a1]]  # distinct args: AND in one rule
    assert seccomp.condition_sets([a0, a0b]) == [[a0], [a0b]]  # same arg twice: OR, one rule each


def test_run_inline_reports_what_main_prints(tmp_path: Path) -> None:
    """The shim host runs start/kill/delete of the built-in runtime in its own process: same
    outcome and message as the forked ``main``, never for other commands."""
    from dockyard.runtime.cli import run_inline

    root = str(tmp_path / "root")
    assert run_inline(["--root", root, "delete", "--force", "nosuch"]) is None
    assert "does not exist" in (run_inline(["--root", root, "delete", "nosuch"]) or "")
    assert "does not exist" in (run_inline(["--root", root, "start", "nosuch"]) or "")
    assert "cannot run inline" in (run_inline(["--root", root, "state", "nosuch"]) or "")
    log = tmp_path / "runtime.log"
    assert run_inline(["--root", root, "--log", str(log), "kill", "nosuch"]) is not None
    assert "does not exist" in log.read_text()


def test_shim_runtime_inline_and_forked_fail_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from dockyard.errors import Internal
    from dockyard.shim.ocicli import Runtime

    # the forked runtime writes its error to fd 2, as in the shim host (not to pytest's capture)
    stderr = open(2, "w", closefd=False)  # noqa: SIM115
    monkeypatch.setattr(sys, "stderr", stderr)
    path = str(Path(sys.executable).with_name("dockyard-runtime"))
    messages = []
    for inline in (True, False):
        rt = Runtime(path, str(tmp_path / "root"), str(tmp_path), "nosuch")
        assert rt.builtin
        rt.inline = inline
        with pytest.raises(Internal) as err:
            rt.run("delete", "nosuch")
        messages.append(str(err.value))
        rt.run("delete", "--force", "nosuch")
    assert messages[0] == messages[1]
    assert messages[0].startswith("runtime delete failed: dockyard-runtime: container does not exist")


def test_bundle_config_from_memory_only_while_the_file_is_unchanged(tmp_path: Path) -> None:
    from dockyard.runtime import cli

    path = tmp_path / "config.json"
    path.write_text('{"a": 1}')
    cli.remember_config(str(path), cli.file_identity(os.stat(path)), {"a": "from memory"})
    try:
        assert cli._bundle_config(str(path)) == {"a": "from memory"}
        tmp = tmp_path / "new.json"
        tmp.write_text('{"a": 2}')
        os.replace(tmp, path)   # how the engine rewrites it
        assert cli._bundle_config(str(path)) == {"a": 2}
    finally:
        cli._known_config = None
