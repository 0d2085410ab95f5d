"""Typed Dockerfile instructions from parser nodes, the stage plan, and per-instruction expansion.

Flags are checked per instruction, arguments per Docker's rules, and errors name the line:
``Dockerfile:3: unknown flag: --frm``. Words keep their quotes until ``expand`` runs them through
the shell lexer with the environment of the step (the builder knows it, the parser does not).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from dockyard.build.dockerfile.durations import parse_duration
from dockyard.build.dockerfile.parser import Dockerfile, DockerfileError, Heredoc, Node, go_quote
from dockyard.build.dockerfile.shell import Lex
from dockyard.errors import InvalidArgument

_STAGE_NAME = re.compile(r"^[a-z][a-z0-9\-_.]*$")
_ARG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# flag name -> True if it may repeat
_FLAGS: dict[str, dict[str, bool]] = {
    "from": {"platform": False},
    "run": {"mount": True, "network": False, "security": False},
    "copy": {"from": False, "chown": False, "chmod": False, "link": False, "parents": False,
             "exclude": True},
    "add": {"chown": False, "chmod": False, "link": False, "checksum": False, "keep-git-dir": False,
            "exclude": True, "parents": False},
    "healthcheck": {"interval": False, "timeout": False, "start-period": False, "start-interval": False,
                    "retries": False},
}
_BOOL_FLAGS = frozenset({"link", "parents", "keep-git-dir"})


@dataclass(frozen=True)
class _Base:
    line: int
    original: str


@dataclass(frozen=True)
class From(_Base):
    image: str
    stage_name: str | None
    platform: str | None


@dataclass(frozen=True)
class Run(_Base):
    cmd: list[str]
    shell_form: bool
    mounts: list[dict[str, str]]
    network: str | None
    security: str | None
    heredocs: tuple[Heredoc, ...] = ()


@dataclass(frozen=True)
class Copy(_Base):
    sources: list[str]
    dest: str
    from_: str | None = None
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    parents: bool = False
    excludes: list[str] = field(default_factory=list)
    heredocs: tuple[Heredoc, ...] = ()


@dataclass(frozen=True)
class Add(Copy):
    checksum: str | None = None
    keep_git_dir: bool = False


@dataclass(frozen=True)
class Env(_Base):
    pairs: list[tuple[str, str]]


@dataclass(frozen=True)
class Arg(_Base):
    pairs: list[tuple[str, str | None]]


@dataclass(frozen=True)
class Workdir(_Base):
    path: str


@dataclass(frozen=True)
class User(_Base):
    user: str


@dataclass(frozen=True)
class Expose(_Base):
    ports: list[str]


@dataclass(frozen=True)
class Volume(_Base):
    paths: list[str]


@dataclass(frozen=True)
class Label(_Base):
    pairs: list[tuple[str, str]]


@dataclass(frozen=True)
class Maintainer(_Base):
    name: str


@dataclass(frozen=True)
class Cmd(_Base):
    cmd: list[str]
    shell_form: bool


@dataclass(frozen=True)
class Entrypoint(_Base):
    cmd: list[str]
    shell_form: bool


@dataclass(frozen=True)
class Healthcheck(_Base):
    test: list[str]
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@dataclass(frozen=True)
class Stopsignal(_Base):
    signal: str


@dataclass(frozen=True)
class Shell(_Base):
    shell: list[str]


@dataclass(frozen=True)
class Onbuild(_Base):
    expression: str


Instruction = (From | Run | Copy | Add | Env | Arg | Workdir | User | Expose | Volume | Label | Maintainer
               | Cmd | Entrypoint | Healthcheck | Stopsignal | Shell | Onbuild)

# Instruction kinds whose words BuildKit expands (its commands with an ``Expand`` method, plus FROM with
# the meta ARGs and RUN's --mount options). ONBUILD is not: its trigger is expanded in the child build.
# JSON-form and shell-form CMD/ENTRYPOINT/RUN commands are never expanded here (the shell does it).
EXPANDS = frozenset({"add", "arg", "copy", "env", "expose", "from", "label", "run", "stopsignal", "user",
                     "volume", "workdir"})
_MOUNT_KEYS = frozenset({"type", "from", "source", "src", "target", "dst", "destination", "dest", "readonly",
                         "ro", "readwrite", "rw", "id", "sharing", "mode", "uid", "gid", "required", "size",
                         "env"})
_NETWORKS = frozenset({"default", "none", "host"})
_SECURITY = frozenset({"sandbox", "insecure"})


@dataclass(frozen=True)
class Stage:
    index: int
    name: str | None
    base: From
    commands: list[Instruction]


@dataclass(frozen=True)
class Plan:
    meta_args: list[Arg]
    stages: list[Stage]


def _flags(node: Node, where: str) -> dict[str, list[str]]:
    allowed = _FLAGS.get(node.cmd, {})
    out: dict[str, list[str]] = {}
    for raw in node.flags:
        name, eq, value = raw[2:].partition("=") if raw.startswith("--") else (raw, "", "")
        if name not in allowed:
            raise DockerfileError(f"{where}: unknown flag: --{name}")
        if not eq:
            if name not in _BOOL_FLAGS:
                raise DockerfileError(f"{where}: missing a value on flag: --{name}")
            value = "true"
        if name in out and not allowed[name]:
            raise DockerfileError(f"{where}: duplicate flag specified: --{name}")
        out.setdefault(name, []).append(value)
    return out


def _one(flags: dict[str, list[str]], name: str) -> str | None:
    values = flags.get(name)
    return values[-1] if values else None


def _bool(flags: dict[str, list[str]], name: str, where: str) -> bool:
    value = _one(flags, name)
    if value is None:
        return False
    if value.lower() not in ("true", "false"):
        raise DockerfileError(f"{where}: expecting boolean value for flag {name}, not: {value}")
    return value.lower() == "true"


def _mount(spec: str, where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in spec.split(","):
        key, eq, value = part.partition("=")
        key = key.strip().lower()
        if not key:
            continue
        if key not in _MOUNT_KEYS:
            raise DockerfileError(f"{where}: unexpected key '{key}' in '{part}'")
        out[key] = value if eq else "true"
    out.setdefault("type", "bind")
    if out.get("sharing", "shared") not in ("shared", "private", "locked"):
        raise DockerfileError(f"{where}: unsupported sharing value \"{out['sharing']}\"")
    if out["type"] not in ("bind", "cache", "tmpfs", "secret", "ssh"):
        raise DockerfileError(f"{where}: unsupported mount type {out['type']!r}")
    for alias in ("dst", "destination", "dest"):
        if alias in out:
            out.setdefault("target", out.pop(alias))
    if "src" in out:
        out.setdefault("source", out.pop("src"))
    if out["type"] in ("bind", "cache", "tmpfs") and not out.get("target"):
        raise DockerfileError(f"{where}: mount type {out['type']} needs a target")
    return out


def parse_instruction(node: Node, name: str = "Dockerfile") -> Instruction:
    where = f"{name}:{node.start_line}"
    flags = _flags(node, where)
    args = list(node.args)
    base = (node.start_line, node.original)
    cmd = node.cmd
    if cmd == "from":
        if len(args) not in (1, 3) or (len(args) == 3 and args[1].lower() != "as"):
            raise DockerfileError(f"{where}: FROM requires either one or three arguments")
        stage = args[2].lower() if len(args) == 3 else None
        if stage is not None and not _STAGE_NAME.match(stage):
            raise DockerfileError(f"{where}: invalid name for build stage: {go_quote(args[2])}, name can't start "
                                  "with a number or contain symbols")
        return From(*base, image=args[0], stage_name=stage, platform=_one(flags, "platform"))
    if cmd == "run":
        if not args and not node.heredocs:
            raise DockerfileError(f"{where}: RUN requires at least one argument")
        network, security = _one(flags, "network"), _one(flags, "security")
        if network is not None and network not in _NETWORKS:
            raise DockerfileError(f"{where}: unsupported network mode \"{network}\"")
        if security is not None and security not in _SECURITY:
            raise DockerfileError(f"{where}: unsupported security mode \"{security}\"")
        return Run(*base, cmd=args, shell_form=not node.json_form,
                   mounts=[_mount(m, where) for m in flags.get("mount", [])],
                   network=network, security=security, heredocs=node.heredocs)
    if cmd in ("copy", "add"):
        return _copy(node, flags, args, base, where)
    if cmd in ("env", "label"):
        if not args:
            raise DockerfileError(f"{where}: {cmd.upper()} requires at least one argument")
        pairs = [(args[i], args[i + 1]) for i in range(0, len(args) - 2, 3)]
        for key, _ in pairs:
            if not key:
                raise DockerfileError(f"{where}: {cmd.upper()} names can not be blank")
        return Env(*base, pairs=pairs) if cmd == "env" else Label(*base, pairs=pairs)
    if cmd == "arg":
        if not args:
            raise DockerfileError(f"{where}: ARG requires at least one argument")
        out: list[tuple[str, str | None]] = []
        for word in args:
            key, eq, value = word.partition("=")
            if not _ARG_NAME.match(key):
                raise DockerfileError(f"{where}: invalid ARG name: {key!r}")
            out.append((key, value if eq else None))
        return Arg(*base, pairs=out)
    if cmd in ("workdir", "user", "stopsignal", "maintainer"):
        if len(args) != 1:
            raise DockerfileError(f"{where}: {cmd.upper()} requires exactly one argument")
        if cmd == "workdir":
            return Workdir(*base, path=args[0])
        if cmd == "user":
            return User(*base, user=args[0])
        if cmd == "stopsignal":
            return Stopsignal(*base, signal=args[0])
        return Maintainer(*base, name=args[0])
    if cmd == "expose":
        if not args:
            raise DockerfileError(f"{where}: EXPOSE requires at least one argument")
        return Expose(*base, ports=args)
    if cmd == "volume":
        if not args:
            raise DockerfileError(f"{where}: VOLUME requires at least one argument")
        if any(not a.strip() for a in args):
            raise DockerfileError(f"{where}: VOLUME specified can not be an empty string")
        return Volume(*base, paths=args)
    if cmd in ("cmd", "entrypoint"):
        cls = Cmd if cmd == "cmd" else Entrypoint
        return cls(*base, cmd=args, shell_form=not node.json_form and bool(args))
    if cmd == "shell":
        if not node.json_form:
            raise DockerfileError(f"{where}: SHELL requires the arguments to be in JSON form")
        if not args:
            raise DockerfileError(f"{where}: SHELL requires at least one argument")
        return Shell(*base, shell=args)
    if cmd == "healthcheck":
        return _healthcheck(node, flags, args, base, where)
    if cmd == "onbuild":
        if not args:
            raise DockerfileError(f"{where}: ONBUILD requires at least one argument")
        return Onbuild(*base, expression=args[0])
    raise DockerfileError(f"{where}: unknown instruction: {cmd.upper()}")


def _copy(node: Node, flags: dict[str, list[str]], args: list[str], base: tuple[int, str],
          where: str) -> Copy:
    names = {h.name for h in node.heredocs}
    heredoc_words = [a for a in args if re.match(r"^\d*<<-?", a) and a.lstrip("0123456789<-").strip("'\"") in names]
    sources = [a for a in args[:-1] if a not in heredoc_words]
    if len(args) < 2:
        raise DockerfileError(f"{where}: {node.cmd.upper()} requires at least two arguments, but only one "
                              "was provided. Destination could not be determined.")
    copy = Copy(*base, sources=sources, dest=args[-1], chown=_one(flags, "chown"), chmod=_one(flags, "chmod"),
                link=_bool(flags, "link", where), parents=_bool(flags, "parents", where),
                excludes=flags.get("exclude", []), heredocs=node.heredocs)
    if node.cmd == "copy":
        return dataclasses.replace(copy, from_=_one(flags, "from"))
    return Add(**{f.name: getattr(copy, f.name) for f in dataclasses.fields(copy)},
               checksum=_one(flags, "checksum"), keep_git_dir=_bool(flags, "keep-git-dir", where))


def _healthcheck(node: Node, flags: dict[str, list[str]], args: list[str], base: tuple[int, str],
                 where: str) -> Healthcheck:
    if not args:
        raise DockerfileError(f"{where}: HEALTHCHECK requires an argument")
    kind = args[0].upper()
    if kind == "NONE":
        if len(args) > 1 or flags:
            raise DockerfileError(f"{where}: HEALTHCHECK NONE takes no arguments")
        return Healthcheck(*base, test=["NONE"])
    if kind != "CMD":
        raise DockerfileError(f'{where}: Unknown type "{args[0]}" in HEALTHCHECK (try CMD)')
    rest = args[1:]
    if not rest:
        raise DockerfileError(f"{where}: Missing command after HEALTHCHECK CMD")
    test = ["CMD", *rest] if node.json_form else ["CMD-SHELL", rest[0]]
    durations: dict[str, int] = {}
    for flag in ("interval", "timeout", "start-period", "start-interval"):
        value = _one(flags, flag)
        try:
            ns = parse_duration(value) if value else 0
        except ValueError as exc:
            raise DockerfileError(f"{where}: {exc}") from exc
        if ns and ns < 1_000_000:
            raise DockerfileError(f"{where}: Interval \"{flag}\" cannot be less than 1ms")
        durations[flag.replace("-", "_")] = ns
    retries_text = _one(flags, "retries")
    # strconv.ParseInt(value, 10, 32): ASCII digits, no "_", within an int32
    if retries_text and not re.fullmatch(r"[+-]?[0-9]{1,10}", retries_text):
        raise DockerfileError(f"{where}: invalid --retries value {retries_text!r}")
    retries = int(retries_text) if retries_text else 0
    if retries >= 1 << 31:
        raise DockerfileError(f"{where}: invalid --retries value {retries_text!r}: value out of range")
    if retries < 0:
        raise DockerfileError(f"{where}: --retries cannot be negative ({retries})")
    return Healthcheck(*base, test=test, retries=retries, interval=durations["interval"],
                       timeout=durations["timeout"], start_period=durations["start_period"],
                       start_interval=durations["start_interval"])


def plan(df: Dockerfile, name: str = "Dockerfile") -> Plan:
    meta: list[Arg] = []
    stages: list[Stage] = []
    seen: set[str] = set()
    for node in df.nodes:
        ins = parse_instruction(node, name)
        if isinstance(ins, From):
            if ins.stage_name is not None:
                if ins.stage_name in seen:
                    raise DockerfileError(f"{name}:{ins.line}: duplicate stage name {go_quote(ins.stage_name)}")
                seen.add(ins.stage_name)
            stages.append(Stage(len(stages), ins.stage_name, ins, []))
        elif not stages:
            if not isinstance(ins, Arg):
                raise DockerfileError(f"{name}:{ins.line}: no build stage in current context")
            meta.append(ins)
        else:
            stages[-1].commands.append(ins)
    if not stages:
        raise DockerfileError(f"{name}:1: no build stage in current context")
    return Plan(meta, stages)


def expand_word(lex: Lex, text: str, env: Mapping[str, str], line: int, name: str = "Dockerfile") -> str:
    """One word expanded; a failure names the line: ``Dockerfile:3: failed to process "${a": …``."""
    try:
        return lex.process_word(text, env)
    except InvalidArgument as exc:
        raise DockerfileError(f"{name}:{line}: failed to process {go_quote(text)}: {exc}") from exc


def expand(ins: Instruction, lex: Lex, env: Mapping[str, str], name: str = "Dockerfile") -> Instruction:
    """The instruction with its words expanded as BuildKit does for that instruction.

    A word that cannot be expanded raises DockerfileError naming the line, as BuildKit does:
    ``Dockerfile:3: failed to process "${a": syntax error: missing '}'``.
    """
    def w(text: str) -> str:
        return expand_word(lex, text, env, ins.line, name)

    def ws(items: list[str]) -> list[str]:
        out = []
        for item in items:
            try:
                out += lex.process_words(item, env)
            except InvalidArgument as exc:
                raise DockerfileError(f"{name}:{ins.line}: failed to process {go_quote(item)}: {exc}") from exc
        return out

    def opt(text: str | None) -> str | None:
        return w(text) if text else text

    if isinstance(ins, From):  # env: the meta ARGs
        return dataclasses.replace(ins, image=w(ins.image), platform=opt(ins.platform))
    if isinstance(ins, Arg):  # defaults see the env before this line
        return dataclasses.replace(ins, pairs=[(k, opt(v)) for k, v in ins.pairs])
    if isinstance(ins, Add):
        ins = dataclasses.replace(ins, checksum=opt(ins.checksum))
    if isinstance(ins, Copy):  # Add too
        return dataclasses.replace(
            ins, sources=[w(x) for x in ins.sources], dest=w(ins.dest),
            from_=w(ins.from_) if ins.from_ else ins.from_,
            chown=w(ins.chown) if ins.chown else ins.chown, chmod=w(ins.chmod) if ins.chmod else ins.chmod,
            excludes=[w(e) for e in ins.excludes])
    if isinstance(ins, Env):
        return dataclasses.replace(ins, pairs=[(w(k), w(v)) for k, v in ins.pairs])
    if isinstance(ins, Label):
        return dataclasses.replace(ins, pairs=[(w(k), w(v)) for k, v in ins.pairs])
    if isinstance(ins, Expose):
        return dataclasses.replace(ins, ports=ws(ins.ports))
    if isinstance(ins, Volume):
        return dataclasses.replace(ins, paths=ws(ins.paths))
    if isinstance(ins, Workdir):
        return dataclasses.replace(ins, path=w(ins.path))
    if isinstance(ins, User):
        return dataclasses.replace(ins, user=w(ins.user))
    if isinstance(ins, Stopsignal):
        return dataclasses.replace(ins, signal=w(ins.signal))
    if isinstance(ins, Run):
        return dataclasses.replace(ins, mounts=[{k: w(v) for k, v in m.items()} for m in ins.mounts],
                                   network=w(ins.network) if ins.network else ins.network)
    return ins
