"""User namespaces (``{"type": "user"}`` + ``linux.uidMappings/gidMappings``): dockyard-runtime and
runc must both pass every test that is not marked as a dockyard-runtime extension.

Each test maps container ids 0..65535 to a random, unused 65536-id block of host ids. The test
rootfs belongs to host root, unmapped inside (it shows as nobody); busybox is world readable and
executable, so it still runs.
"""

from __future__ import annotations

import json
import os
import platform
import random
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.suites.conftest import Container, Runtime, cgroup_dirs, mounts_under, read_until_eof
from tests.suites.test_runtime_suite import SECCOMP, _cap_mask, create_with_console, run_to_exit, wait_status

pytestmark = pytest.mark.root

SIZE = 65536
CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_SETUID", "CAP_SETGID", "CAP_KILL"]


def host_base() -> int:
    """A host id block no user or other test holds (well above the 100000+ subordinate ranges)."""
    return 200000 + random.randrange(1, 30000) * SIZE


def id_maps(host: int, size: int = SIZE, gid_size: int | None = None) -> dict[str, Any]:
    return {"uidMappings": [{"containerID": 0, "hostID": host, "size": size}],
            "gidMappings": [{"containerID": 0, "hostID": host, "size": gid_size or size}]}


def userns_bundle(rt: Runtime, args: list[str], maps: dict[str, Any] | None,
                  user_ns: dict[str, str] | None = None, drop: tuple[str, ...] = (),
                  mounts: list[dict[str, Any]] | None = None, **patch: Any) -> Container:
    """A default bundle plus a user namespace (``user_ns``, new by default) and ``maps``."""
    c = rt.bundle(args, **patch)
    cfg = json.loads((c.bundle / "config.json").read_text())
    linux = cfg["linux"]
    linux["namespaces"] = [n for n in linux["namespaces"] if n["type"] not in drop]
    linux["namespaces"].append(user_ns or {"type": "user"})
    linux.update(maps or {})
    cfg["mounts"] += mounts or []
    (c.bundle / "config.json").write_text(json.dumps(cfg, indent=1))
    return c


def status_ids(pid: int) -> tuple[list[int], list[int]]:
    """Real/effective/saved/fs uids and gids of ``pid`` as the host sees them."""
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return [int(x) for x in fields["Uid"].split()], [int(x) for x in fields["Gid"].split()]


def assert_refused(rt: Runtime, c: Container) -> str:
    """``create`` fails and leaves no state, cgroup or mount; returns its stderr."""
    res = rt.run("create", "--bundle", str(c.bundle), "--pid-file", str(c.pid_file), c.id)
    assert res.returncode != 0
    assert rt.run("state", c.id).returncode != 0
    deadline = time.monotonic() + 5  # runc retries removing a busy cgroup in the background
    while [d for d in cgroup_dirs(c.id) if d.exists()] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [d for d in cgroup_dirs(c.id) if d.exists()]
    assert not mounts_under(c.bundle)
    return res.stderr


def dockyard_only(rt: Runtime, why: str) -> None:
    if rt.name != "dockyard-runtime":
        pytest.skip(f"dockyard-runtime extension ({why})")


def test_userns_root_is_the_mapped_host_id(userns_runtime: Runtime) -> None:
    host = host_base()
    shared = userns_runtime.tmp / f"shared-{host}"
    shared.mkdir()
    os.chown(shared, host, host)  # the container's root owns it: it may write there
    c = userns_bundle(userns_runtime,
                      ["sh", "-c", "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; "
                       "stat -c %u:%g /bin/busybox; touch /shared/made; mkdir /shared/dir; "
                       "chown 1000:1000 /shared/dir && echo chown=ok"],
                      id_maps(host), mounts=[{"destination": "/shared", "type": "bind",
                                              "source": str(shared), "options": ["rbind", "rw"]}])
    (c.bundle / "rootfs" / "shared").mkdir()
    assert run_to_exit(c) == 0, c.err.read_text()
    lines = c.output().splitlines()
    assert lines[:2] == ["0", "0"]
    assert lines[2].split() == lines[3].split() == ["0", str(host), str(SIZE)]
    assert lines[4] == "65534:65534"  # host root is unmapped inside: the overflow ids
    assert lines[5] == "chown=ok"
    made = (shared / "made").stat()
    assert (made.st_uid, made.st_gid) == (host, host)
    d = (shared / "dir").stat()
    assert (d.st_uid, d.st_gid) == (host + 1000, host + 1000)


