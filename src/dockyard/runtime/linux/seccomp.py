"""``linux.seccomp`` through libseccomp (the system library runc itself links), bound with ctypes.

The whole BPF program is generated before the init reports ``ready`` (so a bad profile fails
``create``, and libseccomp is opened while the host's filesystem is still the root); ``load``, right
before execve, is one seccomp(2) call. Semantics follow runc: a profile with neither a default
action nor syscalls means no filter; rules whose action equals the default are skipped; names
libseccomp does not know are skipped, names it knows only for another ABI (``socketcall`` on
x86_64) are added to the filter's ABIs that have them; several conditions on one argument become
separate rules (OR), as libseccomp only ANDs distinct arguments; a rule's ``errnoRet`` defaults to
EPERM, ``defaultErrnoRet`` applies to the default action only; without a ``flags`` list the filter
gets SECCOMP_FILTER_FLAG_SPEC_ALLOW; unless the default action allows, syscalls newer than every
syscall the profile names get ENOSYS (runc's patchbpf stub).

Cost, Docker's default profile on x86_64 (+ x86 + x32), libseccomp 2.5.4: ~14 ms to compile in
``create`` (nearly all inside libseccomp, growing with the number of ABIs), ~1 ms to load. So the
compiled program is kept in a cache under the runtime's root (keyed by the profile's content; a
tmpfs under /run, so it goes at reboot with the kernel it was made for): every container with
the same profile after the first pays a file read.
"""

from __future__ import annotations

import ctypes
import os
import struct

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
_ACTIONS = {"SCMP_ACT_KILL": ACT_KILL_THREAD, "SCMP_ACT_KILL_THREAD": ACT_KILL_THREAD,
            "SCMP_ACT_KILL_PROCESS": ACT_KILL_PROCESS, "SCMP_ACT_TRAP": ACT_TRAP, "SCMP_ACT_LOG": ACT_LOG,
            "SCMP_ACT_ALLOW": ACT_ALLOW}
_EPERM, _EINVAL, _ENOSYS = 1, 22, 38
_ALLOW_LIKE = ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE")  # no ENOSYS stub (runc)
_NR_SCMP_ERROR = -1  # what seccomp_syscall_resolve_name returns for a name it does not know

_OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
        "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}

# runtime-spec flag → (seccomp(2) flag bit, libseccomp API level that says the kernel has it).
# TSYNC: the init is single-threaded (runc ignores it too); WAIT_KILLABLE_RECV only matters with a
# notify listener, which is refused. A flag the kernel lacks is dropped: it only tunes logging or
# a mitigation default.
_FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": (0, 0), "SECCOMP_FILTER_FLAG_LOG": (2, 3),
          "SECCOMP_FILTER_FLAG_SPEC_ALLOW": (4, 4), "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": (0, 0)}
_SET_MODE_FILTER = 1
_CACHE_FORMAT = 2  # bump when the program this module generates for a profile changes
_BPF_MAXINSNS = 4096
_SOCK_FILTER = struct.Struct("=HBBI")  # struct sock_filter, host byte order
_MAX_ARGS = 6


def _sha256(data: bytes) -> str:
    try:  # the builtin module: hashlib would load OpenSSL, ~2.5 ms on every container start
        from _sha256 import sha256
    except ImportError:
        from hashlib import sha256
    return str(sha256(data).hexdigest())


def preload() -> None:
    """Import now what compiling a filter imports lazily (for a process that forks runtimes)."""
    _sha256(b"")


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


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
    lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
    lib.seccomp_arch_native.restype = ctypes.c_uint32
    lib.seccomp_api_get.restype = ctypes.c_uint
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    return lib


