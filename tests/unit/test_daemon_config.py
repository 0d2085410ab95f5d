"""dockyardd flags, config file merge and refusals (no daemon is started here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from dockyard.daemon import config
from dockyard.daemon.config import load_config, parse_size
from dockyard.errors import InvalidArgument


def test_defaults() -> None:
    cfg = load_config([])
    assert [str(h) for h in cfg.hosts] == ["unix:///run/dockyard/dockyard.sock"]
    assert cfg.data_root == Path("/var/lib/dockyard") and cfg.exec_root == Path("/run/dockyard")
    assert cfg.pidfile == Path("/run/dockyard/dockyardd.pid")
    assert cfg.default_runtime == "dockyard-runtime"
    assert cfg.runtimes["dockyard-runtime"] == str(Path(sys.executable).parent / "dockyard-runtime")
    assert "runc" in cfg.runtimes and cfg.log_level == "info"
    assert (cfg.log_max_size, cfg.log_max_file) == (20 * 1000 * 1000, 5)


def test_flags() -> None:
    cfg = load_config(["-H", "unix:///tmp/x.sock", "-H", "tcp://127.0.0.1:2999", "--exec-root", "/run/e",
                       "--add-runtime", "crun=/usr/bin/crun", "--default-runtime", "crun",
                       "--log-opt", "max-size=10m", "--log-opt", "max-file=3", "--log-level", "debug"])
    assert [str(h) for h in cfg.hosts] == ["unix:///tmp/x.sock", "tcp://127.0.0.1:2999"]
    assert cfg.pidfile == Path("/run/e/dockyardd.pid")
    assert cfg.runtimes["crun"] == "/usr/bin/crun" and cfg.default_runtime == "crun"
    assert (cfg.log_max_size, cfg.log_max_file) == (10 * 1024 * 1024, 3)
    assert parse_size("512k", "x") == 512 * 1024 and parse_size("1.5g", "x") == 1536 * 1024 * 1024


@pytest.mark.parametrize(("argv", "message"), [
    (["-H", "tcp://0.0.0.0:2375"], "refusing to listen on tcp://0.0.0.0:2375 without TLS: anyone who can "
     "reach it gets root on this host; pass --tlsverify --tlscacert --tlscert --tlskey or listen on 127.0.0.1"),
    (["-H", "tcp://10.1.2.3"], "refusing to listen on tcp://10.1.2.3:2375 without TLS"),
    (["-H", "fd://x"], "expected fd:// or fd://N"),
    (["--log-driver", "journald"], "invalid log-driver 'journald': dockyard supports json-file"),
    (["--live-restore=maybe"], "invalid value 'maybe' for live-restore: expected true or false"),
    (["--default-address-pool", "base=10.0.0.0/16"], "expected base=CIDR,size=N"),
    (["--default-address-pool", "base=10.0.0.0/16,size=8"], "must be between 16 and 32"),
    (["--default-address-pool", "base=10.0.0.1/16,size=24"], "invalid default-address-pools base"),
    (["-H", "http://x"], "expected unix://PATH or tcp://HOST:PORT"),
    (["--default-runtime", "nope"], "specified default runtime 'nope' does not exist"),
    (["--add-runtime", "runc=/x"], "runtime name 'runc' is reserved"),
    (["--add-runtime", "oops"], "expected KEY=VALUE"),
    (["--log-opt", "max-size=lots"], "invalid max-size"),
    (["--log-opt", "compress=true"], "unknown log opt 'compress'"),
])
def test_refusals(argv: list[str], message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        load_config(argv)
    assert message in str(info.value)


def test_tls_tcp_accepted_off_loopback() -> None:
    cfg = load_config(["-H", "tcp://0.0.0.0", "--tlsverify", "--tlscacert", "ca.pem", "--tlscert", "c.pem",
                       "--tlskey", "k.pem"])
    assert str(cfg.hosts[0]) == "tcp://0.0.0.0:2376" and cfg.tlsverify


def test_config_file(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps({"hosts": ["unix:///tmp/y.sock"], "data-root": "/srv/dy", "log-level": "warn",
                                "runtimes": {"crun": {"path": "/usr/bin/crun"}},
                                "log-opts": {"max-size": "1m", "max-file": "2"}}))
    cfg = load_config(["--config-file", str(path), "--exec-root", "/run/e2"])
    assert str(cfg.hosts[0]) == "unix:///tmp/y.sock" and cfg.data_root == Path("/srv/dy")
    assert cfg.runtimes["crun"] == "/usr/bin/crun" and cfg.log_level == "warn"
    assert (cfg.log_max_size, cfg.log_max_file) == (1024 * 1024, 2)
    assert cfg.exec_root == Path("/run/e2")


def test_config_file_refusals(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps({"data-root": "/srv/dy", "bogus-key": 1}))
    with pytest.raises(InvalidArgument, match="don't match any configuration option: bogus-key"):
        load_config(["--config-file", str(path)])
    path.write_text(json.dumps({"data-root": "/srv/dy"}))
    with pytest.raises(InvalidArgument, match=r"specified both as a flag and in the configuration file: "
                                              r"data-root: \(from flag: /a, from file: /srv/dy\)"):
        load_config(["--config-file", str(path), "--data-root", "/a"])
    path.write_text(json.dumps({"hosts": "unix:///x"}))
    with pytest.raises(InvalidArgument, match="'hosts': expected an array of strings"):
        load_config(["--config-file", str(path)])
    path.write_text("{not json")
    with pytest.raises(InvalidArgument, match="invalid config file"):
        load_config(["--config-file", str(path)])


def test_registry_flags_and_keys(tmp_path: Path) -> None:
    cfg = load_config(["--insecure-registry", "reg.lan:5000", "--insecure-registry", "10.0.0.0/8",
                       "--registry-mirror", "http://127.0.0.1:5001/"])
    assert cfg.insecure_registries == ["reg.lan:5000", "10.0.0.0/8"]
    assert cfg.registry_mirrors == ["http://127.0.0.1:5001"]
    f = tmp_path / "daemon.json"
    f.write_text('{"insecure-registries": ["a:1"], "registry-mirrors": ["https://m.example"]}')
    cfg = load_config(["--config-file", str(f)])
    assert cfg.insecure_registries == ["a:1"] and cfg.registry_mirrors == ["https://m.example"]
    f.write_text('{"insecure-registries": "a:1"}')
    with pytest.raises(InvalidArgument, match="insecure-registries"):
        load_config(["--config-file", str(f)])



def test_service_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(["-H", "fd://", "-H", "fd://4", "--live-restore=false", "-D",
                       "--default-address-pool", "base=10.10.0.0/16,size=24"])
    assert [str(h) for h in cfg.hosts] == ["fd://", "fd://4"] and cfg.hosts[0].scheme == "fd"
    assert cfg.live_restore is False and cfg.log_level == "debug"
    assert cfg.address_pools == [("10.10.0.0/16", 24)]
    assert load_config([]).live_restore is True and load_config(["--live-restore"]).live_restore is True
    # the default file is read when it exists and no --config-file is given, with Docker's key names
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps({"live-restore": False, "log-driver": "json-file", "debug": True,
                                "default-address-pools": [{"base": "10.20.0.0/16", "size": 26}]}))
    monkeypatch.setattr(config, "DEFAULT_CONFIG_FILE", str(path))
    cfg = load_config([])
    assert (cfg.live_restore, cfg.log_level, cfg.address_pools) == (False, "debug", [("10.20.0.0/16", 26)])
    assert cfg.config_file == str(path)
    path.write_text(json.dumps({"default-address-pools": [{"base": "10.20.0.0/16"}]}))
    with pytest.raises(InvalidArgument, match="expected base=CIDR,size=N"):
        load_config([])
    path.write_text(json.dumps({"live-restore": "no"}))
    with pytest.raises(InvalidArgument, match="'live-restore': expected a boolean"):
        load_config([])