@pytest.mark.parametrize("uid", [0, 1000])
def test_userns_process_runs_as_mapped_host_ids(userns_runtime: Runtime, uid: int) -> None:
    host = host_base()
    c = userns_bundle(userns_runtime, ["sleep", "60"], id_maps(host),
                      process={"user": {"uid": uid, "gid": uid, "additionalGids": [uid + 1]}})
    c.create()
    assert userns_runtime.run("start", c.id).returncode == 0
    wait_status(c, "running")
    uids, gids = status_ids(c.pid)
    assert uids == [host + uid] * 4
    assert gids == [host + uid] * 4
    with open(f"/proc/{c.pid}/status") as f:
        groups = next(line for line in f if line.startswith("Groups:")).split()[1:]
    assert groups == [str(host + uid + 1)]
    assert os.readlink(f"/proc/{c.pid}/ns/user") != os.readlink("/proc/self/ns/user")
    assert userns_runtime.run("kill", c.id, "KILL").returncode == 0
    assert c.wait() == 137


def test_userns_mounts_hostname_and_limits(userns_runtime: Runtime) -> None:
    """The default spec's proc, sysfs, devpts, mqueue, tmpfs, cgroup, masked/readonly paths, sysctl,
    devices and read-only root, all set up by the container's root in its user namespace."""
    limit = 48 * 1024 * 1024
    script = ("echo host=$(hostname); echo pid=$$; echo procs=$(ls /proc | grep -c '^[0-9]'); "
              "echo net=$(ls /sys/class/net); echo mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes); "
              "echo fwd=$(cat /proc/sys/net/ipv4/ip_forward); echo kcore=$(cat /proc/kcore | wc -c); "
              "echo x > /proc/sys/kernel/domainname && echo sys=rw || echo sys=ro; "
              "touch /etc/x && echo root=rw || echo root=ro; touch /tmp/x && echo tmp=rw; "
              "echo zero=$(head -c 4 /dev/zero | wc -c); echo null >/dev/null && echo null=ok; "
              "echo devpts=$(grep ' /dev/pts ' /proc/mounts | grep -o 'gid=[0-9]*'); "
              "echo mqueue=$(grep -c ' /dev/mqueue mqueue ' /proc/mounts); "
              "mount -t tmpfs none /tmp && echo mount=ok")
    caps = {k: ["CAP_SYS_ADMIN"] for k in ("bounding", "effective", "permitted")}
    host = host_base()
    c = userns_bundle(userns_runtime, ["sh", "-c", script], id_maps(host),
                      sysctl={"net.ipv4.ip_forward": "1"}, process={"capabilities": caps},
                      resources={"memory": {"limit": limit}, "devices": [{"allow": False, "access": "rwm"}]})
    assert run_to_exit(c) == 0, c.err.read_text()
    out = dict(line.split("=", 1) for line in c.output().splitlines())
    assert int(out.pop("procs")) <= 4  # sh, a subshell, ls, grep: no host process
    assert out == {"host": f"h-{c.id[:20]}", "pid": "1",
                   "net": "lo",  # sysfs of the container's own network namespace
                   "mem": str(limit), "fwd": "1", "kcore": "0", "sys": "ro", "root": "ro", "tmp": "rw",
                   "zero": "4", "null": "ok",
                   "devpts": f"gid={host + 5}",  # gid=5 inside; the kernel shows host ids
                   "mqueue": "1",
                   "mount": "ok"}  # CAP_SYS_ADMIN of its user namespace is real there


