"""``dockyard context``: the store docker uses, docker's output, and which daemon a command reaches."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard import errors
from dockyard.cli.main import main
from dockyard.client.contexts import Store, resolve_name
from dockyard.client.tls import TLSSettings
from dockyard.client.transport import DEFAULT_HOST, Host, host_from_env
from tests.fakedaemon import JSONHandler, UnixServer, serve


class _Handler(JSONHandler):
    def do_GET(self) -> None:
        self.server.paths.append(self.path)  # type: ignore[attr-defined]
        self.send_json(200, [])


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty docker config directory in DOCKER_CONFIG; no host from the environment."""
    for var in ("DOCKER_HOST", "DOCKYARD_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_TLS",
                "DOCKER_CERT_PATH"):
        monkeypatch.delenv(var, raising=False)
    d = tmp_path / "docker-config"
    d.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(d))
    return d


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[tuple[UnixServer, UnixServer]]:
    with serve(tmp_path / "a.sock", _Handler, paths=[]) as a, serve(tmp_path / "b.sock", _Handler, paths=[]) as b:
        yield a, b


def _sock(srv: UnixServer) -> str:
    return f"unix://{srv.server_address}"


def test_create_writes_docker_layout(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["context", "create", "dev1", "--description", "my box", "--docker", "host=unix:///tmp/x.sock"]) == 0
    out = capsys.readouterr()
    assert out.out == "dev1\n" and out.err == 'Successfully created context "dev1"\n'
    ident = hashlib.sha256(b"dev1").hexdigest()
    meta = json.loads((cfg / "contexts" / "meta" / ident / "meta.json").read_text())
    assert meta == {"Name": "dev1", "Metadata": {"Description": "my box"},
                    "Endpoints": {"docker": {"Host": "unix:///tmp/x.sock", "SkipTLSVerify": False}}}


