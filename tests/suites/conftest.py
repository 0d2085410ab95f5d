"""Fixtures for the OCI runtime suite: busybox bundles and a runtime driver that reaps the init.

The init of a created container is re-parented to the nearest child subreaper once ``create``
exits. Instead of making pytest itself a subreaper, each container gets a small *reaper* helper
process (PR_SET_CHILD_SUBREAPER) that runs ``create``, reports the init pid and later its exit
status as JSON lines on its stdout; the test drives ``start``/``kill``/... directly.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.engine.seccomp import default_profile
from dockyard.engine.security import DEFAULT_CAPS, MASKED_PATHS, READONLY_PATHS

CGROUP_PARENT = "dockyard-test"
BUSYBOX = "/bin/busybox"

REAPER = r"""
import ctypes, json, os, signal, subprocess, sys
libc = ctypes.CDLL("libc.so.6", use_errno=True)
libc.prctl(36, 1, 0, 0, 0)              # PR_SET_CHILD_SUBREAPER
libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: never outlive the test
cmd, out, err, pid_file, leak = json.loads(sys.argv[1])
extra = []
if leak:  # an inherited, non-CLOEXEC fd the runtime must not pass into the container
    extra = [os.open(os.devnull, os.O_RDONLY)]
    os.set_inheritable(extra[0], True)
with open(out, "wb") as o, open(err, "wb") as e, open(os.devnull, "rb") as i:
    rc = subprocess.call(cmd, stdin=i, stdout=o, stderr=e, pass_fds=extra)
pid = int(open(pid_file).read()) if rc == 0 else 0
print(json.dumps({"created": rc, "pid": pid}), flush=True)
if rc != 0:
    sys.exit(0)
while True:
    try:
        reaped, status = os.waitpid(-1, 0)
    except ChildProcessError:
        print(json.dumps({"exit": None}), flush=True)
        break
    if reaped == pid:
        code = 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        print(json.dumps({"exit": code}), flush=True)
        break