def action(name: str, errno_ret: int | None, default_errno: int | None) -> int:
    """libseccomp's action value; ERRNO/TRACE carry ``errno_ret``, else ``default_errno``, else
    EPERM (callers pass ``default_errno`` only for the default action, as runc does)."""
    if name in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
        ret = errno_ret if errno_ret is not None else default_errno
        base = ACT_ERRNO if name == "SCMP_ACT_ERRNO" else ACT_TRACE
        return base | ((_EPERM if ret is None else ret) & 0xFFFF)
    if name == "SCMP_ACT_NOTIFY":
        raise InvalidArgument("linux.seccomp: SCMP_ACT_NOTIFY is not supported by dockyard-runtime "
                              "(no seccomp notify listener)")
    if name not in _ACTIONS:
        raise InvalidArgument(f"linux.seccomp: unsupported action {name!r}")
    return _ACTIONS[name]


def condition_sets(args: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """One list of conditions per rule: split when an argument index repeats (runc's OR semantics)."""
    if not args:
        return [[]]
    indexes = [a.get("index", 0) for a in args]
    if len(set(indexes)) == len(indexes):
        return [args]
    return [[a] for a in args]


def _conditions(conds: list[dict[str, Any]]) -> Any:
    arr = (_ArgCmp * len(conds))()
    for i, c in enumerate(conds):
        op = _OPS.get(c.get("op", ""))
        if op is None:
            raise InvalidArgument(f"linux.seccomp: unknown operator {c.get('op')!r}")
        index = c.get("index", 0)
        if not 0 <= index < _MAX_ARGS:
            raise InvalidArgument(f"linux.seccomp: argument index {index} out of range (0-5)")
        # MASKED_EQ: (arg & value) == valueTwo; libseccomp takes the mask as datum_a
        arr[i] = _ArgCmp(index, op, c.get("value", 0), c.get("valueTwo", 0))
    return arr


class Filter:
    """A compiled, not yet loaded, seccomp filter: the whole BPF program is generated here (before
    pivot_root, while libseccomp can still be opened); ``load`` is then a single seccomp(2) call."""

    def __init__(self, profile: dict[str, Any], cache_dir: str | None = None) -> None:
        self._program: Any = None
        self._libc = ctypes.CDLL(None, use_errno=True)
        key = ""
        if cache_dir:
            # repr of the decoded JSON is deterministic for the same text (``import json`` would
            # cost ~7 ms per container start: see runtime/jsonio.py)
            blob = repr(profile).encode()
            key = _sha256(b"%d\0%s\0" % (_CACHE_FORMAT, os.uname().machine.encode()) + blob)
            if self._cached(os.path.join(cache_dir, key)):
                return
        rules = profile.get("syscalls") or []
        default_name = profile.get("defaultAction") or ""
        if not default_name and not rules:
            return  # runc: "no default action, no syscalls: seccomp disabled"
        if profile.get("listenerPath"):
            raise InvalidArgument("linux.seccomp: listenerPath is not supported by dockyard-runtime")
        lib = _lib()
        default = action(default_name, None, profile.get("defaultErrnoRet"))
        ctx = lib.seccomp_init(default)
        if not ctx:
            raise InvalidArgument("linux.seccomp: seccomp_init failed")
        try:
            arches = _add_arches(lib, ctx, profile.get("architectures") or [])
            _add_rules(lib, ctx, default, rules)
            self._flags = _kernel_flags(lib, profile.get("flags"))
            stub = b"" if default_name in _ALLOW_LIKE else _enosys_stub(_last_syscalls(lib, arches, rules))
            program = stub + _export(lib, ctx)
        finally:
            lib.seccomp_release(ctx)
        if len(program) // 8 > _BPF_MAXINSNS:
            raise InvalidArgument(f"linux.seccomp: the filter has {len(program) // 8} instructions, more "
                                  f"than the kernel's limit of {_BPF_MAXINSNS}")
        self._program = ctypes.create_string_buffer(program, len(program))
        self._nr_seccomp = lib.seccomp_syscall_resolve_name(b"seccomp")
        if key:
            self._store(cache_dir or "", key, program)

    def _cached(self, path: str) -> bool:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return False
        if len(data) < 8 or (len(data) - 8) % 8:
            return False
        self._flags, self._nr_seccomp = struct.unpack("=II", data[:8])
        self._program = ctypes.create_string_buffer(data[8:], len(data) - 8)
        return True

    def _store(self, cache_dir: str, key: str, program: bytes) -> None:
        """Best effort: a full or read-only disk costs the next container a compile, not a start."""
        tmp = os.path.join(cache_dir, f".{key}.{os.getpid()}")
        try:
            os.makedirs(cache_dir, mode=0o700, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(struct.pack("=II", self._flags, self._nr_seccomp) + program)
            os.rename(tmp, os.path.join(cache_dir, key))   # readers see the whole program or none
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass

    def load(self) -> None:
        if self._program is None:
            return
        prog = _SockFprog(len(self._program) // 8, ctypes.addressof(self._program))
        flags = self._flags
        while True:
            rc = self._libc.syscall(ctypes.c_long(self._nr_seccomp), ctypes.c_long(_SET_MODE_FILTER),
                                    ctypes.c_long(flags), ctypes.byref(prog))
            err = ctypes.get_errno()
            if rc == 0:
                return
            if err == _EINVAL and flags:
                flags = 0  # a kernel without LOG/SPEC_ALLOW: they only tune logging and mitigations
                continue
            raise OSError(err, f"loading the seccomp filter failed: {os.strerror(err)}")


def _add_arches(lib: ctypes.CDLL, ctx: int, names: list[str]) -> list[int]:
    """Add the profile's architectures; returns every arch token in the filter (native first)."""
    tokens = [lib.seccomp_arch_native()]
    for arch in names:
        token = lib.seccomp_arch_resolve_name(arch.removeprefix("SCMP_ARCH_").lower().encode())
        if token == 0:
            raise InvalidArgument(f"linux.seccomp: unknown architecture {arch!r}")
        rc = lib.seccomp_arch_add(ctx, token)
        if rc not in (0, -17):  # -EEXIST: the native arch is always present
            raise InvalidArgument(f"linux.seccomp: cannot add architecture {arch!r} ({rc})")
        if token not in tokens:
            tokens.append(token)
    return tokens


def _add_rules(lib: ctypes.CDLL, ctx: int, default: int, rules: list[dict[str, Any]]) -> None:
    no_args = (_ArgCmp * 1)()
    for rule in rules:
        act = action(rule.get("action") or "", rule.get("errnoRet"), None)
        if act == default:
            continue
        arrays = [(len(conds), _conditions(conds) if conds else no_args)
                  for conds in condition_sets(rule.get("args") or [])]
        for name in rule.get("names") or []:
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr == _NR_SCMP_ERROR:
                continue  # unknown to libseccomp: runc skips it too
            for count, arr in arrays:
                rc = lib.seccomp_rule_add_array(ctx, act, nr, count, arr)
                if rc < 0:
                    raise InvalidArgument(f"linux.seccomp: cannot add rule for {name} ({rc})")


def _kernel_flags(lib: ctypes.CDLL, names: list[str] | None) -> int:
    """seccomp(2) flags for the profile's ``flags`` (SPEC_ALLOW when there is no list, as runc);
    a flag libseccomp's API level says this kernel lacks is dropped."""
    api = lib.seccomp_api_get()
    flags = 0
    for name in ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"] if names is None else names:
        if name not in _FLAGS:
            raise InvalidArgument(f"linux.seccomp: unknown flag {name!r}")
        bit, min_api = _FLAGS[name]
        if api >= min_api:
            flags |= bit
    return flags


def _export(lib: ctypes.CDLL, ctx: int) -> bytes:
    fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
    try:
        rc = lib.seccomp_export_bpf(ctx, fd)
        if rc < 0:
            raise InvalidArgument(f"linux.seccomp: cannot generate the filter ({rc})")
        return os.pread(fd, os.lseek(fd, 0, os.SEEK_END), 0)
    finally:
        os.close(fd)


# -- the ENOSYS stub ----------------------------------------------------------------------------
# A profile lists the syscalls its author knew. A syscall newer than all of them (on its ABI) gets
# ENOSYS instead of the default action, so a libc probing for it falls back to the old call
# instead of failing on EPERM. runc prepends the same check to libseccomp's program.

_LD_W_ABS, _JA, _JEQ, _JGT, _JSET, _RET_K = 0x20, 0x05, 0x15, 0x25, 0x45, 0x06
_AUDIT_ARCH_X86_64 = 0xC000003E
_SCMP_ARCH_X32 = 0x4000003E      # libseccomp's token; the kernel reports x32 as x86_64 + bit 30
_X32_SYSCALL_BIT = 0x40000000
_S390_ARCHES = (0x16, 0x80000016)  # unknown syscalls arrive as 0, the multiplexer


def _last_syscalls(lib: ctypes.CDLL, tokens: list[int], rules: list[dict[str, Any]]) -> dict[int, dict[str, int]]:
    """Per audit arch, the highest syscall number the profile names: ``main`` and, on x86_64, ``x32``."""
    names = {name.encode() for rule in rules for name in rule.get("names") or []}
    last: dict[int, dict[str, int]] = {}
    for token in tokens:
        numbers = [lib.seccomp_syscall_resolve_name_arch(token, n) for n in names]
        highest = max((n for n in numbers if n >= 0), default=None)
        if highest is None:
            continue
        audit = _AUDIT_ARCH_X86_64 if token == _SCMP_ARCH_X32 else token
        last.setdefault(audit, {})["x32" if token == _SCMP_ARCH_X32 else "main"] = highest
    return last


def _enosys_stub(last: dict[int, dict[str, int]]) -> bytes:
    """BPF: for the filter's arches, ``nr`` above the profile's last syscall → ERRNO(ENOSYS);
    everything else falls through to libseccomp's program (which reloads what it needs)."""
    code: list[tuple[int, int | str, int | str, int]] = [(_LD_W_ABS, 0, 0, 4)]  # seccomp_data.arch
    for audit, highest in last.items():
        block: list[tuple[int, int | str, int | str, int]] = [(_LD_W_ABS, 0, 0, 0)]  # .nr
        if audit in _S390_ARCHES:
            block.append((_JEQ, "enosys", 0, 0))
        main, x32 = highest.get("main"), highest.get("x32")
        if audit == _AUDIT_ARCH_X86_64 and x32 is not None and main is not None:
            block += [(_JSET, 1, 0, _X32_SYSCALL_BIT), (_JGT, "enosys", "filter", main),
                      (_JGT, "enosys", "filter", x32)]
        elif audit == _AUDIT_ARCH_X86_64 and x32 is not None:
            block += [(_JSET, 0, "filter", _X32_SYSCALL_BIT), (_JGT, "enosys", "filter", x32)]
        elif audit == _AUDIT_ARCH_X86_64:  # x32 calls are not this ABI's: libseccomp decides
            block += [(_JSET, "filter", 0, _X32_SYSCALL_BIT), (_JGT, "enosys", "filter", main or 0)]
        else:
            block.append((_JGT, "enosys", "filter", main or 0))
        code.append((_JEQ, 0, len(block), audit))  # another arch: skip this block
        code += block
    labels = {"enosys": len(code) + 1, "filter": len(code) + 2}
    code += [(_JA, 0, 0, 1), (_RET_K, 0, 0, ACT_ERRNO | _ENOSYS)]
    out = bytearray()
    for i, (op, jt, jf, k) in enumerate(code):
        offsets = [labels[j] - i - 1 if isinstance(j, str) else j for j in (jt, jf)]
        if not all(0 <= off <= 255 for off in offsets):
            raise InvalidArgument("linux.seccomp: too many architectures for the ENOSYS stub")
        out += _SOCK_FILTER.pack(op, offsets[0], offsets[1], k)
    return bytes(out)
