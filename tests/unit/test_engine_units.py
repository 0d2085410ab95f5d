"""Pure parts of the engine: names, config merge, validation, spec, env, users, events, records."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from dockyard.engine import records
from dockyard.engine.containers import parse_rfc3339
from dockyard.engine.create import (
    command_line,
    merge_image_config,
    resolv_conf,
    validate_host_config,
    validate_resources,
)
from dockyard.engine.events import EventBus
from dockyard.engine.names import generate_name, validate_name
from dockyard.engine.rootfs import read_file, resolve_in_root, resolve_user
from dockyard.engine.security import DEFAULT_CAPS, capabilities
from dockyard.engine.spec import build_env, build_spec, linux_resources, parse_signal
from dockyard.engine.top import parse_ps
from dockyard.engine.types import (
    ContainerConfig,
    ContainerRecord,
    HealthConfig,
    HostConfig,
    Resources,
)
from dockyard.errors import InvalidArgument, NotFound

IMAGE = {"config": {"Entrypoint": ["/ep"], "Cmd": ["run"], "Env": ["PATH=/x", "A=1"],
                    "WorkingDir": "/app", "User": "app", "Labels": {"a": "1"}, "StopSignal": "SIGINT"}}


def test_names() -> None:
    assert validate_name("/web.1_x-y") == "web.1_x-y"
    for bad in ("a", "-x", "x y", "/", "é"):
        with pytest.raises(InvalidArgument, match=r"only \[a-zA-Z0-9\]\[a-zA-Z0-9_.-\] are allowed"):
            validate_name(bad)
    name = generate_name(lambda n: False)
    left, _, right = name.partition("_")
    assert left and right
    taken = {name}
    assert generate_name(lambda n: n in taken) not in taken


def test_merge_cmd_entrypoint_rules() -> None:
    cfg = merge_image_config(ContainerConfig(), IMAGE)
    assert (cfg.entrypoint, cfg.cmd) == (["/ep"], ["run"])
    assert command_line(cfg) == ("/ep", ["run"])
    cfg = merge_image_config(ContainerConfig(cmd=["x"]), IMAGE)
    assert (cfg.entrypoint, cfg.cmd) == (["/ep"], ["x"])
    cfg = merge_image_config(ContainerConfig(entrypoint=["/other"]), IMAGE)
    assert (cfg.entrypoint, cfg.cmd) == (["/other"], None)  # image Cmd dropped
    cfg = merge_image_config(ContainerConfig(entrypoint=[""], cmd=["sh"]), IMAGE)
    assert command_line(cfg) == ("sh", [])
    cfg = merge_image_config(ContainerConfig(env=["A=2", "B=3"], labels={"b": "2"}), IMAGE)
    assert cfg.env == ["PATH=/x", "A=2", "B=3"]
    assert (cfg.working_dir, cfg.user, cfg.stop_signal) == ("/app", "app", "SIGINT")
    assert cfg.labels == {"a": "1", "b": "2"}
    with pytest.raises(InvalidArgument, match="no command specified"):
        command_line(merge_image_config(ContainerConfig(), {"config": {}}))


def test_resource_validation_messages() -> None:
    with pytest.raises(InvalidArgument, match=r"^Minimum memory limit allowed is 6MB$"):
        validate_resources(Resources(memory=5 << 20), 2)
    with pytest.raises(InvalidArgument, match=r"^Minimum memoryswap limit should be larger than memory"):
        validate_resources(Resources(memory=64 << 20, memory_swap=10 << 20), 2)
    with pytest.raises(InvalidArgument,
                       match=r"^Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available$"):
        validate_resources(Resources(nano_cpus=3 * 10**9), 2)
    with pytest.raises(InvalidArgument, match="Conflicting options: Nano CPUs and CPU Period"):
        validate_resources(Resources(nano_cpus=10**9, cpu_period=100000), 2)
    assert validate_resources(Resources(memory=6 << 20, nano_cpus=10**9), 2) == []
    with pytest.raises(InvalidArgument, match="Invalid signal: SIGNOPE"):
        validate_host_config(HostConfig(), ContainerConfig(stop_signal="SIGNOPE"), 2)


def test_linux_resources() -> None:
    res = linux_resources(Resources(memory=32 << 20, nano_cpus=1_500_000_000, cpu_shares=512,
                                    cpuset_cpus="0", pids_limit=10))
    assert res["memory"] == {"limit": 32 << 20, "swap": 64 << 20}
    assert res["cpu"] == {"period": 100000, "quota": 150000, "shares": 512, "cpus": "0"}
    assert res["pids"] == {"limit": 10}
    assert linux_resources(Resources(memory=32 << 20, memory_swap=-1))["memory"]["swap"] == -1
    assert "memory" not in linux_resources(Resources())


def test_signals_caps_env() -> None:
    assert parse_signal("TERM") == parse_signal("SIGTERM") == parse_signal("15") == 15
    assert parse_signal("kill") == 9
    with pytest.raises(InvalidArgument):
        parse_signal("0")
    assert capabilities([], [], False) == DEFAULT_CAPS
    caps = capabilities(["NET_ADMIN"], ["chown"], False)
    assert "CAP_NET_ADMIN" in caps and "CAP_CHOWN" not in caps
    assert capabilities([], ["ALL"], False) == []
    assert build_env(["A=1"], "h", True) == [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=h", "TERM=xterm", "A=1"]
    assert build_env(["PATH=/p", "TERM=dumb", "NOVALUE"], "h", True) == ["PATH=/p", "HOSTNAME=h", "TERM=dumb"]


def test_build_spec_defaults() -> None:
    rec = ContainerRecord(id="c" * 64, name="n", created="", image_id="", image_ref="busybox",
                          config=ContainerConfig(hostname="hh", env=["PATH=/bin"]),
                          host_config=HostConfig(init=True, shm_size=1 << 20, network_mode="none"),
                          path="sh", args=["-c", "x"], hosts_path="/h", hostname_path="/hn",
                          resolv_conf_path="/r")
    from dockyard.engine.rootfs import ExecUser
    spec = build_spec(rec, rootfs=Path("/rootfs"), user=ExecUser(uid=5, gid=6, additional_gids=[7]),
                      cgroup_parent="dockyard")
    assert spec["process"]["args"] == ["/sbin/docker-init", "--", "sh", "-c", "x"]
    assert spec["process"]["user"] == {"uid": 5, "gid": 6, "additionalGids": [7]}
    assert spec["hostname"] == "hh"
    assert spec["linux"]["cgroupsPath"] == "/dockyard/" + "c" * 64
    assert {n["type"] for n in spec["linux"]["namespaces"]} == {"pid", "ipc", "uts", "mount", "network"}
    dests = {m["destination"]: m for m in spec["mounts"]}
    for d in ("/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm",
              "/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/sbin/docker-init"):
        assert d in dests
    assert f"size={1 << 20}" in dests["/dev/shm"]["options"]
    assert "/proc/kcore" in spec["linux"]["maskedPaths"]
    assert "/proc/sys" in spec["linux"]["readonlyPaths"]
    assert spec["process"]["capabilities"]["bounding"] == DEFAULT_CAPS


def test_user_resolution_stays_in_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\napp:x:1000:\nextra:x:2000:app,other\n")
    u = resolve_user(root, "app")
    assert (u.uid, u.gid, u.additional_gids, u.home) == (1000, 1000, [2000], "/home/app")
    u = resolve_user(root, "1000:extra")
    assert (u.uid, u.gid, u.additional_gids) == (1000, 2000, [])
    assert resolve_user(root, "").uid == 0
    assert (resolve_user(root, "77:88").uid, resolve_user(root, "77:88").gid) == (77, 88)
    with pytest.raises(InvalidArgument, match="unable to find user nobody"):
        resolve_user(root, "nobody")
    with pytest.raises(InvalidArgument, match="unable to find group nogroup"):
        resolve_user(root, "app:nogroup")
    # hostile links resolve inside the root, never to the host's files
    secret = tmp_path / "secret"
    secret.write_text("evil:x:0:0::/:/bin/sh\n")
    (root / "etc" / "passwd").unlink()
    os.symlink(str(secret), root / "etc" / "passwd")
    assert resolve_in_root(root, "/etc/passwd") == root / str(secret).lstrip("/")
    with pytest.raises(NotFound):
        read_file(root, "/etc/passwd")
    os.symlink("../../../../../../../../etc", root / "up")
    assert resolve_in_root(root, "/up/group") == root / "etc" / "group"


def test_resolv_conf_filters_loopback(tmp_path: Path) -> None:
    host = tmp_path / "resolv.conf"
    host.write_text("nameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch example.com\noptions ndots:2\n")
    assert resolv_conf(host, [], [], []) == "nameserver 10.0.0.2\nsearch example.com\noptions ndots:2\n"
    host.write_text("nameserver 127.0.0.1\n")
    assert resolv_conf(host, [], [], []) == ""
    assert resolv_conf(host, ["192.0.2.1"], ["a.b"], ["rotate"]) == \
        "nameserver 192.0.2.1\nsearch a.b\noptions rotate\n"


def test_record_roundtrip_and_time() -> None:
    rec = ContainerRecord(id="a", name="b", created="2024-01-02T03:04:05.123456789Z", image_id="i",
                          image_ref="r", config=ContainerConfig(healthcheck=HealthConfig(test=["CMD"])),
                          host_config=HostConfig(console_size=(24, 80)))
    back = records.loads(ContainerRecord, records.dumps(rec))
    assert back == rec and back.host_config.console_size == (24, 80)
    assert isinstance(back.config.healthcheck, HealthConfig)
    assert abs(parse_rfc3339(rec.created) - 1704164645.123457) < 1e-5


def test_events_history_filters_and_live() -> None:
    async def main() -> None:
        bus = EventBus(history=3)
        start = time.time()
        bus.publish("container", "create", "c1", {"name": "one", "image": "busybox", "l": "v"})
        bus.publish("image", "tag", "sha256:x", {"name": "busybox:latest"})
        got = [e async for e in bus.subscribe(start, time.time(), {"type": ["container"]})]
        assert [e.action for e in got] == ["create"]
        got = [e async for e in bus.subscribe(start, time.time(), {"label": ["l=v"]})]
        assert [e.actor_id for e in got] == ["c1"]
        got = [e async for e in bus.subscribe(start, time.time(), {"container": ["one"]})]
        assert len(got) == 1

        async def live() -> list[str]:
            return [e.action async for e in bus.subscribe(None, time.time() + 0.3, {"event": ["exec_start"]})]
        task = asyncio.ensure_future(live())
        await asyncio.sleep(0.05)
        bus.publish("container", "exec_start: sh -c x", "c1")
        bus.publish("container", "die", "c1")
        assert await task == ["exec_start: sh -c x"]
        for i in range(5):
            bus.publish("container", "x", str(i))
        assert len(bus.history()) == 3

    asyncio.run(main())


def test_parse_ps() -> None:
    out = "UID PID PPID C STIME TTY TIME CMD\nroot 1 0 0 10:00 ? 00:00:00 /sbin/init\n" \
          "root 42 1 0 10:00 ? 00:00:00 sleep 1000\n"
    titles, rows = parse_ps(out, {42})
    assert titles == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert rows == [["root", "42", "1", "0", "10:00", "?", "00:00:00", "sleep 1000"]]


def test_probe_argv_and_namespaces() -> None:
    from dockyard.engine.create import parse_binds
    from dockyard.engine.health import probe_argv
    from dockyard.engine.spec import namespace_list
    assert probe_argv(["CMD", "curl", "-f", "x"]) == ["curl", "-f", "x"]
    assert probe_argv(["CMD-SHELL", "exit 1"]) == ["/bin/sh", "-c", "exit 1"]
    assert probe_argv(["NONE"]) is None and probe_argv([]) is None
    ns = namespace_list("container:x", "host", "", "", {"network": 42, "uts": 42})
    assert ns == [{"type": "ipc"}, {"type": "uts", "path": "/proc/42/ns/uts"}, {"type": "mount"},
                  {"type": "network", "path": "/proc/42/ns/net"}]
    binds = parse_binds(["/a:/b", "/c/:/d:ro,rshared"])
    assert [(m.source, m.destination, m.rw, m.propagation) for m in binds] == [
        ("/a", "/b", True, "rprivate"), ("/c", "/d", False, "rshared")]
    with pytest.raises(InvalidArgument, match="Duplicate mount point: /b"):
        parse_binds(["/a:/b", "/c:/b/"])
    with pytest.raises(InvalidArgument, match="named volumes are not supported yet"):
        parse_binds(["data:/b"])


def test_tmpfs_options_checked_at_create() -> None:
    from dockyard.engine.mounts import check_tmpfs_options
    check_tmpfs_options("/t", "rw,exec,size=64m,mode=1777,uid=1000,gid=0,nr_inodes=10k,mpol=interleave:0-1")
    check_tmpfs_options("/t", "")
    for bad, why in (("foo", "'foo'"), ("size", "'size'"), ("size=12q", "size must be a number"),
                     ("mode=u+x", "octal"), ("uid=root", "numeric user id"), ("noexec=1", "'noexec=1'")):
        with pytest.raises(InvalidArgument, match=why):
            check_tmpfs_options("/t", f"rw,{bad}")