"""


def default_spec(args: list[str], cid: str) -> dict[str, Any]:
    """The hardened defaults dockyardd gives a container: Docker's capability set, its default
    seccomp profile, masked and read-only paths (no apparmor): every runtime test runs under them."""
    caps = list(DEFAULT_CAPS)
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False, "user": {"uid": 0, "gid": 0}, "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": f"h-{cid[:20]}",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]},
        ],
        "linux": {
            "cgroupsPath": f"/{CGROUP_PARENT}/{cid}",
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")],
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
            "seccomp": default_profile(caps),
        },
    }


def make_rootfs(dest: Path) -> None:
    (dest / "bin").mkdir(parents=True)
    for d in ("proc", "sys", "dev", "etc", "tmp", "root"):
        (dest / d).mkdir()
    shutil.copy2(BUSYBOX, dest / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (dest / "bin" / applet).symlink_to("busybox")
    (dest / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n")
    (dest / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")


class Container:
    """One container driven through a runtime binary; ``cleanup`` always leaves nothing behind."""

    def __init__(self, rt: Runtime, bundle: Path, cid: str) -> None:
        self.rt, self.bundle, self.id = rt, bundle, cid
        self.out = bundle / "stdout"
        self.err = bundle / "stderr"
        self.pid_file = bundle / "init.pid"
        self.reaper: subprocess.Popen[str] | None = None
        self.pid = 0
        self.exit_code: int | None = None

    def create(self, console_socket: str | None = None, leak_fd: bool = False) -> None:
        cmd = [self.rt.binary, "--root", str(self.rt.root), "create", "--bundle", str(self.bundle),
               "--pid-file", str(self.pid_file)]
        if console_socket:
            cmd += ["--console-socket", console_socket]
        cmd.append(self.id)
        self.reaper = subprocess.Popen(
            [sys.executable, "-c", REAPER, json.dumps([cmd, str(self.out), str(self.err), str(self.pid_file), leak_fd])],
            stdout=subprocess.PIPE, text=True)
        assert self.reaper.stdout is not None
        first = json.loads(self.reaper.stdout.readline() or '{"created": -1}')
        assert first["created"] == 0, f"create failed: {self.err.read_text()}"
        self.pid = first["pid"]

    def wait(self, timeout: float = 20) -> int:
        assert self.reaper is not None and self.reaper.stdout is not None
        if self.exit_code is None:
            # the reaper prints one line when the init exits
            line = _readline_timeout(self.reaper, timeout)
            self.exit_code = json.loads(line)["exit"]
            self.reaper.wait(timeout)
        assert self.exit_code is not None
        return self.exit_code

    def state(self) -> dict[str, Any]:
        res = self.rt.run("state", self.id)
        assert res.returncode == 0, res.stderr
        data: dict[str, Any] = json.loads(res.stdout)
        return data

    def status(self) -> str:
        return str(self.state()["status"])

    def output(self) -> str:
        return self.out.read_text()

    def cleanup(self) -> None:
        self.rt.run("delete", "--force", self.id)
        if self.reaper is not None and self.reaper.poll() is None:
            self.reaper.kill()
            self.reaper.wait()


def _readline_timeout(proc: subprocess.Popen[str], timeout: float) -> str:
    import select

    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise TimeoutError("container did not exit in time")
    return proc.stdout.readline()


class Runtime:
    def __init__(self, name: str, binary: str, root: Path, tmp: Path) -> None:
        self.name, self.binary, self.root, self.tmp = name, binary, root, tmp
        self.containers: list[Container] = []

    def run(self, *args: str, timeout: float = 30, capture: bool = True) -> subprocess.CompletedProcess[str]:
        # a detached process inherits stdio: capture=False so we do not wait for its pipes
        out = subprocess.PIPE if capture else subprocess.DEVNULL
        return subprocess.run([self.binary, "--root", str(self.root), *args], stdout=out, stderr=out,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def bundle(self, args: list[str], **patch: Any) -> Container:
        cid = f"dyt-{uuid.uuid4().hex[:12]}"
        bundle = self.tmp / cid
        bundle.mkdir()
        make_rootfs(bundle / "rootfs")
        spec = default_spec(args, cid)
        for key, value in patch.items():
            target = spec["linux"] if key in ("resources", "maskedPaths", "readonlyPaths", "sysctl",
                                              "seccomp") else spec
            if key == "process":
                spec["process"].update(value)
                caps = (value.get("capabilities") or {}).get("bounding")
                if caps is not None and "seccomp" not in patch:  # as the engine: profile follows caps
                    spec["linux"]["seccomp"] = default_profile(caps)
            else:
                target[key] = value
        (bundle / "config.json").write_text(json.dumps(spec, indent=1))
        c = Container(self, bundle, cid)
        self.containers.append(c)
        return c


def cgroup_dirs(cid: str) -> list[Path]:
    base = Path("/sys/fs/cgroup")
    if (base / "cgroup.controllers").exists():
        return [base / CGROUP_PARENT / cid]
    return [d / CGROUP_PARENT / cid for d in base.iterdir() if d.is_dir() and not d.is_symlink()]


def mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if str(path) in line.split()[4]]


RUNTIMES = ["dockyard-runtime", "runc"]


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest, tmp_path: Path, _cgroup_parent_cleanup: None) -> Iterator[Runtime]:
    if os.geteuid() != 0:
        pytest.skip("the runtime suite needs root")
    name = request.param
    binary = str(Path(sys.executable).parent / name) if name == "dockyard-runtime" else shutil.which(name)
    if not binary or not os.path.exists(binary):
        pytest.skip(f"{name} is not installed")
    rt = Runtime(name, binary, tmp_path / "state", tmp_path)
    try:
        yield rt
    finally:
        for c in rt.containers:
            c.cleanup()
        leftovers = [str(d) for c in rt.containers for d in cgroup_dirs(c.id) if d.exists()]
        mounts = mounts_under(tmp_path)
        states = [c.id for c in rt.containers if (rt.root / c.id).exists()]
        for c in rt.containers:  # best effort so one failure does not leak into the next test
            for d in cgroup_dirs(c.id):
                for _ in range(50):
                    try:
                        d.rmdir()
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        time.sleep(0.02)
        assert not leftovers, f"cgroups left behind: {leftovers}"
        assert not mounts, f"mounts left behind: {mounts}"
        assert not states, f"state dirs left behind: {states}"


@pytest.fixture(scope="session")
def _cgroup_parent_cleanup() -> Iterator[None]:
    yield
    base = Path("/sys/fs/cgroup")
    pending = [d for d in [base / CGROUP_PARENT, *(p / CGROUP_PARENT for p in base.iterdir() if p.is_dir())]
               if d.exists()]
    deadline = time.monotonic() + 5
    while pending and time.monotonic() < deadline:  # children may still be going away: retry
        for d in list(pending):
            try:
                d.rmdir()
                pending.remove(d)
            except FileNotFoundError:
                pending.remove(d)
            except OSError:
                pass
        time.sleep(0.05)


def kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture
def userns_runtime(runtime: Runtime) -> Iterator[Runtime]:
    """``runtime`` with its bundles in a fresh directory that every user may search.

    In a user namespace the container's root has no rights over host-owned directories, so (as runc
    requires too) every directory above the rootfs and the bind sources must be searchable by
    "other"; pytest's tmp_path is not. Checks and removes what it made, pass or fail.
    """
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="dyt-userns-", dir="/tmp"))
    base.chmod(0o711)
    runtime.tmp = base
    try:
        yield runtime
    finally:
        for c in runtime.containers:
            c.cleanup()
        mounts = mounts_under(base)
        if not mounts:  # never rmtree through a leftover bind mount
            shutil.rmtree(base, ignore_errors=True)
        assert not mounts, f"mounts left behind: {mounts}"


def read_until_eof(fd: int) -> bytes:
    """Everything a pty master yields until its slave side is gone (EIO) or EOF."""
    out = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return out
        if not chunk:
            return out
        out += chunk
