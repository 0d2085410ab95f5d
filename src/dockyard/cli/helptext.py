"""``dockyard --help`` and ``dockyard COMMAND --help`` in the docker CLI's layout, docker's parse errors
and exit codes, and the CLI reference (``python -m dockyard.cli.helptext --markdown > docs/cli.md``).

The parser class is all ``main`` needs on every run; the flag help table (``flaghelp``) is imported
only when help is shown."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

from dockyard.cli import commands

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~3 ms to import on every CLI run
    from typing import Any, NoReturn

# docker's messages are English only, and argparse's go through gettext, which looks for catalogues
# on disk (importing locale, stat-ing .mo files) on every message it formats, even building a parser
argparse._ = lambda message: message  # type: ignore[attr-defined]
argparse.ngettext = lambda singular, plural, n: singular if n == 1 else plural  # type: ignore[attr-defined]

PROG = "dockyard"
WIDTH = 79  # docker wraps to the terminal's width - 1, to 80 - 1 without one


class DockyardParser(argparse.ArgumentParser):
    """An argparse parser that prints help and errors as the docker CLI does (``-h`` for help unless
    the command uses it for something else; ``run``/``create`` have ``--help`` only)."""

    top_commands: tuple[str, ...] = ()  # set on the top parser: the commands ``--help`` lists

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> tuple[Any, list[str]]:
        # the subcommand's parser runs inside its parent's: the last to start is the one the words
        # left over belong to (argparse reports them from the top parser)
        _ACTIVE[:] = [self]
        self._words = list(args) if args is not None else sys.argv[1:]
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        return render_help(self, _terminal_width())

    def _get_formatter(self) -> argparse.HelpFormatter:
        # argparse makes one per add_argument (to check the metavar), each asking the terminal for
        # its width (and importing shutil): ~1.5 ms on `run`'s 160 flags. Help and usage are
        # rendered above without it, so its width is only asked once.
        return self.formatter_class(prog=self.prog, width=_argparse_width())  # type: ignore[call-arg]

    def format_usage(self) -> str:
        return f"Usage:  {usage_line(self)}\n"

    def error(self, message: str) -> NoReturn:
        target = _ACTIVE[0] if _ACTIVE and message.startswith("unrecognized arguments") else self
        text, status = parse_error(target, message)
        self.exit(status, text)


_ACTIVE: list[argparse.ArgumentParser] = []


_WIDTH_CACHE: list[int] = []


def _argparse_width() -> int:
    """The width argparse's own formatter would take (``shutil.get_terminal_size`` - 2), once."""
    if not _WIDTH_CACHE:
        import os
        try:
            columns = int(os.environ.get("COLUMNS", "0"))
        except ValueError:
            columns = 0
        if columns <= 0:
            try:
                columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
            except (AttributeError, ValueError, OSError):
                columns = 80
        _WIDTH_CACHE.append((columns or 80) - 2)
    return _WIDTH_CACHE[0]


def _terminal_width() -> int:
    try:
        import os
        return max(os.get_terminal_size(0).columns - 1, 20)
    except OSError:
        return WIDTH


def command_path(parser: argparse.ArgumentParser) -> str:
    """``"container run"`` for the parser of ``dockyard container run``; ``""`` for the top."""
    words = parser.prog.split()
    return " ".join(words[1:])


