"""``run``/``create`` flags that confine or unconfine a container: --privileged, --cap-add/-drop,
--security-opt, --device, --device-cgroup-rule, --sysctl, --ulimit, --oom-score-adj, --group-add
and the namespace modes (--userns, --cgroupns, --ipc, --pid, --uts); translated into HostConfig
fields as docker-cli's ``parse`` (cli/command/container/opts.go) and the API client send them.
The error texts are docker 28.2's."""

from __future__ import annotations

import argparse
import json
import posixpath
import re

from dockyard.cli.formatting import go_quote
from dockyard.cli.netopts import add_bool_flag, flag_error, kv_map
from dockyard.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~3 ms to import on every CLI run
    from typing import Any

_RULE = r"[acb] ([0-9]+|\*):([0-9]+|\*) [rwm]{1,3}"  # compiled on first use (re caches it)
_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
            "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}
_ULIMITS = {"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
            "rss", "rtprio", "rttime", "sigpending", "stack"}  # go-units: "as" is left out on purpose
_INT64 = (-(2**63), 2**63 - 1)


def add_security_flags(p: argparse.ArgumentParser) -> None:
    add_bool_flag(p, "--privileged")
    for name in ("--cap-add", "--cap-drop", "--security-opt", "--device", "--device-cgroup-rule",
                 "--sysctl", "--ulimit", "--group-add"):
        p.add_argument(name, action="append", default=[])
    p.add_argument("--oom-score-adj", default="0")  # parsed as pflag parses an int
    for name in ("--userns", "--cgroupns", "--ipc", "--pid", "--uts"):
        p.add_argument(name, default="")


def security_fields(a: argparse.Namespace) -> dict[str, Any]:
    """The HostConfig fields of these flags; None where docker sends null or leaves a field out."""
    for ok, what in ((_pid_mode_ok(a.pid), "--pid: invalid PID mode"),
                     (a.uts in ("", "host"), "--uts: invalid UTS mode"),
                     # "auto" is dockyard's: a user namespace of the container's own
                     (a.userns in ("", "host", "auto"), "--userns: invalid USER mode"),
                     (a.cgroupns in ("", "host", "private"), "--cgroupns: invalid CGROUP mode")):
        if not ok:
            raise InvalidArgument(what)
    security_opts = parse_security_opts(list(a.security_opt))
    unconfined = "systempaths=unconfined" in security_opts  # handled here, never sent on
    security_opts = [o for o in security_opts if o != "systempaths=unconfined"]
    return {
        "CapAdd": normalize_caps(a.cap_add), "CapDrop": normalize_caps(a.cap_drop),
        "CgroupnsMode": a.cgroupns, "GroupAdd": list(a.group_add) or None, "IpcMode": a.ipc,
        "OomScoreAdj": parse_go_int(a.oom_score_adj, "--oom-score-adj"), "PidMode": a.pid,
        "Privileged": a.privileged, "SecurityOpt": security_opts or None, "UTSMode": a.uts,
        "UsernsMode": a.userns, "Sysctls": sysctl_map(a.sysctl) or None,
        "Ulimits": ulimits(a.ulimit), "Devices": [parse_device(d) for d in a.device],
        "DeviceCgroupRules": [device_cgroup_rule(r) for r in a.device_cgroup_rule] or None,
        "MaskedPaths": [] if unconfined else None, "ReadonlyPaths": [] if unconfined else None,
    }


def _pid_mode_ok(mode: str) -> bool:
    return mode in ("", "host") or (mode.startswith("container:") and len(mode) > len("container:"))


def normalize_caps(caps: list[str]) -> list[str] | None:
    """The API client's normalizeCapabilities: upper case, a CAP_ prefix (not for ALL), no
    duplicates, sorted; null when empty."""
    out = set()
    for cap in caps:
        up = cap.upper()
        out.add(up if up == "ALL" or up.startswith("CAP_") else "CAP_" + up)
    return sorted(out) or None


# ---------------------------------------------------------------- numbers as Go parses them


def _parse_int(text: str, base: int) -> int:
    """strconv.ParseInt(text, base, 64); ValueError carrying Go's message."""
    body = text[1:] if text[:1] in "+-" else text
    ok = bool(re.fullmatch(r"[0-9]+", body)) if base == 10 else bool(
        re.fullmatch(r"0[xX](_?[0-9a-fA-F])+|0[bB](_?[01])+|0[oO]?(_?[0-7])+|[1-9](_?[0-9])*|0", body))
    if not ok:
        raise ValueError(f"strconv.ParseInt: parsing {go_quote(text)}: invalid syntax")
    digits = body.replace("_", "")
    if base == 0 and re.fullmatch(r"0[0-7]+", digits):
        digits = "0o" + digits[1:]  # Go's base 0 reads a leading 0 as octal
    value = int(digits, base) * (-1 if text.startswith("-") else 1)
    if not _INT64[0] <= value <= _INT64[1]:
        raise ValueError(f"strconv.ParseInt: parsing {go_quote(text)}: value out of range")
    return value


def parse_go_int(text: str, flag: str) -> int:
    """A pflag IntVar value (base 0: 0x10, 0o17, 017, 1_000)."""
    try:
        return _parse_int(text, 0)
    except ValueError as exc:
        raise flag_error(text, flag, str(exc)) from None


# ---------------------------------------------------------------- --security-opt


def _go_errno_text(exc: OSError) -> str:
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


