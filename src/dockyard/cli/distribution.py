"""``dockyard pull``, ``push``, ``login``, ``logout``: Docker's commands and output."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from dockyard import errors
from dockyard.client import auth
from dockyard.client.api import Client


def _progress(resp: Any) -> dict[str, Any]:
    """Print the JSON progress stream as the docker CLI does without a terminal; returns aux."""
    aux: dict[str, Any] = {}
    tty = sys.stdout.isatty()
    for msg in resp.iter_json():
        if msg.get("errorDetail") or msg.get("error"):
            raise errors.Internal(str(msg.get("error") or msg["errorDetail"].get("message")))
        if isinstance(msg.get("aux"), dict):
            aux.update(msg["aux"])
        status = msg.get("status")
        if not status or (status in ("Downloading", "Pushing", "Extracting") and not tty):
            continue
        sys.stdout.write(f"{msg['id']}: {status}\n" if msg.get("id") else f"{status}\n")
        sys.stdout.flush()
    return aux


def cmd_pull(c: Client, a: argparse.Namespace) -> int:
    from dockyard.oci import reference
    ref = reference.parse(a.image)
    if a.all_tags:
        raise errors.InvalidArgument("--all-tags is not supported yet")
    _progress(c.pull(a.image, a.platform, auth.header_for(auth.server_of(a.image))))
    if not a.quiet:
        print(str(ref if ref.digest else ref.tagged_or_default()))
    return 0


def cmd_push(c: Client, a: argparse.Namespace) -> int:
    from dockyard.oci import reference
    ref = reference.parse(a.image, default_tag=False)
    name = ref.familiar_name if ref.domain == "docker.io" else f"{ref.domain}/{ref.path}"
    _progress(c.push(name, ref.tag or "latest", auth.header_for(auth.server_of(a.image))))
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


def add_pull(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all-tags", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--platform")
    p.add_argument("image")
    p.set_defaults(fn=cmd_pull)


def add_push(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all-tags", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("image")
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
