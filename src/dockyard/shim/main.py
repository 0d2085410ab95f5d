"""``dockyard-shim``: a shim in a process of its own (the daemon normally hosts shims in its shim
host, ``shim.host``; this exec'd form is the fallback and the debugging tool).

    dockyard-shim --id ID --bundle DIR --state-dir DIR --runtime PATH --runtime-root DIR
                  --log-path FILE [--log-max-size BYTES] [--log-max-file N] [--tty] [--stdin]
                  [--console-size H,W] [--foreground]

The first process validates the flags (errors on stderr, exit 2), forks and exits 0; the child
carries on with stdio on /dev/null (its errors go to ``<state-dir>/shim.log``), becomes a child
subreaper, runs ``runtime create``, listens on ``shim.sock`` and writes ``ready``.
``--foreground`` skips the fork (debugging).
"""

from __future__ import annotations

import os
import sys

from dockyard.shim.jsonlog import DEFAULT_MAX_FILE, DEFAULT_MAX_SIZE
from dockyard.shim.server import Options

_VALUED = ("--id", "--bundle", "--state-dir", "--runtime", "--runtime-root", "--log-path",
           "--log-max-size", "--log-max-file", "--console-size")
_FLAGS = ("--tty", "--stdin", "--foreground")
_REQUIRED = _VALUED[:5]  # and --log-path, which may be "" (the "none" log driver: no file)


class UsageError(Exception):
    pass


def parse(argv: list[str]) -> tuple[Options, bool]:
    """Hand-rolled on purpose: argparse (and the re/enum it pulls in) costs ~7 ms per container."""
    vals: dict[str, str] = {}
    flags: set[str] = set()
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, inline = arg.partition("=")
        if name in _VALUED:
            if eq:
                vals[name] = inline
            elif i + 1 < len(argv):
                i += 1
                vals[name] = argv[i]
            else:
                raise UsageError(f"{name} needs a value")
        elif arg in _FLAGS:
            flags.add(arg)
        else:
            raise UsageError(f"unknown argument {arg!r}")
        i += 1
    missing = [n for n in _REQUIRED if not vals.get(n)] + [n for n in ("--log-path",) if n not in vals]
    if missing:
        raise UsageError(f"missing {', '.join(missing)}")

    def number(name: str, default: int) -> int:
        try:
            return int(vals[name]) if name in vals else default
        except ValueError:
            raise UsageError(f"{name} wants an integer, got {vals[name]!r}") from None

    size = None
    if "--console-size" in vals:
        try:
            h, w = (int(x) for x in vals["--console-size"].split(","))
        except ValueError:
            raise UsageError(f"--console-size wants H,W, got {vals['--console-size']!r}") from None
        size = (h, w)
    opts = Options(id=vals["--id"], bundle=os.path.abspath(vals["--bundle"]),
                   state_dir=os.path.abspath(vals["--state-dir"]), runtime=vals["--runtime"],
                   runtime_root=os.path.abspath(vals["--runtime-root"]),
                   log_path=os.path.abspath(vals["--log-path"]) if vals["--log-path"] else "",  # "": none
                   log_max_size=number("--log-max-size", DEFAULT_MAX_SIZE),
                   log_max_file=number("--log-max-file", DEFAULT_MAX_FILE),
                   tty="--tty" in flags, stdin="--stdin" in flags, console_size=size)
    return opts, "--foreground" in flags


def _detach_stdio() -> None:
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)


def main(argv: list[str] | None = None) -> None:
    try:
        opts, foreground = parse(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        sys.stderr.write(f"dockyard-shim: {exc}\n{__doc__}")
        sys.exit(2)
    os.makedirs(opts.state_dir, mode=0o700, exist_ok=True)
    if not foreground and os.fork() > 0:
        os._exit(0)  # the spawner reaps this at once; the shim is re-parented away from it
    _detach_stdio()
    os.chdir(opts.state_dir)  # where tools (and the tests' clean-up) look for a shim's process
    from dockyard.shim.host import Host, become_subreaper, write_ready
    try:
        become_subreaper()
    except OSError as exc:
        write_ready(opts.state_dir, {"error": f"shim: {exc}", "kind": "Internal"})
        sys.exit(1)
    host = Host()  # a host of one: it exits once this container is deleted
    if host.start(opts) is None:
        sys.exit(1)
    host.run()


if __name__ == "__main__":
    main()
