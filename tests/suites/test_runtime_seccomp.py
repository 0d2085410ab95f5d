"""Seccomp conformance: Docker's default profile and every action/operator/flag a profile can use,
loaded by dockyard-runtime and runc alike.

The busybox rootfs has no way to make an arbitrary syscall, so the tests drop tiny static x86-64
*probes* into it: hand-assembled ELF files that make one syscall with fixed arguments and exit with
its errno (0 on success; 159 = 128 + SIGSYS when the filter kills). Every probe's arguments are
chosen so that the call is harmless even if it reached the kernel (NULL/invalid pointers, bad magic
numbers, flags the kernel rejects) - and the container holds Docker's default capabilities, which
already forbid the dangerous ones. To tell "refused by the filter" from "refused by a capability
check", one profile sets ``defaultErrnoRet`` to a marker errno no probe returns by itself.
"""

from __future__ import annotations

import ctypes
import functools
import json
import platform
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from dockyard.engine.seccomp import default_profile
from dockyard.engine.security import DEFAULT_CAPS
from tests.suites.conftest import Container, Runtime

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(platform.machine() != "x86_64", reason="the probes are x86-64 machine code"),
]

MARKER = 77       # EBADFD: no probe below returns it on its own
EPERM, ESRCH, ENOSYS, SIGSYS_EXIT = 1, 3, 38, 128 + 31
NS_FLAGS = {"CLONE_NEWNS": 0x20000, "CLONE_NEWUSER": 0x10000000}
CLONE_FS = 0x200

# name → (syscall, args): refused by Docker's default profile for a default-capability container
DENIED: dict[str, tuple[str, tuple[int, ...]]] = {
    "keyctl": ("keyctl", (0, -3, 0)),                   # KEYCTL_GET_KEYRING_ID, session keyring
    "add_key": ("add_key", (0, 0, 0, 0, -3)),
    "request_key": ("request_key", (0, 0, 0, -3)),
    "kexec_load": ("kexec_load", (0, 0, 0, 0xFFFFFFFF)),  # bad flags
    "kexec_file_load": ("kexec_file_load", (-1, -1, 0, 0, 0xFFFF)),
    "init_module": ("init_module", (0, 0, 0)),
    "finit_module": ("finit_module", (-1, 0, 0)),
    "delete_module": ("delete_module", (0, 0)),
    "bpf": ("bpf", (0xFFFF, 0, 0)),                     # no such command
    "userfaultfd": ("userfaultfd", (0xFFFF,)),          # bad flags
    "io_uring_setup": ("io_uring_setup", (0, 0)),
    "settimeofday": ("settimeofday", (0, 0)),           # NULL, NULL: would change nothing
    "clock_settime": ("clock_settime", (0, 0)),         # NULL timespec
    "reboot": ("reboot", (0, 0, 0, 0)),                 # bad magic: never reboots
    "unshare_user": ("unshare", (NS_FLAGS["CLONE_NEWUSER"],)),
    "unshare_mnt": ("unshare", (NS_FLAGS["CLONE_NEWNS"],)),
    "clone_newns": ("clone", (NS_FLAGS["CLONE_NEWNS"] | CLONE_FS, 0, 0, 0, 0)),  # EINVAL if run
    "mount": ("mount", (0, 0, 0, 0, 0)),
    "umount2": ("umount2", (0, 0)),
    "setns": ("setns", (-1, 0)),
    "pivot_root": ("pivot_root", (0, 0)),
    "fsopen": ("fsopen", (0, 0)),
    "open_tree": ("open_tree", (-1, 0, 0)),
    "sethostname": ("sethostname", (0, 0)),
    "perf_event_open": ("perf_event_open", (0, 0, -1, -1, 0)),
    "syslog": ("syslog", (10, 0, 0)),                   # SYSLOG_ACTION_SIZE_BUFFER
    "acct": ("acct", (1,)),                             # bad pointer
    "iopl": ("iopl", (0,)),
    "open_by_handle_at": ("open_by_handle_at", (-1, 0, 0)),
    "kcmp": ("kcmp", (1, 1, 0xFFFF, 0, 0)),
    "set_mempolicy": ("set_mempolicy", (0, 0, 0)),
    "vhangup": ("vhangup", ()),
    "socket_vsock": ("socket", (40, 1, 0)),             # AF_VSOCK
    "socket_alg": ("socket", (38, 5, 0)),               # AF_ALG
    "personality_bsd": ("personality", (6,)),           # PER_BSD
}
# allowed: the result is the kernel's own
ALLOWED: dict[str, tuple[str, tuple[int, ...]]] = {
    "getpid": ("getpid", ()),
    "socket_inet": ("socket", (2, 2, 0)),               # AF_INET, SOCK_DGRAM
    "personality_query": ("personality", (0xFFFFFFFF,)),
    "ptrace": ("ptrace", (2, 1, 0, 0)),                 # PEEKDATA on a process we do not trace: ESRCH
    "chroot": ("chroot", (0,)),                         # CAP_SYS_CHROOT is a default cap: EFAULT
}


