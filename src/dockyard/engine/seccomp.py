"""Seccomp profiles → the OCI ``linux.seccomp`` object a container's bundle carries.

Two sources, one path: Docker's default profile is written here as a Docker-format profile
(``docker_default``) and goes through the same resolver as a user's ``--security-opt
seccomp=<json>``. Resolving applies each rule's ``includes``/``excludes`` (capabilities of the
container, the host's architecture and kernel) the way moby's ``profiles/seccomp`` does, checks
actions, operators, architectures and flags up front (so a bad profile fails ``create`` with a
message naming the bad field, not the runtime later), and emits plain runtime-spec JSON that
dockyard-runtime and runc load the same way.
"""

from __future__ import annotations

import json
import platform
from typing import Any

from dockyard.errors import Internal, InvalidArgument

# -- Docker's default profile, as named groups --------------------------------------------------

# Allowed for every container. Names a kernel or libseccomp does not know are skipped by the
# runtime, so 32-bit-only and newer syscalls are listed as Docker lists them.
_ALLOWED = {
    "files": """access chdir chmod chown chown32 close close_range copy_file_range creat dup dup2
        dup3 faccessat faccessat2 fadvise64 fadvise64_64 fallocate fchdir fchmod fchmodat fchmodat2
        fchown fchown32 fchownat fcntl fcntl64 fdatasync flock fstat fstat64 fstatat64 fstatfs
        fstatfs64 fsync ftruncate ftruncate64 futimesat getcwd getdents getdents64 ioctl lchown
        lchown32 link linkat _llseek lseek lstat lstat64 mkdir mkdirat mknod mknodat name_to_handle_at
        newfstatat open openat openat2 pread64 preadv preadv2 pwrite64 pwritev pwritev2 read
        readahead readlink readlinkat readv rename renameat renameat2 rmdir sendfile sendfile64 splice
        stat stat64 statfs statfs64 statx symlink symlinkat sync sync_file_range syncfs tee truncate
        truncate64 umask unlink unlinkat utime utimensat utimensat_time64 utimes vmsplice write writev
        cachestat listmount statmount""",
    "xattrs": """fgetxattr flistxattr fremovexattr fsetxattr getxattr getxattrat lgetxattr listxattr
        listxattrat llistxattr lremovexattr lsetxattr removexattr removexattrat setxattr setxattrat""",
    "events": """epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2
        epoll_wait epoll_wait_old eventfd eventfd2 fanotify_mark inotify_add_watch inotify_init
        inotify_init1 inotify_rm_watch pipe pipe2 poll ppoll ppoll_time64 pselect6 pselect6_time64
        select _newselect signalfd signalfd4 timerfd_create timerfd_gettime timerfd_gettime64
        timerfd_settime timerfd_settime64""",
    "aio": """io_cancel io_destroy io_getevents io_pgetevents io_pgetevents_time64 io_setup io_submit
        ioprio_get ioprio_set""",
    "processes": """capget capset execve execveat exit exit_group fork getcpu getpgid getpgrp getpid
        getppid getpriority getrandom getrlimit get_robust_list getrusage getsid get_thread_area gettid
        kill landlock_add_rule landlock_create_ruleset landlock_restrict_self map_shadow_stack
        pidfd_open pidfd_send_signal prctl prlimit64 process_mrelease restart_syscall riscv_hwprobe
        rseq seccomp setpgid setpriority setrlimit set_robust_list setsid set_thread_area
        set_tid_address sysinfo tgkill times tkill ugetrlimit uname uretprobe vfork wait4 waitid
        waitpid""",
    "scheduling": """sched_getaffinity sched_getattr sched_getparam sched_get_priority_max
        sched_get_priority_min sched_getscheduler sched_rr_get_interval sched_rr_get_interval_time64
        sched_setaffinity sched_setattr sched_setparam sched_setscheduler sched_yield""",
    "ids": """getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32 getresgid
        getresgid32 getresuid getresuid32 getuid getuid32 setfsgid setfsgid32 setfsuid setfsuid32
        setgid setgid32 setgroups setgroups32 setregid setregid32 setresgid setresgid32 setresuid
        setresuid32 setreuid setreuid32 setuid setuid32""",
    "memory": """brk madvise membarrier memfd_create memfd_secret mincore mlock mlock2 mlockall mmap
        mmap2 mprotect mremap mseal msync munlock munlockall munmap pkey_alloc pkey_free pkey_mprotect
        remap_file_pages futex futex_requeue futex_time64 futex_wait futex_waitv futex_wake""",
    "signals": """alarm pause rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn
        rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sigaltstack
        sigprocmask sigreturn""",
    # reading clocks; adjtimex/clock_adjtime only change the clock with CAP_SYS_TIME (kernel check)
    "time": """adjtimex clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime
        clock_gettime64 clock_nanosleep clock_nanosleep_time64 getitimer gettimeofday nanosleep
        setitimer time timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64
        timer_settime timer_settime64""",
    "ipc": """ipc mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend
        mq_timedsend_time64 mq_unlink msgctl msgget msgrcv msgsnd semctl semget semop semtimedop
        semtimedop_time64 shmat shmctl shmdt shmget""",
    # socket(2) itself is allowed per address family below
    "network": """accept accept4 bind connect getpeername getsockname getsockopt listen recv recvfrom
        recvmmsg recvmmsg_time64 recvmsg send sendmmsg sendmsg sendto setsockopt shutdown socketcall
        socketpair""",
}

