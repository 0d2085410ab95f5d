"""``dockyard build`` and ``dockyard builder prune``.

The context goes up as a tar (``.dockerignore`` applied here, as the docker CLI does); progress
comes back as Docker's classic JSON stream. ``--progress=plain`` prints it as it comes with each
step's time; ``auto`` on a terminal also keeps a live line with the running step and its clock.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time

from dockyard import errors
from dockyard.client.buildcontext import ContextTar

TYPE_CHECKING = False  # typing (~3 ms) and threading stay off a quiet build's path
if TYPE_CHECKING:
    from typing import Any, TextIO

    from dockyard.client.api import Client


def _kv(items: list[str], flag: str, allow_bare: bool) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not key:
            raise errors.InvalidArgument(f"invalid argument \"{item}\" for \"{flag}\" flag")
        if eq:
            out[key] = value
        elif allow_bare:  # --build-arg NAME takes the value from the environment, as docker does
            out[key] = os.environ.get(key)
        else:
            out[key] = ""
    return out


_STEP_DONE = re.compile(r"^ ---> (?:[0-9a-f]{12}|)\s*$")


class StepTimer:
    """Prints the stream; adds each step's duration; on a terminal a live clock for the running step."""

    def __init__(self, out: TextIO, live: bool) -> None:
        from dockyard.cli.progress import color_enabled
        self.out = out
        self.live = live
        self.dim = color_enabled(out)  # the live line is dimmed unless NO_COLOR / TERM=dumb
        self.step: str | None = None
        self.started = time.monotonic()
        self.step_started = self.started
        self.footer = False
        import threading
        self.lock = threading.Lock()
        self.stop = threading.Event()
        if live:
            threading.Thread(target=self._tick, daemon=True).start()

    def _clear(self) -> None:
        if self.footer:
            self.out.write("\r\x1b[2K")
            self.footer = False

    def _draw(self) -> None:
        if self.live and self.step:
            text = f"[{time.monotonic() - self.step_started:5.1f}s] {self.step}"
            self.out.write(f"\x1b[2m{text}\x1b[0m" if self.dim else text)
            self.footer = True
        self.out.flush()

    def _tick(self) -> None:
        while not self.stop.wait(0.1):
            with self.lock:
                self._clear()
                self._draw()

    def feed(self, text: str) -> None:
        with self.lock:
            self._clear()
            for line in text.splitlines(keepends=True):
                if line.startswith("Step ") and " : " in line:
                    self.step = line.rstrip("\n")
                    self.step_started = time.monotonic()
                elif self.step is not None and _STEP_DONE.match(line):
                    # the step's result line carries its time
                    line = f"{line.rstrip()}  ({time.monotonic() - self.step_started:.2f}s)\n"
                    self.step = None
                self.out.write(line)
            self._draw()

    def close(self, ok: bool) -> None:
        self.stop.set()
        with self.lock:
            self._clear()
            self.out.flush()


def cmd_build(c: Client, a: argparse.Namespace) -> int:
    params: dict[str, Any] = {
        "t": a.tag or None, "dockerfile": None, "buildargs": None, "labels": None,
        "target": a.target, "nocache": a.no_cache or None, "q": a.quiet or None,
        "networkmode": a.network, "extrahosts": ",".join(a.add_host) or None,
        "platform": a.platform, "pull": a.pull or None, "rm": True,
        "forcerm": a.force_rm or None,
    }
    if a.build_arg:
        params["buildargs"] = json.dumps(_kv(a.build_arg, "--build-arg", allow_bare=True))
    if a.label:
        params["labels"] = json.dumps(_kv(a.label, "--label", allow_bare=False))
    if a.cache_from:
        params["cachefrom"] = json.dumps(a.cache_from)
    if a.shm_size:
        from dockyard.cli.runopts import ram_in_bytes
        params["shmsize"] = ram_in_bytes(a.shm_size)
    if a.path == "-":
        if a.file:
            params["dockerfile"] = a.file
        return _show(c.build(sys.stdin.buffer, params), a)
    if not os.path.isdir(a.path):
        raise errors.InvalidArgument(f'unable to prepare context: path "{a.path}" not found')
    plan = ContextTar(a.path, a.file)
    params["dockerfile"] = plan.name
    plan.plan()  # headers made and the length known: the tar goes out with a Content-Length
    return _show(c.build(plan, params), a)


def _show(resp: Any, a: argparse.Namespace) -> int:
    live = a.progress in ("auto", "tty") and sys.stdout.isatty() and not a.quiet
    timer = StepTimer(sys.stdout, live) if not a.quiet and a.progress != "quiet" else None
    image_id = ""
    ok = False
    try:
        for msg in resp.iter_json():
            if msg.get("errorDetail") or msg.get("error"):
                detail = msg.get("errorDetail") or {}
                if timer:
                    timer.close(False)
                    timer = None
                sys.stderr.write(f"{msg.get('error') or detail.get('message')}\n")
                return int(detail.get("code") or 1) if detail.get("code") else 1
            aux = msg.get("aux")
            if isinstance(aux, dict) and aux.get("ID"):
                image_id = str(aux["ID"])
            if msg.get("stream") and timer is not None:
                timer.feed(str(msg["stream"]))
        ok = True
    finally:
        if timer:
            timer.close(ok)
    if a.quiet and image_id:
        print(image_id)
    if a.iidfile and image_id:
        with open(a.iidfile, "w") as f:
            f.write(image_id)
    return 0


def cmd_builder_prune(c: Client, a: argparse.Namespace) -> int:
    from dockyard.cli.containers import confirm
    from dockyard.cli.formatting import human_size
    if not confirm("WARNING! This will remove all dangling build cache.", a.force):
        return 0
    filters: dict[str, list[str]] = {}
    for item in a.filter:
        key, _, value = item.partition("=")
        filters.setdefault(key, []).append(value)
    report = c.prune_build_cache(a.all, filters)
    deleted = report.get("CachesDeleted") or []
    if deleted:
        print("Deleted build cache objects:")
        for d in deleted:
            print(d)
        print()
    print(f"Total reclaimed space: {human_size(int(report.get('SpaceReclaimed') or 0))}")
    return 0


def add_build_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-t", "--tag", action="append", default=[])
    p.add_argument("-f", "--file")
    p.add_argument("--build-arg", action="append", default=[])
    p.add_argument("--target")
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--label", action="append", default=[])
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--progress", default="auto", choices=["auto", "plain", "tty", "quiet", "rawjson"])
    p.add_argument("--pull", action="store_true")
    p.add_argument("--network")
    p.add_argument("--add-host", action="append", default=[])
    p.add_argument("--shm-size")
    p.add_argument("--platform")
    p.add_argument("--cache-from", action="append", default=[])
    p.add_argument("--rm", action="store_true", default=True)
    p.add_argument("--force-rm", action="store_true")
    p.add_argument("--iidfile")
    p.add_argument("path", metavar="PATH")
    p.set_defaults(fn=lambda c, a: cmd_build(c, a))


def add_prune_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("--filter", action="append", default=[])
    p.set_defaults(fn=lambda c, a: cmd_builder_prune(c, a))
