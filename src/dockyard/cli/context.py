"""``dockyard context create|use|ls|inspect|rm|show|update``: docker's context commands over the
context store the stock ``docker`` CLI uses (``dockyard.client.contexts``), with docker 28's output.

These commands only touch local files: ``main`` builds no API client for them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from dockyard import errors
from dockyard.client.contexts import DEFAULT, TLS_FILES, Context, Store, env_host, resolve_name

_ENDPOINT_KEYS = ("from", "host", "ca", "cert", "key", "skip-tls-verify")
_LS_TABLE = "table {{.Name}}{{if .Current}} *{{end}}\t{{.Description}}\t{{.DockerEndpoint}}\t{{.Error}}"
_LS_HEADERS = {"Name": "NAME", "Description": "DESCRIPTION", "DockerEndpoint": "DOCKER ENDPOINT",
               "Error": "ERROR", "Current": ""}
_ENDPOINT_HELP = """Docker endpoint config:

NAME                DESCRIPTION
from                Copy named context's Docker endpoint configuration
host                Docker endpoint on which to connect
ca                  Trust certs signed only by this CA
cert                Path to TLS certificate file
key                 Path to TLS key file
skip-tls-verify     Skip TLS certificate validation

Example:

$ dockyard context %s my-context --description "some description" --docker "host=tcp://myserver:2376,ca=~/ca-file,cert=~/cert-file,key=~/key-file"
"""


def _current(a: argparse.Namespace, store: Store) -> str:
    return resolve_name(getattr(a, "context", None), getattr(a, "host", None), store=store)


def _endpoint_options(items: list[str]) -> dict[str, str]:
    """``--docker`` values (``key=value`` pairs separated by commas, the flag repeatable)."""
    out: dict[str, str] = {}
    for item in items:
        for pair in item.split(","):
            if not pair.strip():
                continue
            key, eq, value = pair.partition("=")
            key = key.strip()
            if not eq:
                raise errors.InvalidArgument(f'invalid argument "{item}" for "--docker" flag: '
                                             f"{pair} must be formatted as key=value")
            if key not in _ENDPOINT_KEYS:
                raise errors.InvalidArgument("unable to create docker endpoint config: "
                                             f"unrecognized config key: {key}")
            out[key] = value
    return out


def _read_tls(path: str) -> bytes:
    full = os.path.expanduser(path)
    try:
        return Path(full).read_bytes()
    except OSError as exc:
        raise errors.InvalidArgument(f"unable to create docker endpoint config: open {full}: "
                                     f"{(exc.strerror or str(exc)).lower()}") from exc


def _tls_of(ctx: Context) -> dict[str, bytes]:
    return {key: Path(path).read_bytes() for key, path in ctx.tls.items()}


def _endpoint(a: argparse.Namespace, store: Store, base: Context | None) -> tuple[str, bool, dict[str, bytes]]:
    """(host, skip-tls-verify, TLS files) from ``--docker``/``--from`` over ``base``."""
    opts = _endpoint_options(a.docker)
    source = opts.pop("from", None) or getattr(a, "from_", None)
    if source:
        base = store.get(source)
    host = base.host if base else ""
    skip = base.skip_tls_verify if base else False
    tls = _tls_of(base) if base else {}
    if "host" in opts:
        host = opts["host"]
    if "skip-tls-verify" in opts:
        value = opts["skip-tls-verify"].lower()
        if value not in ("true", "false", "1", "0", "t", "f"):
            raise errors.InvalidArgument(f'unable to create docker endpoint config: invalid value '
                                         f'"{opts["skip-tls-verify"]}" for skip-tls-verify')
        skip = value in ("true", "1", "t")
    for key in TLS_FILES:
        if opts.get(key):
            tls[key] = _read_tls(opts[key])
    if not host:
        raise errors.InvalidArgument("unable to create docker endpoint config: no host given "
                                     "(--docker host=unix:///path or tcp://host:port)")
    return host, skip, tls


def cmd_create(c: Any, a: argparse.Namespace) -> int:
    store = Store()
    from dockyard.client.contexts import validate_name
    validate_name(a.name)
    if store.exists(a.name):
        raise errors.AlreadyExists(f'context "{a.name}" already exists')
    base = None
    if not a.docker and not a.from_:  # as docker: a copy of the context in use
        base = store.get(_current(a, store))
    host, skip, tls = _endpoint(a, store, base)
    store.create(a.name, host, a.description or "", skip, tls)
    print(a.name)
    sys.stderr.write(f'Successfully created context "{a.name}"\n')
    return 0


def cmd_update(c: Any, a: argparse.Namespace) -> int:
    store = Store()
    if a.name == DEFAULT:
        raise errors.InvalidArgument(f'context "{DEFAULT}" cannot be updated')
    ctx = store.get(a.name)
    host, skip, tls = _endpoint(a, store, ctx) if a.docker else (ctx.host, ctx.skip_tls_verify, _tls_of(ctx))
    description = ctx.description if a.description is None else a.description
    store.write(a.name, host, description, skip, tls, keep=ctx.meta)
    print(a.name)
    sys.stderr.write(f'Successfully updated context "{a.name}"\n')
    return 0


def cmd_use(c: Any, a: argparse.Namespace) -> int:
    store = Store()
    if a.name != DEFAULT:
        store.get(a.name)  # must exist
    store.set_current(a.name)
    print(a.name)
    sys.stderr.write(f'Current context is now "{a.name}"\n')
    var = env_host()[0]
    if var:
        sys.stderr.write(f"Warning: {var} environment variable overrides the active context. To use "
                         f'"{a.name}", either set the global --context flag, or unset {var} environment variable.\n')
    return 0


def cmd_show(c: Any, a: argparse.Namespace) -> int:
    print(_current(a, Store()))
    return 0


def cmd_ls(c: Any, a: argparse.Namespace) -> int:
    from dockyard.cli.formatting import ellipsis, render_list
    store = Store()
    current = _current(a, store)
    rows: list[dict[str, Any]] = []
    names = set()
    for ctx, name, error in store.entries():
        names.add(name)
        rows.append({"Current": name == current, "Description": ctx.description if ctx else "",
                     "DockerEndpoint": ctx.host if ctx else "", "Error": error, "Name": name})
    if current not in names:  # a current context that is not there: listed with the reason
        try:
            store.get(current)
            error = ""
        except errors.DockyardError as exc:
            error = str(exc)
        rows.append({"Current": True, "Description": "", "DockerEndpoint": "", "Error": error, "Name": current})
        rows.sort(key=lambda r: str(r["Name"]))
    template = a.format or _LS_TABLE
    if a.quiet and not a.format:
        template = "{{.Name}}"
    elif template == "table":
        template = _LS_TABLE
    if template.startswith("table"):  # the table shortens errors; json and templates do not
        rows = [{**r, "Error": ellipsis(str(r["Error"]), 45)} for r in rows]
    sys.stdout.write(render_list(template, rows, _LS_HEADERS, quiet_field="Name"))
    var = env_host()[0]
    if var and not getattr(a, "context", None):
        sys.stderr.write(f"Warning: {var} environment variable overrides the active context. To use a "
                         f"context, either set the global --context flag, or unset {var} environment variable.\n")
    return 0


def cmd_inspect(c: Any, a: argparse.Namespace) -> int:
    from dockyard.cli.volumes import render_inspect
    store = Store()
    names = a.names or [_current(a, store)]
    found: list[dict[str, Any]] = []
    failed = False
    for name in names:
        try:
            found.append(store.get(name).inspect())
        except errors.NotFound as exc:
            sys.stderr.write(f"{exc}\n")
            failed = True
    sys.stdout.write(render_inspect(found, a.format))
    return 1 if failed else 0


def cmd_rm(c: Any, a: argparse.Namespace) -> int:
    store = Store()
    current = store.current()
    failed = False
    for name in a.names:
        try:
            if name == DEFAULT:
                raise errors.InvalidArgument(f'context "{DEFAULT}" cannot be removed')
            if name == current and not a.force:
                raise errors.Conflict(f'context "{name}" is in use, set -f flag to force remove')
            store.remove(name)
            if name == current:
                store.set_current(DEFAULT)
            print(name)
        except errors.DockyardError as exc:
            sys.stderr.write(f"{exc}\n")
            failed = True
    return 1 if failed else 0


def _endpoint_flags(p: argparse.ArgumentParser, verb: str) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = _ENDPOINT_HELP % verb
    p.add_argument("--description", help="Description of the context")
    p.add_argument("--docker", action="append", default=[], metavar="stringToString",
                   help="set the docker endpoint: host=unix:///path|tcp://host:port[,ca=FILE,cert=FILE,"
                        "key=FILE,skip-tls-verify=true|false,from=CONTEXT]")
    p.add_argument("name", metavar="CONTEXT", help="name of the context")


def add_context_flags(p: argparse.ArgumentParser) -> None:
    """``dockyard context COMMAND``: the subcommands and their flags."""
    p.description = "Manage contexts (the daemons dockyard can talk to; shared with the docker CLI)"
    sub = p.add_subparsers(dest="subcommand", metavar="COMMAND")
    p.set_defaults(help_parser=p)  # `dockyard context` alone prints this help, as docker does

    create = sub.add_parser("create", help="Create a context", description="Create a context")
    _endpoint_flags(create, "create")
    create.add_argument("--from", dest="from_", metavar="string", help="create context from a named context")
    create.set_defaults(fn=cmd_create)

    update = sub.add_parser("update", help="Update a context", description="Update a context")
    _endpoint_flags(update, "update")
    update.set_defaults(fn=cmd_update, from_=None)

    use = sub.add_parser("use", help="Set the current docker context", description="Set the current docker context")
    use.add_argument("name", metavar="CONTEXT", help="name of the context ('default' for the default daemon)")
    use.set_defaults(fn=cmd_use)

    for verb in ("ls", "list"):
        ls = sub.add_parser(verb, help="List contexts", description="List contexts")
        ls.add_argument("--format", help="Format output using a custom template: 'table', 'table TEMPLATE', "
                                         "'json' or a Go template")
        ls.add_argument("-q", "--quiet", action="store_true", help="Only show context names")
        ls.set_defaults(fn=cmd_ls)

    inspect = sub.add_parser("inspect", help="Display detailed information on one or more contexts",
                             description="Display detailed information on one or more contexts")
    inspect.add_argument("-f", "--format", help="Format output using a custom template: 'json' or a Go template")
    inspect.add_argument("names", nargs="*", metavar="CONTEXT", help="contexts (default: the current one)")
    inspect.set_defaults(fn=cmd_inspect)

    for verb in ("rm", "remove"):
        rm = sub.add_parser(verb, help="Remove one or more contexts", description="Remove one or more contexts")
        rm.add_argument("-f", "--force", action="store_true", help="Force the removal of a context in use")
        rm.add_argument("names", nargs="+", metavar="CONTEXT", help="contexts to remove")
        rm.set_defaults(fn=cmd_rm)

    show = sub.add_parser("show", help="Print the name of the current context",
                          description="Print the name of the current context")
    show.set_defaults(fn=cmd_show)
    p.set_defaults(local=True)  # no daemon: main builds no API client for these
