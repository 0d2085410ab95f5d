"""The shim against a real OCI runtime (runc by default; DOCKYARD_TEST_RUNTIME=/path picks another).

Each test builds a busybox bundle in tmp_path, spawns a detached shim and talks to it through
``dockyard.shim.client``; every shim, container and cgroup is removed in a finally. Every test
runs twice: with a shim process of its own (``dockyard-shim``) and with the shim inside a shim
host (``shim.host``, how the daemon runs them); the last tests put many containers in one host.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dockyard import errors
from dockyard.shim import client as shim_client
from dockyard.shim.jsonlog import read_log

RUNTIME = os.environ.get("DOCKYARD_TEST_RUNTIME", "/usr/sbin/runc")
SHIM = [sys.executable, "-m", "dockyard.shim.main"]
BUSYBOX = "/bin/busybox"
APPLETS = ["sh", "cat", "echo", "head", "tr", "sleep", "dd", "seq", "true", "printf", "stty", "yes",
           "env", "ls", "wc", "tty"]

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not os.path.exists(RUNTIME), reason=f"no runtime at {RUNTIME}"),
    pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="needs busybox-static"),
]


def make_bundle(root: Path, cid: str, args: list[str], tty: bool = False,
                memory: int | None = None) -> Path:
    bundle = root / "bundle"
    rootfs = bundle / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    for d in ("proc", "dev", "sys", "tmp", "etc"):
        (rootfs / d).mkdir()
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    for applet in APPLETS:
        (rootfs / "bin" / applet).symlink_to("busybox")
    resources: dict[str, Any] = {"devices": [{"allow": False, "access": "rwm"}]}
    if memory is not None:
        resources["memory"] = {"limit": memory, "swap": memory}
    config = {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": tty,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {k: ["CAP_KILL", "CAP_AUDIT_WRITE", "CAP_NET_BIND_SERVICE"]
                             for k in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": "shimtest",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        ],
        "linux": {
            "cgroupsPath": f"/{cid}",
            "resources": resources,
            "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount", "network")],
            "maskedPaths": ["/proc/kcore", "/proc/keys"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"],
        },
    }
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


@dataclass
class Env:
    cid: str
    base: Path
    bundle: Path
    state_dir: Path
    runtime_root: Path
    log_path: Path
    hosted: bool = False

    async def spawn(self, host: shim_client.ShimHost | None = None, **kw: Any) -> shim_client.ShimClient:
        own = host is None and self.hosted
        if own:   # a host for this container alone, let go at once: it exits after the delete
            host = shim_client.ShimHost()
        try:
            return await shim_client.spawn(SHIM, self.cid, self.bundle, self.state_dir, RUNTIME,
                                           self.runtime_root, self.log_path, host=host, **kw)
        finally:
            if own:
                assert host is not None and not host.broken
                await host.close()


@pytest.fixture(params=["process", "hosted"])
def make_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    made: list[Env] = []

    def make(args: list[str], tty: bool = False, memory: int | None = None) -> Env:
        cid = f"shimtest-{uuid.uuid4().hex[:12]}"
        base = tmp_path / cid
        base.mkdir()
        env = Env(cid, base, make_bundle(base, cid, args, tty, memory), base / "state",
                  base / "rt", base / "ctr-json.log", hosted=request.param == "hosted")
        made.append(env)
        return env

    yield make
    for env in made:
        pid = shim_client.shim_pid(env.state_dir)
        subprocess.run([RUNTIME, "--root", str(env.runtime_root), "delete", "--force", env.cid],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for ctrl in Path("/sys/fs/cgroup").iterdir():
            cg = ctrl / env.cid
            if cg.is_dir():
                with contextlib.suppress(OSError):
                    cg.rmdir()


async def collect(stream: shim_client.ShimStream) -> dict[int, bytes]:
    out: dict[int, bytes] = {1: b"", 2: b""}
    while (item := await asyncio.wait_for(stream.read(), 20)) is not None:
        out[item[0]] += item[1]
    await stream.close()
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_attach_start_output_framed_and_logged(make_env: Any) -> None:
    env = make_env(["sh", "-c", "echo out1; echo err1 >&2; echo out2"])

    async def go() -> None:
        shim = await env.spawn()
        assert (await shim.state())["status"] == "created"
        att = await shim.attach()
        await shim.start()
        out = await collect(att)
        assert out[1] == b"out1\nout2\n"
        assert out[2] == b"err1\n"
        res = await shim.wait()
        assert res["exit_code"] == 0 and res["oom_killed"] is False
        st = await shim.state()
        assert st["status"] == "stopped" and st["exit_code"] == 0
        exit_rec = shim_client.read_exit(env.state_dir)
        assert exit_rec is not None and exit_rec["exit_code"] == 0
        await shim.delete()
        assert not env.state_dir.exists()

    run(go())
    entries = list(read_log(env.log_path))
    assert sorted((e.stream, e.data) for e in entries) == [
        ("stderr", b"err1\n"), ("stdout", b"out1\n"), ("stdout", b"out2\n")]
    first = json.loads(env.log_path.read_text().splitlines()[0])
    assert set(first) == {"log", "stream", "time"} and first["time"].endswith("Z")


def test_exit_code(make_env: Any) -> None:
    env = make_env(["sh", "-c", "exit 3"])

    async def go() -> None:
        shim = await env.spawn()
        await shim.start()
        assert (await shim.wait())["exit_code"] == 3
        await shim.delete()

    run(go())


def test_logs_without_attach_and_burst_before_exit(make_env: Any) -> None:
    # 20000 lines written as fast as possible, then exit at once: all must reach the log.
    env = make_env(["seq", "1", "20000"])

    async def go() -> None:
        shim = await env.spawn()
        await shim.start()
        assert (await shim.wait())["exit_code"] == 0
        await shim.delete()

    run(go())
    lines = [e.data for e in read_log(env.log_path)]
    assert len(lines) == 20000
    assert lines[0] == b"1\n" and lines[-1] == b"20000\n"


def test_tty_output_raw(make_env: Any) -> None:
    env = make_env(["sh", "-c", "stty size; printf 'a\\nb\\n'; tty"], tty=True)

    async def go() -> dict[int, bytes]:
        shim = await env.spawn(tty=True, console_size=(33, 101))
        att = await shim.attach()
        assert att.tty
        await shim.start()
        out = await collect(att)
        assert (await shim.wait())["exit_code"] == 0
        await shim.delete()
        return out

    out = run(go())
    assert out[2] == b""
    assert out[1] == b"33 101\r\na\r\nb\r\n/dev/pts/0\r\n"
    assert [e.stream for e in read_log(env.log_path)] == ["stdout"] * 4


def test_stdin_echo_and_half_close(make_env: Any) -> None:
    env = make_env(["cat"])

    async def go() -> None:
        shim = await env.spawn(stdin=True)
        att = await shim.attach(stdin=True)
        other = await shim.attach()  # a second client sees the same output
        await shim.start()
        await att.write(b"hello\n")
        assert await asyncio.wait_for(att.read(), 10) == (1, b"hello\n")
        await att.write(b"world\n")
        await att.close_stdin()  # EOF of the container's stdin: cat exits
        rest = await collect(att)
        assert rest[1] == b"world\n"
        assert (await collect(other))[1] == b"hello\nworld\n"
        assert (await shim.wait())["exit_code"] == 0
        await shim.delete()

    run(go())


def test_tty_stdin(make_env: Any) -> None:
    env = make_env(["sh"], tty=True)

    async def go() -> None:
        shim = await env.spawn(tty=True, stdin=True)
        att = await shim.attach(stdin=True)
        await shim.start()
        await att.write(b"echo $((6*7)); exit 5\n")
        out = await collect(att)
        assert b"42\r\n" in out[1]
        assert (await shim.wait())["exit_code"] == 5
        await shim.delete()

    run(go())


def test_exec(make_env: Any) -> None:
    env = make_env(["sleep", "1000"])

    async def go() -> None:
        shim = await env.spawn()
        await shim.start()
        proc = {"args": ["sh", "-c", "echo in-exec; echo e >&2; exit 7"], "env": ["PATH=/bin"],
                "cwd": "/", "user": {"uid": 0, "gid": 0}}
        ex = await shim.exec("e1", proc)
        assert ex.pid > 0
        out = await collect(ex)
        assert out == {1: b"in-exec\n", 2: b"e\n"}
        assert ex.exit_code == 7
        # exec with stdin
        ex2 = await shim.exec("e2", {**proc, "args": ["cat"]}, stdin=True)
        await ex2.write(b"via exec\n")
        await ex2.close_stdin()
        assert (await collect(ex2))[1] == b"via exec\n" and ex2.exit_code == 0
        # exec with a tty
        ex3 = await shim.exec("e3", {**proc, "args": ["sh", "-c", "tty; exit 2"],
                                     "consoleSize": {"height": 10, "width": 20}}, tty=True)
        out3 = await collect(ex3)
        assert out3[1].startswith(b"/dev/pts/") and ex3.exit_code == 2
        with pytest.raises(errors.InvalidArgument):
            await shim.exec("e4", {**proc, "args": ["/no/such/binary"]})
        await shim.kill("KILL")
        assert (await shim.wait())["exit_code"] == 137
        await shim.delete()

    run(go())


def test_kill_and_conflicts(make_env: Any) -> None:
    # pid 1 of a namespace only gets signals it handles: trap TERM
    env = make_env(["sh", "-c", "trap 'exit 42' TERM; while true; do sleep 0.1; done"])

    async def go() -> None:
        shim = await env.spawn()
        await shim.start()
        with pytest.raises(errors.Conflict):
            await shim.start()
        await shim.pause()
        assert (await shim.state())["status"] == "paused"
        await shim.resume()
        st = await shim.state()
        assert st["status"] == "running" and st["pid"] > 0
        await shim.kill("TERM")
        res = await shim.wait()
        assert res["exit_code"] == 42
        with pytest.raises(errors.Conflict):
            await shim.kill("KILL")
        await shim.delete()
        with pytest.raises(errors.Unavailable):
            await shim.state()

    run(go())


def test_bad_bundle_reports_error(make_env: Any) -> None:
    env = make_env(["/no/such/binary"])

    async def go() -> None:
        with pytest.raises(errors.InvalidArgument, match="no/such/binary"):
            await env.spawn()

    run(go())


def test_survives_parent_death(make_env: Any) -> None:
    env = make_env(["sh", "-c", "read x; echo got $x"])
    code = (
        "import asyncio, sys\n"
        "from dockyard.shim import client\n"
        f"asyncio.run(client.spawn({SHIM!r}, {env.cid!r}, {str(env.bundle)!r}, {str(env.state_dir)!r},"
        f" {RUNTIME!r}, {str(env.runtime_root)!r}, {str(env.log_path)!r}, stdin=True))\n"
    )
    # The spawner exits right away (stdout/stderr pipes it gave us close with it).
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr

    async def go() -> None:
        shim = shim_client.ShimClient(env.state_dir)
        att = await shim.attach(stdin=True)
        await shim.start()
        await att.write(b"it\n")
        assert (await collect(att))[1] == b"got it\n"
        assert (await shim.wait())["exit_code"] == 0
        await shim.delete()

    run(go())


def test_log_rotation(make_env: Any) -> None:
    env = make_env(["sh", "-c", "i=0; while [ $i -lt 3000 ]; do echo line-$i; i=$((i+1)); done"])

    async def go() -> None:
        shim = await env.spawn(log_max_size=20000, log_max_file=3)
        await shim.start()
        await shim.wait()
        await shim.delete()

    run(go())
    files = sorted(p.name for p in env.base.iterdir() if p.name.startswith("ctr-json.log"))
    assert files == ["ctr-json.log", "ctr-json.log.1", "ctr-json.log.2"]
    for name in files:
        assert (env.base / name).stat().st_size <= 20000
    lines = [e.data for e in read_log(env.log_path)]
    assert lines[-1] == b"line-2999\n"
    nums = [int(x[5:-1]) for x in lines]
    assert nums == list(range(nums[0], 3000))  # the newest lines, in order, none lost inside
    assert [e.data for e in read_log(env.log_path, tail=3)] == [b"line-2997\n", b"line-2998\n",
                                                                 b"line-2999\n"]


def test_oom_killed(make_env: Any) -> None:
    env = make_env(["sh", "-c", "x=$(head -c 50000000 /dev/zero | tr '\\0' a); echo survived"],
                   memory=8 * 1024 * 1024)

    async def go() -> None:
        shim = await env.spawn()
        await shim.start()
        res = await shim.wait()
        assert res["oom_killed"] is True, res
        assert res["exit_code"] != 0
        await shim.delete()

    run(go())


def test_startup_overhead(make_env: Any) -> None:
    """Not asserted (see DESIGN §6): prints spawn→ready against a bare ``runtime create``."""
    env = make_env(["true"])

    async def go() -> float:
        t0 = time.perf_counter()
        shim = await env.spawn()
        dt = time.perf_counter() - t0
        await shim.delete()
        return dt

    total = run(go())
    env2 = make_env(["true"])
    t0 = time.perf_counter()
    subprocess.run([RUNTIME, "--root", str(env2.runtime_root), "create", "--bundle", str(env2.bundle),
                    env2.cid], check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    bare = time.perf_counter() - t0
    print(f"\nshim spawn→ready {total * 1000:.1f} ms; bare runtime create {bare * 1000:.1f} ms; "
          f"shim overhead {(total - bare) * 1000:.1f} ms")


def test_delete_running_and_long_state_path(make_env: Any) -> None:
    # A state dir longer than sun_path (108 bytes) for both shim.sock and the console socket.
    env = make_env(["sh"], tty=True)
    env.state_dir = env.base / ("s" * 60) / ("t" * 60)

    async def go() -> None:
        shim = await env.spawn(tty=True, stdin=True)
        await shim.start()
        await shim.resize(12, 34)
        ex = await shim.exec("sz", {"args": ["stty", "size"], "env": ["PATH=/bin"], "cwd": "/",
                                    "user": {"uid": 0, "gid": 0},
                                    "consoleSize": {"height": 40, "width": 80}}, tty=True)
        out = await collect(ex)
        assert ex.exit_code == 0 and out[1] == b"40 80\r\n", out  # a pty of its own
        # the exec has its own pty; the init's size is visible through its terminal device
        ex2 = await shim.exec("sz2", {"args": ["sh", "-c", "stty size </proc/1/fd/0"],
                                      "env": ["PATH=/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0}})
        assert (await collect(ex2))[1] == b"12 34\n"
        pid = shim_client.shim_pid(env.state_dir)
        assert pid is not None
        await shim.delete()  # kills the running init
        assert not env.state_dir.exists()
        for _ in range(100):  # the shim exits right after answering
            if not _alive(pid):
                break
            await asyncio.sleep(0.05)
        assert not _alive(pid)
        assert not any((ctrl / env.cid).exists() for ctrl in Path("/sys/fs/cgroup").iterdir())

    run(go())


def _memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in kB."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, value = line.partition(":")
        fields[key] = int(value.split()[0])
    return fields["Rss"], fields["Pss"]


@pytest.mark.parametrize("make_env", ["hosted"], indirect=True)
def test_one_host_many_containers(make_env: Any) -> None:
    """Ten containers in one host: each works on its own, deleting some leaves the others
    untouched, the host's memory grows by kilobytes per container, and it exits after the last
    delete once no daemon can ask for more."""
    envs = [make_env(["sh", "-c", f"echo hello-{i}; read x; echo bye-$x"]) for i in range(10)]

    async def go() -> None:
        host = shim_client.ShimHost()
        first = await envs[0].spawn(host=host, stdin=True)
        pid = shim_client.shim_pid(envs[0].state_dir)
        assert pid is not None
        rss0, pss0 = _memory_kb(pid)
        shims = [first] + [await e.spawn(host=host, stdin=True) for e in envs[1:]]
        assert {shim_client.shim_pid(e.state_dir) for e in envs} == {pid}
        rss1, pss1 = _memory_kb(pid)
        print(f"\nshim host: {rss0} kB RSS / {pss0} kB PSS with 1 container, {rss1} / {pss1} with 10: "
              f"{(rss1 - rss0) / 9:.0f} kB RSS per container")
        atts = [await s.attach(stdin=True) for s in shims]
        for s in shims:
            await s.start()
        for i, s in enumerate(shims):
            if i % 2:
                await s.delete()   # kills it mid-read: the others must not notice
        for i, (s, att) in enumerate(zip(shims, atts, strict=True)):
            if i % 2 == 0:
                await att.write(f"{i}\n".encode())
                out = await collect(att)
                assert out[1] == f"hello-{i}\nbye-{i}\n".encode(), out
                assert (await s.wait())["exit_code"] == 0
        await host.close()          # the daemon goes away: the host keeps serving
        assert _alive(pid)
        for i, s in enumerate(shims):
            if i % 2 == 0:
                assert (await s.state())["status"] == "stopped"
                await s.delete()
        for _ in range(100):
            if not _alive(pid):
                break
            await asyncio.sleep(0.05)
        assert not _alive(pid)

    run(go())
