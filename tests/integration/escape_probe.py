"""Escape attempts, run INSIDE a container by tests/integration/test_escape.py (with the host's
python bind-mounted read-only). Each attempt makes the real syscall and reports whether the
kernel let it through; none of them changes anything outside the container when it succeeds
(probes are chosen so: open-for-write without writing, settimeofday(NULL, NULL), bad arguments
that fail *after* the permission check, reads only).

Usage: python3 escape_probe.py JSON-params  → one JSON line per attempt: {"name", "ok", "detail"}.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import socket
import sys
from collections.abc import Callable

libc = ctypes.CDLL("libc.so.6", use_errno=True)
libc.syscall.restype = ctypes.c_long

# x86_64 / aarch64 syscall numbers
if os.uname().machine == "x86_64":
    NR = {"init_module": 175, "kexec_load": 246, "keyctl": 250, "unshare": 272, "setns": 308,
          "bpf": 321, "settimeofday": 164, "ptrace": 101, "mount": 165}
else:
    NR = {"init_module": 105, "kexec_load": 104, "keyctl": 219, "unshare": 97, "setns": 268,
          "bpf": 280, "settimeofday": 170, "ptrace": 117, "mount": 40}


def syscall(name: str, *args: object) -> int:
    rc = libc.syscall(NR[name], *args)
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(rc)


class Denied(Exception):
    pass


def refused(fn: Callable[[], object], *, denied: tuple[int, ...] = (errno.EPERM, errno.EACCES, errno.EROFS,
                                                                      errno.ENOENT, errno.ESRCH)) -> str:
    """Run ``fn``; a denial errno means the attempt failed (raise Denied), anything else is
    reported as let through (the kernel got past its permission checks)."""
    try:
        fn()
    except OSError as exc:
        if exc.errno in denied:
            raise Denied(errno.errorcode.get(exc.errno or 0, str(exc.errno))) from exc
        return f"passed the permission check ({errno.errorcode.get(exc.errno or 0, exc.errno)})"
    return "succeeded"


def open_for_write(path: str) -> None:
    os.close(os.open(path, os.O_WRONLY))


def attempts(p: dict[str, object]) -> dict[str, Callable[[], str]]:
    host_pid = int(str(p["host_pid"]))
    disk = str(p["disk"])              # "major:minor" of the host's root disk
    other_root = str(p.get("other_root", ""))

    def mount_tmpfs() -> str:
        os.makedirs("/tmp/probe-mnt", exist_ok=True)
        return refused(lambda: syscall("mount", b"none", b"/tmp/probe-mnt", b"tmpfs", 0, None))

    def load_module() -> str:
        image = ctypes.create_string_buffer(b"\x7fELF-not-a-module" * 8)   # ENOEXEC once allowed
        return refused(lambda: syscall("init_module", image, ctypes.c_ulong(len(image)), b""),
                       denied=(errno.EPERM, errno.ENOSYS))

    def kexec() -> str:   # invalid arch flags: EINVAL after the CAP_SYS_BOOT check
        return refused(lambda: syscall("kexec_load", 0, 0, None, ctypes.c_ulong(0xFFFF0000)),
                       denied=(errno.EPERM, errno.ENOSYS))

    def mknod_read_disk() -> str:
        major, minor = (int(x) for x in disk.split(":"))
        node = "/tmp/probe-disk"
        if os.path.lexists(node):
            os.unlink(node)

        def read() -> None:
            os.mknod(node, 0o600 | 0o060000, os.makedev(major, minor))
            fd = os.open(node, os.O_RDONLY)
            try:
                if len(os.read(fd, 512)) != 512:
                    raise OSError(errno.EIO, "short read")
            finally:
                os.close(fd)
        return refused(read)

    def raw_socket() -> str:
        return refused(lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close())

    def packet_socket() -> str:
        return refused(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close())

    def setns_host() -> str:
        def enter() -> None:
            fd = os.open(f"/proc/{host_pid}/ns/mnt", os.O_RDONLY)
            try:
                syscall("setns", fd, 0)
            finally:
                os.close(fd)
        return refused(enter)

    def read_other_container() -> str:
        def read() -> None:
            candidates = [f"/proc/{pid}/root{other_root}" for pid in os.listdir("/proc") if pid.isdigit()]
            for path in candidates:
                try:
                    with open(path) as f:
                        if f.read().startswith("secret"):
                            return
                except OSError:
                    continue
            raise OSError(errno.ENOENT, "not reachable")
        return refused(read)

    def ptrace_host() -> str:
        def attach() -> None:
            # PTRACE_SEIZE does not stop the tracee; it is let go when this child exits
            syscall("ptrace", 0x4206, host_pid, 0, 0)
        return refused(attach)

    def see_host_processes() -> str:
        def look() -> None:
            with open(f"/proc/{host_pid}/cmdline", "rb") as f:
                if str(p["host_marker"]).encode() not in f.read():
                    raise OSError(errno.ESRCH, "a different process")
        return refused(look)

    def daemon_socket() -> str:
        def connect() -> None:
            for path in (str(p["daemon_sock"]), f"/proc/{p['daemon_pid']}/root{p['daemon_sock']}"):
                s = socket.socket(socket.AF_UNIX)
                try:
                    s.connect(path)
                    return
                except OSError:
                    continue
                finally:
                    s.close()
            raise OSError(errno.ENOENT, "no daemon socket reachable")
        return refused(connect)

    def masked_read() -> str:
        def read() -> None:
            for path in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug"):
                try:
                    with open(path, "rb") as f:
                        if f.read(64):
                            return
                except OSError:
                    continue
            raise OSError(errno.EACCES, "masked")
        return refused(read)

    def userns_unshare() -> str:
        return refused(lambda: syscall("unshare", 0x10000000))   # CLONE_NEWUSER

    def keyctl() -> str:   # KEYCTL_GET_KEYRING_ID of the session keyring: a read
        return refused(lambda: syscall("keyctl", 0, -3, 0))

    def clock() -> str:    # settimeofday(NULL, NULL): only the CAP_SYS_TIME check, no change
        return refused(lambda: syscall("settimeofday", None, None))

    def bpf() -> str:      # BPF_MAP_CREATE with an empty attr: EINVAL once allowed
        attr = ctypes.create_string_buffer(64)
        return refused(lambda: syscall("bpf", 0, attr, 64))

    return {
        "mount": mount_tmpfs,
        "kernel module": load_module,
        "kexec": kexec,
        "write /proc/sysrq-trigger": lambda: refused(lambda: open_for_write("/proc/sysrq-trigger")),
        "write /sys": lambda: refused(lambda: open_for_write("/sys/kernel/mm/transparent_hugepage/enabled")),
        "write /proc/sys": lambda: refused(lambda: open_for_write("/proc/sys/kernel/core_pattern")),
        "read a masked path": masked_read,
        "mknod and read the host disk": mknod_read_disk,
        "raw socket": raw_socket,
        "packet socket": packet_socket,
        "unshare -U": userns_unshare,
        "setns into the host": setns_host,
        "read another container's files": read_other_container,
        "ptrace a host process": ptrace_host,
        "keyctl": keyctl,
        "change the clock": clock,
        "bpf": bpf,
        "see host processes": see_host_processes,
        "reach the daemon socket": daemon_socket,
    }


def main() -> None:
    params = json.loads(sys.argv[1])
    only = params.get("only")
    for name, fn in attempts(params).items():
        if only and name not in only:
            continue
        # each attempt in a child of its own: one that gets through (unshare, setns) must not
        # change what the next one starts from
        pid = os.fork()
        if pid == 0:
            try:
                print(json.dumps({"name": name, "ok": True, "detail": fn()}), flush=True)
            except Denied as exc:
                print(json.dumps({"name": name, "ok": False, "detail": str(exc)}), flush=True)
            except BaseException as exc:   # a broken probe must show, not pass as "denied"
                print(json.dumps({"name": name, "ok": None, "detail": repr(exc)}), flush=True)
            os._exit(0)
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
