"""``docker import --change``: apply Dockerfile-style instructions to an image config's ``config``.

Supported: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR, STOPSIGNAL, ONBUILD (the
set Docker accepts). Anything else, or a malformed line, is InvalidArgument naming the change.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from typing import Any

from dockyard.errors import InvalidArgument

SUPPORTED = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "USER", "VOLUME", "WORKDIR", "STOPSIGNAL",
             "ONBUILD")
_PORT_RE = re.compile(r"^(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp))?$", re.IGNORECASE)


def _json_list(rest: str) -> list[str] | None:
    """The JSON (exec) form when ``rest`` is a JSON list of strings, else None (shell form)."""
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        return value
    return None


def _command(rest: str) -> list[str]:
    form = _json_list(rest)
    return form if form is not None else ["/bin/sh", "-c", rest]


def _split_words(change: str, rest: str) -> list[str]:
    try:
        return shlex.split(rest, posix=True)
    except ValueError as exc:
        raise InvalidArgument(f"invalid change {change!r}: {exc}") from exc


def _pairs(change: str, instr: str, rest: str) -> list[tuple[str, str]]:
    """``k=v k2="v 2"`` or legacy ``k v`` (one pair, value is the rest of the line)."""
    words = _split_words(change, rest)
    if not words:
        raise InvalidArgument(f"invalid change {change!r}: {instr} requires at least one argument")
    if "=" not in words[0]:
        if instr == "LABEL" or len(rest.split(None, 1)) < 2:
            raise InvalidArgument(f"invalid change {change!r}: {instr} must have two arguments")
        key, value = rest.split(None, 1)
        return [(key, value.strip())]
    out = []
    for w in words:
        key, sep, value = w.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"invalid change {change!r}: {w!r} is not of the form key=value")
        out.append((key, value))
    return out


def apply_changes(config: dict[str, Any], changes: list[str]) -> None:
    """Apply ``changes`` to ``config`` (the image config's ``config`` object) in place."""
    for change in changes:
        line = change.strip()
        if not line:
            continue
        instr, _, rest = line.partition(" ")
        instr = instr.upper()
        rest = rest.strip()
        if instr not in SUPPORTED:
            raise InvalidArgument(f"{instr} is not a valid change command")
        if not rest:
            raise InvalidArgument(f"invalid change {change!r}: {instr} requires an argument")
        _apply_one(config, change, instr, rest)


def _apply_one(config: dict[str, Any], change: str, instr: str, rest: str) -> None:
    if instr == "CMD":
        config["Cmd"] = _command(rest)
    elif instr == "ENTRYPOINT":
        # Docker's builder drops Cmd only when no CMD was set in the same run; an import starts
        # from an empty config, so a CMD here always came from an earlier change and stays.
        config["Entrypoint"] = _command(rest)
    elif instr == "ENV":
        env = list(config.get("Env") or [])
        for key, value in _pairs(change, instr, rest):
            env = [e for e in env if e.partition("=")[0] != key] + [f"{key}={value}"]
        config["Env"] = env
    elif instr == "LABEL":
        labels = dict(config.get("Labels") or {})
        labels.update(_pairs(change, instr, rest))
        config["Labels"] = labels
    elif instr == "EXPOSE":
        ports = dict(config.get("ExposedPorts") or {})
        for word in _split_words(change, rest):
            m = _PORT_RE.match(word)
            if not m:
                raise InvalidArgument(f"invalid change {change!r}: invalid port {word!r}")
            lo = int(m.group(1))
            hi = int(m.group(2) or lo)
            proto = (m.group(3) or "tcp").lower()
            if not 0 < lo <= hi <= 65535:
                raise InvalidArgument(f"invalid change {change!r}: invalid port range {word!r}")
            for port in range(lo, hi + 1):
                ports[f"{port}/{proto}"] = {}
        config["ExposedPorts"] = ports
    elif instr == "VOLUME":
        form = _json_list(rest)
        paths = form if form is not None else _split_words(change, rest)
        if not paths or any(not p for p in paths):
            raise InvalidArgument(f"invalid change {change!r}: VOLUME specified can not be an empty string")
        volumes = dict(config.get("Volumes") or {})
        volumes.update({p: {} for p in paths})
        config["Volumes"] = volumes
    elif instr == "WORKDIR":
        current = config.get("WorkingDir") or "/"
        config["WorkingDir"] = posixpath.normpath(posixpath.join(current, rest))
    elif instr == "USER":
        config["User"] = rest
    elif instr == "STOPSIGNAL":
        if not re.match(r"^(SIG)?[A-Z0-9+-]+$", rest.upper()) or " " in rest:
            raise InvalidArgument(f"invalid change {change!r}: invalid signal {rest!r}")
        config["StopSignal"] = rest
    elif instr == "ONBUILD":
        trigger = rest.split(None, 1)[0].upper()
        if trigger in ("ONBUILD", "FROM", "MAINTAINER"):
            raise InvalidArgument(f"invalid change {change!r}: {trigger} isn't allowed as an ONBUILD trigger")
        config["OnBuild"] = [*(config.get("OnBuild") or []), rest]
