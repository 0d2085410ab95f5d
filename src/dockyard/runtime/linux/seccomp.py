"""``linux.seccomp`` through libseccomp (the system library runc itself links), bound with ctypes.

The filter is compiled before the init reports ``ready`` (so a bad profile fails ``create``) and
loaded just before execve. Semantics follow runc: rules whose action equals the default are skipped,
syscalls unknown to this kernel/libseccomp are skipped, and several conditions on the same argument
become separate rules (OR), as libseccomp only ANDs distinct arguments.
"""

from __future__ import annotations

import ctypes

from dockyard.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ACT_KILL_THREAD = 0x00000000
ACT_KILL_PROCESS = 0x80000000
ACT_TRAP = 0x00030000
ACT_ERRNO = 0x00050000
ACT_TRACE = 0x7FF00000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000
_FLTATR_CTL_NNP = 3
_EPERM = 1

_OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
        "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


def _lib() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError as exc:
        raise InvalidArgument("linux.seccomp is set but libseccomp.so.2 is not installed") from exc
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_ArgCmp)]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    return lib


def action(name: str, errno_ret: int | None, default_errno: int | None) -> int:
    if name == "SCMP_ACT_ERRNO":
        ret = errno_ret if errno_ret is not None else default_errno
        return ACT_ERRNO | ((_EPERM if ret is None else ret) & 0xFFFF)
    if name == "SCMP_ACT_TRACE":
        ret = errno_ret if errno_ret is not None else default_errno
        return ACT_TRACE | ((_EPERM if ret is None else ret) & 0xFFFF)
    table = {"SCMP_ACT_KILL": ACT_KILL_THREAD, "SCMP_ACT_KILL_THREAD": ACT_KILL_THREAD,
             "SCMP_ACT_KILL_PROCESS": ACT_KILL_PROCESS, "SCMP_ACT_TRAP": ACT_TRAP, "SCMP_ACT_LOG": ACT_LOG,
             "SCMP_ACT_ALLOW": ACT_ALLOW}
    if name not in table:
        raise InvalidArgument(f"linux.seccomp: unsupported action {name!r}")
    return table[name]


def condition_sets(args: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """One list of conditions per rule: split when an argument index repeats (runc's OR semantics)."""
    if not args:
        return [[]]
    indexes = [a.get("index", 0) for a in args]
    if len(set(indexes)) == len(indexes):
        return [args]
    return [[a] for a in args]


class Filter:
    """A compiled, not yet loaded, seccomp filter."""

    def __init__(self, profile: dict[str, Any]) -> None:
        self._lib = _lib()
        default_errno = profile.get("defaultErrnoRet")
        default = action(profile.get("defaultAction") or "SCMP_ACT_ALLOW", None, default_errno)
        ctx = self._lib.seccomp_init(default)
        if not ctx:
            raise InvalidArgument("linux.seccomp: seccomp_init failed")
        self._ctx: int | None = ctx
        self._lib.seccomp_attr_set(ctx, _FLTATR_CTL_NNP, 0)  # noNewPrivileges is the spec's choice
        for arch in profile.get("architectures") or []:
            token = self._lib.seccomp_arch_resolve_name(arch.removeprefix("SCMP_ARCH_").lower().encode())
            if token == 0:
                raise InvalidArgument(f"linux.seccomp: unknown architecture {arch!r}")
            rc = self._lib.seccomp_arch_add(ctx, token)
            if rc not in (0, -17):  # -EEXIST: the native arch is always present
                raise InvalidArgument(f"linux.seccomp: cannot add architecture {arch!r} ({rc})")
        for rule in profile.get("syscalls") or []:
            act = action(rule.get("action") or "", rule.get("errnoRet"), default_errno)
            if act == default:
                continue
            for name in rule.get("names") or []:
                nr = self._lib.seccomp_syscall_resolve_name(name.encode())
                if nr < 0:
                    continue  # not a syscall on this kernel/arch: runc skips it too
                for conds in condition_sets(rule.get("args") or []):
                    arr = (_ArgCmp * max(len(conds), 1))()
                    for i, c in enumerate(conds):
                        op = _OPS.get(c.get("op", ""))
                        if op is None:
                            raise InvalidArgument(f"linux.seccomp: unknown operator {c.get('op')!r}")
                        arr[i] = _ArgCmp(c.get("index", 0), op, c.get("value", 0), c.get("valueTwo", 0))
                    rc = self._lib.seccomp_rule_add_array(ctx, act, nr, len(conds), arr)
                    if rc < 0:
                        raise InvalidArgument(f"linux.seccomp: cannot add rule for {name} ({rc})")

    def load(self) -> None:
        if self._ctx is None:
            return
        rc = self._lib.seccomp_load(self._ctx)
        self._lib.seccomp_release(self._ctx)
        self._ctx = None
        if rc < 0:
            raise OSError(-rc, f"seccomp_load failed: error {-rc}")
