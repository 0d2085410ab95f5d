"""``dockyard system check [--repair]``: what the daemon found wrong in its store (dockyard's own
command; Docker has none). Exit status 1 while a problem is left unrepaired, so scripts can act."""

from __future__ import annotations

import argparse
import json
import sys

from dockyard.cli.formatting import tabwrite
from dockyard.client.api import Client


def add_check_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repair", action="store_true",
                   help="remove what nothing can use (corrupt blobs, orphans, stale mounts and cgroups)")
    p.add_argument("--format", help='"json" for one JSON object per finding')
    p.set_defaults(fn=cmd_check)


def cmd_check(c: Client, a: argparse.Namespace) -> int:
    findings = c.system_check(a.repair)
    if a.format == "json":
        for f in findings:
            print(json.dumps(f))
    elif findings:
        rows = ["KIND\tSUBJECT\tPROBLEM\tREPAIRED"]
        rows += [f"{f['Kind']}\t{f['Subject']}\t{f['Problem']}\t{'yes' if f['Repaired'] else 'no'}"
                 for f in findings]
        sys.stdout.write(tabwrite("\n".join(rows) + "\n"))
    left = sum(1 for f in findings if not f["Repaired"])
    if a.format != "json":
        print(f"{len(findings)} problem(s) found, {len(findings) - left} repaired" if findings
              else "no problems found")
    return 1 if left else 0