def test_userns_exec_joins_the_user_namespace(userns_runtime: Runtime) -> None:
    host = host_base()
    c = userns_bundle(userns_runtime, ["sleep", "60"], id_maps(host))
    c.create()
    assert userns_runtime.run("start", c.id).returncode == 0
    caps = {k: CAPS for k in ("bounding", "effective", "permitted")}
    proc = {"terminal": False, "user": {"uid": 0, "gid": 0}, "cwd": "/", "env": ["PATH=/bin"],
            "capabilities": caps,
            "args": ["sh", "-c", "id -u; readlink /proc/self/ns/user; cat /proc/self/uid_map; "
                     "grep CapEff /proc/self/status; hostname"]}
    pfile = userns_runtime.tmp / f"{c.id}-p.json"
    pfile.write_text(json.dumps(proc))
    res = userns_runtime.run("exec", "--process", str(pfile), c.id)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "0"
    assert lines[1] == os.readlink(f"/proc/{c.pid}/ns/user")
    assert lines[2].split() == ["0", str(host), str(SIZE)]
    assert int(lines[3].split()[1], 16) == _cap_mask(CAPS)
    assert lines[4] == f"h-{c.id[:20]}"
    # a non-root exec process: host-side ids are the mapped ones
    proc.update(user={"uid": 1000, "gid": 1000}, args=["sleep", "30"])
    pfile.write_text(json.dumps(proc))
    pid_file = userns_runtime.tmp / f"{c.id}-exec.pid"
    res = userns_runtime.run("exec", "--detach", "--pid-file", str(pid_file), "--process", str(pfile), c.id,
                             capture=False)
    assert res.returncode == 0
    exec_pid = int(pid_file.read_text())
    assert status_ids(exec_pid) == ([host + 1000] * 4, [host + 1000] * 4)
    assert os.readlink(f"/proc/{exec_pid}/ns/user") == os.readlink(f"/proc/{c.pid}/ns/user")
    # an id outside the mapping cannot be switched to
    proc.update(user={"uid": SIZE + 5, "gid": 0}, args=["true"])
    pfile.write_text(json.dumps(proc))
    res = userns_runtime.run("exec", "--process", str(pfile), c.id)
    assert res.returncode != 0
    if userns_runtime.name == "dockyard-runtime":
        assert "not mapped" in res.stderr, res.stderr
    assert userns_runtime.run("kill", "--all", c.id, "KILL").returncode == 0
    assert c.wait() == 137


def test_userns_terminal(userns_runtime: Runtime) -> None:
    c = userns_bundle(userns_runtime, ["sh", "-c", "tty; stat -c %u /dev/pts/0; stty size"], id_maps(host_base()),
                      process={"terminal": True, "consoleSize": {"height": 21, "width": 43}})
    sock_path = str(userns_runtime.tmp / f"{c.id[:8]}.sock")
    master = create_with_console(c, sock_path)
    out = b""
    try:
        assert userns_runtime.run("start", c.id).returncode == 0
        assert c.wait() == 0
        out += read_until_eof(master)
    finally:
        os.close(master)
    assert out.decode().replace("\r", "").split() == ["/dev/pts/0", "0", "21", "43"]


