"""dockyardd's API exposure settings: the socket group (flag, config file, default) and the warning for
TCP without client certificates (no daemon is started here)."""

from __future__ import annotations

import grp
import json
import logging
from pathlib import Path

import pytest

from dockyard.daemon.config import DEFAULT_GROUP, load_config, resolve_group
from dockyard.daemon.server import _warn_about_exposure
from dockyard.errors import InvalidArgument


def _some_group() -> grp.struct_group:
    return grp.getgrall()[0]


def _default_gid() -> int | None:
    try:
        return grp.getgrnam(DEFAULT_GROUP).gr_gid
    except KeyError:
        return None


def test_default_group_only_when_it_exists() -> None:
    cfg = load_config([])
    assert (cfg.group, cfg.socket_gid) == (DEFAULT_GROUP, _default_gid())


def test_group_flag_and_config_file(tmp_path: Path) -> None:
    g = _some_group()
    assert load_config(["-G", g.gr_name]).socket_gid == g.gr_gid
    assert load_config(["--group", g.gr_name]).group == g.gr_name
    conf = tmp_path / "daemon.json"
    conf.write_text(json.dumps({"group": g.gr_name}))
    assert load_config(["--config-file", str(conf)]).socket_gid == g.gr_gid
    with pytest.raises(InvalidArgument, match="specified both as a flag and in the configuration file: group"):
        load_config(["--config-file", str(conf), "-G", g.gr_name])
    conf.write_text(json.dumps({"group": 5}))
    with pytest.raises(InvalidArgument, match="invalid config file value for 'group': expected a string"):
        load_config(["--config-file", str(conf)])


def test_group_root_only_and_numeric() -> None:
    assert resolve_group("") == ("", None)
    assert resolve_group("4242") == ("4242", 4242)


def test_missing_group_is_refused() -> None:
    with pytest.raises(InvalidArgument, match=r"^group 'no-such-group-x1' for the API socket does not exist"):
        load_config(["-G", "no-such-group-x1"])


def test_plain_tcp_on_loopback_warns(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "dockyard.daemon")
    _warn_about_exposure(load_config(["-H", "unix:///tmp/x.sock", "-H", "tcp://127.0.0.1:2375", "-G", ""]))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["API listens on tcp://127.0.0.1:2375 without TLS client verification: any user or "
                        "process on this host can connect and gets root-equivalent control; use the unix socket "
                        "or --tlsverify"]


def test_tlsverify_does_not_warn(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    caplog.set_level(logging.INFO, "dockyard.daemon")
    _warn_about_exposure(load_config(["-H", "tcp://127.0.0.1:2376", "--tlsverify", "--tlscacert", "ca",
                                      "--tlscert", "c", "--tlskey", "k"]))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
