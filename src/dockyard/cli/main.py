"""``dockyard``: Docker's CLI over the Docker Engine API. Entry point and argument parsing."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from dockyard import errors
from dockyard.cli.commit import COMMIT_CMDS
from dockyard.cli.helptext import DockyardParser, _subparsers, unknown_command

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~3 ms to import on every CLI run
    from typing import Any

    Handler = Callable[[Any, argparse.Namespace], int]


def _lazy(module: str, name: str) -> Handler:
    def call(c: Any, a: argparse.Namespace) -> int:
        import importlib
        return int(getattr(importlib.import_module(f"dockyard.cli.{module}"), name)(c, a))
    return call


def _ps(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-n", "--last", type=int, default=-1)
    p.add_argument("-l", "--latest", action="store_true")
    p.add_argument("-f", "--filter", action="append", default=[])
    p.add_argument("--format")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("-s", "--size", action="store_true")
    p.set_defaults(fn=_lazy("containers", "cmd_ps"))


def _run_like(p: argparse.ArgumentParser, run: bool) -> None:
    from dockyard.cli.runopts import add_run_flags
    add_run_flags(p, create=not run)
    p.add_argument("image")
    p.add_argument("command", nargs=argparse.REMAINDER)

    def fn(c: Any, a: argparse.Namespace) -> int:
        from dockyard.cli.containers import create_or_run
        return create_or_run(c, a, run)
    p.set_defaults(fn=fn, interspersed=1)


def _simple(fn_name: str, op: str | None = None, **flags: Any) -> Callable[[argparse.ArgumentParser], None]:
    def setup(p: argparse.ArgumentParser) -> None:
        for flag, kw in flags.items():
            opts = {k: v for k, v in kw.items() if k != "names"}
            p.add_argument(*kw["names"], dest=flag, **opts)
        p.add_argument("containers", nargs="+", metavar="CONTAINER")
        if op is None:
            p.set_defaults(fn=_lazy("containers", fn_name))
            return

        def fn(c: Any, a: argparse.Namespace) -> int:
            from dockyard.cli.containers import each
            method = getattr(c, op)
            kwargs = {k: getattr(a, k) for k in flags}
            return each(a.containers, lambda r: method(r, **kwargs))
        p.set_defaults(fn=fn)
    return setup


def _start(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--attach", action="store_true")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("--detach-keys")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(fn=_lazy("containers", "cmd_start"))


def _rm(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("-v", "--volumes", action="store_true")
    p.add_argument("-l", "--link", action="store_true")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")

    def fn(c: Any, a: argparse.Namespace) -> int:
        from dockyard.cli.containers import each
        return each(a.containers, lambda r: c.remove(r, a.force, a.volumes))
    p.set_defaults(fn=fn)


def _logs(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("-t", "--timestamps", action="store_true")
    p.add_argument("--since")
    p.add_argument("--until")
    p.add_argument("-n", "--tail", default="all")
    p.add_argument("--details", action="store_true")
    p.add_argument("container")
    p.set_defaults(fn=_lazy("containers", "cmd_logs"))


def _inspect(kind: str | None) -> Callable[[argparse.ArgumentParser], None]:
    def setup(p: argparse.ArgumentParser) -> None:
        p.add_argument("-f", "--format")
        p.add_argument("-s", "--size", action="store_true")
        if kind is None:
            p.add_argument("--type", choices=["container", "image"])
        p.add_argument("names", nargs="+", metavar="NAME")

        def fn(c: Any, a: argparse.Namespace) -> int:
            from dockyard.cli.containers import cmd_inspect
            return cmd_inspect(c, a, kind)
        p.set_defaults(fn=fn, type=None)
    return setup


def _exec(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", "--detach", action="store_true")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("-u", "--user", default="")
    p.add_argument("-w", "--workdir", default="")
    p.add_argument("--privileged", action="store_true")
    p.add_argument("--detach-keys")
    p.add_argument("container")
    p.add_argument("command", nargs=argparse.REMAINDER)
    p.set_defaults(fn=_lazy("containers", "cmd_exec"), interspersed=1)


def _attach(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-stdin", action="store_true")
    p.add_argument("--sig-proxy", default="true")
    p.add_argument("--detach-keys")
    p.add_argument("container")
    p.set_defaults(fn=_lazy("containers", "cmd_attach"))


def _top(p: argparse.ArgumentParser) -> None:
    p.add_argument("container")
    p.add_argument("ps_args", nargs=argparse.REMAINDER)
    p.set_defaults(fn=_lazy("containers", "cmd_top"))


def _rename(p: argparse.ArgumentParser) -> None:
    p.add_argument("container")
    p.add_argument("new_name")
    p.set_defaults(fn=lambda c, a: c.rename(a.container, a.new_name) or 0)


def _update(p: argparse.ArgumentParser) -> None:
    from dockyard.cli.runopts import add_resource_flags
    add_resource_flags(p)
    p.add_argument("--restart")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(fn=_lazy("containers", "cmd_update"))


def _cprune(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("--filter", action="append", default=[])
    p.set_defaults(fn=_lazy("containers", "cmd_container_prune"))


def _images(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("-f", "--filter", action="append", default=[])
    p.add_argument("--format")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("--digests", action="store_true")
    p.add_argument("reference", nargs="?")
    p.set_defaults(fn=_lazy("images", "cmd_images"))


def _rmi(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("--no-prune", action="store_true")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.set_defaults(fn=_lazy("images", "cmd_rmi"))


def _tag(p: argparse.ArgumentParser) -> None:
    p.add_argument("source")
    p.add_argument("target")
    p.set_defaults(fn=_lazy("images", "cmd_tag"))


def _history(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--format")
    p.add_argument("-H", "--human", default="true", nargs="?", const="true")
    p.add_argument("image")
    p.set_defaults(fn=_lazy("images", "cmd_history"))


def _load(p: argparse.ArgumentParser) -> None:
    p.add_argument("-i", "--input")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(fn=_lazy("images", "cmd_load"))


def _save(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.set_defaults(fn=_lazy("images", "cmd_save"))


def _import(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--change", action="append", default=[])
    p.add_argument("-m", "--message", default="")
    p.add_argument("file")
    p.add_argument("reference", nargs="?")
    p.set_defaults(fn=_lazy("images", "cmd_import"))


def _iprune(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("--filter", action="append", default=[])
    p.set_defaults(fn=_lazy("images", "cmd_image_prune"))


def _fmt_only(name: str) -> Callable[[argparse.ArgumentParser], None]:
    def setup(p: argparse.ArgumentParser) -> None:
        p.add_argument("-f", "--format")
        p.set_defaults(fn=_lazy("images", name))
    return setup


def _events(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since")
    p.add_argument("--until")
    p.add_argument("-f", "--filter", action="append", default=[])
    p.add_argument("--format")
    p.set_defaults(fn=_lazy("images", "cmd_events"))


def _bootstrap(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=["busybox"])
    p.add_argument("tag", nargs="?")
    p.add_argument("--busybox", default="/bin/busybox", help="static busybox binary to use")
    p.set_defaults(fn=_lazy("images", "cmd_bootstrap"))


def _setup(module: str, name: str) -> Callable[[argparse.ArgumentParser], None]:
    """A command whose flags ``dockyard.cli.<module>.<name>(parser)`` adds (imported when used)."""
    def add(p: argparse.ArgumentParser) -> None:
        import importlib
        getattr(importlib.import_module(f"dockyard.cli.{module}"), name)(p)
    return add


def _net(setup: str) -> Callable[[argparse.ArgumentParser], None]:
    return _setup("networks", setup)


def _vol(setup: str) -> Callable[[argparse.ArgumentParser], None]:
    return _setup("volumes", setup)


def _cp(p: argparse.ArgumentParser) -> None:
    """``cp`` lives in its own module; without it (a partial checkout) the rest still parses."""
    import importlib
    try:
        module = importlib.import_module("dockyard.cli.cp")
    except ModuleNotFoundError as exc:
        if exc.name != "dockyard.cli.cp":
            raise
        p.add_argument("paths", nargs="*")

        def missing(c: Any, a: argparse.Namespace) -> int:
            raise errors.InvalidArgument("'dockyard cp' is not available in this build")
        p.set_defaults(fn=missing)
        return
    module.add_cp_flags(p)
    p.set_defaults(fn=_lazy("cp", "cmd_cp"))


_sig = {"names": ("-s", "--signal")}
CONTAINER_CMDS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "run": lambda p: _run_like(p, True),
    "create": lambda p: _run_like(p, False),
    "start": _start,
    "stop": _simple("", "stop", timeout={"names": ("-t", "--timeout", "--time"), "type": int},
                    signal=dict(_sig)),
    "restart": _simple("", "restart", timeout={"names": ("-t", "--timeout", "--time"), "type": int},
                       signal=dict(_sig)),
    "kill": _simple("", "kill", signal=dict(_sig)),
    "rm": _rm,
    "ps": _ps,
    "logs": _logs,
    "wait": _simple("cmd_wait"),
    "exec": _exec,
    "attach": _attach,
    "top": _top,
    "rename": _rename,
    "pause": _simple("", "pause"),
    "unpause": _simple("", "unpause"),
    "update": _update,
    "port": _net("add_port"),
    "cp": _cp,
    "stats": _setup("stats", "add_stats_flags"),
    **COMMIT_CMDS,
}
def _build(p: argparse.ArgumentParser) -> None:
    from dockyard.cli.build import add_build_flags
    add_build_flags(p)


def _bprune(p: argparse.ArgumentParser) -> None:
    from dockyard.cli.build import add_prune_flags
    add_prune_flags(p)


def _dist(setup: str) -> Callable[[argparse.ArgumentParser], None]:
    return _setup("distribution", setup)


IMAGE_CMDS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "ls": _images, "rm": _rmi, "tag": _tag, "history": _history, "load": _load, "save": _save,
    "import": _import, "prune": _iprune, "inspect": _inspect("image"), "build": _build,
    "pull": _dist("add_pull"), "push": _dist("add_push"),
}
BUILDER_CMDS: dict[str, Callable[[argparse.ArgumentParser], None]] = {"build": _build, "prune": _bprune}


SYSTEM_CMDS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "df": _setup("system", "add_df_flags"), "info": _fmt_only("cmd_info"), "events": _events,
    "prune": _setup("system", "add_prune_flags"), "check": _setup("check", "add_check_flags"),
}
NETWORK_CMDS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "create": _net("add_create"), "ls": _net("add_ls"), "list": _net("add_ls"), "inspect": _net("add_inspect"),
    "rm": _net("add_rm"), "remove": _net("add_rm"), "connect": _net("add_connect"),
    "disconnect": _net("add_disconnect"), "prune": _net("add_prune"),
}
VOLUME_CMDS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "create": _vol("add_create"), "ls": _vol("add_ls"), "list": _vol("add_ls"), "inspect": _vol("add_inspect"),
    "rm": _vol("add_rm"), "remove": _vol("add_rm"), "prune": _vol("add_prune"),
}
GROUPS = ("container", "image", "builder", "system", "network", "volume")
TOP_CMDS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    **CONTAINER_CMDS, "inspect": _inspect(None), "images": _images, "rmi": _rmi, "tag": _tag,
    "history": _history, "load": _load, "save": _save, "import": _import, "build": _build,
    "pull": _dist("add_pull"), "push": _dist("add_push"), "login": _dist("add_login"),
    "logout": _dist("add_logout"), "search": _dist("add_search"),
    "version": _fmt_only("cmd_version"), "info": _fmt_only("cmd_info"), "events": _events,
    "bootstrap": _bootstrap, "context": _setup("context", "add_context_flags"),
    "completion": _setup("completion", "add_completion_flags"),
}
HANDED_OVER = ("registry", "tls")  # parse their own arguments (see main)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only`` just that command's subparser is built (fast start)."""
    parser = DockyardParser(prog="dockyard")
    parser.top_commands = (*TOP_CMDS, *GROUPS, *HANDED_OVER)  # `dockyard --help` lists them all
    parser.add_argument("-H", "--host", help="daemon socket: unix:///path or tcp://host:port")
    parser.add_argument("-c", "--context", help="name of the context to use (overrides DOCKYARD_HOST, "
                        "DOCKER_HOST, DOCKER_CONTEXT and 'dockyard context use')")
    parser.add_argument("-D", "--debug", action="store_true")
    parser.add_argument("--tls", action="store_true", help="use TLS; implied by --tlsverify")
    parser.add_argument("--tlsverify", action="store_true", help="use TLS and verify the daemon "
                        "(DOCKER_TLS_VERIFY)")
    parser.add_argument("--tlscacert", metavar="FILE", help="trust certificates signed by this CA only "
                        "(default $DOCKER_CERT_PATH/ca.pem, DOCKER_CERT_PATH default ~/.docker)")
    parser.add_argument("--tlscert", metavar="FILE", help="client certificate (default $DOCKER_CERT_PATH/cert.pem)")
    parser.add_argument("--tlskey", metavar="FILE", help="client key (default $DOCKER_CERT_PATH/key.pem)")
    parser.add_argument("-v", "--version", action="store_true", help="print version and exit")
    sub = parser.add_subparsers(dest="verb", metavar="COMMAND")  # run has its own "command"
    for name, setup in TOP_CMDS.items():
        if only is None or only == name:
            setup(sub.add_parser(name, add_help=name not in ("run", "create")))
    if only is None:  # listed for --help; `dockyard registry ...` is handed over before parsing
        sub.add_parser("registry", help="run an OCI registry: registry serve|gc (see docs/registry.md)")
        sub.add_parser("tls", help="make a CA and daemon/client certificates: tls generate (see docs/security.md)")
    for group, cmds in (("container", {**CONTAINER_CMDS, "ls": _ps, "list": _ps, "ps": _ps, "remove": _rm,
                                       "inspect": _inspect("container"), "prune": _cprune}),
                        ("image", {**IMAGE_CMDS, "list": _images, "remove": _rmi}),
                        ("builder", BUILDER_CMDS), ("system", SYSTEM_CMDS), ("network", NETWORK_CMDS),
                        ("volume", VOLUME_CMDS)):
        if only is not None and only != group:
            continue
        gp = sub.add_parser(group)
        gp.set_defaults(help_parser=gp)  # `dockyard GROUP` alone prints the group's help
        gsub = gp.add_subparsers(dest="subcommand", metavar="COMMAND")
        for name, setup in cmds.items():
            setup(gsub.add_parser(name, add_help=group != "container" or name not in ("run", "create")))
    return parser


