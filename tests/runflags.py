"""The POST /containers/create body the CLI builds for ``run`` flags (unit tests of the flags)."""

from __future__ import annotations

import argparse
from typing import Any

from dockyard.cli.runopts import add_run_flags, create_body, split_interspersed


def run_body(*argv: str) -> dict[str, Any]:
    """``dockyard run ARGV busybox``'s create body."""
    p = argparse.ArgumentParser(add_help=False)
    add_run_flags(p)
    head, rest = split_interspersed(p, [*argv, "busybox"])
    p.add_argument("image")
    a = p.parse_args(head)
    return create_body(a, a.image, rest)
