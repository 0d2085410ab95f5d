"""The Engine end to end through real parts: image store, overlay snapshots, shim, OCI runtime.

Runs against runc and, when it works on this machine, the built-in dockyard-runtime. Each test
gets its own data root (tmp_path) and exec root (/run/dyeng-*) and leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from dockyard.engine.types import (
    ContainerConfig,
    CreateOptions,
    ExecConfig,
    HostConfig,
    LogsOptions,
    Resources,
)
from dockyard.errors import (
    AlreadyExists,
    Conflict,
    InvalidArgument,
    NotFound,
    NotModified,
)
from tests.integration.test_engine_fixtures import (
    cgroup_dirs,
    mounted,
    run_with_engine,
    runtimes_available,
)

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not Path("/bin/busybox").exists(), reason="needs busybox-static"),
]

_PROBED: dict[str, str | None] = {}


def _probe(tmp_path: Path, runtime: str) -> str | None:
    """None when ``runtime`` runs a trivial container through the engine, else why not."""
    if runtime not in _PROBED:
        result: dict[str, str | None] = {"err": "did not run"}

        async def body(engine: Any, base: Path, exec_root: Path, holder: dict[str, Any]) -> None:
            cid, _ = await engine.create_container(opts(["true"]))
            await engine.start_container(cid)
            code, _ = await asyncio.wait_for(engine.wait_container(cid), 30)
            result["err"] = None if code == 0 else f"exit code {code}"

        try:
            run_with_engine(tmp_path / "probe", runtime, body)
        except Exception as exc:  # the reason ends up in the skip message
            result["err"] = f"{type(exc).__name__}: {exc}"
        _PROBED[runtime] = result["err"]
    return _PROBED[runtime]


@pytest.fixture(params=runtimes_available() or ["runc"])
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    name = str(request.param)
    if name != "runc":
        why = _probe(tmp_path, name)
        if why:
            pytest.skip(f"{name} cannot run containers here yet: {why}")
    return name


def opts(cmd: list[str], name: str = "", **host: Any) -> CreateOptions:
    resources = host.pop("resources", None)
    hc = HostConfig(**host)
    if resources is not None:
        hc.resources = resources
    return CreateOptions(name=name, config=ContainerConfig(image="busybox", cmd=cmd), host_config=hc)


async def run_to_end(engine: Any, options: CreateOptions, timeout: float = 30) -> tuple[str, int, str]:
    """create + start + wait; returns id, exit code and stdout+stderr from the log."""
    cid, _ = await engine.create_container(options)
    await engine.start_container(cid)
    code, _ = await asyncio.wait_for(engine.wait_container(cid), timeout)
    out = b"".join([e.data async for e in engine.logs(cid, LogsOptions())])
    return cid, code, out.decode()


def test_echo_logs_exit_code_pid_and_hostname(tmp_path: Path, runtime: str) -> None:
    async def body(engine: Any, base: Path, exec_root: Path, holder: dict[str, Any]) -> None:
        cid, code, out = await run_to_end(engine, opts(["sh", "-c", "echo hello; echo $$; hostname"]))
        assert code == 0
        assert out.splitlines() == ["hello", "1", cid[:12]]
        rec = engine.get_container(cid)
        assert rec.state.status == "exited" and rec.state.pid == 0
        assert rec.path == "sh" and rec.args[0] == "-c"
        assert rec.state.finished_at >= rec.state.started_at
        assert not mounted(Path(rec.bundle) / "rootfs")
        _, code, _ = await run_to_end(engine, opts(["sh", "-c", "exit 3"]))
        assert code == 3
        err = [e async for e in engine.logs(cid, LogsOptions(stdout=False))]
        assert err == []

    run_with_engine(tmp_path, runtime, body)


def test_lookup_by_name_prefix_and_generated_names(tmp_path: Path, runtime: str) -> None:
    async def body(engine: Any, base: Path, exec_root: Path, holder: dict[str, Any]) -> None:
        cid, _ = await engine.create_container(opts(["true"], name="web-1"))
        assert engine.get_container("web-1").id == cid
        assert engine.get_container("/web-1").id == cid
        assert engine.get_container(cid[:10]).id == cid
        with pytest.raises(NotFound, match="No such container: nope"):
            engine.get_container("nope")
        with pytest.raises(AlreadyExists, match=f'"/web-1" is already in use by container "{cid}"'):
            await engine.create_container(opts(["true"], name="web-1"))
        with pytest.raises(InvalidArgument, match=r"Invalid container name \(-x\)"):
            await engine.create_container(opts(["true"], name="-x"))
        other, _ = await engine.create_container(opts(["true"]))
        assert "_" in engine.get_container(other).name
        await engine.rename(other, "renamed")
        assert engine.get_container("renamed").id == other
        with pytest.raises(AlreadyExists, match=r'^Error when allocating new name: Conflict\. The container '
                                                 r'name "/web-1" is already in use'):
            await engine.rename(other, "web-1")
        with pytest.raises(InvalidArgument, match=r"^Error when allocating new name: Invalid container "
                                                  r"name \(/bad name\)"):
            await engine.rename(other, "bad name")
        with pytest.raises(NotFound):  # lookup comes before validation, as in dockerd
            await engine.rename("nosuchcontainer", "bad name")
        with pytest.raises(InvalidArgument, match="same name as its current name"):
            await engine.rename(other, "/renamed")
        assert engine.get_container("renamed").id == other  # nothing changed by the refusals

    run_with_engine(tmp_path, runtime, body)


def test_bad_input_leaves_nothing_behind(tmp_path: Path, runtime: str) -> None:
    async def body(engine: Any, base: Path, exec_root: Path, holder: dict[str, Any]) -> None:
        before = {s.key for s in engine.snapshots.walk()}
        cases = [
            (opts(["true"], resources=Resources(memory=1024 * 1024)), InvalidArgument,
             "Minimum memory limit allowed is 6MB"),
            (opts(["true"], resources=Resources(memory=64 << 20, memory_swap=32 << 20)),
             InvalidArgument, "Minimum memoryswap limit should be larger than memory limit"),
            (opts(["true"], resources=Resources(nano_cpus=1000 * 10**9)), InvalidArgument,
             "Range of CPUs is from 0.01 to"),
            (opts(["true"], runtime="nosuchruntime"), InvalidArgument,
             "Unknown runtime specified nosuchruntime"),
            (CreateOptions(config=ContainerConfig(image="nosuchimage:1")), NotFound,
             "No such image: nosuchimage:1"),
            (opts(["true"], cap_add=["NOPE"]), InvalidArgument, "unknown capability"),
        ]
        for options, err, text in cases:
            with pytest.raises(err, match=text):
                await engine.create_container(options)
        assert engine.store.all() == []
        assert {s.key for s in engine.snapshots.walk()} == before
        assert list((base / "data" / "containers").iterdir()) == []

    run_with_engine(tmp_path, runtime, body)


def test_missing_executable_is_127_and_cleans_up(tmp_path: Path, runtime: str) -> None:
    async def body(engine: Any, base: Path, exec_root: Path, holder: dict[str, Any]) -> None:
        cid, _ = await engine.create_container(opts(["nosuchcmd"]))
        with pytest.raises(InvalidArgument, match="executable file not found"):
            await engine.start_container(cid)
        rec = engine.get_container(cid)
        assert rec.state.exit_code == 127 and rec.state.status == "created"
        assert "nosuchcmd" in rec.state.error
        assert not mounted(Path(rec.bundle) / "rootfs")
        assert not (exec_root / "shims" / cid).exists()
        await engine.remove_container(cid)

    run_with_engine(tmp_path, runtime, body)


def test_stop_kill_wait_and_states(tmp_path: Path, runtime: str) -> None:
    async def body(engine: Any, base: Path, exec_root: Path, holder: dict[str, Any]) -> None:
        # sh as pid 1 has no SIGTERM handler: stop falls back to SIGKILL after the timeout
        cid, _ = await engine.create_container(opts(["sleep", "1000"]))
        await engine.start_container(cid)
        with pytest.raises(NotModified):
            await engine.start_container(cid)
        with pytest.raises(Conflict, match="container is running"):
            await engine.remove_container(cid)
        waiter = asyncio.ensure_future(engine.wait_container(cid, "next-exit"))
        await engine.stop_container(cid, timeout=1)
        assert (await asyncio.wait_for(waiter, 10))[0] == 137
        assert engine.get_container(cid).state.exit_code == 137
        with pytest.raises(NotModified):
            await engine.stop_container(cid)
        with pytest.raises(Conflict, match=f"Cannot kill container: {cid}: container {cid} is not running"):
            await engine.kill_container(cid)
        # a trapped TERM exits by itself within the timeout
        trap = "trap 'exit 7' TERM; while true; do sleep 0.1; done"
        cid2, _ = await engine.create_container(opts(["sh", "-c", trap]))
        await engine.start_container(cid2)
        await asyncio.sleep(0.3)
        await engine.stop_container(cid2, timeout=10)
        assert engine.get_container(cid2).state.exit_code == 7
        # restart reuses the container; kill with a signal
        await engine.restart_container(cid2, timeout=1)
        assert engine.get_container(cid2).state.status == "running"
        await engine.kill_container(cid2, "KILL")
        code, _ = await asyncio.wait_for(engine.wait_container(cid2), 10)
        assert code == 137
        await engine.remove_container(cid2)
        await engine.remove_container(cid)
        # removed waiters fire on removal
        cid3, _ = await engine.create_container(opts(["true"]))
        removed = asyncio.ensure_future(engine.wait_container(cid3, "removed"))
        await asyncio.sleep(0)
        await engine.remove_container(cid3)
        await asyncio.wait_for(removed, 5)

    run_with_engine(tmp_path, runtime, body)


def test_remove_cleans_snapshot_mount_cgroup_files(tmp_path: Path, runtime: str) -> None:
    async def body(engine: Any, base: Path, exec_root: Path, holder: dict[str, Any]) -> None:
        cid, _ = await engine.create_container(opts(["sleep", "1000"]))
        await engine.start_container(cid)
        rec = engine.get_container(cid)
        rootfs = Path(rec.bundle) / "rootfs"
        assert mounted(rootfs)
        assert cgroup_dirs("dockyard", cid)
        assert (exec_root / "shims" / cid).is_dir()
        await engine.remove_container(cid, force=True)
        assert not mounted(rootfs)
        assert not Path(rec.bundle).exists()
        assert not engine.snapshots.exists(rec.snapshot_key)
        assert cgroup_dirs("dockyard", cid) == []
        assert not (exec_root / "shims" / cid).exists()
        with pytest.raises(NotFound):
            engine.get_container(cid)

    run_with_engine(tmp_path, runtime, body)


def test_exec(tmp_path: Path, runtime: str) -> None:
    async def body(engine: Any, base: Path, exec_root: Path, holder: dict[str, Any]) -> None:
        cid, _ = await engine.create_container(opts(["sleep", "1000"]))
        with pytest.raises(Conflict, match=f"Container {cid} is not running"):
            await engine.create_exec(cid, ExecConfig(cmd=["true"]))
        await engine.start_container(cid)
        eid = await engine.create_exec(cid, ExecConfig(cmd=["sh", "-c", "echo hi $HOSTNAME; echo e >&2; exit 5"]))
        session = await engine.start_exec(eid, detach=False)
        chunks = []
        while (item := await session.read()) is not None:
            chunks.append(item)
        await session.close()
        out = b"".join(d for s, d in chunks if s == 1).decode()
        err = b"".join(d for s, d in chunks if s == 2).decode()
        assert out == f"hi {cid[:12]}\n" and err == "e\n"
        assert session.exit_code == 5
        info = engine.exec_inspect(eid)
        assert info.exit_code == 5 and not info.running
        # detached: the exit code is still recorded
        eid2 = await engine.create_exec(cid, ExecConfig(cmd=["sh", "-c", "exit 4"]))
        assert await engine.start_exec(eid2, detach=True) is None
        for _ in range(100):
            if engine.exec_inspect(eid2).exit_code is not None:
                break
            await asyncio.sleep(0.05)
        assert engine.exec_inspect(eid2).exit_code == 4

    run_with_engine(tmp_path, runtime, body)


def test_attach_before_start_sees_all_output(tmp_path: Path, runtime: str) -> None:
    async def body(engine: Any, base: Path, exec_root: Path, holder: dict[str, Any]) -> None:
        cid, _ = await engine.create_container(opts(["sh", "-c", "echo one; echo two >&2"]))
        session = await engine.attach(cid, stdin=False, stdout=True, stderr=True)
        await engine.start_container(cid)
        got = []
        while (item := await asyncio.wait_for(session.read(), 10)) is not None:
            got.append(item)
        await session.close()
        assert b"".join(d for s, d in got if s == 1) == b"one\n"
        assert b"".join(d for s, d in got if s == 2) == b"two\n"
        # logs=1 on an exited container replays the log
        replay = await engine.attach(cid, stdin=False, stdout=True, stderr=True, logs=True)
        items = []
        while (item := await replay.read()) is not None:
            items.append(item)
        assert (1, b"one\n") in items and (2, b"two\n") in items

    run_with_engine(tmp_path, runtime, body)


def test_user_workdir_env_and_init(tmp_path: Path, runtime: str) -> None:
    async def body(engine: Any, base: Path, exec_root: Path, holder: dict[str, Any]) -> None:
        options = opts(["sh", "-c", "id; pwd; echo $FOO $PATH"])
        options.config.user = "app"
        options.config.working_dir = "/work/dir"
        options.config.env = ["FOO=bar"]
        _, code, out = await run_to_end(engine, options)
        assert code == 0, out
        lines = out.splitlines()
        assert lines[0].startswith("uid=1000(app) gid=1000(app) groups=") and "2000(extra)" in lines[0]
        assert lines[1] == "/work/dir"
        assert lines[2] == "bar /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        options = opts(["sh", "-c", "id -u; id -g"])
        options.config.user = "4242:2000"
        _, _, out = await run_to_end(engine, options)
        assert out.split() == ["4242", "2000"]
        bad = opts(["true"])
        bad.config.user = "nosuchuser"
        cid, _ = await engine.create_container(bad)
        with pytest.raises(InvalidArgument, match="unable to find user nosuchuser"):
            await engine.start_container(cid)
        assert not mounted(Path(engine.get_container(cid).bundle) / "rootfs")
        if Path("/usr/bin/tini-static").exists():
            _, code, out = await run_to_end(engine, opts(["sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '"],
                                                         init=True))
            assert out.startswith("/sbin/docker-init -- sh"), out

    run_with_engine(tmp_path, runtime, body)


def test_memory_limit_and_oom(tmp_path: Path, runtime: str) -> None:
    async def body(engine: Any, base: Path, exec_root: Path, holder: dict[str, Any]) -> None:
        cid, _ = await engine.create_container(opts(["sleep", "1000"], resources=Resources(memory=32 << 20)))
        await engine.start_container(cid)
        limit = Path(f"/sys/fs/cgroup/memory/dockyard/{cid}/memory.limit_in_bytes")
        unified = Path(f"/sys/fs/cgroup/dockyard/{cid}/memory.max")
        value = limit.read_text() if limit.exists() else unified.read_text()
        assert int(value) == 32 << 20
        await engine.update_container(cid, Resources(memory=64 << 20, memory_swap=128 << 20), None)
        value = limit.read_text() if limit.exists() else unified.read_text()
        assert int(value) == 64 << 20
        assert engine.get_container(cid).host_config.resources.memory == 64 << 20
        await engine.remove_container(cid, force=True)
        hog = opts(["sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"],
                   resources=Resources(memory=16 << 20, memory_swap=16 << 20))
        cid, code, out = await run_to_end(engine, hog, timeout=60)
        rec = engine.get_container(cid)
        assert rec.state.oom_killed, (code, out)
        assert code == 137

    run_with_engine(tmp_path, runtime, body)


def test_pause_top_and_events(tmp_path: Path, runtime: str) -> None:
    async def body(engine: Any, base: Path, exec_root: Path, holder: dict[str, Any]) -> None:
        import time
        since = time.time()
        cid, _ = await engine.create_container(opts(["sleep", "1000"], name="evt"))
        await engine.start_container(cid)
        titles, rows = await engine.top(cid, "")
        assert "PID" in titles and "CMD" in titles
        assert any("sleep 1000" in row[-1] for row in rows)
        await engine.pause(cid)
        assert engine.get_container(cid).state.status == "paused"
        with pytest.raises(Conflict, match="already paused"):
            await engine.pause(cid)
        await engine.unpause(cid)
        assert engine.get_container(cid).state.status == "running"
        await engine.remove_container(cid, force=True)
        seen = []
        async for ev in engine.events(since, time.time() + 0.2, {"container": ["evt"]}):
            seen.append(ev.action)
        for action in ("create", "start", "pause", "unpause", "kill", "die", "destroy"):
            assert action in seen, seen
        assert seen.index("create") < seen.index("start") < seen.index("die") < seen.index("destroy")
        only_die = [ev async for ev in engine.events(since, time.time(), {"event": ["die"]})]
        assert [e.action for e in only_die] == ["die"]
        assert only_die[0].attributes["exitCode"] == "137"
        assert only_die[0].attributes["name"] == "evt"

    run_with_engine(tmp_path, runtime, body)


def test_live_restore(tmp_path: Path, runtime: str) -> None:
    async def body(engine: Any, base: Path, exec_root: Path, holder: dict[str, Any]) -> None:
        from tests.integration.test_engine_fixtures import open_engine
        cid, _ = await engine.create_container(opts(["sh", "-c", "echo up; sleep 1000"]))
        await engine.start_container(cid)
        exited, _ = await engine.create_container(opts(["sh", "-c", "sleep 0.5; exit 9"]))
        await engine.start_container(exited)
        pid = engine.get_container(cid).state.pid
        await engine.close()
        os.kill(pid, 0)  # still running with the engine gone
        await asyncio.sleep(1.0)  # the second one exits while nobody watches
        engine = await open_engine(base, exec_root, runtime)
        holder["engine"] = engine
        assert engine.get_container(cid).state.status == "running"
        rec = engine.get_container(exited)
        assert rec.state.status == "exited" and rec.state.exit_code == 9
        assert not mounted(Path(rec.bundle) / "rootfs")
        eid = await engine.create_exec(cid, ExecConfig(cmd=["echo", "again"]))
        session = await engine.start_exec(eid, detach=False)
        assert await session.read() == (1, b"again\n")
        await engine.stop_container(cid, timeout=1)
        assert engine.get_container(cid).state.status == "exited"

    run_with_engine(tmp_path, runtime, body)


def test_prune_and_list(tmp_path: Path, runtime: str) -> None:
    async def body(engine: Any, base: Path, exec_root: Path, holder: dict[str, Any]) -> None:
        from dockyard.engine.types import ListOptions
        a, _ = await engine.create_container(opts(["sleep", "1000"]))
        await engine.start_container(a)
        b, _ = await engine.create_container(opts(["true"]))
        c = opts(["true"])
        c.config.labels = {"keep": "yes"}
        c_id, _ = await engine.create_container(c)
        assert [r.id for r in await engine.list_containers(ListOptions())] == [a]
        assert {r.id for r in await engine.list_containers(ListOptions(all=True))} == {a, b, c_id}
        assert [r.id for r in await engine.list_containers(
            ListOptions(all=True, filters={"label": ["keep=yes"]}))] == [c_id]
        report = await engine.prune_containers({"label!": ["keep"]})
        assert report.deleted == [b]
        assert {r.id for r in await engine.list_containers(ListOptions(all=True))} == {a, c_id}

    run_with_engine(tmp_path, runtime, body)


def test_images_through_engine(tmp_path: Path, runtime: str) -> None:
    async def body(engine: Any, base: Path, exec_root: Path, holder: dict[str, Any]) -> None:
        import time
        since = time.time()
        images = await engine.list_images()
        assert any("busybox:latest" in i.repo_tags for i in images)
        detail = await engine.inspect_image("busybox")
        await engine.tag_image("busybox", "example.test/bb", "v1")
        assert (await engine.inspect_image("example.test/bb:v1")).summary.id == detail.summary.id
        cid, _ = await engine.create_container(opts(["true"]))
        with pytest.raises(Conflict):
            await engine.remove_image(detail.summary.id)
        items = await engine.remove_image("example.test/bb:v1")
        assert [i.untagged for i in items if i.untagged]
        await engine.remove_container(cid)
        out = base / "saved.tar"
        await engine.save_images(["busybox:latest"], out)
        assert out.stat().st_size > 0
        actions = [e.action async for e in engine.events(since, time.time(), {"type": ["image"]})]
        assert actions[:2] == ["tag", "untag"] and "save" in actions

    run_with_engine(tmp_path, runtime, body)


def test_auto_remove_and_info(tmp_path: Path, runtime: str) -> None:
    async def body(engine: Any, base: Path, exec_root: Path, holder: dict[str, Any]) -> None:
        cid, _ = await engine.create_container(opts(["true"], auto_remove=True))
        removed = asyncio.ensure_future(engine.wait_container(cid, "removed"))
        await asyncio.sleep(0)
        await engine.start_container(cid)
        await asyncio.wait_for(removed, 15)
        with pytest.raises(NotFound):
            engine.get_container(cid)
        info = engine.info()
        assert info["driver"] == "overlay2" and info["ncpu"] >= 1
        assert "runc" in info["runtimes"] and info["containers"] == 0
        assert engine.version()["os"] == "linux"

    run_with_engine(tmp_path, runtime, body)


def test_restart_policy_and_follow_logs(tmp_path: Path, runtime: str) -> None:
    async def body(engine: Any, base: Path, exec_root: Path, holder: dict[str, Any]) -> None:
        from dockyard.engine.types import RestartPolicy
        cid, _ = await engine.create_container(opts(["sh", "-c", "echo run; exit 2"],
                                                    restart_policy=RestartPolicy("on-failure", 2)))
        await engine.start_container(cid)
        for _ in range(100):
            rec = engine.get_container(cid)
            if rec.state.restart_count == 2 and rec.state.status == "exited":
                break
            await asyncio.sleep(0.1)
        rec = engine.get_container(cid)
        assert (rec.state.restart_count, rec.state.status, rec.state.exit_code) == (2, "exited", 2)
        out = b"".join([e.data async for e in engine.logs(cid, LogsOptions())])
        assert out == b"run\nrun\nrun\n"
        # follow ends when the container stops
        cid2, _ = await engine.create_container(opts(["sh", "-c", "echo a; sleep 0.5; echo b"]))
        await engine.start_container(cid2)
        followed = [e.data async for e in engine.logs(cid2, LogsOptions(follow=True))]
        assert followed == [b"a\n", b"b\n"]
        tail = [e.data async for e in engine.logs(cid2, LogsOptions(tail=1))]
        assert tail == [b"b\n"]

    run_with_engine(tmp_path, runtime, body)


def test_open_collects_what_a_crash_left(tmp_path: Path, runtime: str) -> None:
    async def body(engine: Any, base: Path, exec_root: Path, holder: dict[str, Any]) -> None:
        from tests.integration.test_engine_fixtures import open_engine
        # a crash between "snapshot prepared" and "record written" leaves these two behind
        top = engine.images.unpack(engine.images.resolve("busybox"))
        orphan = "f" * 64
        engine.snapshots.prepare(f"container-{orphan}", top)
        (base / "data" / "containers" / orphan / "rootfs").mkdir(parents=True)
        await engine.close()
        engine = await open_engine(base, exec_root, runtime)
        holder["engine"] = engine
        assert not engine.snapshots.exists(f"container-{orphan}")
        assert not (base / "data" / "containers" / orphan).exists()

    run_with_engine(tmp_path, runtime, body)


def test_open_finishes_a_removal_a_crash_cut_short(tmp_path: Path, runtime: str) -> None:
    """rm marks the record "removing", drops the layer, then the record: a crash in between
    must not leave a container whose layer is gone (system check's complaint); the next start
    finishes the removal."""
    async def body(engine: Any, base: Path, exec_root: Path, holder: dict[str, Any]) -> None:
        from dockyard.engine import initlayer
        from tests.integration.test_engine_fixtures import open_engine
        cid, _ = await engine.create_container(opts(["true"]))
        rec = engine.store.get(cid)
        rec.state.status = "removing"
        engine.store.save(rec)
        initlayer.remove(engine.snapshots, rec.snapshot_key)  # ... and here the daemon died
        await engine.close()
        engine = await open_engine(base, exec_root, runtime)
        holder["engine"] = engine
        with pytest.raises(NotFound):
            engine.store.get(cid)
        assert not (base / "data" / "containers" / cid).exists()
        assert [f for f in await engine.system_check(repair=False) if f.kind == "container"] == []

    run_with_engine(tmp_path, runtime, body)


def test_tty_attach_resize_and_stdin(tmp_path: Path, runtime: str) -> None:
    async def body(engine: Any, base: Path, exec_root: Path, holder: dict[str, Any]) -> None:
        options = opts(["sh", "-c", "read line; echo got $line; stty size; echo $TERM"])
        options.config.tty = True
        options.config.open_stdin = True
        options.host_config.console_size = (30, 100)
        cid, _ = await engine.create_container(options)
        session = await engine.attach(cid, stdin=True, stdout=True, stderr=True)
        assert session.tty
        await engine.start_container(cid)
        await engine.resize(cid, 40, 120)
        await session.write(b"abc\n")
        data = b""
        while (item := await asyncio.wait_for(session.read(), 10)) is not None:
            assert item[0] == 1
            data += item[1]
        await session.close()
        text = data.decode().replace("\r", "")
        assert "got abc" in text and "40 120" in text and "xterm" in text, text
        code, _ = await asyncio.wait_for(engine.wait_container(cid), 10)
        assert code == 0

    run_with_engine(tmp_path, runtime, body)


def test_bind_mounts(tmp_path: Path, runtime: str) -> None:
    async def body(engine: Any, base: Path, exec_root: Path, holder: dict[str, Any]) -> None:
        src = base / "shared"
        src.mkdir()
        (src / "in.txt").write_text("from host\n")
        made = base / "made" / "here"
        options = opts(["sh", "-c", "cat /data/in.txt; echo out > /data/out.txt; "
                                    "touch /ro/x 2>/dev/null || echo readonly; ls -d /new"],
                       binds=[f"{src}:/data", f"{src}:/ro:ro", f"{made}:/new"])
        _, _, out = await run_to_end(engine, options)
        assert out.splitlines() == ["from host", "readonly", "/new"], out
        assert (src / "out.txt").read_text() == "out\n"
        assert made.is_dir()
        with pytest.raises(InvalidArgument, match="mount path must be absolute"):
            await engine.create_container(opts(["true"], binds=[f"{src}:data"]))

    run_with_engine(tmp_path, runtime, body)


def test_namespace_modes(tmp_path: Path, runtime: str) -> None:
    async def body(engine: Any, base: Path, exec_root: Path, holder: dict[str, Any]) -> None:
        first, _ = await engine.create_container(opts(["sh", "-c", "readlink /proc/self/ns/net; sleep 1000"],
                                                      name="ns-owner"))
        await engine.start_container(first)
        for _ in range(50):
            owner_ns = b"".join([e.data async for e in engine.logs(first, LogsOptions())]).decode().strip()
            if owner_ns:
                break
            await asyncio.sleep(0.05)
        _, code, out = await run_to_end(engine, opts(
            ["sh", "-c", "hostname; readlink /proc/self/ns/net; pidof sleep"],
            network_mode="container:ns-owner", pid_mode="container:ns-owner"))
        assert code == 0, out
        hostname, netns, pids = out.splitlines()
        assert hostname == first[:12] and netns == owner_ns and pids.strip(), out
        _, _, out = await run_to_end(engine, opts(["sh", "-c", "ls /sys/class/net"], network_mode="none"))
        assert out.split() == ["lo"]
        _, _, out = await run_to_end(engine, opts(["hostname"], network_mode="host"))
        assert out.strip() == os.uname().nodename
        await engine.stop_container(first, timeout=0)
        with pytest.raises(Conflict, match="non running container"):
            cid, _ = await engine.create_container(opts(["true"], network_mode="container:ns-owner"))
            await engine.start_container(cid)
        bad = opts(["true"])
        bad.config.working_dir = "rel"
        with pytest.raises(InvalidArgument, match="needs to be an absolute path"):
            await engine.create_container(bad)

    run_with_engine(tmp_path, runtime, body)


def test_healthcheck(tmp_path: Path, runtime: str) -> None:
    async def body(engine: Any, base: Path, exec_root: Path, holder: dict[str, Any]) -> None:
        from dockyard.engine.types import HealthConfig
        options = opts(["sleep", "1000"])
        options.config.healthcheck = HealthConfig(test=["CMD-SHELL", "test -e /tmp/ok && echo fine"],
                                                  interval_ns=100_000_000, timeout_ns=2 * 10**9, retries=2)
        cid, _ = await engine.create_container(options)
        await engine.start_container(cid)
        assert engine.get_container(cid).state.health.status == "starting"
        for _ in range(100):
            if engine.get_container(cid).state.health.status == "unhealthy":
                break
            await asyncio.sleep(0.05)
        health = engine.get_container(cid).state.health
        assert health.status == "unhealthy" and health.failing_streak >= 2
        eid = await engine.create_exec(cid, ExecConfig(cmd=["touch", "/tmp/ok"]))
        session = await engine.start_exec(eid)
        await session.drain_to_end()
        for _ in range(100):
            if engine.get_container(cid).state.health.status == "healthy":
                break
            await asyncio.sleep(0.05)
        health = engine.get_container(cid).state.health
        assert health.status == "healthy" and health.log[-1]["Output"] == "fine\n"
        assert len(health.log) <= 5

    run_with_engine(tmp_path, runtime, body)