# -- probes ------------------------------------------------------------------------------------

_BASE = 0x400000
_EXIT_WITH_ERRNO = bytes.fromhex(
    "4885c0"          # test rax, rax
    "7804"            # js  neg
    "31ff"            # xor edi, edi        (success → 0)
    "eb06"            # jmp out
    "4889c7"          # neg: mov rdi, rax
    "48f7df"          #      neg rdi        (-errno → errno)
    "b8e7000000"      # out: mov eax, 231 (exit_group)
    "0f05")           #      syscall


def _elf(code: bytes) -> bytes:
    """A one-segment static ELF64 executable around ``code``."""
    entry = _BASE + 64 + 56
    size = entry - _BASE + len(code)
    ehdr = struct.pack("<16sHHIQQQIHHHHHH", b"\x7fELF\x02\x01\x01" + bytes(9), 2, 0x3E, 1, entry, 64, 0,
                       0, 64, 56, 1, 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, _BASE, _BASE, size, size, 0x1000)
    return ehdr + phdr + code


def probe64(nr: int, args: tuple[int, ...]) -> bytes:
    """syscall(nr, args...) through the x86-64 ``syscall`` instruction."""
    code = b"\x48\xc7\xc0" + struct.pack("<i", nr)  # mov rax, nr
    regs = (b"\x48\xbf", b"\x48\xbe", b"\x48\xba", b"\x49\xba", b"\x49\xb8", b"\x49\xb9")  # rdi … r9
    for reg, value in zip(regs, args, strict=False):
        code += reg + struct.pack("<Q", value & 0xFFFFFFFFFFFFFFFF)
    return _elf(code + b"\x0f\x05" + _EXIT_WITH_ERRNO)


def probe32(nr: int, args: tuple[int, ...]) -> bytes:
    """The same through ``int 0x80``: the i386 ABI, which a filter sees as SCMP_ARCH_X86."""
    code = b"\xb8" + struct.pack("<I", nr)  # mov eax, nr
    for reg, value in zip(b"\xbb\xb9\xba\xbe\xbf", args, strict=False):  # ebx ecx edx esi edi
        code += bytes([reg]) + struct.pack("<I", value & 0xFFFFFFFF)
    code += b"\xcd\x80" + b"\x48\x63\xc0"  # int 0x80; movsxd rax, eax
    return _elf(code + _EXIT_WITH_ERRNO)


@functools.cache
def _libseccomp() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL("libseccomp.so.2")
    except OSError:
        pytest.skip("libseccomp.so.2 is not installed")
    lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    return lib


def nr(name: str, arch: str = "x86_64") -> int:
    """The syscall's number in ``arch``'s ABI, from libseccomp's tables."""
    lib = _libseccomp()
    num: int = lib.seccomp_syscall_resolve_name_arch(lib.seccomp_arch_resolve_name(arch.encode()),
                                                     name.encode())
    assert num >= 0, f"libseccomp does not know {name} on {arch}"
    return num


def ia32_runs(tmp: Path) -> bool:
    """Does this kernel run i386 syscalls (IA32 emulation)? getpid via int 0x80, on the host."""
    exe = tmp / "getpid32"
    exe.write_bytes(probe32(nr("getpid", "x86"), ()))
    exe.chmod(0o755)
    return subprocess.run([str(exe)], check=False).returncode == 0