def test_userns_hooks(userns_runtime: Runtime) -> None:
    """createRuntime runs on the host once the namespaces exist (after the id maps are written),
    createContainer as the container's root in its namespaces."""
    out = userns_runtime.tmp / "hooks"
    out.mkdir(mode=0o777)
    out.chmod(0o777)
    hooks = {kind: [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > {out}/{kind}.json; id -u > {out}/{kind}.uid"]}]
             for kind in ("prestart", "createRuntime", "createContainer")}
    host = host_base()
    c = userns_bundle(userns_runtime, ["true"], id_maps(host), hooks=hooks)
    c.create()
    for kind in hooks:  # createContainer: both runtimes give the pid as the container sees it
        assert json.loads((out / f"{kind}.json").read_text())["pid"] in (c.pid, 1), kind
    assert (out / "createRuntime.uid").read_text().strip() == "0"
    assert (out / "createContainer.uid").read_text().strip() == "0"
    assert (out / "createContainer.json").stat().st_uid == host  # written by the container's root
    assert (out / "createRuntime.json").stat().st_uid == 0
    assert userns_runtime.run("start", c.id).returncode == 0
    assert c.wait() == 0


def test_userns_seccomp(userns_runtime: Runtime) -> None:
    if platform.machine() != "x86_64":
        pytest.skip("the profile lists x86 architectures")
    c = userns_bundle(userns_runtime, ["sh", "-c", "mkdir /tmp/d || echo denied; grep Seccomp: /proc/self/status"],
                      id_maps(host_base()), seccomp=SECCOMP)
    assert run_to_exit(c) == 0
    assert "denied" in c.output() and "Seccomp:\t2" in c.output()


def _join_spec(a: Container) -> dict[str, str]:
    return {"type": "user", "path": f"/proc/{a.pid}/ns/user"}


def test_userns_join_by_path(userns_runtime: Runtime) -> None:
    """runc 1.1 wants the joined namespace's mappings repeated in the spec; both accept that."""
    host = host_base()
    a = userns_bundle(userns_runtime, ["sleep", "60"], id_maps(host))
    a.create()
    assert userns_runtime.run("start", a.id).returncode == 0
    b = userns_bundle(userns_runtime, ["sh", "-c", "id -u; readlink /proc/self/ns/user; cat /proc/self/uid_map; "
                                       "hostname; ls /proc | grep -c '^[0-9]'"],
                      id_maps(host), user_ns=_join_spec(a))
    assert run_to_exit(b) == 0, b.err.read_text()
    lines = b.output().splitlines()
    assert lines[0] == "0"
    assert lines[1] == os.readlink(f"/proc/{a.pid}/ns/user")
    assert lines[2].split() == ["0", str(host), str(SIZE)]
    assert lines[3] == f"h-{b.id[:20]}"  # its own uts namespace, owned by the joined userns
    assert int(lines[4]) <= 3
    assert userns_runtime.run("kill", a.id, "KILL").returncode == 0
    assert a.wait() == 137


def test_userns_join_by_path_mappings_optional_and_checked(userns_runtime: Runtime) -> None:
    dockyard_only(userns_runtime, "runc 1.1 requires the mappings and does not compare them")
    host = host_base()
    a = userns_bundle(userns_runtime, ["sleep", "60"], id_maps(host))
    a.create()
    assert userns_runtime.run("start", a.id).returncode == 0
    b = userns_bundle(userns_runtime, ["cat", "/proc/self/uid_map"], None, user_ns=_join_spec(a))
    assert run_to_exit(b) == 0, b.err.read_text()
    assert b.output().split() == ["0", str(host), str(SIZE)]
    other = userns_bundle(userns_runtime, ["true"], id_maps(host + SIZE), user_ns=_join_spec(a))
    assert "do not match the mappings" in assert_refused(userns_runtime, other)
    assert userns_runtime.run("kill", a.id, "KILL").returncode == 0
    assert a.wait() == 137


def _one(cid: int, hid: int, size: int) -> dict[str, int]:
    return {"containerID": cid, "hostID": hid, "size": size}


# case -> (mappings from the test's host id block h, a word of dockyard-runtime's error)
BAD_MAPS: dict[str, tuple[Callable[[int], dict[str, Any]], str]] = {
    "no-uid-mappings": (lambda h: {"gidMappings": [_one(0, h, SIZE)]}, "uidMappings"),
    "no-gid-mappings": (lambda h: {"uidMappings": [_one(0, h, SIZE)]}, "gidMappings"),
    "size-zero": (lambda h: {**id_maps(h), "uidMappings": [_one(0, h, 0)]}, "size"),
    "overlap": (lambda h: {**id_maps(h), "uidMappings": [_one(0, h, 10), _one(5, h + 100, 10)]}, "overlap"),
    "beyond-max-id": (lambda h: {**id_maps(h), "uidMappings": [_one(0, (1 << 32) - 10, SIZE)]}, "beyond"),
    "root-unmapped": (lambda h: {"uidMappings": [_one(1, h, 10)], "gidMappings": [_one(1, h, 10)]},
                      "container id 0"),
}


@pytest.mark.parametrize("case", list(BAD_MAPS))
def test_userns_bad_mappings_refused(userns_runtime: Runtime, case: str) -> None:
    maps, word = BAD_MAPS[case]
    c = userns_bundle(userns_runtime, ["true"], maps(host_base()))
    err = assert_refused(userns_runtime, c)
    if userns_runtime.name == "dockyard-runtime":
        assert word in err, err


@pytest.mark.parametrize("case", ["maps-without-userns", "uid-outside-mapping", "gid-outside-mapping"])
def test_userns_inconsistent_spec_refused(userns_runtime: Runtime, case: str) -> None:
    dockyard_only(userns_runtime, "runc 1.1 ignores mappings without a user namespace and fails late on ids")
    host = host_base()
    if case == "maps-without-userns":
        c = userns_runtime.bundle(["true"])
        cfg = json.loads((c.bundle / "config.json").read_text())
        cfg["linux"].update(id_maps(host))
        (c.bundle / "config.json").write_text(json.dumps(cfg))
        word = "no user namespace"
    else:
        key = case.split("-")[0]
        c = userns_bundle(userns_runtime, ["true"], id_maps(host, size=1000),
                          process={"user": {"uid": 0, "gid": 0, key: 1000}})
        word = f"process.user.{key} 1000 is not mapped"
    assert word in assert_refused(userns_runtime, c)


def test_userns_failure_after_setup_leaves_nothing(userns_runtime: Runtime) -> None:
    c = userns_bundle(userns_runtime, ["/bin/does-not-exist"], id_maps(host_base()))
    assert "does-not-exist" in assert_refused(userns_runtime, c)


def test_userns_rootfs_out_of_reach_is_refused(userns_runtime: Runtime) -> None:
    """The container's root cannot search a host root 0700 directory above the rootfs."""
    private = userns_runtime.tmp / "private"
    private.mkdir(mode=0o700)
    userns_runtime.tmp = private
    c = userns_bundle(userns_runtime, ["true"], id_maps(host_base()))
    err = assert_refused(userns_runtime, c)
    if userns_runtime.name == "dockyard-runtime":
        assert "out of reach" in err, err


def test_userns_unmapped_devpts_gid_is_dropped(userns_runtime: Runtime) -> None:
    dockyard_only(userns_runtime, "runc 1.1 fails the devpts mount with EINVAL")
    c = userns_bundle(userns_runtime, ["sh", "-c", "grep ' /dev/pts ' /proc/mounts; tty || true"],
                      id_maps(host_base(), gid_size=1))
    assert run_to_exit(c) == 0, c.err.read_text()
    assert "devpts" in c.output() and "gid=" not in c.output()


def test_userns_sysfs_without_own_netns_is_the_hosts_read_only(userns_runtime: Runtime) -> None:
    dockyard_only(userns_runtime, "runc 1.1 fails the sysfs mount with EPERM")
    c = userns_bundle(userns_runtime, ["sh", "-c", "grep ' /sys ' /proc/mounts; ls /sys/class/net"],
                      id_maps(host_base()), drop=("network",))
    assert run_to_exit(c) == 0, c.err.read_text()
    lines = c.output().splitlines()
    assert lines[0].split()[3].split(",")[0] == "ro"
    assert sorted(lines[1:]) == sorted(os.listdir("/sys/class/net"))


def test_userns_host_paths_are_untouched(userns_runtime: Runtime) -> None:
    """The bind fallback for device nodes must not change the host's nodes."""
    before = {p: os.stat(p) for p in ("/dev/null", "/dev/zero", "/dev/tty")}
    c = userns_bundle(userns_runtime, ["sh", "-c", "chmod 600 /dev/null || echo refused"], id_maps(host_base()))
    assert run_to_exit(c) == 0
    assert "refused" in c.output()
    after = {p: os.stat(p) for p in before}
    assert {p: (s.st_mode, s.st_uid) for p, s in before.items()} == \
           {p: (s.st_mode, s.st_uid) for p, s in after.items()}