def _command_index(argv: list[str]) -> int:
    """Where the command word is: after the global flags (``-H``/``--host`` and the TLS file flags take
    a value)."""
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] in _VALUE_FLAGS else 1
    return i


_VALUE_FLAGS = frozenset(("-H", "--host", "-c", "--context", "--tlscacert", "--tlscert", "--tlskey"))


def _split_interspersed(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """For run/create/exec stop option parsing at IMAGE/CONTAINER: put '--' before COMMAND. The
    flags that take a value come from the command's parser in ``parser`` (built once per run)."""
    cmd_idx = _command_index(argv)
    if cmd_idx >= len(argv):
        return argv
    names = [argv[cmd_idx]]
    start = cmd_idx + 1
    if names[0] in ("container", "image") and start < len(argv):
        names.append(argv[start])
        start += 1
    if names[-1] not in ("run", "create", "exec"):
        return argv
    sub: argparse.ArgumentParser | None = parser
    for name in names:
        action = _subparsers(sub) if sub is not None else None
        sub = action.choices.get(name) if action is not None else None
    if sub is None:
        return argv
    from dockyard.cli.runopts import split_interspersed  # here: `ps` need not import the run flags
    head, rest = split_interspersed(sub, argv[start:])
    return argv[:start] + head + (["--", *rest] if rest else [])


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    idx = _command_index(args)
    if idx < len(args) and args[idx] == "registry":
        # The registry server is a separate program reachable through the dockyard command.
        from dockyard.registry.main import main as registry_main
        return registry_main(args[idx + 1:])
    if idx < len(args) and args[idx] == "tls":  # local files only: no daemon, no client
        from dockyard.cli.tlscmd import main as tls_main
        return tls_main(args[idx + 1:])
    first = args[idx] if idx < len(args) else None
    if first is not None and first not in TOP_CMDS and first not in GROUPS:
        sys.stderr.write(unknown_command(first))
        return 1
    # only the invoked command's parser is built (none without a command: `--help` reads the table)
    parser = build_parser(first or "")
    args = _split_interspersed(args, parser)
    try:
        a = parser.parse_args(args)
    except SystemExit as exc:  # --help (0) or a usage error (docker's 125 or 1, see helptext)
        return exc.code if isinstance(exc.code, int) else 1
    if a.version:
        print("Dockyard version 0.1.0")
        return 0
    if not getattr(a, "fn", None):
        getattr(a, "help_parser", parser).print_help()
        return 0
    # docker exits 125 when run/create itself fails (as opposed to the container's own status)
    verb = getattr(a, "subcommand", None) if a.verb == "container" else a.verb
    failed = 125 if verb in ("run", "create") else 1
    try:
        from dockyard.client.api import Client
        from dockyard.client.tls import resolve as resolve_tls
        from dockyard.client.transport import host_from_env
        tls = resolve_tls(a.tls, a.tlsverify, a.tlscacert, a.tlscert, a.tlskey)
        client = None if getattr(a, "local", False) else Client(host_from_env(a.host, tls, a.context))
        return int(a.fn(client, a))
    except errors.Unavailable as exc:
        from dockyard.client.transport import DaemonUnreachable
        prefix = "" if isinstance(exc, DaemonUnreachable) else "Error response from daemon: "
        sys.stderr.write(f"{prefix}{exc}\n")
        return failed if prefix == "" else 1
    except errors.InvalidArgument as exc:
        status = getattr(exc, "status", None)
        sys.stderr.write(f"Error response from daemon: {exc}\n" if status else f"Error: {exc}\n")
        return int(getattr(exc, "exit_code", failed))
    except errors.DockyardError as exc:
        if getattr(exc, "status", None):
            sys.stderr.write(f"Error response from daemon: {exc}\n")
        else:
            sys.stderr.write(f"Error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