def with_probes(c: Container, probes: dict[str, bytes]) -> str:
    """Install probes in the container's rootfs; returns a script running each as ``name=$?``."""
    pdir = c.bundle / "rootfs" / "probe"
    pdir.mkdir()
    for name, data in probes.items():
        (pdir / name).write_bytes(data)
        (pdir / name).chmod(0o755)
    return "".join(f"/probe/{name}; echo {name}=$?; " for name in probes)


def results(c: Container) -> dict[str, int]:
    return {k: int(v) for k, _, v in (ln.partition("=") for ln in c.output().split()) if v.isdigit()}


def run_to_exit(c: Container) -> int:
    c.create()
    res = c.rt.run("start", c.id)
    assert res.returncode == 0, res.stderr
    return c.wait()


def probes64(table: dict[str, tuple[str, tuple[int, ...]]]) -> dict[str, bytes]:
    return {name: probe64(nr(call), args) for name, (call, args) in table.items()}


# -- Docker's default profile ------------------------------------------------------------------

def test_default_profile_denies_with_eperm(runtime: Runtime) -> None:
    c = runtime.bundle(["true"], seccomp=default_profile(DEFAULT_CAPS))
    _set_args(c, ["sh", "-c", with_probes(c, {**probes64(DENIED), **probes64(ALLOWED),
                                              "clone3": probe64(nr("clone3"), (0, 0)),
                                              "newer": probe64(1000, ())})])
    assert run_to_exit(c) == 0, c.err.read_text()
    got = results(c)
    assert {k: got.get(k) for k in DENIED} == dict.fromkeys(DENIED, EPERM)
    assert got["clone3"] == ENOSYS  # so that libc falls back to clone(2)
    assert got["newer"] == ENOSYS   # beyond every syscall the profile names: "not implemented"
    assert got["getpid"] == got["socket_inet"] == got["personality_query"] == 0
    assert got["ptrace"] == ESRCH     # allowed (kernel >= 4.8), refused by the kernel for other reasons
    assert got["chroot"] == 14        # EFAULT: allowed with CAP_SYS_CHROOT


def test_default_profile_denial_comes_from_the_filter(runtime: Runtime) -> None:
    """With a marker as defaultErrnoRet every denied probe returns the marker: the filter refused
    it, not a capability check. Syscalls conditional on a capability are let through once the
    profile is built for that capability (the kernel then refuses for lack of the real one)."""
    sec = default_profile(DEFAULT_CAPS)
    sec["defaultErrnoRet"] = MARKER
    admin = default_profile([*DEFAULT_CAPS, "CAP_SYS_ADMIN", "CAP_SYS_TIME", "CAP_SYS_MODULE"])
    admin["defaultErrnoRet"] = MARKER
    conditional = {  # allowed by the profile for these capabilities (the process still lacks them)
        "bpf", "unshare_user", "unshare_mnt", "clone_newns", "mount", "umount2", "setns",
        "fsopen", "open_tree", "sethostname", "perf_event_open", "syslog",       # CAP_SYS_ADMIN
        # (pivot_root stays refused: Docker never allows it)
        "settimeofday", "clock_settime",                                         # CAP_SYS_TIME
        "init_module", "finit_module", "delete_module"}                          # CAP_SYS_MODULE
    for profile, expect_marker in ((sec, set(DENIED)), (admin, set(DENIED) - conditional)):
        c = runtime.bundle(["true"], seccomp=profile)
        _set_args(c, ["sh", "-c", with_probes(c, {**probes64(DENIED), **probes64(ALLOWED)})])
        assert run_to_exit(c) == 0, c.err.read_text()
        got = results(c)
        assert {k for k, v in got.items() if v == MARKER} == expect_marker, got
        if profile is admin:
            assert got["clone_newns"] == 22  # EINVAL (CLONE_NEWNS with CLONE_FS): the kernel saw it
            assert got["settimeofday"] == EPERM  # … and refused it: the process lacks CAP_SYS_TIME


