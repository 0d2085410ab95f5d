"""``dockyard commit``, ``dockyard diff`` and ``dockyard export`` (and their ``container`` forms)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from dockyard import errors

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~3 ms to import on every CLI run
    from typing import Any

_KINDS = {0: "C", 1: "A", 2: "D"}


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "t", "true"):
        return True
    if value in ("0", "f", "false"):
        return False
    raise argparse.ArgumentTypeError(f'invalid argument "{text}": parse error')


def cmd_commit(c: Any, a: argparse.Namespace) -> int:
    repo: str | None = None
    tag: str | None = None
    if a.reference:
        from dockyard.cli.images import split_repo_tag
        repo, tag = split_repo_tag(a.reference)
    res = c.commit(a.container, repo=repo, tag=tag, comment=a.message, author=a.author,
                   pause=a.pause, changes=a.change)
    print(res.get("Id", ""))
    return 0


def cmd_diff(c: Any, a: argparse.Namespace) -> int:
    out = [f"{_KINDS.get(ch.get('Kind'), '?')} {ch.get('Path', '')}\n" for ch in c.changes(a.container)]
    sys.stdout.write("".join(out))
    return 0


def cmd_export(c: Any, a: argparse.Namespace) -> int:
    if not a.output and os.isatty(1):
        raise errors.InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    from dockyard.cli.formatting import write_archive
    write_archive(c.export(a.container), a.output)
    return 0


def _commit(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--author", default="")
    p.add_argument("-c", "--change", action="append", default=[])
    p.add_argument("-m", "--message", default="")
    p.add_argument("-p", "--pause", type=_bool, nargs="?", const=True, default=True)
    p.add_argument("container")
    p.add_argument("reference", nargs="?")
    p.set_defaults(fn=cmd_commit)


def _diff(p: argparse.ArgumentParser) -> None:
    p.add_argument("container")
    p.set_defaults(fn=cmd_diff)


def _export(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output")
    p.add_argument("container")
    p.set_defaults(fn=cmd_export)


COMMIT_CMDS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "commit": _commit, "diff": _diff, "export": _export,
}