def canonical(path: str) -> str:
    cmd = commands.lookup(path)
    return cmd.path if cmd else path


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[Any] | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def visible_flags(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The options shown under "Options:", by long name as pflag sorts them (help itself is hidden)."""
    flags = [a for a in parser._actions if a.option_strings and a.help is not argparse.SUPPRESS
             and not isinstance(a, argparse._HelpAction)]
    return sorted(flags, key=lambda a: _long(a).lstrip("-"))


def _long(action: argparse.Action) -> str:
    return next((o for o in action.option_strings if o.startswith("--")), action.option_strings[0])


def _short(action: argparse.Action) -> str:
    return next((o for o in action.option_strings if len(o) == 2 and o[0] == "-" and o[1] != "-"), "")


def usage_line(parser: argparse.ArgumentParser) -> str:
    path = command_path(parser)
    full = f"{PROG} {path}".strip()
    if not path:
        return f"{PROG} [OPTIONS] COMMAND"
    cmd = commands.lookup(path)
    args = cmd.usage if cmd else _derived_usage(parser)
    if _subparsers(parser) is not None:
        return f"{full} COMMAND"
    opts = "[OPTIONS]" if visible_flags(parser) else ""
    return " ".join(w for w in (full, opts, args) if w)


def _derived_usage(parser: argparse.ArgumentParser) -> str:
    words = []
    for a in parser._actions:
        if a.option_strings or isinstance(a, argparse._SubParsersAction):
            continue
        name = str(a.metavar or a.dest).upper()
        words.append({"?": f"[{name}]", "*": f"[{name}...]", "+": f"{name} [{name}...]",
                      argparse.REMAINDER: f"[{name}...]"}.get(a.nargs, name))  # type: ignore[arg-type]
    return " ".join(words)


def description(parser: argparse.ArgumentParser, path: str | None = None) -> str:
    path = command_path(parser) if path is None else path
    if not path:
        return commands.DESCRIPTION
    cmd = commands.lookup(path)
    if cmd:
        return cmd.description
    return str(parser.description or "")


# ------------------------------------------------------------------------------------- flags


class Flag:
    """One option as the help shows it."""

    def __init__(self, action: argparse.Action, path: str) -> None:
        from dockyard.cli import flaghelp
        self.short = _short(action)
        self.long = _long(action)
        entry = flaghelp.BY_COMMAND.get(canonical(path), {}).get(self.long)
        if entry is None and action.help:
            entry = str(action.help)
        if entry is None:
            entry = flaghelp.GENERIC.get(self.long, "")
        kind, self.help, default = _entry(entry)
        self.type = _flag_type(action) if kind is None else kind
        self.default = _default(action, self.type) if default is None else default
        self.choices = [str(c) for c in action.choices] if action.choices else []

    def column(self) -> str:
        head = f"  {self.short}, {self.long}" if self.short else f"      {self.long}"
        return f"{head} {self.type}" if self.type else head

    def text(self) -> str:
        return f"{self.help} (default {self.default})" if self.default else self.help


def _entry(entry: Any) -> tuple[str | None, str, str | None]:
    if isinstance(entry, str):
        return None, entry, None
    if len(entry) == 2:
        return entry[0], entry[1], None
    return entry[0], entry[1], entry[2]


def _flag_type(action: argparse.Action) -> str:
    if action.nargs == 0:
        return ""
    if isinstance(action.metavar, str) and action.metavar.islower():
        return action.metavar
    if isinstance(action, argparse._AppendAction):
        return "list"
    if action.type is int:
        return "int"
    if action.type is float:
        return "float"
    return "string"


def _default(action: argparse.Action, kind: str) -> str:
    value = action.default
    if value is None or value is argparse.SUPPRESS or value == [] or value == "" or value is False:
        return ""
    if kind == "":
        return "true" if value is True else ""
    if kind == "string":
        return f'"{value}"'
    if kind in ("int", "float") and value == 0:
        return ""
    return str(value)


def flags_of(parser: argparse.ArgumentParser) -> list[Flag]:
    path = command_path(parser)
    return [Flag(a, path) for a in visible_flags(parser)]


def wrap(indent: int, width: int, text: str) -> str:
    """pflag's wrap: ``text`` wrapped to ``width`` columns, continuation lines indented by ``indent``."""
    room = width - indent
    out = ""
    if room < 24:
        indent = 16
        room = width - indent
        out = "\n" + " " * indent
    if room < 24:
        return text.replace("\n", out)
    slop = 5
    room -= slop
    first, text = _wrap_n(room, slop, text)
    out += first.replace("\n", "\n" + " " * indent)
    while text:
        line, text = _wrap_n(room, slop, text)
        out += "\n" + " " * indent + line.replace("\n", "\n" + " " * indent)
    return out


def _wrap_n(i: int, slop: int, s: str) -> tuple[str, str]:
    if i + slop > len(s):
        return s, ""
    w = max(s.rfind(" ", 0, i), s.rfind("\t", 0, i), s.rfind("\n", 0, i))
    if w <= 0:
        return s, ""
    nl = s.rfind("\n", 0, i)
    if 0 < nl < w:
        return s[:nl], s[nl + 1:]
    return s[:w], s[w + 1:]


def format_flags(flags: list[Flag], width: int) -> str:
    """The Options block as pflag's FlagUsagesWrapped prints it."""
    if not flags:
        return ""
    col = max(len(f.column()) for f in flags) + 3
    lines = []
    for f in flags:
        head = f.column()
        lines.append(head + " " * (col - len(head)) + wrap(col, width, f.text()))
    return "\n".join(lines) + "\n"


# -------------------------------------------------------------------------------------- help


def _command_rows(names: list[str], prefix: str) -> list[tuple[str, str]]:
    rows = []
    for name in names:
        path = f"{prefix} {name}".strip()
        cmd = commands.lookup(path)
        # an alias of a command listed in the same group (ls/list, rm/remove) is not listed again
        if cmd and cmd.path != path and cmd.path.rsplit(" ", 1)[0] == prefix and cmd.path.split()[-1] in names:
            continue
        rows.append((name, cmd.description if cmd else ""))
    return rows


def _rows(rows: list[tuple[str, str]]) -> str:
    pad = max([11, *(len(n) for n, _ in rows)]) + 1
    return "".join(f"  {n.ljust(pad)}{d}\n" for n, d in rows)


def _sub_help(parser: argparse.ArgumentParser) -> dict[str, str]:
    """The ``help=`` each subcommand was added with (used where the table has no entry)."""
    sub = _subparsers(parser)
    return {str(a.dest): str(a.help or "") for a in sub._choices_actions} if sub else {}


def render_help(parser: argparse.ArgumentParser, width: int = WIDTH) -> str:
    path = command_path(parser)
    out = [f"Usage:  {usage_line(parser)}\n", f"{description(parser)}\n"]
    if not path:
        return "\n".join(out + _top_sections(parser, width))
    sub = _subparsers(parser)
    if sub is not None:
        names = sorted(sub.choices)
        given = _sub_help(parser)
        rows = [(n, d or given.get(n, "")) for n, d in _command_rows(names, path)]
        out.append("Commands:\n" + _rows(rows))
        extra = format_flags(flags_of(parser), width)
        if extra:
            out.append("Options:\n" + extra)
        out.append(f"Run '{PROG} {path} COMMAND --help' for more information on a command.\n")
        return "\n".join(out)
    cmd = commands.lookup(path)
    if cmd and cmd.aliases:
        out.append("Aliases:\n  " + ", ".join(f"{PROG} {a}" for a in cmd.aliases) + "\n")
    flags = format_flags(flags_of(parser), width)
    if flags:
        out.append("Options:\n" + flags)
    return "\n".join(out)


def _top_sections(parser: argparse.ArgumentParser, width: int) -> list[str]:
    names = list(getattr(parser, "top_commands", ()) or sorted(_sub_help(parser)))
    common = [n for n in commands.COMMON_COMMANDS if n in names]
    management = sorted(n for n in names if commands.section(n) == commands.MANAGEMENT)
    other = sorted(n for n in names if commands.section(n) == commands.OTHER)
    out = []
    for title, group in (("Common Commands", common), ("Management Commands", management),
                         ("Commands", other)):
        if group:
            out.append(f"{title}:\n" + _rows(_command_rows(group, "")))
    out.append("Global Options:\n" + format_flags(flags_of(parser), width))
    out.append(f"Run '{PROG} COMMAND --help' for more information on a command.\n")
    return out


# ------------------------------------------------------------------------------------ errors


def _arity(parser: argparse.ArgumentParser) -> tuple[int, float]:
    lo, hi = 0, 0.0
    for a in parser._actions:
        if a.option_strings or isinstance(a, argparse._SubParsersAction):
            continue
        n: Any = a.nargs
        lo += {None: 1, "+": 1}.get(n, n if isinstance(n, int) else 0)
        hi += {None: 1, "?": 1}.get(n, n if isinstance(n, int) else float("inf"))
    return lo, hi


def _plural(n: float) -> str:
    return "argument" if n == 1 else "arguments"


def arity_message(parser: argparse.ArgumentParser) -> tuple[str, str]:
    """docker's words for a wrong number of arguments, and whether its hint says "See" or "Run"."""
    lo, hi = _arity(parser)
    if lo == hi:
        return f"requires {lo} {_plural(lo)}", "Run"
    if hi == float("inf"):
        return f"requires at least {lo} {_plural(lo)}", "See"
    if lo == 0:
        return f"requires at most {int(hi)} {_plural(hi)}", "Run"
    return f"requires at least {lo} and at most {int(hi)} arguments", "Run"


def _known_shorts(parser: argparse.ArgumentParser) -> set[str]:
    return {o[1] for a in parser._actions for o in a.option_strings if len(o) == 2 and o[1] != "-"}


def _unknown_flag(parser: argparse.ArgumentParser) -> str:
    """The first word given to ``parser`` that looks like a flag it does not have."""
    known = parser._option_string_actions
    for word in getattr(parser, "_words", []):
        if word == "--":
            break
        if word.startswith("--") and word.split("=", 1)[0] not in known:
            return word
        if word.startswith("-") and not word.startswith("--") and len(word) > 1 and word[:2] not in known:
            return word
    return ""


def parse_error(parser: argparse.ArgumentParser, message: str) -> tuple[str, int]:
    """(text for stderr, exit status) for an argparse error: flag errors exit 125, a wrong command or
    number of arguments 1, worded as docker words them."""
    path = command_path(parser)
    full = f"{PROG} {path}".strip()
    usage = f"\n\nUsage:  {usage_line(parser)}\n\n"
    hint = f"Run '{full} --help' for more information\n"
    if message.startswith("argument COMMAND: invalid choice:"):
        word = message.split("'")[1] if "'" in message else ""
        return f"{PROG}: unknown command: {full} {word}{usage}{hint}", 1
    if message.startswith("unrecognized arguments: "):
        bad = message.split(": ", 1)[1].split()[0]
        if bad.startswith("--"):
            return f"unknown flag: {bad.split('=', 1)[0]}{usage}{hint}", 125
        if bad.startswith("-") and len(bad) > 1:
            known = _known_shorts(parser)
            ch = next((c for c in bad[1:] if c not in known), bad[1])
            return f"unknown shorthand flag: '{ch}' in {bad}{usage}{hint}", 125
        text, verb = arity_message(parser)
        return f"{PROG}: '{full}' {text}{usage}{verb}{hint[3:]}", 1
    if message.startswith("the following arguments are required:"):
        bad = _unknown_flag(parser)  # docker complains about a bad flag before missing arguments
        if bad:
            return parse_error(parser, f"unrecognized arguments: {bad}")
        text, verb = arity_message(parser)
        return f"{PROG}: '{full}' {text}{usage}{verb}{hint[3:]}", 1
    if message.startswith("argument ") and ": " in message:
        names, problem = message[len("argument "):].split(": ", 1)
        longs = [n for n in names.split("/") if n.startswith("--")]
        shorts = [n for n in names.split("/") if len(n) == 2]
        flag = ", ".join([*shorts[:1], *longs[:1]])
        if not longs and not shorts:  # a positional's value (a choice)
            value = problem.split("'")[1] if "'" in problem else ""
            reason = problem.split("(choose from ", 1)[-1].rstrip(")")
            return f'{PROG}: invalid argument "{value}" for {names}: must be one of {reason}{usage}{hint}', 1
        if problem.startswith("ignored explicit argument"):
            bad = (shorts or longs)[0] + problem.split("'")[1]
            return f"unknown shorthand flag: '{bad[2]}' in {bad}{usage}{hint}", 125
        if problem.startswith("expected one argument"):
            return f"flag needs an argument: {longs[0] if longs else names}{usage}{hint}", 125
        value = problem.split("'")[1] if "'" in problem else ""
        if "invalid int value" in problem:
            reason = f'strconv.ParseInt: parsing "{value}": invalid syntax'
        elif "invalid choice" in problem:
            reason = "must be one of " + problem.split("(choose from ", 1)[-1].rstrip(")")
        else:
            reason = problem
        return f'invalid argument "{value}" for "{flag}" flag: {reason}{usage}{hint}', 125
    return f"{message}{usage}{hint}", 125


def unknown_command(word: str) -> str:
    return f"{PROG}: unknown command: {PROG} {word}\n\nRun '{PROG} --help' for more information\n"


# ---------------------------------------------------------------------------------- markdown


def walk(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every parser under ``parser`` (itself first), subcommands by name."""
    yield parser
    sub = _subparsers(parser)
    if sub is not None:
        for name in sorted(sub.choices):
            yield from walk(sub.choices[name])


def full_parser() -> DockyardParser:
    """The whole CLI: every command's parser, and the programs ``dockyard`` hands over to."""
    from dockyard.cli.main import build_parser
    parser = build_parser()
    assert isinstance(parser, DockyardParser)
    sub = _subparsers(parser)
    assert sub is not None
    for name, build in _handed_over().items():
        target = sub.choices.get(name) or sub.add_parser(name)
        inner = build()
        for action in inner._actions:
            if isinstance(action, argparse._SubParsersAction):
                grand = target.add_subparsers(dest="subcommand", metavar="COMMAND")
                for sname, sparser in action.choices.items():
                    copy = grand.add_parser(sname)
                    for sa in sparser._actions:
                        if not isinstance(sa, argparse._HelpAction):
                            copy._add_action(sa)
    return parser


def _handed_over() -> dict[str, Any]:
    """``dockyard registry`` and ``dockyard tls`` parse their own arguments."""
    from dockyard.cli.tlscmd import build_parser as tls_parser

    def registry_parser() -> argparse.ArgumentParser:
        from dockyard.registry.main import build_parser
        return build_parser()
    return {"registry": registry_parser, "tls": tls_parser}


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;")


def markdown() -> str:
    """docs/cli.md: every command's usage, description, aliases and options."""
    parser = full_parser()
    out = ["# dockyard CLI reference\n",
           "Generated from the CLI's own definitions by `python -m dockyard.cli.helptext --markdown`; "
           "`tests/unit/test_cli_help.py` fails when this file is out of date. `dockyard COMMAND --help` "
           "prints the same in the terminal.\n",
           "```\n" + render_help(parser) + "```\n"]
    paths = sorted({canonical(command_path(p)) for p in walk(parser) if command_path(p)})
    paths = [c for c in paths if _find(parser, c) is not None]
    out.append("Commands: " + ", ".join(f"[`{c}`](#{_anchor(f'{PROG} {c}')})" for c in paths) + "\n")
    for path in paths:
        p = _find(parser, path)
        assert p is not None
        out.append(f"## {PROG} {path}\n")
        out.append(f"{description(p, path)}\n")
        out.append(f"```\nUsage:  {usage_line(p)}\n```\n")
        cmd = commands.lookup(path)
        if cmd and cmd.aliases:
            out.append("Aliases: " + ", ".join(f"`{PROG} {a}`" for a in cmd.aliases) + "\n")
        sub = _subparsers(p)
        if sub is not None:
            given = _sub_help(p)
            rows = [(n, d or given.get(n, "")) for n, d in _command_rows(sorted(sub.choices), path)]
            out.append("| Command | Description |\n|---|---|\n" + "".join(
                f"| [`{n}`](#{_sub_anchor(path, n)}) | {_md(d)} |\n" for n, d in rows))
        flags = flags_of(p)
        if flags:
            out.append("| Option | Type | Default | Description |\n|---|---|---|---|\n" + "".join(
                f"| {', '.join(f'`{o}`' for o in (f.short, f.long) if o)} | {f.type} | "
                f"{_md(f.default)} | {_md(f.help)} |\n" for f in flags))
    return "\n".join(out)


def _sub_anchor(path: str, name: str) -> str:
    """The heading a subcommand row links to: its canonical path's (``builder build`` is ``build``)."""
    return _anchor(f"{PROG} {canonical(path + ' ' + name)}")


def _anchor(title: str) -> str:
    return title.lower().replace(" ", "-")


def _has_path(parser: argparse.ArgumentParser, path: str) -> bool:
    return _find(parser, path) is not None


def _find(parser: argparse.ArgumentParser, path: str) -> argparse.ArgumentParser | None:
    p: argparse.ArgumentParser | None = parser
    for word in path.split():
        sub = _subparsers(p) if p is not None else None
        p = sub.choices.get(word) if sub is not None else None
    return p


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["--markdown"]:
        sys.stderr.write("usage: python -m dockyard.cli.helptext --markdown > docs/cli.md\n")
        return 2
    sys.stdout.write(markdown())
    return 0


if __name__ == "__main__":  # run the module's real copy: main builds its parsers with that one's class
    from dockyard.cli.helptext import main as _main
    sys.exit(_main())