def test_default_profile_covers_the_i386_abi(runtime: Runtime, tmp_path: Path) -> None:
    """The filter lists SCMP_ARCH_X86: int 0x80 calls are filtered, not killed as a foreign arch."""
    if not ia32_runs(tmp_path):
        pytest.skip("this kernel runs no i386 code (no IA32 emulation)")
    getpid32, unshare32 = probe32(nr("getpid", "x86"), ()), probe32(nr("unshare", "x86"), (0x20000,))
    sec = default_profile(DEFAULT_CAPS)
    sec["defaultErrnoRet"] = MARKER
    c = runtime.bundle(["true"], seccomp=sec)
    _set_args(c, ["sh", "-c", with_probes(c, {"getpid32": getpid32, "unshare32": unshare32,
                                              "newer32": probe32(1000, ())})])
    assert run_to_exit(c) == 0, c.err.read_text()
    assert results(c) == {"getpid32": 0, "unshare32": MARKER, "newer32": ENOSYS}


def test_default_profile_runs_ordinary_programs(runtime: Runtime) -> None:
    """A shell, forks, pipes, sleep, ls work; busybox's unshare/mount/date -s are refused. date -s
    only runs once the filter is confirmed active (the container lacks CAP_SYS_TIME as well)."""
    script = ("grep -q '^Seccomp:.*2' /proc/self/status || exit 99; "
              "ls / | grep -q bin && echo ls=ok; (echo sub) | cat; sleep 0.05 && echo sleep=ok; "
              "for f in a b c; do (true) & done; wait && echo forks=ok; "
              "unshare -U true || echo unshare_user=denied; unshare -m true || echo unshare_mnt=denied; "
              "mkdir -p /tmp/m; mount -t tmpfs t /tmp/m || echo mount=denied; "
              "date -s 2001-01-01 >/dev/null")
    c = runtime.bundle(["sh", "-c", script], seccomp=default_profile(DEFAULT_CAPS),
                       process={"noNewPrivileges": False})  # Docker's default: filter loaded early
    assert run_to_exit(c) == 0, c.err.read_text()
    out, err = c.output(), c.err.read_text()
    for line in ("ls=ok", "sub", "sleep=ok", "forks=ok", "unshare_user=denied", "unshare_mnt=denied",
                 "mount=denied"):
        assert line in out.split(), (out, err)
    assert "date: can't set date: Operation not permitted" in err  # busybox reports, exits 0


# -- what a custom profile can say ----------------------------------------------------------------