# Allowed only when the container holds the capability (Docker's includes.caps): the kernel would
# refuse most of them anyway, the filter shrinks the attack surface when it would not.
_BY_CAP = (
    ("CAP_DAC_READ_SEARCH", "open_by_handle_at"),
    ("CAP_SYS_ADMIN", """bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie
        lsm_get_self_attr lsm_list_modules lsm_set_self_attr mount mount_setattr move_mount open_tree
        perf_event_open quotactl quotactl_fd setdomainname sethostname setns syslog umount umount2
        unshare"""),
    ("CAP_SYS_BOOT", "reboot"),
    ("CAP_SYS_CHROOT", "chroot"),
    ("CAP_SYS_MODULE", "delete_module init_module finit_module"),
    ("CAP_SYS_PACCT", "acct"),
    ("CAP_SYS_PTRACE", "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace"),
    ("CAP_SYS_RAWIO", "iopl ioperm"),
    ("CAP_SYS_TIME", "settimeofday stime clock_settime clock_settime64"),
    ("CAP_SYS_TTY_CONFIG", "vhangup"),
    ("CAP_SYS_NICE", "get_mempolicy mbind set_mempolicy set_mempolicy_home_node"),
    ("CAP_SYSLOG", "syslog"),
    ("CAP_BPF", "bpf"),
    ("CAP_PERFMON", "perf_event_open"),
)

# Allowed on some host architectures only (moby's native arch names)
_BY_ARCH = (
    (("ppc64le",), "sync_file_range2 swapcontext"),
    (("arm", "arm64"), "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls"),
    (("amd64", "x32"), "arch_prctl"),
    (("amd64", "x32", "x86"), "modify_ldt"),
    (("s390", "s390x"), "s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr"),
    (("riscv64",), "riscv_flush_icache"),
)

# A host's native filter architecture and the other ABIs its kernel runs (Docker's archMap)
ARCH_MAP = {
    "SCMP_ARCH_X86_64": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "SCMP_ARCH_AARCH64": ["SCMP_ARCH_ARM"],
    "SCMP_ARCH_MIPS64": ["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32"],
    "SCMP_ARCH_MIPS64N32": ["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64"],
    "SCMP_ARCH_MIPSEL64": ["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64N32"],
    "SCMP_ARCH_MIPSEL64N32": ["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64"],
    "SCMP_ARCH_S390X": ["SCMP_ARCH_S390"],
    "SCMP_ARCH_RISCV64": [],
    "SCMP_ARCH_LOONGARCH64": [],
}
SCMP_ARCHES = frozenset([*ARCH_MAP, "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_MIPS",
                         "SCMP_ARCH_MIPSEL", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE",
                         "SCMP_ARCH_S390"])