def test_create_with_tls_material(cfg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("ca", "cert", "key"):
        (tmp_path / f"{name}.pem").write_text(f"{name} data")
    assert main(["context", "create", "tls1", "--docker",
                 f"host=tcp://127.0.0.1:2376,ca={tmp_path}/ca.pem,cert={tmp_path}/cert.pem,key={tmp_path}/key.pem"]) == 0
    tls = cfg / "contexts" / "tls" / hashlib.sha256(b"tls1").hexdigest() / "docker"
    assert {p.name: p.read_text() for p in tls.iterdir()} == {
        "ca.pem": "ca data", "cert.pem": "cert data", "key.pem": "key data"}
    assert (tls / "key.pem").stat().st_mode & 0o777 == 0o600
    ctx = Store().get("tls1")
    assert ctx.to_host() == Host("tcp", "127.0.0.1", 2376, TLSSettings(True, str(tls / "ca.pem"),
                                                                         str(tls / "cert.pem"), str(tls / "key.pem")))
    capsys.readouterr()
    assert main(["context", "inspect", "tls1", "--format", "{{json .TLSMaterial}}"]) == 0
    assert capsys.readouterr().out == '{"docker":["ca.pem","cert.pem","key.pem"]}\n'
    # skip-tls-verify: TLS without checking the daemon
    assert main(["context", "create", "tls2", "--docker", "host=tcp://127.0.0.1:2376,skip-tls-verify=true"]) == 0
    assert Store().get("tls2").to_host().tls == TLSSettings(False, "", "", "")
    assert Store().get("tls2").meta["Endpoints"]["docker"]["SkipTLSVerify"] is True


@pytest.mark.parametrize(("argv", "message"), [
    (["x"], 'context name "x" is invalid, names are validated against regexp "^[a-zA-Z0-9][a-zA-Z0-9_.+-]+$"'),
    (["default"], '"default" is a reserved context name'),
    (["ok1", "--docker", "hostt=unix:///x"], "unable to create docker endpoint config: unrecognized config key: hostt"),
    (["ok1", "--docker", "host=unix:///x,ca=/nonexistent/ca.pem"],
     "unable to create docker endpoint config: open /nonexistent/ca.pem: no such file or directory"),
])
def test_create_refusals(cfg: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert main(["context", "create", *argv]) == 1
    assert capsys.readouterr().err == f"Error: {message}\n"
    assert not (cfg / "contexts").exists()


def test_create_copies_current_or_from(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["context", "create", "orig", "--docker", "host=unix:///tmp/orig.sock"]) == 0
    assert main(["context", "create", "copy1", "--from", "orig"]) == 0
    assert Store().get("copy1").host == "unix:///tmp/orig.sock"
    assert main(["context", "create", "copy2"]) == 0  # no endpoint: the current context's (default)
    assert Store().get("copy2").host == DEFAULT_HOST
    assert main(["context", "create", "orig", "--docker", "host=unix:///y"]) == 1
    assert capsys.readouterr().err.endswith('Error: context "orig" already exists\n')


def test_use_keeps_other_config_keys(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (cfg / "config.json").write_text(json.dumps({"auths": {"r.example": {"auth": "eDp5"}}, "psFormat": "x"}))
    (cfg / "config.json").chmod(0o600)
    assert main(["context", "create", "one1", "--docker", "host=unix:///tmp/1.sock"]) == 0
    assert main(["context", "use", "one1"]) == 0
    data = json.loads((cfg / "config.json").read_text())
    assert data == {"auths": {"r.example": {"auth": "eDp5"}}, "psFormat": "x", "currentContext": "one1"}
    assert (cfg / "config.json").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in cfg.iterdir()) == ["config.json", "contexts"]  # no temp file left
    capsys.readouterr()
    assert main(["context", "show"]) == 0
    assert capsys.readouterr().out == "one1\n"
    assert main(["context", "use", "default"]) == 0
    assert "currentContext" not in json.loads((cfg / "config.json").read_text())
    assert main(["context", "use", "nope1"]) == 1
    assert 'context "nope1": context not found' in capsys.readouterr().err


def test_ls_table_json_quiet(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["context", "create", "dev1", "--description", "my box", "--docker", "host=unix:///tmp/x.sock"])
    main(["context", "use", "dev1"])
    capsys.readouterr()
    assert main(["context", "ls"]) == 0
    assert capsys.readouterr().out == (
        "NAME      DESCRIPTION                               DOCKER ENDPOINT                      ERROR\n"
        f"default   Current DOCKER_HOST based configuration   {DEFAULT_HOST}   \n"
        "dev1 *    my box                                    unix:///tmp/x.sock                   \n")
    assert main(["context", "ls", "-q"]) == 0
    assert capsys.readouterr().out == "default\ndev1\n"
    assert main(["context", "list", "--format", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[1] == {"Current": True, "Description": "my box", "DockerEndpoint": "unix:///tmp/x.sock",
                       "Error": "", "Name": "dev1"}
    assert main(["context", "ls", "--format", "{{.Name}}:{{.Current}}"]) == 0
    assert capsys.readouterr().out == "default:false\ndev1:true\n"


def test_ls_marks_missing_current_and_env_host(cfg: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (cfg / "config.json").write_text('{"currentContext": "gone"}')
    assert main(["context", "ls", "--format", "{{.Name}} {{.Current}} {{.Error}}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "default false "
    assert lines[1].startswith('gone true context "gone": context not found: open ')
    monkeypatch.setenv("DOCKER_HOST", "unix:///tmp/env.sock")
    assert main(["context", "ls", "--format", "{{.Name}} {{.Current}} {{.DockerEndpoint}}"]) == 0
    out = capsys.readouterr()
    assert out.out == "default true unix:///tmp/env.sock\n"
    assert out.err.startswith("Warning: DOCKER_HOST environment variable overrides the active context.")


def test_rm(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["context", "create", "one1", "--docker", "host=unix:///tmp/1.sock"])
    main(["context", "use", "one1"])
    capsys.readouterr()
    assert main(["context", "rm", "one1"]) == 1
    assert capsys.readouterr().err == 'context "one1" is in use, set -f flag to force remove\n'
    assert main(["context", "rm", "-f", "one1"]) == 0
    assert capsys.readouterr().out == "one1\n"
    assert Store().current() == "default"
    assert not any((cfg / "contexts" / "meta").iterdir())
    assert main(["context", "remove", "one1"]) == 1
    assert capsys.readouterr().err == 'context "one1" does not exist\n'


def test_inspect_default_and_current(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["context", "inspect"]) == 0
    [ctx] = json.loads(capsys.readouterr().out)
    assert ctx == {"Name": "default", "Metadata": {}, "Endpoints": {"docker": {"Host": DEFAULT_HOST,
                                                                             "SkipTLSVerify": False}},
                   "TLSMaterial": {}, "Storage": {"MetadataPath": "<IN MEMORY>", "TLSPath": "<IN MEMORY>"}}
    assert main(["context", "inspect", "nope1"]) == 1


def test_update_keeps_unknown_fields(cfg: Path) -> None:
    main(["context", "create", "up1", "--description", "d", "--docker", "host=unix:///tmp/1.sock"])
    meta_file = cfg / "contexts" / "meta" / hashlib.sha256(b"up1").hexdigest() / "meta.json"
    meta = json.loads(meta_file.read_text())
    meta["Endpoints"]["kubernetes"] = {"x": 1}
    meta["Metadata"]["Other"] = "kept"
    meta_file.write_text(json.dumps(meta))
    assert main(["context", "update", "up1", "--docker", "host=unix:///tmp/2.sock"]) == 0
    meta = json.loads(meta_file.read_text())
    assert meta["Endpoints"] == {"docker": {"Host": "unix:///tmp/2.sock", "SkipTLSVerify": False},
                                 "kubernetes": {"x": 1}}
    assert meta["Metadata"] == {"Description": "d", "Other": "kept"}


def test_host_precedence(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docker 28's order: --context (not with -H), -H, DOCKER_HOST, DOCKER_CONTEXT, currentContext."""
    store = Store()
    for name in ("flagctx", "envctx", "curctx"):
        store.create(name, f"unix:///tmp/{name}.sock")
    store.set_current("curctx")
    assert host_from_env(None) == Host("unix", "/tmp/curctx.sock")
    monkeypatch.setenv("DOCKER_CONTEXT", "envctx")
    assert host_from_env(None) == Host("unix", "/tmp/envctx.sock")
    monkeypatch.setenv("DOCKER_HOST", "unix:///tmp/dockerhost.sock")
    assert host_from_env(None) == Host("unix", "/tmp/dockerhost.sock")
    monkeypatch.setenv("DOCKYARD_HOST", "unix:///tmp/dockyardhost.sock")
    assert host_from_env(None) == Host("unix", "/tmp/dockyardhost.sock")
    assert host_from_env(None, context="flagctx") == Host("unix", "/tmp/flagctx.sock")  # beats the env
    assert host_from_env("unix:///tmp/flag.sock") == Host("unix", "/tmp/flag.sock")
    with pytest.raises(errors.InvalidArgument, match="cannot specify both --host and --context"):
        host_from_env("unix:///tmp/flag.sock", context="flagctx")
    assert resolve_name(None) == "default"
    assert resolve_name("flagctx") == "flagctx"
    monkeypatch.delenv("DOCKER_HOST")
    monkeypatch.delenv("DOCKYARD_HOST")
    assert resolve_name(None) == "envctx"
    monkeypatch.setenv("DOCKER_CONTEXT", "default")
    assert host_from_env(None) == Host("unix", DEFAULT_HOST[len("unix://"):])
    monkeypatch.setenv("DOCKER_CONTEXT", "missing1")
    with pytest.raises(errors.NotFound, match='context "missing1": context not found'):
        host_from_env(None)


def test_commands_reach_the_context_daemon(cfg: Path, daemons: tuple[UnixServer, UnixServer],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    a, b = daemons
    store = Store()
    store.create("ctxa", _sock(a))
    store.create("ctxb", _sock(b))
    assert main(["context", "use", "ctxa"]) == 0
    assert main(["ps", "-q"]) == 0
    assert main(["--context", "ctxb", "ps", "-q"]) == 0
    assert main(["-c", "ctxb", "container", "ls"]) == 0
    assert main(["-H", _sock(a), "ps"]) == 0
    assert len(a.paths) == 2 and len(b.paths) == 2  # type: ignore[attr-defined]
    assert main(["-H", _sock(a), "-c", "ctxb", "ps"]) == 1
    assert capsys.readouterr().err.endswith("Error: conflicting options: cannot specify both --host and --context\n")


def test_context_commands_need_no_daemon(cfg: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken DOCKER_CONTEXT or current context must not stop the commands that repair it."""
    monkeypatch.setenv("DOCKER_CONTEXT", "gone1")
    assert main(["context", "ls", "-q"]) == 0
    assert capsys.readouterr().out == "default\ngone1\n"
    assert main(["context", "use", "default"]) == 0


def test_plain_commands_do_not_import_the_context_store(cfg: Path, daemons: tuple[UnixServer, UnixServer]) -> None:
    """The store module (hashlib, dataclasses, …) stays off the hot path unless a context is used."""
    a, _ = daemons
    probe = ("import sys; from dockyard.cli.main import main; rc = main(['ps', '-q']); "
             "print(rc, 'dockyard.client.contexts' in sys.modules, 'hashlib' in sys.modules)")
    env = {"DOCKER_CONFIG": str(cfg), "DOCKYARD_HOST": _sock(a), "PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=30)
    assert res.stdout.split() == ["0", "False", "False"], res.stderr
    Store(cfg).create("hot1", _sock(a))
    Store(cfg).set_current("hot1")
    del env["DOCKYARD_HOST"]
    res = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=30)
    assert res.stdout.split() == ["0", "True", "False"], res.stderr  # and even then no OpenSSL hashlib
