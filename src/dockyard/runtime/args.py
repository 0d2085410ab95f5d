"""Command line of ``dockyard-runtime`` (runc's grammar: global flags, command, flags, positionals).

Hand-rolled: argparse costs ~10 ms of imports on every runtime call.
"""

from __future__ import annotations

from dockyard.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_ROOT = "/run/dockyard/runtime"



class Args:
    """Parsed command line: global flags, the command, its flags and positionals."""

    def __init__(self) -> None:
        self.root = DEFAULT_ROOT
        self.log: str | None = None
        self.log_format = "text"
        self.command = ""
        self.values: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None


# flag -> (dest, takes a value); aliases map to the same dest
_GLOBAL = {"--root": ("root", True), "--log": ("log", True), "--log-format": ("log_format", True),
           "--debug": ("debug", False), "--systemd-cgroup": ("systemd_cgroup", False)}
_COMMANDS: dict[str, tuple[dict[str, tuple[str, bool]], list[str]]] = {
    "create": ({"--bundle": ("bundle", True), "-b": ("bundle", True), "--pid-file": ("pid_file", True),
                "--console-socket": ("console_socket", True), "--no-pivot": ("no_pivot", False),
                "--no-new-keyring": ("no_new_keyring", False),
                "--preserve-fds": ("preserve_fds", True)}, ["id"]),
    "start": ({}, ["id"]), "state": ({}, ["id"]), "pause": ({}, ["id"]), "resume": ({}, ["id"]),
    "kill": ({"--all": ("all", False), "-a": ("all", False)}, ["id", "signal?"]),
    "delete": ({"--force": ("force", False), "-f": ("force", False)}, ["id"]),
    "exec": ({"--process": ("process", True), "-p": ("process", True), "--pid-file": ("pid_file", True),
              "--detach": ("detach", False), "-d": ("detach", False),
              "--console-socket": ("console_socket", True), "--tty": ("tty", False), "-t": ("tty", False),
              "--preserve-fds": ("preserve_fds", True)},
             ["id"]),
    "ps": ({"--format": ("format", True), "-f": ("format", True)}, ["id"]),
    "update": ({"--resources": ("resources", True), "-r": ("resources", True)}, ["id"]),
}
_DEFAULTS = {"bundle": ".", "signal": "SIGTERM", "format": "table"}


def _take(argv: list[str], i: int, table: dict[str, tuple[str, bool]], out: dict[str, Any]) -> int:
    """Consume the flag at argv[i] (``--x v``, ``--x=v`` or a boolean); returns the next index."""
    flag, eq, inline = argv[i].partition("=")
    if flag not in table:
        raise InvalidArgument(f"unknown flag {flag}")
    dest, takes_value = table[flag]
    if not takes_value:
        out[dest] = inline.lower() not in ("false", "0") if eq else True
        return i + 1
    if eq:
        out[dest] = inline
        return i + 1
    if i + 1 >= len(argv):
        raise InvalidArgument(f"flag {flag} needs a value")
    out[dest] = argv[i + 1]
    return i + 2


def parse_args(argv: list[str]) -> Args:
    args = Args()
    glob: dict[str, Any] = {}
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i = _take(argv, i, _GLOBAL, glob)
    for key in ("root", "log", "log_format"):
        if key in glob:
            setattr(args, key, glob[key])
    if i >= len(argv):
        raise InvalidArgument(f"no command given (one of: {', '.join(_COMMANDS)})")
    args.command = argv[i]
    if args.command not in _COMMANDS:
        raise InvalidArgument(f"unknown command {args.command!r}")
    flags, positional = _COMMANDS[args.command]
    values: dict[str, Any] = {dest: _DEFAULTS.get(dest) for dest, _ in flags.values()}
    rest: list[str] = []
    i += 1
    while i < len(argv):
        if argv[i] == "--":
            rest.extend(argv[i + 1:])
            break
        if argv[i].startswith("-") and len(argv[i]) > 1 and not (rest and argv[i][1:].isdigit()):
            i = _take(argv, i, flags, values)
        else:
            rest.append(argv[i])
            i += 1
    required = [p for p in positional if not p.endswith("?")]
    if not required[0:1] or len(rest) < len(required) or len(rest) > len(positional):
        raise InvalidArgument(f"{args.command}: expected {' '.join(positional)}, got {rest or 'nothing'}")
    for name, value in zip(positional, rest, strict=False):
        values[name.rstrip("?")] = value
    for name in positional:
        values.setdefault(name.rstrip("?"), _DEFAULTS.get(name.rstrip("?")))
    if values.get("format") not in (None, "table", "json"):
        raise InvalidArgument(f"unknown format {values['format']!r}")
    args.values = values
    return args