# platform.machine() → moby's native name → libseccomp's filter architecture
_NATIVE = {"x86_64": "amd64", "amd64": "amd64", "i386": "x86", "i686": "x86", "aarch64": "arm64",
           "arm64": "arm64", "armv7l": "arm", "armv6l": "arm", "ppc64le": "ppc64le", "s390x": "s390x",
           "riscv64": "riscv64", "loongarch64": "loong64", "mips64": "mips64"}
_SCMP_OF_NATIVE = {"amd64": "SCMP_ARCH_X86_64", "x86": "SCMP_ARCH_X86", "arm64": "SCMP_ARCH_AARCH64",
                   "arm": "SCMP_ARCH_ARM", "ppc64le": "SCMP_ARCH_PPC64LE", "s390x": "SCMP_ARCH_S390X",
                   "riscv64": "SCMP_ARCH_RISCV64", "loong64": "SCMP_ARCH_LOONGARCH64",
                   "mips64": "SCMP_ARCH_MIPS64"}

ACTIONS = frozenset(["SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP",
                     "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_LOG", "SCMP_ACT_ALLOW"])
OPERATORS = frozenset(["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE",
                       "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"])
FLAGS = frozenset(["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                   "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"])

_EPERM, _ENOSYS = 1, 38
# CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP
CLONE_NS_FLAGS = 0x7E020000
_AF_ALG, _AF_VSOCK = 38, 40
# PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32, and 0xffffffff (query the persona)
_PERSONAS = (0x0, 0x0008, 0x20000, 0x20008, 0xFFFFFFFF)


def _names(text: str) -> list[str]:
    return text.split()


def _arg(index: int, value: int, op: str) -> dict[str, Any]:
    return {"index": index, "value": value, "op": op}


def docker_default() -> dict[str, Any]:
    """Docker's default profile in Docker's own format (conditions not yet applied)."""
    allow = "SCMP_ACT_ALLOW"
    rules: list[dict[str, Any]] = [
        {"names": [n for group in _ALLOWED.values() for n in _names(group)], "action": allow},
        # ptrace is safe under seccomp from 4.8 on (a tracer can no longer bypass the filter)
        {"names": ["process_vm_readv", "process_vm_writev", "ptrace"], "action": allow,
         "includes": {"minKernel": "4.8"}},
        # every address family but AF_ALG (38) and AF_VSOCK (40): one rule per range (OR)
        {"names": ["socket"], "action": allow, "args": [_arg(0, _AF_ALG, "SCMP_CMP_LT")]},
        {"names": ["socket"], "action": allow, "args": [_arg(0, _AF_ALG + 1, "SCMP_CMP_EQ")]},
        {"names": ["socket"], "action": allow, "args": [_arg(0, _AF_VSOCK, "SCMP_CMP_GT")]},
        *({"names": ["personality"], "action": allow, "args": [_arg(0, p, "SCMP_CMP_EQ")]}
          for p in _PERSONAS),
        *({"names": _names(names), "action": allow, "includes": {"arches": list(arches)}}
          for arches, names in _BY_ARCH),
        *({"names": _names(names), "action": allow, "includes": {"caps": [cap]}}
          for cap, names in _BY_CAP),
        # without CAP_SYS_ADMIN: clone only without namespace flags (arg 1 on s390) …
        {"names": ["clone"], "action": allow,
         "args": [{"index": 0, "value": CLONE_NS_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
         "excludes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["s390", "s390x"]}},
        {"names": ["clone"], "action": allow,
         "args": [{"index": 1, "value": CLONE_NS_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
         "includes": {"arches": ["s390", "s390x"]}, "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        # … and clone3 (whose flags sit in memory a filter cannot read) fails with ENOSYS, so libc
        # falls back to clone
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": _ENOSYS,
         "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
    ]
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": _EPERM,
            "archMap": [{"architecture": a, "subArchitectures": subs} for a, subs in ARCH_MAP.items()],
            "syscalls": rules}


# resolved default profiles as JSON, by (caps, arch, kernel): resolving costs ~0.3-1 ms per start
_RESOLVED: dict[tuple[tuple[str, ...], str | None, tuple[int, int] | None], str] = {}


def default_profile(caps: list[str], *, arch: str | None = None,
                    kernel: tuple[int, int] | None = None) -> dict[str, Any]:
    """The OCI ``linux.seccomp`` of Docker's default profile for a container whose (bounding)
    capability set is ``caps``. ``arch`` (moby's native name, e.g. ``amd64``) and ``kernel``
    default to this host's. Each call returns a fresh object (decoded from a cached resolution)."""
    key = (tuple(caps), arch, kernel)
    text = _RESOLVED.get(key)
    if text is None:
        out = resolve(docker_default(), caps, arch=arch, kernel=kernel)
        if out is None:  # cannot happen: the default sets a default action
            raise Internal("the default seccomp profile resolved to no filter")
        if len(_RESOLVED) >= 64:  # a few capability sets are usual; never grow without bound
            _RESOLVED.clear()
        text = _RESOLVED[key] = json.dumps(out)
    result: dict[str, Any] = json.loads(text)
    return result


def from_docker_profile(text: str, caps: list[str], *, arch: str | None = None,
                        kernel: tuple[int, int] | None = None) -> dict[str, Any] | None:
    """A profile in Docker's JSON format (what ``--security-opt seccomp=FILE`` sends) → OCI
    ``linux.seccomp``; None when it sets neither a default action nor syscalls (Docker then runs
    the container without a filter)."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise InvalidArgument(f"Decoding seccomp profile failed: {exc}") from exc
    if doc is None:  # JSON null decodes to an empty profile in Go
        doc = {}
    if not isinstance(doc, dict):
        raise InvalidArgument("Decoding seccomp profile failed: the profile must be a JSON object, "
                              f"not {_json_type(doc)}")
    return resolve(doc, caps, arch=arch, kernel=kernel)


def seccomp_for(security_opt: list[str], caps: list[str], privileged: bool) -> dict[str, Any] | None:
    """The ``linux.seccomp`` for a container from its HostConfig.SecurityOpt, as dockerd's
    WithSeccomp decides it: ``seccomp=unconfined`` → none; ``--privileged`` → none unless a custom
    profile is given; ``seccomp=<JSON>`` → that profile; otherwise (and ``seccomp=builtin``) the
    default profile. Other options are ignored here."""
    value = ""
    for opt in security_opt:
        # dockerd splits at the first "=", or failing that at ":" (the deprecated form)
        key, sep, val = opt.partition("=") if "=" in opt else opt.partition(":")
        if sep and key == "seccomp":
            value = val
    if value == "unconfined":
        return None
    if value in ("", "builtin"):
        return None if privileged else default_profile(caps)
    return from_docker_profile(value, caps)


# -- resolving a Docker-format profile ----------------------------------------------------------

def host_arch() -> str:
    """This host's architecture in moby's native naming (``amd64``, ``arm64``, …)."""
    machine = platform.machine()
    return _NATIVE.get(machine, machine)


def host_kernel() -> tuple[int, int]:
    release = platform.release()
    parts = release.split("-", 1)[0].split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError) as exc:
        raise Internal(f"failed to parse kernel version {release!r}") from exc


def resolve(doc: dict[str, Any], caps: list[str], *, arch: str | None = None,
            kernel: tuple[int, int] | None = None) -> dict[str, Any] | None:
    """Apply a Docker-format profile's conditions → OCI ``linux.seccomp`` (None: no filter)."""
    arch = arch or host_arch()
    default_action = _get(doc, "defaultAction", str, "defaultAction") or ""
    rules = _get(doc, "syscalls", list, "syscalls") or []
    if not default_action and not rules:
        return None
    for key in ("listenerPath", "listenerMetadata"):
        if _get(doc, key, str, key):
            raise InvalidArgument(f"seccomp profile: {key} is not supported: dockyard has no "
                                  "seccomp notify agent (SCMP_ACT_NOTIFY)")
    if not default_action:
        raise InvalidArgument("seccomp profile: defaultAction is required when syscalls are listed")
    out: dict[str, Any] = {"defaultAction": _action(default_action, "defaultAction")}
    errno = _uint(_get(doc, "defaultErrnoRet", int, "defaultErrnoRet"), "defaultErrnoRet")
    if errno is not None:
        out["defaultErrnoRet"] = errno
    arches = _strings(_get(doc, "architectures", list, "architectures"), "architectures")
    arch_map = _get(doc, "archMap", list, "archMap") or []
    if arches and arch_map:
        raise InvalidArgument("both 'architectures' and 'archMap' are specified in the seccomp "
                              "profile, use either 'architectures' or 'archMap'")
    native = _SCMP_OF_NATIVE.get(arch)
    for i, entry in enumerate(arch_map):
        where = f"archMap[{i}]"
        if not isinstance(entry, dict):
            raise _decode_error(where, "an object", entry)
        main = _get(entry, "architecture", str, f"{where}.architecture") or ""
        subs = _strings(_get(entry, "subArchitectures", list, f"{where}.subArchitectures"),
                        f"{where}.subArchitectures")
        for a in (main, *subs):
            _check_arch(a)
        if main == native and not arches:
            arches = [main, *subs]
    for a in arches:
        _check_arch(a)
    if arches:
        out["architectures"] = arches
    flags = _get(doc, "flags", list, "flags")
    if flags is not None:
        for flag in _strings(flags, "flags"):
            if flag not in FLAGS:
                raise InvalidArgument(f"seccomp profile: unknown flag {flag!r} (known: "
                                      f"{', '.join(sorted(FLAGS))})")
        out["flags"] = flags  # kept even when empty: [] turns off the runtime's default flags
    syscalls = []
    for i, rule in enumerate(rules):
        where = f"syscalls[{i}]"
        if not isinstance(rule, dict):
            raise _decode_error(where, "an object", rule)
        entry = _syscall(rule, where)
        excludes = _condition(rule, f"{where}.excludes")
        includes = _condition(rule, f"{where}.includes")
        if excludes is not None and _any_holds(excludes, caps, arch, kernel):
            continue
        if includes is not None and not _all_hold(includes, caps, arch, kernel):
            continue
        if entry["names"]:
            syscalls.append(entry)
    out["syscalls"] = syscalls
    return out


def _syscall(rule: dict[str, Any], where: str) -> dict[str, Any]:
    name = _get(rule, "name", str, f"{where}.name") or ""
    names = _strings(_get(rule, "names", list, f"{where}.names"), f"{where}.names")
    if name:
        if names:
            raise InvalidArgument("both 'name' and 'names' are specified in the seccomp profile, "
                                  "use either 'name' or 'names'")
        names = [name]
    if "" in names:
        raise InvalidArgument(f"seccomp profile: {where}: empty string is not a valid syscall")
    action = _action(_get(rule, "action", str, f"{where}.action") or "", f"{where}.action")
    entry: dict[str, Any] = {"names": names, "action": action}
    errno = _uint(_get(rule, "errnoRet", int, f"{where}.errnoRet"), f"{where}.errnoRet")
    if errno is not None:
        entry["errnoRet"] = errno
    args = []
    for j, arg in enumerate(_get(rule, "args", list, f"{where}.args") or []):
        at = f"{where}.args[{j}]"
        if not isinstance(arg, dict):
            raise _decode_error(at, "an object", arg)
        index = _uint(_get(arg, "index", int, f"{at}.index"), f"{at}.index") or 0
        if index > 5:
            raise InvalidArgument(f"seccomp profile: {at}.index {index} is out of range: a syscall "
                                  "has at most 6 arguments (0-5)")
        op = _get(arg, "op", str, f"{at}.op") or ""
        if op not in OPERATORS:
            raise InvalidArgument(f"seccomp profile: {at}.op: string {op} is not a valid operator "
                                  "for seccomp")
        value = _uint(_get(arg, "value", int, f"{at}.value"), f"{at}.value") or 0
        value_two = _uint(_get(arg, "valueTwo", int, f"{at}.valueTwo"), f"{at}.valueTwo") or 0
        args.append({"index": index, "value": value, "valueTwo": value_two, "op": op})
    if args:
        entry["args"] = args
    return entry


_Condition = tuple[list[str], list[str], tuple[int, int] | None]


def _condition(rule: dict[str, Any], where: str) -> _Condition | None:
    """An includes/excludes filter: (arches, caps, minKernel)."""
    cond = _get(rule, where.rsplit(".", 1)[1], dict, where)
    if cond is None:
        return None
    return (_strings(_get(cond, "arches", list, f"{where}.arches"), f"{where}.arches"),
            _strings(_get(cond, "caps", list, f"{where}.caps"), f"{where}.caps"),
            _min_kernel(_get(cond, "minKernel", str, f"{where}.minKernel"), f"{where}.minKernel"))


def _kernel_at_least(version: tuple[int, int], kernel: tuple[int, int] | None) -> bool:
    return (kernel or host_kernel()) >= version


def _all_hold(cond: _Condition, caps: list[str], arch: str, kernel: tuple[int, int] | None) -> bool:
    """includes: every listed condition holds (each listed cap is held)."""
    arches, wanted, min_kernel = cond
    return ((not arches or arch in arches) and all(c in caps for c in wanted)
            and (min_kernel is None or _kernel_at_least(min_kernel, kernel)))


def _any_holds(cond: _Condition, caps: list[str], arch: str, kernel: tuple[int, int] | None) -> bool:
    """excludes: any listed condition holds (any listed cap is held)."""
    arches, wanted, min_kernel = cond
    return (arch in arches or any(c in caps for c in wanted)
            or (min_kernel is not None and _kernel_at_least(min_kernel, kernel)))


def _min_kernel(value: str | None, where: str) -> tuple[int, int] | None:
    if not value:
        return None
    parts = value.split(".")
    expected = f'invalid kernel version: "{value}", expected "<kernel>.<major>"'
    if len(parts) != 2 or not all(p.isdigit() and int(p) < 256 for p in parts):
        raise InvalidArgument(f"seccomp profile: {where}: {expected}")
    version = (int(parts[0]), int(parts[1]))
    if version == (0, 0):
        raise InvalidArgument(f"seccomp profile: {where}: {expected}: version cannot be 0.0")
    return version


def _action(name: str, where: str) -> str:
    if name == "SCMP_ACT_NOTIFY":
        raise InvalidArgument(f"seccomp profile: {where}: SCMP_ACT_NOTIFY is not supported: dockyard "
                              "has no seccomp notify agent")
    if name not in ACTIONS:
        raise InvalidArgument(f"seccomp profile: {where}: string {name} is not a valid action for "
                              "seccomp")
    return name


def _check_arch(name: str) -> None:
    if name not in SCMP_ARCHES:
        raise InvalidArgument(f"seccomp profile: string {name} is not a valid arch for seccomp")


# -- typed access to decoded JSON (Go's decoder: keys match case-insensitively) ----------------

def _get(obj: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key in obj:
        value = obj[key]
    else:
        low = key.lower()
        value = next((v for k, v in obj.items() if k.lower() == low), None)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _decode_error(where, _KIND_NAMES[kind], value)
    return value


_KIND_NAMES = {str: "a string", list: "an array", dict: "an object", int: "an integer"}


def _strings(value: list[Any] | None, where: str) -> list[str]:
    for item in value or []:
        if not isinstance(item, str):
            raise _decode_error(where, "an array of strings", value)
    return list(value or [])


def _uint(value: int | None, where: str) -> int | None:
    if value is not None and not 0 <= value < 2**64:
        raise _decode_error(where, "an unsigned integer", value)
    return value


def _json_type(value: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array",
            dict: "an object"}.get(type(value), type(value).__name__)


def _decode_error(where: str, expected: str, value: Any) -> InvalidArgument:
    return InvalidArgument(f"Decoding seccomp profile failed: {where}: expected {expected}, got "
                           f"{_json_type(value)}")