CUSTOM: dict[str, Any] = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "syscalls": [
        {"names": ["getpgid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 20,
         "args": [{"index": 0, "value": 5, "op": "SCMP_CMP_LT"}]},
        {"names": ["getsid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 21,
         "args": [{"index": 0, "value": 5, "op": "SCMP_CMP_LE"}]},
        {"names": ["sched_getscheduler"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
         "args": [{"index": 0, "value": 1000000, "op": "SCMP_CMP_GT"}]},
        {"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": 23,
         "args": [{"index": 1, "value": 70000, "op": "SCMP_CMP_GE"}]},
        {"names": ["getrusage"], "action": "SCMP_ACT_ERRNO", "errnoRet": 24,
         "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_NE"}]},
        {"names": ["times"], "action": "SCMP_ACT_ERRNO", "errnoRet": 25,
         "args": [{"index": 0, "value": 0xFF, "valueTwo": 0x42, "op": "SCMP_CMP_MASKED_EQ"}]},
        # the same argument twice: either value matches (one rule each)
        {"names": ["sched_getparam"], "action": "SCMP_ACT_ERRNO", "errnoRet": 26,
         "args": [{"index": 0, "value": 11, "op": "SCMP_CMP_EQ"},
                  {"index": 0, "value": 12, "op": "SCMP_CMP_EQ"}]},
        {"names": ["getcpu"], "action": "SCMP_ACT_ERRNO"},            # no errnoRet: EPERM
        {"names": ["uname"], "action": "SCMP_ACT_KILL_PROCESS",
         "args": [{"index": 0, "value": 0xDEAD, "op": "SCMP_CMP_EQ"}]},
        {"names": ["umask"], "action": "SCMP_ACT_KILL",
         "args": [{"index": 0, "value": 0o7000, "op": "SCMP_CMP_EQ"}]},
        {"names": ["sysinfo"], "action": "SCMP_ACT_TRAP",
         "args": [{"index": 0, "value": 0x5A5A, "op": "SCMP_CMP_EQ"}]},
        {"names": ["getuid"], "action": "SCMP_ACT_LOG"},
        {"names": ["gettid"], "action": "SCMP_ACT_TRACE", "errnoRet": 5},  # no tracer: ENOSYS
        # unknown names are skipped; socketcall exists only in the i386 ABI of this filter
        {"names": ["no_such_syscall", "socketcall"], "action": "SCMP_ACT_ERRNO", "errnoRet": 30},
    ],
}
CUSTOM_PROBES = {  # name → (syscall, args, expected exit status)
    "lt_hit": ("getpgid", (3,), 20), "lt_miss": ("getpgid", (999999,), ESRCH),
    "le_hit": ("getsid", (5,), 21), "le_miss": ("getsid", (999999,), ESRCH),
    "gt_hit": ("sched_getscheduler", (2000000,), 22), "gt_miss": ("sched_getscheduler", (999999,), ESRCH),
    "ge_hit": ("getpriority", (0, 70000), 23), "ge_miss": ("getpriority", (0, 69999), ESRCH),
    "ne_hit": ("getrusage", (5, 0), 24), "ne_miss": ("getrusage", (0, 0), 14),
    "masked_hit": ("times", (0x1042,), 25), "masked_miss": ("times", (0x1043,), 14),
    "or_first": ("sched_getparam", (11, 0), 26), "or_second": ("sched_getparam", (12, 0), 26),
    "or_miss": ("sched_getparam", (999999, 0), 22),
    "errno_default": ("getcpu", (0, 0, 0), EPERM),
    "kill_process": ("uname", (0xDEAD,), SIGSYS_EXIT), "uname_other": ("uname", (0,), 14),
    "kill_thread": ("umask", (0o7000,), SIGSYS_EXIT),
    "trap": ("sysinfo", (0x5A5A,), SIGSYS_EXIT),
    "log": ("getuid", (), 0),
    "trace": ("gettid", (), ENOSYS),
}


def test_custom_profile_actions_operators_and_flags(runtime: Runtime, tmp_path: Path) -> None:
    c = runtime.bundle(["true"], seccomp=CUSTOM)
    probes = {name: probe64(nr(call), args) for name, (call, args, _) in CUSTOM_PROBES.items()}
    expected = {name: want for name, (_, _, want) in CUSTOM_PROBES.items()}
    if ia32_runs(tmp_path):
        probes["socketcall32"] = probe32(nr("socketcall", "x86"), (0xFFFF, 0))
        expected["socketcall32"] = 30
    _set_args(c, ["sh", "-c", with_probes(c, probes) + "grep Seccomp: /proc/self/status"])
    assert run_to_exit(c) == 0, c.err.read_text()
    assert results(c) == expected
    assert "Seccomp:\t2" in c.output()


FLAGS = ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC"]


def test_filter_flags(runtime: Runtime) -> None:
    if runtime.name != "dockyard-runtime":
        features = json.loads(runtime.run("features").stdout or "{}")
        if not set(FLAGS) <= set(features.get("linux", {}).get("seccomp", {}).get("knownFlags") or []):
            pytest.skip(f"{runtime.name} does not support seccomp flags")
    for flags in (FLAGS, []):
        c = runtime.bundle(["true"], seccomp={**CUSTOM, "flags": flags})
        _set_args(c, ["sh", "-c", with_probes(c, {"errno": probe64(nr("getpgid"), (3,)),
                                                  "log": probe64(nr("getuid"), ())})])
        assert run_to_exit(c) == 0, c.err.read_text()
        assert results(c) == {"errno": 20, "log": 0}


def test_bad_profile_fails_create(runtime: Runtime) -> None:
    c = runtime.bundle(["true"], seccomp={"defaultAction": "SCMP_ACT_NOPE", "syscalls": []})
    res = runtime.run("create", "--bundle", str(c.bundle), c.id)
    assert res.returncode != 0
    assert "SCMP_ACT_NOPE" in res.stderr


def _set_args(c: Container, args: list[str]) -> None:
    path: Path = c.bundle / "config.json"
    spec = json.loads(path.read_text())
    spec["process"]["args"] = args
    path.write_text(json.dumps(spec))
