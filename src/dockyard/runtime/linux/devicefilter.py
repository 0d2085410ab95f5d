"""cgroup v2 device filtering: the OCI device rules as an eBPF program (BPF_PROG_TYPE_CGROUP_DEVICE).

cgroup v2 has no devices.allow/deny files; the kernel asks a program attached to the cgroup
instead. The rules keep their cgroup v1 meaning, as in runc (libcontainer devicefilter + its
devices emulator): they are applied in order to an emulated v1 devices cgroup (an "a" rule resets
it to allow-all or deny-all, the others add or remove exceptions), and the program tests the
resulting exceptions, first match winning, falling back to the default. Removing part of a
wildcard exception is refused, as runc refuses it, since v1 would silently ignore it.

The program is loaded and attached with bpf(2) through ctypes, named ``dockyard_dev`` so a later
update can find and detach the one it replaces.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys

from dockyard.errors import Internal, InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PROG_NAME = "dockyard_dev"
_LICENSE = b"Apache"

# include/uapi/linux/bpf.h
_BPF_PROG_LOAD, _BPF_PROG_ATTACH, _BPF_PROG_DETACH = 5, 8, 9
_BPF_PROG_GET_FD_BY_ID, _BPF_OBJ_GET_INFO_BY_FD, _BPF_PROG_QUERY = 13, 15, 16
_BPF_PROG_TYPE_CGROUP_DEVICE = 15
_BPF_CGROUP_DEVICE = 6
_BPF_F_ALLOW_MULTI = 2
_DEV_BLOCK, _DEV_CHAR = 1, 2                        # bpf_cgroup_dev_ctx.access_type, low 16 bits
_ACC = {"m": 1, "r": 2, "w": 4}                     # its high 16 bits
_RWM = 7
_SYS_BPF = {"x86_64": 321, "aarch64": 280, "arm64": 280}.get(os.uname().machine, 321)
_ATTR_SIZE = 128                                    # covers every command used; the rest is zero

# instruction opcodes (class | op | source)
_LDXW = 0x61            # BPF_LDX | BPF_MEM | BPF_W
_AND32_K = 0x54         # BPF_ALU | BPF_AND | BPF_K
_RSH32_K = 0x74
_MOV32_K = 0xB4
_MOV32_X = 0xBC
_JNE_K = 0x55           # BPF_JMP | BPF_JNE | BPF_K (64-bit compare; the loads zero-extend)
_JNE_X = 0x5D
_EXIT = 0x95

_libc = ctypes.CDLL("libc.so.6", use_errno=True)

# -------------------------------------------------------------------------- rules → exceptions

Key = tuple[str, int, int]  # (type, major, minor), -1 = any


def _access(rule: dict[str, Any]) -> int:
    mask = 0
    for c in rule.get("access") or "rwm":
        if c not in _ACC:
            raise InvalidArgument(f"invalid device access {rule.get('access')!r} in device rule {rule}")
        mask |= _ACC[c]
    return mask


def _number(value: Any) -> int:
    return -1 if value is None or value < 0 else int(value)


def emulate(rules: list[dict[str, Any]]) -> tuple[bool, dict[Key, int]]:
    """(default allow?, exceptions → access mask) after applying ``rules`` in order to a cgroup
    that starts denying everything, as a v1 devices cgroup would end up."""
    default_allow = False
    exceptions: dict[Key, int] = {}
    for rule in rules:
        kind = rule.get("type") or "a"
        if kind not in ("a", "b", "c"):
            raise InvalidArgument(f"invalid device type {kind!r} in device rule {rule}")
        allow = bool(rule.get("allow"))
        if kind == "a":
            default_allow, exceptions = allow, {}
            continue
        key = (kind, _number(rule.get("major")), _number(rule.get("minor")))
        mask = _access(rule)
        if allow != default_allow:
            exceptions[key] = exceptions.get(key, 0) | mask
            continue
        for wider in ((kind, -1, key[2]), (kind, key[1], -1), (kind, -1, -1)):
            if wider != key and exceptions.get(wider, 0) & mask:
                raise InvalidArgument(f"device rule {rule} cannot punch a hole in the wider rule "
                                      f"{_text(wider, exceptions[wider])} (cgroup v1 would ignore it)")
        left = exceptions.get(key, 0) & ~mask
        if left:
            exceptions[key] = left
        else:
            exceptions.pop(key, None)
    return default_allow, exceptions


def _text(key: Key, mask: int) -> str:
    nums = ":".join("*" if n < 0 else str(n) for n in key[1:])
    return f"{key[0]} {nums} {''.join(c for c in 'rwm' if mask & _ACC[c])}"


# -------------------------------------------------------------------------- assembling

def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    # struct bpf_insn {u8 code; u8 dst_reg:4, src_reg:4; s16 off; s32 imm}; bitfields follow byte order
    regs = dst | (src << 4) if sys.byteorder == "little" else (dst << 4) | src
    return struct.pack("=BBhi", code, regs, off, imm)


def assemble(rules: list[dict[str, Any]]) -> bytes:
    """The filter program for ``rules``: one block per exception, in runc's order (major, minor,
    type, wildcards first); a block returns its verdict when the access matches, else falls
    through to the next; the end returns the default."""
    default_allow, exceptions = emulate(rules)
    prog = [
        _insn(_LDXW, 2, 1, 0), _insn(_AND32_K, 2, imm=0xFFFF),   # r2 = device type
        _insn(_LDXW, 3, 1, 0), _insn(_RSH32_K, 3, imm=16),       # r3 = requested access
        _insn(_LDXW, 4, 1, 4),                                   # r4 = major
        _insn(_LDXW, 5, 1, 8),                                   # r5 = minor
    ]
    order = sorted(exceptions.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0]))
    for (kind, major, minor), mask in order:
        # a tuple is a test (opcode, dst, src, imm): on a mismatch it jumps to the next block
        block: list[bytes | tuple[int, int, int, int]] = [(_JNE_K, 2, 0, _DEV_CHAR if kind == "c" else _DEV_BLOCK)]
        if mask != _RWM:  # the access asked for must lie within the rule's
            block += [_insn(_MOV32_X, 1, 3), _insn(_AND32_K, 1, imm=mask), (_JNE_X, 1, 3, 0)]
        if major >= 0:
            block.append((_JNE_K, 4, 0, major))
        if minor >= 0:
            block.append((_JNE_K, 5, 0, minor))
        block += [_insn(_MOV32_K, 0, imm=0 if default_allow else 1), _insn(_EXIT)]
        for i, item in enumerate(block):
            if isinstance(item, tuple):
                code, dst, src, imm = item
                item = _insn(code, dst, src, off=len(block) - i - 1, imm=imm)
            prog.append(item)
    prog += [_insn(_MOV32_K, 0, imm=1 if default_allow else 0), _insn(_EXIT)]
    return b"".join(prog)


# -------------------------------------------------------------------------- bpf(2)

def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char], what: str) -> int:
    rc = _libc.syscall(ctypes.c_long(_SYS_BPF), ctypes.c_int(cmd), attr, ctypes.c_uint(_ATTR_SIZE))
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bpf({what}): {os.strerror(err)}")
    return int(rc)


def _attr(fmt: str, *values: int | bytes) -> ctypes.Array[ctypes.c_char]:
    buf = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into(fmt, buf, 0, *values)
    return buf


def load(code: bytes) -> int:
    """BPF_PROG_LOAD → the program's fd; a verifier refusal comes back with the verifier's log."""
    insns = ctypes.create_string_buffer(code, len(code))
    lic = ctypes.create_string_buffer(_LICENSE)
    name = PROG_NAME.encode()

    def attempt(log: ctypes.Array[ctypes.c_char] | None) -> int:
        # prog_type insn_cnt insns license log_level log_size log_buf kern_version prog_flags prog_name
        attr = _attr("=IIQQIIQII16s", _BPF_PROG_TYPE_CGROUP_DEVICE, len(code) // 8,
                     ctypes.addressof(insns), ctypes.addressof(lic), 1 if log else 0,
                     len(log) if log else 0, ctypes.addressof(log) if log else 0, 0, 0, name)
        return _bpf(_BPF_PROG_LOAD, attr, "PROG_LOAD")

    try:
        return attempt(None)
    except OSError as exc:
        if exc.errno not in (1, 13, 22):  # EPERM EACCES EINVAL: ask the verifier why
            raise
        log = ctypes.create_string_buffer(1 << 16)
        try:
            return attempt(log)
        except OSError as again:
            text = log.value.decode(errors="replace").strip().splitlines()[-5:]
            raise OSError(again.errno, f"{again.strerror}: {' / '.join(text)}") from None


def _attached_ids(cgroup_fd: int) -> list[int]:
    ids = (ctypes.c_uint32 * 64)()
    # target_fd attach_type query_flags attach_flags prog_ids prog_cnt
    attr = _attr("=IIIIQI", cgroup_fd, _BPF_CGROUP_DEVICE, 0, 0, ctypes.addressof(ids), len(ids))
    _bpf(_BPF_PROG_QUERY, attr, "PROG_QUERY")
    count = struct.unpack_from("=I", attr, 24)[0]
    return list(ids[:count])


def _name(prog_fd: int) -> str:
    info = ctypes.create_string_buffer(96)  # struct bpf_prog_info up to name[16] at offset 64
    _bpf(_BPF_OBJ_GET_INFO_BY_FD, _attr("=IIQ", prog_fd, len(info), ctypes.addressof(info)),
         "OBJ_GET_INFO_BY_FD")
    return info.raw[64:80].split(b"\0", 1)[0].decode(errors="replace")


def _attached(cgroup_fd: int) -> list[tuple[int, str]]:
    """(fd, name) of each device program attached to the cgroup itself; the caller closes them."""
    out = []
    for prog_id in _attached_ids(cgroup_fd):
        try:
            fd = _bpf(_BPF_PROG_GET_FD_BY_ID, _attr("=I", prog_id), "PROG_GET_FD_BY_ID")
        except OSError:
            continue  # detached meanwhile, or an LSM hides it: it can only restrict further
        try:
            out.append((fd, _name(fd)))
        except OSError:
            out.append((fd, ""))
    return out


def _attach(cgroup_fd: int, prog_fd: int, detach: bool = False) -> None:
    # target_fd attach_bpf_fd attach_type attach_flags
    attr = _attr("=IIII", cgroup_fd, prog_fd, _BPF_CGROUP_DEVICE, 0 if detach else _BPF_F_ALLOW_MULTI)
    _bpf(_BPF_PROG_DETACH if detach else _BPF_PROG_ATTACH, attr, "PROG_DETACH" if detach else "PROG_ATTACH")


def _open_dir(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise Internal(f"cannot open cgroup {path}: {exc.strerror}") from exc


def apply(cgroup_dir: str, rules: list[dict[str, Any]]) -> None:
    """Filter the devices of ``cgroup_dir`` (a cgroup v2 directory) by ``rules``, replacing the
    program a previous ``apply`` attached. The new one is attached before the old one goes, so
    for that moment both apply: access is never wider than either rule set allows."""
    code = assemble(rules)
    dir_fd = _open_dir(cgroup_dir)
    old: list[tuple[int, str]] = []
    try:
        old = _attached(dir_fd)
        prog_fd = load(code)
        try:
            _attach(dir_fd, prog_fd)
        finally:
            os.close(prog_fd)  # the cgroup holds the program now
        for fd, name in old:
            if name == PROG_NAME:
                _attach(dir_fd, fd, detach=True)
    except OSError as exc:
        raise Internal(f"cannot set the device filter of cgroup {cgroup_dir}: {exc.strerror}") from exc
    finally:
        for fd, _ in old:
            os.close(fd)
        os.close(dir_fd)


def programs(cgroup_dir: str) -> list[str]:
    """Names of the device programs attached to ``cgroup_dir`` itself."""
    dir_fd = _open_dir(cgroup_dir)
    try:
        found = _attached(dir_fd)
    except OSError as exc:
        raise Internal(f"cannot query the device programs of cgroup {cgroup_dir}: {exc.strerror}") from exc
    finally:
        os.close(dir_fd)
    for fd, _ in found:
        os.close(fd)
    return [name for _, name in found]


def remove(cgroup_dir: str) -> None:
    """Detach the programs ``apply`` attached (a cgroup's removal detaches them too)."""
    dir_fd = _open_dir(cgroup_dir)
    found: list[tuple[int, str]] = []
    try:
        found = _attached(dir_fd)
        for fd, name in found:
            if name == PROG_NAME:
                _attach(dir_fd, fd, detach=True)
    except OSError as exc:
        raise Internal(f"cannot detach the device filter of cgroup {cgroup_dir}: {exc.strerror}") from exc
    finally:
        for fd, _ in found:
            os.close(fd)
        os.close(dir_fd)