def compact_json(text: str) -> str:
    """encoding/json.Compact: the document as written, without insignificant whitespace."""
    out: list[str] = []
    in_string = escaped = False
    for ch in text:
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch not in " \t\r\n":
            out.append(ch)
            in_string = ch == '"'
    return "".join(out)


def parse_security_opts(opts: list[str]) -> list[str]:
    """docker-cli's parseSecurityOpts: every option but no-new-privileges needs a value, and a
    seccomp profile named by file is sent as its (compacted) JSON text."""
    out = []
    for opt in opts:
        key, sep, value = opt.partition("=")
        if not sep and key != "no-new-privileges":
            key, sep, value = opt.partition(":")
        if (not sep or not value) and key != "no-new-privileges":
            raise InvalidArgument(f"Invalid --security-opt: {go_quote(opt)}")
        if key == "seccomp" and value not in ("builtin", "unconfined"):
            try:
                with open(value, encoding="utf-8") as f:
                    raw = f.read()
            except OSError as exc:
                raise InvalidArgument(f"opening seccomp profile ({value}) failed: open {value}: "
                                      f"{_go_errno_text(exc)}") from None
            try:
                json.loads(raw)
            except ValueError as exc:
                raise InvalidArgument(f"compacting json for seccomp profile ({value}) failed: {exc}") from None
            opt = "seccomp=" + compact_json(raw)
        out.append(opt)
    return out


# ---------------------------------------------------------------- --sysctl / --ulimit


def sysctl_map(items: list[str]) -> dict[str, str]:
    """opts.ValidateSysctl on each value: only namespaced sysctls may be set."""
    for item in items:
        key, sep, _ = item.partition("=")
        if not sep or not key or not (key in _SYSCTLS or key.startswith(("net.", "fs.mqueue."))):
            raise flag_error(item, "--sysctl", f"sysctl '{item}' is not allowed")
    return kv_map(items)


def parse_ulimit(value: str) -> dict[str, Any]:
    """go-units ParseUlimit: ``name=soft[:hard]`` (hard defaults to soft, -1 is unlimited)."""
    name, sep, limits = value.partition("=")
    if not sep:
        raise InvalidArgument(f"invalid ulimit argument: {value}")
    if name not in _ULIMITS:
        raise InvalidArgument(f"invalid ulimit type: {name}")
    parts = limits.split(":")
    if len(parts) > 2:
        raise InvalidArgument(f"too many limit value arguments - {limits}, can only have up to two, "
                              "`soft[:hard]`")
    try:
        hard = _parse_int(parts[1], 10) if len(parts) == 2 else None
        soft = _parse_int(parts[0], 10)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None
    hard = soft if hard is None else hard
    if hard != -1:
        if soft == -1:
            raise InvalidArgument(f"ulimit soft limit must be less than or equal to hard limit: "
                                  f"soft: -1 (unlimited), hard: {hard}")
        if soft > hard:
            raise InvalidArgument(f"ulimit soft limit must be less than or equal to hard limit: "
                                  f"{soft} > {hard}")
    return {"Name": name, "Hard": hard, "Soft": soft}


def ulimits(values: list[str]) -> list[dict[str, Any]]:
    """opts.UlimitOpt: one entry per name (the last given wins), sorted by name; [] when none."""
    by_name: dict[str, dict[str, Any]] = {}
    for value in values:
        try:
            ul = parse_ulimit(value)
        except InvalidArgument as exc:
            raise flag_error(value, "--ulimit", str(exc)) from None
        by_name[ul["Name"]] = ul
    return [by_name[k] for k in sorted(by_name)]


# ---------------------------------------------------------------- --device / --device-cgroup-rule


def _go_clean(path: str) -> str:
    """path.Clean (posixpath.normpath keeps a leading "//", Go does not)."""
    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


def _device_mode_ok(mode: str) -> bool:
    return bool(mode) and all(c in "rwm" for c in mode) and len(set(mode)) == len(mode)


def parse_device(value: str) -> dict[str, str]:
    """``--device HOST[:CONTAINER][:MODE]`` → a DeviceMapping, as validateLinuxPath then
    parseLinuxDevice read it (the container path defaults to the host path, the mode to rwm)."""
    split = value.split(":", 2)
    if value.count(":") > 2 or not split[0]:
        raise InvalidArgument(f"bad format for path: {value}")
    if len(split) == 1:
        container, parts = split[0], [_go_clean(split[0])]
    elif len(split) == 2 and _device_mode_ok(split[1]):
        container, parts = split[0], [_go_clean(split[0]), split[1]]
    elif len(split) == 2:
        container, parts = split[1], [split[0], _go_clean(split[1])]
    else:
        container, parts = split[1], split
        if not _device_mode_ok(split[2]):
            raise InvalidArgument(f"bad mode specified: {split[2]}")
    if not container.startswith("/"):
        raise InvalidArgument(f"{container} is not an absolute path")
    host, target, mode = parts[0], "", parts[2] if len(parts) == 3 else "rwm"
    if len(parts) >= 2:
        if _device_mode_ok(parts[1]):
            mode = parts[1]
        else:
            target = parts[1]
    return {"PathOnHost": host, "PathInContainer": target or host, "CgroupPermissions": mode}


def device_cgroup_rule(rule: str) -> str:
    """'TYPE MAJOR:MINOR MODE' ('c 1:3 rwm', 'b *:* r', 'a *:* rwm'), as the CLI checks it."""
    if not re.fullmatch(_RULE, rule):
        raise flag_error(rule, "--device-cgroup-rule", f"invalid device cgroup format '{rule}'")
    return rule
