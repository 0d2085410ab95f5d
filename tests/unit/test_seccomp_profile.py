"""engine.seccomp: Docker's default profile and Docker-format profiles → OCI ``linux.seccomp``.

``decide`` evaluates a resolved profile the way the loaded filter does (first matching rule, several
conditions on one argument are alternatives), so the tests state what a container may do rather
than how the rules happen to be laid out.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dockyard.engine import seccomp
from dockyard.engine.seccomp import (
    CLONE_NS_FLAGS,
    default_profile,
    docker_default,
    from_docker_profile,
    seccomp_for,
)
from dockyard.engine.security import CAP_NAMES, DEFAULT_CAPS
from dockyard.errors import InvalidArgument

HOST = {"arch": "amd64", "kernel": (6, 1)}
CLONE_NEWUSER, CLONE_NEWNS, SIGCHLD = 0x10000000, 0x20000, 17

_OPS: dict[str, Callable[[int, int, int], bool]] = {
    "SCMP_CMP_EQ": lambda a, v, _: a == v, "SCMP_CMP_NE": lambda a, v, _: a != v,
    "SCMP_CMP_LT": lambda a, v, _: a < v, "SCMP_CMP_LE": lambda a, v, _: a <= v,
    "SCMP_CMP_GT": lambda a, v, _: a > v, "SCMP_CMP_GE": lambda a, v, _: a >= v,
    "SCMP_CMP_MASKED_EQ": lambda a, v, v2: a & v == v2,
}


def decide(profile: dict[str, Any], name: str, *args: int) -> tuple[str, int | None]:
    argv = [*args, 0, 0, 0, 0, 0, 0]
    for rule in profile["syscalls"]:
        if name not in rule["names"]:
            continue
        conds = rule.get("args") or []
        indexes = [c["index"] for c in conds]
        groups = [conds] if len(set(indexes)) == len(indexes) else [[c] for c in conds]
        for group in groups:
            if all(_OPS[c["op"]](argv[c["index"]], c["value"], c.get("valueTwo", 0)) for c in group):
                return rule["action"], rule.get("errnoRet")
    return profile["defaultAction"], profile.get("defaultErrnoRet")


def allowed(profile: dict[str, Any], name: str, *args: int) -> bool:
    return decide(profile, name, *args)[0] == "SCMP_ACT_ALLOW"


def default(caps: list[str] = DEFAULT_CAPS, **host: Any) -> dict[str, Any]:
    return default_profile(caps, **{**HOST, **host})


# -- the default profile ------------------------------------------------------------------------

def test_default_profile_shape() -> None:
    prof = default()
    assert prof["defaultAction"] == "SCMP_ACT_ERRNO" and prof["defaultErrnoRet"] == 1
    assert prof["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert default(arch="arm64")["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert json.loads(json.dumps(prof)) == prof  # plain runtime-spec JSON
    for rule in prof["syscalls"]:
        assert set(rule) <= {"names", "action", "errnoRet", "args"}
        assert rule["names"] and all(isinstance(n, str) and n for n in rule["names"])
        assert rule["action"] in seccomp.ACTIONS
        for arg in rule.get("args", []):
            assert set(arg) <= {"index", "value", "valueTwo", "op"} and arg["op"] in seccomp.OPERATORS
    # the host's own arch by default
    assert default_profile(DEFAULT_CAPS)["architectures"][0] in seccomp.SCMP_ARCHES


def test_default_profile_allows_ordinary_programs() -> None:
    prof = default()
    for name in ("read", "write", "openat", "execve", "exit_group", "mmap", "futex", "wait4", "pipe2",
                 "rt_sigaction", "getpid", "setuid", "capset", "prctl", "chroot", "kill", "bind",
                 "epoll_wait", "statx", "arch_prctl", "modify_ldt", "clock_gettime", "fchmodat2"):
        assert allowed(prof, name), name
    assert allowed(prof, "clone", SIGCHLD)                    # fork
    assert allowed(prof, "socket", 2) and allowed(prof, "socket", 39)  # AF_INET, AF_NFC
    assert allowed(prof, "personality", 0xFFFFFFFF) and allowed(prof, "personality", 0x20008)
    assert allowed(prof, "ptrace") and allowed(prof, "process_vm_readv")  # kernel >= 4.8


def test_default_profile_refuses_what_docker_refuses() -> None:
    prof = default()
    for name in ("keyctl", "add_key", "request_key", "kexec_load", "kexec_file_load", "bpf",
                 "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register", "mount",
                 "umount2", "unshare", "setns", "pivot_root", "fsopen", "fsmount", "move_mount",
                 "open_tree", "sethostname", "setdomainname", "quotactl", "reboot", "init_module",
                 "finit_module", "delete_module", "settimeofday", "clock_settime", "stime", "acct",
                 "syslog", "iopl", "ioperm", "kcmp", "mbind", "set_mempolicy", "move_pages",
                 "open_by_handle_at", "perf_event_open", "fanotify_init", "lookup_dcookie", "vhangup",
                 "swapon", "swapoff", "nfsservctl", "create_module", "uselib"):
        assert decide(prof, name) == ("SCMP_ACT_ERRNO", 1), name
    assert decide(prof, "clone3") == ("SCMP_ACT_ERRNO", 38)  # ENOSYS: libc falls back to clone
    for flags in (CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWUSER | SIGCHLD, 0x40000000, 0x02000000):
        assert not allowed(prof, "clone", flags), hex(flags)
    assert not allowed(prof, "socket", 40) and not allowed(prof, "socket", 38)  # AF_VSOCK, AF_ALG
    assert not allowed(prof, "personality", 6)  # PER_BSD
    old = default(kernel=(4, 4))
    assert not allowed(old, "ptrace") and not allowed(old, "process_vm_readv")


@pytest.mark.parametrize(("cap", "names"), [
    ("CAP_SYS_ADMIN", ["mount", "umount2", "unshare", "setns", "sethostname", "setdomainname", "fsopen",
                       "fsmount", "move_mount", "open_tree", "fsconfig", "fspick", "mount_setattr",
                       "quotactl", "quotactl_fd", "bpf", "perf_event_open", "fanotify_init",
                       "lookup_dcookie", "syslog", "clone3"]),
    ("CAP_SYS_MODULE", ["init_module", "finit_module", "delete_module"]),
    ("CAP_SYS_BOOT", ["reboot"]),
    ("CAP_SYS_TIME", ["settimeofday", "clock_settime", "stime", "clock_settime64"]),
    ("CAP_SYS_PTRACE", ["kcmp", "process_vm_readv", "process_vm_writev", "ptrace", "pidfd_getfd",
                        "process_madvise"]),
    ("CAP_SYS_RAWIO", ["iopl", "ioperm"]),
    ("CAP_SYS_PACCT", ["acct"]),
    ("CAP_SYSLOG", ["syslog"]),
    ("CAP_SYS_NICE", ["mbind", "set_mempolicy", "get_mempolicy", "set_mempolicy_home_node"]),
    ("CAP_SYS_TTY_CONFIG", ["vhangup"]),
    ("CAP_DAC_READ_SEARCH", ["open_by_handle_at"]),
    ("CAP_BPF", ["bpf"]),
    ("CAP_PERFMON", ["perf_event_open"]),
])
def test_capability_conditional_syscalls(cap: str, names: list[str]) -> None:
    without, with_cap = default(kernel=(4, 4)), default([*DEFAULT_CAPS, cap], kernel=(4, 4))
    for name in names:
        assert not allowed(without, name), name
        assert allowed(with_cap, name), name


def test_cap_sys_admin_lifts_clone_masks_only_with_the_cap() -> None:
    admin = default([*DEFAULT_CAPS, "CAP_SYS_ADMIN"])
    assert allowed(admin, "clone", CLONE_NEWUSER | CLONE_NEWNS)
    assert allowed(admin, "clone3")
    assert not allowed(admin, "pivot_root")     # Docker never allows it
    assert not allowed(admin, "keyctl")
    no_chroot = default([c for c in DEFAULT_CAPS if c != "CAP_SYS_CHROOT"])
    assert not allowed(no_chroot, "chroot")
    everything = default(CAP_NAMES)
    assert allowed(everything, "reboot") and not allowed(everything, "kexec_load")


def test_architecture_conditional_syscalls() -> None:
    x86, arm = default(), default(arch="arm64")
    assert allowed(x86, "arch_prctl") and not allowed(arm, "arch_prctl")
    assert allowed(arm, "set_tls") and allowed(arm, "cacheflush") and not allowed(x86, "set_tls")
    s390 = default(arch="s390x")
    assert s390["architectures"] == ["SCMP_ARCH_S390X", "SCMP_ARCH_S390"]
    clone_rules = [r for r in s390["syscalls"] if r["names"] == ["clone"]]
    assert [r["args"][0]["index"] for r in clone_rules] == [1]  # s390 passes flags second
    assert clone_rules[0]["args"][0]["value"] == CLONE_NS_FLAGS


def test_docker_format_default_round_trips() -> None:
    text = json.dumps(docker_default())
    assert from_docker_profile(text, DEFAULT_CAPS, **HOST) == default()


# -- Docker-format profiles ---------------------------------------------------------------------

def parse(doc: Any, caps: list[str] = DEFAULT_CAPS, **host: Any) -> dict[str, Any] | None:
    return from_docker_profile(json.dumps(doc), caps, **{**HOST, **host})


def names(prof: dict[str, Any] | None) -> list[str]:
    assert prof is not None
    return [n for r in prof["syscalls"] for n in r["names"]]


def test_docker_profile_basics() -> None:
    prof = parse({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 13,
                  "architectures": ["SCMP_ARCH_X86_64"], "flags": ["SECCOMP_FILTER_FLAG_LOG"],
                  "syscalls": [
                      {"name": "mkdir", "action": "SCMP_ACT_ERRNO", "errnoRet": 5, "comment": "old form"},
                      {"names": ["chmod", "fchmodat"], "action": "SCMP_ACT_KILL_PROCESS",
                       "args": [{"index": 1, "value": 0o7000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
                      {"names": [], "action": "SCMP_ACT_LOG"}]})
    assert prof == {
        "defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 13, "architectures": ["SCMP_ARCH_X86_64"],
        "flags": ["SECCOMP_FILTER_FLAG_LOG"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5},
                     {"names": ["chmod", "fchmodat"], "action": "SCMP_ACT_KILL_PROCESS",
                      "args": [{"index": 1, "value": 0o7000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}]}
    # Go's decoder matches field names case-insensitively
    assert parse({"DefaultAction": "SCMP_ACT_ALLOW", "Syscalls": [{"Names": ["x"], "Action": "SCMP_ACT_LOG"}]}) \
        == {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_LOG"}]}


def test_docker_profile_without_action_or_syscalls_means_no_filter() -> None:
    assert parse({}) is None
    assert parse(None) is None
    assert parse({"architectures": ["SCMP_ARCH_X86_64"]}) is None


def test_docker_profile_includes_and_excludes() -> None:
    doc = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["a"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN", "CAP_BPF"]}},
        {"names": ["b"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN", "CAP_BPF"]}},
        {"names": ["c"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64", "arm"]}},
        {"names": ["d"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["arm64"]}},
        {"names": ["e"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "5.10"}},
        {"names": ["f"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "5.10"}},
        {"names": ["g"], "action": "SCMP_ACT_ALLOW",
         "includes": {"arches": ["amd64"], "caps": ["CAP_KILL"]}, "excludes": {"caps": ["CAP_SYS_BOOT"]}},
    ]}
    assert names(parse(doc, ["CAP_KILL"], kernel=(5, 4))) == ["b", "d", "f", "g"]
    assert names(parse(doc, ["CAP_SYS_ADMIN", "CAP_BPF"], kernel=(5, 10))) == ["a", "d", "e"]
    assert names(parse(doc, ["CAP_BPF", "CAP_KILL", "CAP_SYS_BOOT"], arch="arm64", kernel=(6, 0))) \
        == ["c", "e"]


def test_docker_profile_arch_map() -> None:
    doc = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [],
           "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
                       {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": None}]}
    assert parse(doc)["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]  # type: ignore[index]
    assert parse(doc, arch="arm64")["architectures"] == ["SCMP_ARCH_AARCH64"]  # type: ignore[index]
    assert "architectures" not in parse(doc, arch="riscv64")  # type: ignore[operator]


@pytest.mark.parametrize(("doc", "message"), [
    ('{"defaultAction": ', "Decoding seccomp profile failed: "),
    ("[1]", "Decoding seccomp profile failed: the profile must be a JSON object"),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": "read"}',
     "Decoding seccomp profile failed: syscalls: expected an array, got a string"),
    ('{"defaultAction": 1}', "Decoding seccomp profile failed: defaultAction: expected a string"),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": -1}', "defaultErrnoRet: expected an unsigned"),
    ('{"defaultAction": "SCMP_ACT_NOPE"}', "string SCMP_ACT_NOPE is not a valid action"),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_NOTIFY"}]}',
     "SCMP_ACT_NOTIFY is not supported"),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "listenerPath": "/run/agent.sock"}', "listenerPath is not supported"),
    ('{"syscalls": [{"names": ["x"], "action": "SCMP_ACT_ALLOW"}]}', "defaultAction is required"),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ALLOW"}]}',
     "both 'name' and 'names' are specified in the seccomp profile"),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"], "archMap": '
     '[{"architecture": "SCMP_ARCH_X86_64"}]}', "both 'architectures' and 'archMap' are specified"),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_VAX"]}',
     "string SCMP_ARCH_VAX is not a valid arch"),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_NOPE"]}',
     "unknown flag 'SECCOMP_FILTER_FLAG_NOPE'"),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ALLOW", '
     '"args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}]}]}',
     "syscalls[0].args[0].op: string SCMP_CMP_ABOUT is not a valid operator"),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ALLOW", '
     '"args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}', "syscalls[0].args[0].index 6 is out of range"),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ALLOW", '
     '"args": [{"index": 0, "value": 1.5, "op": "SCMP_CMP_EQ"}]}]}',
     "syscalls[0].args[0].value: expected an integer, got a number"),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": [""], "action": "SCMP_ACT_ALLOW"}]}',
     "empty string is not a valid syscall"),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ALLOW", '
     '"includes": {"minKernel": "5"}}]}', 'invalid kernel version: "5", expected "<kernel>.<major>"'),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ALLOW", '
     '"excludes": {"minKernel": "0.0"}}]}', "version cannot be 0.0"),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ALLOW", '
     '"includes": {"caps": "CAP_SYS_ADMIN"}}]}', "syscalls[0].includes.caps: expected an array"),
])
def test_docker_profile_errors(doc: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        from_docker_profile(doc, DEFAULT_CAPS, **HOST)
    assert message in str(err.value)


# -- security options -----------------------------------------------------------------------------

CUSTOM = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}


def test_seccomp_for_security_opts() -> None:
    builtin = default_profile(DEFAULT_CAPS)
    custom = from_docker_profile(json.dumps(CUSTOM), DEFAULT_CAPS)
    assert seccomp_for([], DEFAULT_CAPS, False) == builtin
    assert seccomp_for(["seccomp=builtin"], DEFAULT_CAPS, False) == builtin
    assert seccomp_for(["label=disable", "no-new-privileges", "apparmor=x", "bogus=1"], DEFAULT_CAPS,
                       False) == builtin  # other options are someone else's to check
    assert seccomp_for(["seccomp=unconfined"], DEFAULT_CAPS, False) is None
    assert seccomp_for(["seccomp:unconfined"], DEFAULT_CAPS, False) is None  # the deprecated form
    assert seccomp_for([f"seccomp={json.dumps(CUSTOM)}"], DEFAULT_CAPS, False) == custom
    assert seccomp_for([f"seccomp:{json.dumps(CUSTOM)}"], DEFAULT_CAPS, False) == custom
    assert seccomp_for(["seccomp=unconfined", "seccomp=builtin"], DEFAULT_CAPS, False) == builtin  # last wins
    # --privileged: no filter, unless a custom profile is asked for (as dockerd)
    assert seccomp_for([], CAP_NAMES, True) is None
    assert seccomp_for(["seccomp=builtin"], CAP_NAMES, True) is None
    assert seccomp_for([f"seccomp={json.dumps(CUSTOM)}"], CAP_NAMES, True) == custom
    # the capabilities decide the cap-conditional rules
    admin = seccomp_for([], [*DEFAULT_CAPS, "CAP_SYS_ADMIN"], False)
    assert admin is not None and allowed(admin, "mount") and not allowed(builtin, "mount")


def test_seccomp_for_bad_profile() -> None:
    with pytest.raises(InvalidArgument, match="Decoding seccomp profile failed"):
        seccomp_for(["seccomp=/etc/profile.json"], DEFAULT_CAPS, False)  # a path, not its content
    with pytest.raises(InvalidArgument, match="SCMP_ACT_NOPE"):
        seccomp_for(['seccomp={"defaultAction": "SCMP_ACT_NOPE"}'], DEFAULT_CAPS, False)


# -- the runtime's ENOSYS stub (pure BPF generation, no kernel involved) ------------------------

def run_stub(program: bytes, arch: int, nr: int) -> str:
    """Interpret the stub for one seccomp_data: "enosys", or "filter" (libseccomp's program runs)."""
    from dockyard.runtime.linux import seccomp as rt

    insns = [rt._SOCK_FILTER.unpack_from(program, off) for off in range(0, len(program), 8)]
    data, acc, pc = {0: nr, 4: arch}, 0, 0
    while pc < len(insns):
        op, jt, jf, k = insns[pc]
        pc += 1
        if op == rt._LD_W_ABS:
            acc = data[k]
        elif op == rt._JA:
            pc += k
        elif op == rt._RET_K:
            assert k == rt.ACT_ERRNO | 38
            return "enosys"
        else:
            hit = {rt._JEQ: acc == k, rt._JGT: acc > k, rt._JSET: bool(acc & k)}[op]
            pc += jt if hit else jf
    return "filter"


def test_enosys_stub_only_catches_syscalls_newer_than_the_profile() -> None:
    from dockyard.runtime.linux.seccomp import _enosys_stub

    x86_64, i386, aarch64, s390x, x32 = 0xC000003E, 0x40000003, 0xC00000B7, 0x80000016, 0x40000000
    stub = _enosys_stub({x86_64: {"main": 456, "x32": x32 | 547}, i386: {"main": 460}, s390x: {"main": 400}})
    cases = {(x86_64, 456): "filter", (x86_64, 457): "enosys", (x86_64, 0): "filter",
             (x86_64, x32 | 500): "filter", (x86_64, x32 | 548): "enosys",
             (i386, 460): "filter", (i386, 461): "enosys", (aarch64, 9999): "filter",
             (s390x, 0): "enosys", (s390x, 1): "filter", (s390x, 401): "enosys"}
    assert {case: run_stub(stub, *case) for case in cases} == cases
    native_only = _enosys_stub({x86_64: {"main": 456}})  # x32 not in the filter: libseccomp decides
    assert run_stub(native_only, x86_64, x32 | 9999) == "filter"
    assert run_stub(native_only, x86_64, 457) == "enosys"


def test_runtime_filter_cache_round_trip(tmp_path: Path) -> None:
    """The runtime keeps the compiled program by profile content: the second container with the
    same profile reads it instead of compiling, and gets the same program."""
    from dockyard.runtime.linux import seccomp as rt
    try:
        first = rt.Filter(default_profile(list(DEFAULT_CAPS)), str(tmp_path))
    except InvalidArgument as exc:  # no libseccomp on this machine
        pytest.skip(str(exc))
    (entry,) = list(tmp_path.iterdir())
    assert len(entry.name) == 64
    second = rt.Filter(default_profile(list(DEFAULT_CAPS)), str(tmp_path))
    assert second._program.raw == first._program.raw and second._flags == first._flags
    # another profile is another entry; a torn entry is ignored and recompiled
    rt.Filter(default_profile(["CAP_SYS_ADMIN"]), str(tmp_path))
    assert len(list(tmp_path.iterdir())) == 2
    entry.write_bytes(b"\0" * 5)
    third = rt.Filter(default_profile(list(DEFAULT_CAPS)), str(tmp_path))
    assert third._program.raw == first._program.raw


def test_default_profile_cached_but_fresh_per_call() -> None:
    caps = list(DEFAULT_CAPS)
    a, b = seccomp.default_profile(caps), seccomp.default_profile(caps)
    assert a == b and a is not b
    a["syscalls"].clear()   # a caller may change its copy
    assert seccomp.default_profile(caps) == b
    assert seccomp.default_profile(caps) == seccomp.resolve(seccomp.docker_default(), caps)
