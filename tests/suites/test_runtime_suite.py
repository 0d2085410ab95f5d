"""OCI runtime conformance suite: dockyard-runtime and runc must both pass every test."""

from __future__ import annotations

import array
import json
import os
import platform
import socket
import time
from pathlib import Path

import pytest

from tests.suites.conftest import Container, Runtime, cgroup_dirs, mounts_under, read_until_eof

pytestmark = pytest.mark.root


def wait_status(c: Container, want: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        status = c.status()
        if status == want:
            return
        time.sleep(0.02)
    raise AssertionError(f"container {c.id} stayed {status!r}, wanted {want!r}")


def run_to_exit(c: Container) -> int:
    c.create()
    res = c.rt.run("start", c.id)
    assert res.returncode == 0, res.stderr
    return c.wait()


def test_isolation(runtime: Runtime) -> None:
    c = runtime.bundle(["sh", "-c", "echo pid=$$; hostname; readlink /proc/self/ns/mnt; "
                        "ls /proc | grep -c '^[0-9]'"])
    assert run_to_exit(c) == 0
    lines = c.output().split()
    assert lines[0] == "pid=1"
    assert lines[1] == f"h-{c.id[:20]}"
    assert lines[2] != os.readlink("/proc/self/ns/mnt")
    assert int(lines[3]) <= 3  # sh, ls, grep: no host process is visible


def test_exit_code_propagated(runtime: Runtime) -> None:
    c = runtime.bundle(["sh", "-c", "exit 42"])
    assert run_to_exit(c) == 42
    assert c.status() == "stopped"


def test_masked_and_readonly_paths(runtime: Runtime) -> None:
    c = runtime.bundle(["sh", "-c", "echo kcore=$(cat /proc/kcore | wc -c); "
                        "echo x > /proc/sys/kernel/domainname && echo sys=rw || echo sys=ro; "
                        "touch /etc/x && echo root=rw || echo root=ro; touch /tmp/x && echo tmp=rw"])
    assert run_to_exit(c) == 0
    out = c.output()
    assert "kcore=0" in out
    assert "sys=ro" in out
    assert "root=ro" in out
    assert "tmp=rw" in out


def test_memory_limit_visible_in_container(runtime: Runtime) -> None:
    limit = 64 * 1024 * 1024
    c = runtime.bundle(["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null "
                        "|| cat /sys/fs/cgroup/memory.max"],
                       resources={"memory": {"limit": limit},
                                  "devices": [{"allow": False, "access": "rwm"}]})
    assert run_to_exit(c) == 0
    assert c.output().strip() == str(limit)


def test_lifecycle_kill_state_delete(runtime: Runtime) -> None:
    c = runtime.bundle(["sleep", "60"])
    c.create()
    st = c.state()
    assert st["status"] == "created"
    assert st["pid"] == c.pid > 0
    assert st["id"] == c.id
    assert Path(st["bundle"]) == c.bundle
    assert runtime.run("start", c.id).returncode == 0
    wait_status(c, "running")
    res = runtime.run("delete", c.id)
    assert res.returncode != 0, "deleting a running container must need --force"
    assert runtime.run("kill", c.id, "KILL").returncode == 0
    assert c.wait() == 137
    wait_status(c, "stopped")
    assert runtime.run("delete", c.id).returncode == 0
    assert runtime.run("state", c.id).returncode != 0
    assert not [d for d in cgroup_dirs(c.id) if d.exists()]
    assert not (runtime.root / c.id).exists()


def test_delete_force_running(runtime: Runtime) -> None:
    c = runtime.bundle(["sleep", "60"])
    c.create()
    assert runtime.run("start", c.id).returncode == 0
    assert runtime.run("delete", "--force", c.id).returncode == 0
    assert c.wait() == 137
    assert runtime.run("state", c.id).returncode != 0
    assert not [d for d in cgroup_dirs(c.id) if d.exists()]
    assert not mounts_under(c.bundle)


def test_exec(runtime: Runtime, tmp_path: Path) -> None:
    c = runtime.bundle(["sleep", "60"])
    c.create()
    assert runtime.run("start", c.id).returncode == 0
    proc = {"terminal": False, "user": {"uid": 65534, "gid": 65534}, "cwd": "/tmp",
            "args": ["sh", "-c", "echo in=$(hostname) $(id -u) $(pwd); ls /proc | grep -c '^[0-9]'; "
                     "ulimit -n; exit 3"],
            "env": ["PATH=/bin"], "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 512}]}
    pfile = tmp_path / f"{c.id}-process.json"
    pfile.write_text(json.dumps(proc))
    res = runtime.run("exec", "--process", str(pfile), c.id)
    assert res.returncode == 3, res.stderr
    words = res.stdout.split()
    assert words[:3] == [f"in=h-{c.id[:20]}", "65534", "/tmp"]
    assert int(words[3]) <= 4  # sleep, sh, ls, grep
    assert words[4] == "512"
    # detached: returns once started, pid file names a process in the container's cgroup
    proc["args"] = ["sleep", "30"]
    pfile.write_text(json.dumps(proc))
    pid_file = tmp_path / f"{c.id}-exec.pid"
    res = runtime.run("exec", "--detach", "--pid-file", str(pid_file), "--process", str(pfile), c.id,
                      capture=False)
    assert res.returncode == 0
    exec_pid = int(pid_file.read_text())
    ps = runtime.run("ps", "--format", "json", c.id)
    assert ps.returncode == 0, ps.stderr
    assert {c.pid, exec_pid} <= set(json.loads(ps.stdout))
    assert runtime.run("kill", "--all", c.id, "KILL").returncode == 0
    assert c.wait() == 137


def _recv_fd(conn: socket.socket) -> int:
    fds = array.array("i")
    _msg, ancdata, _flags, _addr = conn.recvmsg(1024, socket.CMSG_SPACE(fds.itemsize))
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    assert len(fds) == 1
    return fds[0]


def create_with_console(c: Container, sock_path: str) -> int:
    """``create --console-socket``: the pty master the runtime sends back over the socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as srv:
        srv.bind(sock_path)
        srv.listen(1)
        srv.settimeout(20)
        c.create(console_socket=sock_path)
        conn, _ = srv.accept()
        with conn:
            return _recv_fd(conn)


def test_terminal_console_socket(runtime: Runtime, tmp_path: Path) -> None:
    c = runtime.bundle(["sh", "-c", "[ -t 0 ] && [ -t 1 ] && echo isatty; tty; stty size"],
                       process={"terminal": True, "consoleSize": {"height": 30, "width": 99}})
    sock_path = str(tmp_path / f"{c.id[:8]}.sock")
    master = create_with_console(c, sock_path)
    try:
        assert runtime.run("start", c.id).returncode == 0
        assert c.wait() == 0
        out = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO once the slave side is closed
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
    text = out.decode().replace("\r", "")
    assert "isatty" in text
    assert "/dev/pts/0" in text
    assert "30 99" in text


def test_pause_resume(runtime: Runtime) -> None:
    c = runtime.bundle(["sleep", "60"])
    c.create()
    assert runtime.run("start", c.id).returncode == 0
    wait_status(c, "running")
    res = runtime.run("pause", c.id)
    assert res.returncode == 0, res.stderr
    assert c.status() == "paused"
    with open(f"/proc/{c.pid}/stat") as f:
        assert f.read().rsplit(")", 1)[1].split()[0] in ("S", "D")
    res = runtime.run("resume", c.id)
    assert res.returncode == 0, res.stderr
    assert c.status() == "running"
    assert runtime.run("kill", c.id, "KILL").returncode == 0
    assert c.wait() == 137


def test_update_resources(runtime: Runtime, tmp_path: Path) -> None:
    c = runtime.bundle(["sleep", "60"])
    c.create()
    assert runtime.run("start", c.id).returncode == 0
    res_file = tmp_path / f"{c.id}-res.json"
    res_file.write_text(json.dumps({"pids": {"limit": 77}}))
    res = runtime.run("update", "--resources", str(res_file), c.id)
    assert res.returncode == 0, res.stderr
    pids_dirs = [d for d in cgroup_dirs(c.id) if (d / "pids.max").exists()]
    assert pids_dirs and (pids_dirs[0] / "pids.max").read_text().strip() == "77"
    assert runtime.run("kill", c.id, "KILL").returncode == 0
    assert c.wait() == 137


def _block_device() -> tuple[int, int]:
    """(major, minor) of a whole disk on this machine, for block I/O throttles."""
    for name in sorted(os.listdir("/sys/block")):
        if not name.startswith(("loop", "ram", "zram", "dm-", "md")):
            major, minor = (Path("/sys/block") / name / "dev").read_text().split(":")
            return int(major), int(minor)
    pytest.skip("no block device to throttle")


def test_block_io_throttles_and_oom_killer(runtime: Runtime) -> None:
    """linux.resources.blockIO throttles and memory.disableOOMKiller land in the cgroup files,
    the same with the built-in runtime as with runc."""
    major, minor = _block_device()
    dev = f"{major}:{minor}"
    c = runtime.bundle(["sleep", "60"], resources={
        "devices": [{"allow": False, "access": "rwm"}],
        "memory": {"limit": 64 << 20, "disableOOMKiller": True},
        "blockIO": {"throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}],
                    "throttleWriteBpsDevice": [{"major": major, "minor": minor, "rate": 2097152}],
                    "throttleReadIOPSDevice": [{"major": major, "minor": minor, "rate": 300}],
                    "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 400}]}})
    c.create()
    dirs = cgroup_dirs(c.id)
    v2 = [d for d in dirs if (d / "io.max").exists()]
    if v2:
        line = next(x for x in (v2[0] / "io.max").read_text().splitlines() if x.startswith(dev + " "))
        assert dict(f.split("=") for f in line.split()[1:]) == {
            "rbps": "1048576", "wbps": "2097152", "riops": "300", "wiops": "400"}
    else:
        blkio = next(d for d in dirs if (d / "blkio.throttle.read_bps_device").exists())
        for name, rate in (("read_bps", 1048576), ("write_bps", 2097152), ("read_iops", 300), ("write_iops", 400)):
            assert (blkio / f"blkio.throttle.{name}_device").read_text().split() == [dev, str(rate)], name
        memory = next(d for d in dirs if (d / "memory.oom_control").exists())
        assert "oom_kill_disable 1" in (memory / "memory.oom_control").read_text()
    assert runtime.run("kill", c.id, "KILL").returncode == 0
    assert c.wait() == 137


def test_start_of_missing_container_fails(runtime: Runtime) -> None:
    res = runtime.run("start", "dyt-does-not-exist")
    assert res.returncode != 0
    assert res.stderr


def _cap_mask(names: list[str]) -> int:
    from dockyard.runtime.linux.capabilities import CAP_NAMES

    mask = 0
    for name in names:
        mask |= 1 << CAP_NAMES.index(name)
    return mask


def test_process_attributes(runtime: Runtime) -> None:
    c = runtime.bundle(["sh", "-c", "grep -E '^(CapBnd|CapEff|NoNewPrivs)' /proc/self/status; "
                        "echo nofile=$(ulimit -n); echo fwd=$(cat /proc/sys/net/ipv4/ip_forward); "
                        "echo zero=$(head -c 4 /dev/zero | wc -c); echo ptmx=$(readlink /dev/ptmx); "
                        "[ -e /dev/fd/0 ] && echo fd=ok; [ -c /dev/urandom ] && echo urandom=ok; "
                        "[ -d /dev/shm ] && echo shm=ok; echo cwd=$(pwd) home=$HOME"],
                       sysctl={"net.ipv4.ip_forward": "1"}, process={"cwd": "/tmp"})
    assert run_to_exit(c) == 0
    out = dict(line.replace(":\t", "=").split("=", 1) for line in c.output().splitlines())
    spec = json.loads((c.bundle / "config.json").read_text())
    expected = _cap_mask(spec["process"]["capabilities"]["bounding"])
    assert int(out["CapBnd"], 16) == expected
    assert int(out["CapEff"], 16) == expected
    assert out["NoNewPrivs"] == "1"
    assert out["nofile"] == "1024"
    assert out["fwd"] == "1"
    assert out["zero"] == "4"
    assert out["ptmx"] == "pts/ptmx"
    assert out["fd"] == out["urandom"] == out["shm"] == "ok"
    assert out["cwd"] == "/tmp home=/root"


def test_new_network_namespace_has_loopback_up(runtime: Runtime) -> None:
    c = runtime.bundle(["sh", "-c", "ip addr show lo; ping -c 1 -W 1 127.0.0.1 >/dev/null && echo ping=ok"])
    assert run_to_exit(c) == 0
    out = c.output()
    assert "UP" in out.splitlines()[0] and "inet 127.0.0.1/8" in out and "ping=ok" in out


def test_relative_executable_is_found_from_cwd(runtime: Runtime) -> None:
    """``./prog`` names a file in process.cwd (``docker run img ./serve.sh`` with a WORKDIR)."""
    c = runtime.bundle(["./busybox", "echo", "from-cwd"], process={"cwd": "/bin"})
    assert run_to_exit(c) == 0
    assert c.output().strip() == "from-cwd"


def test_create_fails_cleanly_for_missing_executable(runtime: Runtime) -> None:
    c = runtime.bundle(["/bin/does-not-exist"])
    res = runtime.run("create", "--bundle", str(c.bundle), "--pid-file", str(c.pid_file), c.id)
    assert res.returncode != 0
    assert "does-not-exist" in res.stderr
    assert runtime.run("state", c.id).returncode != 0
    assert not [d for d in cgroup_dirs(c.id) if d.exists()]


def test_exec_with_terminal(runtime: Runtime, tmp_path: Path) -> None:
    c = runtime.bundle(["sleep", "60"])
    c.create()
    assert runtime.run("start", c.id).returncode == 0
    proc = {"terminal": True, "consoleSize": {"height": 12, "width": 34}, "user": {"uid": 0, "gid": 0},
            "cwd": "/", "args": ["sh", "-c", "[ -t 1 ] && echo exec-tty; stty size"], "env": ["PATH=/bin"]}
    pfile = tmp_path / f"{c.id}-tty.json"
    pfile.write_text(json.dumps(proc))
    sock_path = str(tmp_path / f"{c.id[:8]}-exec.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as srv:
        srv.bind(sock_path)
        srv.listen(1)
        srv.settimeout(20)
        pid_file = tmp_path / f"{c.id}-exec.pid"
        res = runtime.run("exec", "--detach", "--console-socket", sock_path, "--pid-file", str(pid_file),
                          "--process", str(pfile), c.id, capture=False)
        assert res.returncode == 0
        conn, _ = srv.accept()
        with conn:
            master = _recv_fd(conn)
    out = b""
    try:
        out += read_until_eof(master)
    finally:
        os.close(master)
    text = out.decode().replace("\r", "")
    assert "exec-tty" in text
    assert "12 34" in text
    assert runtime.run("kill", c.id, "KILL").returncode == 0
    assert c.wait() == 137


@pytest.mark.skipif(not Path("/sys/fs/cgroup/unified/cgroup.procs").exists()
                    and not Path("/sys/fs/cgroup/cgroup.controllers").exists(), reason="no cgroup2 mount")
def test_builtin_cgroup_v2_lifecycle() -> None:
    """dockyard-runtime's v2 code path, on the v2 mount at hand (a hybrid host's unified tree).

    Not runtime-parametrized: it exercises the built-in implementation of create/join/freeze/destroy
    on cgroup2, which this host's runtimes would otherwise only use in v1 mode.
    """
    import signal
    import subprocess
    import uuid

    from dockyard.errors import FailedPrecondition
    from dockyard.runtime.linux.cgroups import Cgroup

    if os.geteuid() != 0:
        pytest.skip("needs root")
    root = "/sys/fs/cgroup" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "/sys/fs/cgroup/unified"
    cg = Cgroup(f"/dockyard-test/v2-{uuid.uuid4().hex[:10]}", mount_root=root, v2=True)
    proc = subprocess.Popen(["sleep", "30"])
    try:
        cg.create()
        cg.join(proc.pid)
        assert cg.procs() == [proc.pid]
        cg.freeze(True)
        assert cg.frozen()
        cg.freeze(False)
        assert not cg.frozen()
        pids_max = Path(cg.dirs()[""]) / "pids.max"
        if pids_max.exists():
            cg.set({"pids": {"limit": 10}})
            assert pids_max.read_text().strip() == "10"
        else:  # hybrid host: no controllers on the v2 tree, a precise error instead of a silent no-op
            with pytest.raises(FailedPrecondition, match="pids controller is not enabled"):
                cg.set({"pids": {"limit": 10}})
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 5
        while cg.procs() and time.monotonic() < deadline:
            time.sleep(0.01)
        cg.destroy()
        try:
            os.rmdir(f"{root}/dockyard-test")
        except OSError:
            pass
    assert not os.path.exists(cg.dirs()[""])


def test_hooks(runtime: Runtime, tmp_path: Path) -> None:
    out = tmp_path / "hooks"
    out.mkdir()

    def host_hook(name: str) -> dict[str, object]:
        return {"path": "/bin/sh", "args": ["sh", "-c", f"cat > {out}/{name}.json"], "timeout": 10}

    hooks = {kind: [host_hook(kind)] for kind in ("prestart", "createRuntime", "createContainer",
                                                    "poststart", "poststop")}
    # startContainer runs inside the container's filesystem: its output lands in the container's /tmp
    hooks["startContainer"] = [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /tmp/start.json"]}]
    c = runtime.bundle(["sh", "-c", "cat /tmp/start.json"], hooks=hooks)
    c.create()
    for kind in ("prestart", "createRuntime", "createContainer"):
        doc = json.loads((out / f"{kind}.json").read_text())
        assert doc["id"] == c.id, kind
        assert doc["pid"] > 0, kind
    assert runtime.run("start", c.id).returncode == 0
    assert c.wait() == 0
    assert json.loads(c.output())["id"] == c.id
    assert json.loads((out / "poststart.json").read_text())["id"] == c.id
    assert runtime.run("delete", c.id).returncode == 0
    assert json.loads((out / "poststop.json").read_text())["id"] == c.id


def test_failing_prestart_hook_fails_create(runtime: Runtime) -> None:
    c = runtime.bundle(["true"], hooks={"prestart": [{"path": "/bin/false"}]})
    res = runtime.run("create", "--bundle", str(c.bundle), "--pid-file", str(c.pid_file), c.id)
    assert res.returncode != 0
    assert runtime.run("state", c.id).returncode != 0
    assert not [d for d in cgroup_dirs(c.id) if d.exists()]


def test_no_fd_leaks_into_container(runtime: Runtime) -> None:
    c = runtime.bundle(["sh", "-c", "ls /proc/self/fd | tr '\\n' ' '"])
    c.create(leak_fd=True)
    assert runtime.run("start", c.id).returncode == 0
    assert c.wait() == 0
    assert c.output().split() == ["0", "1", "2", "3"]  # 3: the directory ls is reading


def test_delete_force_paused(runtime: Runtime) -> None:
    c = runtime.bundle(["sleep", "60"])
    c.create()
    assert runtime.run("start", c.id).returncode == 0
    assert runtime.run("pause", c.id).returncode == 0
    assert runtime.run("delete", c.id).returncode != 0  # paused counts as live
    res = runtime.run("delete", "--force", c.id)
    assert res.returncode == 0, res.stderr
    assert c.wait() == 137
    assert not [d for d in cgroup_dirs(c.id) if d.exists()]


def test_join_namespaces_by_path(runtime: Runtime) -> None:
    a = runtime.bundle(["sleep", "60"])
    a.create()
    assert runtime.run("start", a.id).returncode == 0
    joined = [{"type": "network", "path": f"/proc/{a.pid}/ns/net"},
              {"type": "uts", "path": f"/proc/{a.pid}/ns/uts"},
              {"type": "ipc", "path": f"/proc/{a.pid}/ns/ipc"},
              {"type": "pid"}, {"type": "mount"}]
    spec_b = {"namespaces": joined}
    b = runtime.bundle(["sh", "-c", "hostname; readlink /proc/self/ns/net; readlink /proc/self/ns/ipc; echo $$"],
                       hostname=None)
    cfg = json.loads((b.bundle / "config.json").read_text())
    cfg["linux"].update(spec_b)
    (b.bundle / "config.json").write_text(json.dumps(cfg))
    assert run_to_exit(b) == 0
    lines = b.output().split()
    assert lines[0] == f"h-{a.id[:20]}"
    assert lines[1] == os.readlink(f"/proc/{a.pid}/ns/net")
    assert lines[2] == os.readlink(f"/proc/{a.pid}/ns/ipc")
    assert lines[3] == "1"
    assert runtime.run("kill", a.id, "KILL").returncode == 0
    assert a.wait() == 137


SECCOMP = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
        {"names": ["chmod", "fchmodat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
        {"names": ["no_such_syscall_xyz"], "action": "SCMP_ACT_ERRNO"},
        # argument conditions: only kill(_, SIGCONT) is refused
        {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
         "args": [{"index": 1, "value": 18, "op": "SCMP_CMP_EQ"}]},
    ],
}


def test_seccomp(runtime: Runtime, tmp_path: Path) -> None:
    if platform.machine() != "x86_64":
        pytest.skip("the profile lists x86 architectures")
    c = runtime.bundle(["sh", "-c", "mkdir /tmp/d; touch /tmp/f; chmod 600 /tmp/f; kill -CONT $$ || echo cont=denied; "
                        "kill -0 $$ && echo zero=ok; grep Seccomp: /proc/self/status; sleep 60"],
                       seccomp=SECCOMP)
    c.create()
    assert runtime.run("start", c.id).returncode == 0
    deadline = time.monotonic() + 10
    while "Seccomp" not in c.output() and time.monotonic() < deadline:
        time.sleep(0.02)
    out = c.output() + c.err.read_text()
    assert "Operation not permitted" in out  # mkdir
    assert "Permission denied" in out  # chmod
    assert "cont=denied" in out
    assert "zero=ok" in out
    assert "Seccomp:\t2" in out
    pfile = tmp_path / f"{c.id}-p.json"
    pfile.write_text(json.dumps({"args": ["mkdir", "/tmp/e"], "cwd": "/", "env": ["PATH=/bin"],
                                 "user": {"uid": 0, "gid": 0}}))
    res = runtime.run("exec", "--process", str(pfile), c.id)
    assert res.returncode != 0
    assert "Operation not permitted" in res.stderr
    assert runtime.run("kill", c.id, "KILL").returncode == 0
    assert c.wait() == 137
