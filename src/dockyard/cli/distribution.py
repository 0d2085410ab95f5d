"""``dockyard pull``, ``push``, ``login``, ``logout``: Docker's commands and output."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any, TextIO

from dockyard import errors
from dockyard.client import auth
from dockyard.client.api import Client


class _Board:
    """Docker's terminal view: one line per layer, rewritten in place as its status changes."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.ids: list[str] = []

    def line(self, ident: str, text: str) -> None:
        if ident not in self.ids:
            self.ids.append(ident)
            self.out.write(f"{ident}: {text}\n")
        else:
            up = len(self.ids) - self.ids.index(ident)
            self.out.write(f"\x1b[{up}A\r\x1b[2K{ident}: {text}\x1b[{up}B\r")
        self.out.flush()

    def plain(self, text: str) -> None:
        self.ids = []  # lines printed below the board: start a new one
        self.out.write(text + "\n")
        self.out.flush()


def show_progress(resp: Any, out: TextIO | None = None, *, bars: bool = True, quiet: bool = False
                  ) -> dict[str, Any]:
    """Show the JSON progress stream on ``out`` (stdout by default) and return its aux.

    On a terminal (and with ``bars``) each layer keeps one line, redrawn in place; anywhere else
    every message prints once as a plain line and the ones that only move a progress bar
    (Downloading, Pushing, Extracting) are left out, as docker does. ``quiet`` shows nothing."""
    out = out or sys.stdout
    aux: dict[str, Any] = {}
    board = _Board(out) if bars and not quiet and out.isatty() else None
    for msg in resp.iter_json():
        if msg.get("errorDetail") or msg.get("error"):
            raise errors.Internal(str(msg.get("error") or msg["errorDetail"].get("message")))
        if isinstance(msg.get("aux"), dict):
            aux.update(msg["aux"])
        status = msg.get("status")
        if not status or quiet:
            continue
        ident = msg.get("id")
        if board is not None and ident:
            board.line(ident, f"{status} {msg.get('progress') or ''}".rstrip())
        elif board is not None:
            board.plain(status)
        elif not msg.get("progress") and status not in ("Downloading", "Pushing", "Extracting"):
            out.write(f"{ident}: {status}\n" if ident else f"{status}\n")
            out.flush()
    return aux


def _default_tag_note(text: str, quiet: bool) -> None:
    """docker's "Using default tag" line for a bare repository name."""
    from dockyard.oci import reference
    ref = reference.parse(text, default_tag=False)
    if not quiet and not ref.tag and not ref.digest:
        print("Using default tag: latest", flush=True)


def _all_tags_ref(a: argparse.Namespace) -> Any:
    """The reference, checked against ``-a`` as the docker CLI checks it."""
    from dockyard.oci import reference
    ref = reference.parse(a.image, default_tag=False)
    if a.all_tags and (ref.tag or ref.digest):
        raise errors.InvalidArgument("tag can't be used with --all-tags/-a")
    if not a.all_tags:
        _default_tag_note(a.image, a.quiet)
    return ref


def cmd_pull(c: Client, a: argparse.Namespace) -> int:
    ref = _all_tags_ref(a)
    show_progress(c.pull(a.image, a.platform, auth.header_for(auth.server_of(a.image)), a.all_tags),
                  quiet=a.quiet)
    # as docker, with -q too: the reference pulled (a bare name for -a)
    print(ref.name if a.all_tags else str(ref if ref.digest else ref.tagged_or_default()))
    return 0


def cmd_push(c: Client, a: argparse.Namespace) -> int:
    ref = _all_tags_ref(a)
    name = ref.familiar_name if ref.domain == "docker.io" else f"{ref.domain}/{ref.path}"
    tag = None if a.all_tags else ref.tag or "latest"
    show_progress(c.push(name, tag, auth.header_for(auth.server_of(a.image))), quiet=a.quiet)
    if a.quiet:  # docker prints the pushed reference in place of the progress
        print(ref.name if a.all_tags else str(ref.tagged_or_default()))
    return 0


def cmd_login(c: Client, a: argparse.Namespace) -> int:
    server = auth.server_key(a.server or "")
    user = a.username or input("Username: ")
    if a.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = a.password or getpass.getpass("Password: ")
    if not user or not password:
        raise errors.InvalidArgument("Username and password are required")
    c.auth({"username": user, "password": password, "serveraddress": server})
    auth.store(server, user, password)
    print("Login Succeeded")
    return 0


def cmd_logout(c: Client, a: argparse.Namespace) -> int:
    server = auth.server_key(a.server or "")
    if auth.forget(server):
        print(f"Removing login credentials for {server}")
    else:
        print(f"Not logged in to {server}")
    return 0


def cmd_search(c: Client, a: argparse.Namespace) -> int:
    from dockyard.cli import formatting as fmt
    try:
        headers = auth.header_for(auth.server_of(a.term.split("/")[0] + "/x" if "/" in a.term else "x"))
    except errors.DockyardError:
        headers = {}
    results = c.search(a.term, a.limit, headers)
    rows = [{"Name": r.get("name", ""), "Description": str(r.get("description") or "")[:45]
             if not a.no_trunc else str(r.get("description") or ""),
             "StarCount": str(r.get("star_count", 0)), "IsOfficial": "[OK]" if r.get("is_official") else ""}
            for r in results]
    template = a.format or "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}"
    sys.stdout.write(fmt.render_list(template, rows, {"Name": "NAME", "Description": "DESCRIPTION",
                                                      "StarCount": "STARS", "IsOfficial": "OFFICIAL"}))
    return 0


def add_search(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=int, default=25)
    p.add_argument("--format")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("-f", "--filter", action="append", default=[])
    p.add_argument("term")
    p.set_defaults(fn=cmd_search)


def add_pull(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all-tags", action="store_true", help="Download all tagged images in the repository")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    p.add_argument("--platform", help="Set platform if server is multi-platform capable")
    p.add_argument("image", metavar="NAME[:TAG|@DIGEST]")
    p.set_defaults(fn=cmd_pull)


def add_push(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all-tags", action="store_true", help="Push all tags of an image to the repository")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    p.add_argument("image", metavar="NAME[:TAG]")
    p.set_defaults(fn=cmd_push)


def add_login(p: argparse.ArgumentParser) -> None:
    p.add_argument("-u", "--username")
    p.add_argument("-p", "--password")
    p.add_argument("--password-stdin", action="store_true")
    p.add_argument("server", nargs="?")
    p.set_defaults(fn=cmd_login)


def add_logout(p: argparse.ArgumentParser) -> None:
    p.add_argument("server", nargs="?")
    p.set_defaults(fn=cmd_logout)
