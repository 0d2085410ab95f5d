"""Image and system commands: images, rmi, tag, history, load, save, import, prune, version,
info, events, bootstrap."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from dockyard import errors
from dockyard.cli import formatting as fmt
from dockyard.cli.containers import confirm, parse_filters
from dockyard.client.api import Client
from dockyard.client.transport import API_VERSION, DaemonUnreachable

_IMG_HEADERS = {"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
                "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
                "Containers": "CONTAINERS"}


class ImageRow:
    def __init__(self, img: dict[str, Any], repo: str, tag: str, digest: str, trunc: bool) -> None:
        self.img, self.Repository, self.Tag, self.Digest, self.trunc = img, repo, tag, digest, trunc

    @property
    def ID(self) -> str:
        iid = str(self.img.get("Id", ""))
        return iid.removeprefix("sha256:")[:12] if self.trunc else iid

    @property
    def CreatedSince(self) -> str:
        return fmt.since(float(self.img.get("Created", 0)))

    @property
    def CreatedAt(self) -> str:
        return fmt.go_time(float(self.img.get("Created", 0)))

    @property
    def Size(self) -> str:
        return fmt.human_size(float(self.img.get("Size", 0)))

    @property
    def Containers(self) -> str:
        n = self.img.get("Containers", -1)
        return "N/A" if n is None or n < 0 else str(n)

    def to_json(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in sorted(_IMG_HEADERS)}


def image_rows(images: list[dict[str, Any]], trunc: bool) -> list[ImageRow]:
    rows = []
    for img in images:
        tags = [t for t in img.get("RepoTags") or [] if t != "<none>:<none>"]
        digests = [d for d in img.get("RepoDigests") or [] if d != "<none>@<none>"]
        if not tags:
            digest = digests[0].split("@", 1)[1] if digests else "<none>"
            repo = digests[0].split("@", 1)[0] if digests else "<none>"
            rows.append(ImageRow(img, repo, "<none>", digest, trunc))
        for t in tags:
            repo, _, tag = t.rpartition(":")
            digest = next((d.split("@", 1)[1] for d in digests if d.split("@", 1)[0] == repo), "<none>")
            rows.append(ImageRow(img, repo, tag, digest, trunc))
    return rows


def cmd_images(c: Client, a: argparse.Namespace) -> int:
    filters = parse_filters(a.filter)
    if getattr(a, "reference", None):
        filters.setdefault("reference", []).append(a.reference)
    rows = image_rows(c.list_images(all=a.all, digests=a.digests, filters=filters), not a.no_trunc)
    if a.quiet:
        seen: list[str] = []
        for r in rows:
            if r.ID not in seen:
                seen.append(r.ID)
        sys.stdout.write("".join(i + "\n" for i in seen))
        return 0
    template = a.format
    if not template or template == "table":
        template = "table {{.Repository}}\t{{.Tag}}\t" + ("{{.Digest}}\t" if a.digests else "") + \
            "{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    sys.stdout.write(fmt.render_list(template, rows, _IMG_HEADERS))
    return 0


def cmd_rmi(c: Client, a: argparse.Namespace) -> int:
    failed = False
    for name in a.images:
        try:
            for item in c.remove_image(name, a.force, a.no_prune):
                if item.get("Untagged"):
                    print(f"Untagged: {item['Untagged']}")
                if item.get("Deleted"):
                    print(f"Deleted: {item['Deleted']}")
        except errors.NotFound as exc:
            sys.stderr.write(f"Error response from daemon: {exc}\n")
            failed = True
        except errors.DockyardError as exc:
            if isinstance(exc, DaemonUnreachable):
                raise
            sys.stderr.write(f"Error response from daemon: {exc}\n")
            failed = True
    return 1 if failed else 0


def split_repo_tag(target: str) -> tuple[str, str | None]:
    repo, sep, tag = target.rpartition(":")
    if sep and "/" not in tag:
        return repo, tag
    return target, None


def cmd_tag(c: Client, a: argparse.Namespace) -> int:
    repo, tag = split_repo_tag(a.target)
    c.tag(a.source, repo, tag or "latest")
    return 0


_HIST_HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                 "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}


class HistoryRow:
    def __init__(self, h: dict[str, Any], trunc: bool, human: bool) -> None:
        self.h, self.trunc, self.human = h, trunc, human

    @property
    def ID(self) -> str:
        iid = str(self.h.get("Id") or "")
        if not iid or iid == "<missing>":
            return "<missing>"
        return iid.removeprefix("sha256:")[:12] if self.trunc else iid

    @property
    def CreatedSince(self) -> str:
        ts = float(self.h.get("Created", 0))
        return fmt.since(ts) if self.human else fmt.rfc3339(ts)

    @property
    def CreatedAt(self) -> str:
        return fmt.rfc3339(float(self.h.get("Created", 0)))

    @property
    def CreatedBy(self) -> str:
        by = str(self.h.get("CreatedBy", "")).replace("\t", " ")
        return fmt.ellipsis(by, 45) if self.trunc else by

    @property
    def Size(self) -> str:
        size = float(self.h.get("Size", 0))
        return fmt.human_size(size) if self.human else str(int(size))

    @property
    def Comment(self) -> str:
        return str(self.h.get("Comment", ""))

    def to_json(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in ("Comment", "CreatedAt", "CreatedBy", "CreatedSince", "ID", "Size")}


def cmd_history(c: Client, a: argparse.Namespace) -> int:
    rows = [HistoryRow(h, not a.no_trunc, a.human != "false") for h in c.history(a.image)]
    if a.quiet:
        sys.stdout.write("".join(r.ID + "\n" for r in rows))
        return 0
    template = a.format or "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
    sys.stdout.write(fmt.render_list(template, rows, _HIST_HEADERS))
    return 0


def _print_json_stream(resp: Any) -> None:
    for msg in resp.iter_json():
        if msg.get("errorDetail") or msg.get("error"):
            raise errors.Internal(str(msg.get("error") or msg["errorDetail"].get("message")))
        if msg.get("stream"):
            sys.stdout.write(msg["stream"])
        elif msg.get("status"):
            sys.stdout.write(msg["status"] + "\n")
    sys.stdout.flush()


def cmd_load(c: Client, a: argparse.Namespace) -> int:
    if a.input:
        with open(a.input, "rb") as f:
            _print_json_stream(_load(c, f, a.quiet))
        return 0
    if os.isatty(0):
        raise errors.InvalidArgument("requested load from stdin, but stdin is empty")
    _print_json_stream(_load(c, sys.stdin.buffer, a.quiet))
    return 0


def _load(c: Client, src: Any, quiet: bool) -> Any:
    """Upload the archive; on a terminal (without ``-q``) a line shows how much has gone up."""
    from dockyard.cli.progress import CountingReader, StatusLine, bar, size_of
    status = StatusLine(sys.stdout, enabled=not quiet and sys.stdout.isatty())
    if not status.enabled:
        return c.load(src, quiet)
    total = size_of(src)
    reader = CountingReader(src, lambda n: status.show(f"Loading {bar(n, total)}", force=False))
    try:
        return c.load(reader, quiet)  # type: ignore[arg-type]  # read() is all the transport uses
    finally:
        status.clear()


def cmd_save(c: Client, a: argparse.Namespace) -> int:
    if not a.output and os.isatty(1):
        raise errors.InvalidArgument(
            "cowardly refusing to save to a terminal. Use the -o flag or redirect")
    from dockyard.cli.progress import CountingChunks, StatusLine, bar
    status = StatusLine(sys.stderr)  # stdout may be the archive: the progress goes to a terminal on stderr
    resp = c.save(a.images)
    try:
        fmt.write_archive(CountingChunks(resp, lambda n: status.show(f"Saving {bar(n, 0)}", force=False))
                          if status.enabled else resp, a.output)
    finally:
        status.clear()
    return 0


def cmd_import(c: Client, a: argparse.Namespace) -> int:
    repo, tag = split_repo_tag(a.reference) if a.reference else (None, None)
    src: Any = sys.stdin.buffer if a.file == "-" else open(a.file, "rb")  # noqa: SIM115
    try:
        _print_json_stream(c.import_image(src, repo, tag, a.change, a.message))
    finally:
        if src is not sys.stdin.buffer:
            src.close()
    return 0


def cmd_image_prune(c: Client, a: argparse.Namespace) -> int:
    filters = parse_filters(a.filter)
    if a.all:
        filters["dangling"] = ["false"]
    warn = "WARNING! This will remove all images without at least one container associated to them." \
        if a.all else "WARNING! This will remove all dangling images."
    if not confirm(warn, a.force):
        return 0
    rep = c.prune_images(filters)
    out = ""
    deleted = rep.get("ImagesDeleted") or []
    if deleted:
        out += "Deleted Images:\n"
        for d in deleted:
            if d.get("Untagged"):
                out += f"untagged: {d['Untagged']}\n"
            if d.get("Deleted"):
                out += f"deleted: {d['Deleted']}\n"
        out += "\n"
    out += f"Total reclaimed space: {fmt.human_size(rep.get('SpaceReclaimed') or 0, 4)}\n"
    sys.stdout.write(out)
    return 0


def cmd_version(c: Client, a: argparse.Namespace) -> int:
    import platform
    client = {"Version": "0.1.0", "ApiVersion": API_VERSION, "GoVersion": "python" + platform.python_version(),
              "Os": "linux", "Arch": "amd64"}
    server: dict[str, Any] | None = None
    err: errors.DockyardError | None = None
    try:
        server = c.version()
    except errors.DockyardError as exc:
        err = exc
    if a.format:
        sys.stdout.write(fmt.render_each(a.format, [{"Client": client, "Server": server}]))
    else:
        out = (f"Client:\n Version:           {client['Version']}\n API version:       {API_VERSION}\n"
               f" Python version:    {platform.python_version()}\n OS/Arch:           linux/amd64\n")
        if server:
            out += (f"\nServer:\n Engine:\n  Version:          {server.get('Version', '')}\n"
                    f"  API version:      {server.get('ApiVersion', '')} (minimum version "
                    f"{server.get('MinAPIVersion', '')})\n"
                    f"  OS/Arch:          {server.get('Os', '')}/{server.get('Arch', '')}\n"
                    f"  Experimental:     {str(server.get('Experimental', False)).lower()}\n")
        sys.stdout.write(out)
    if err is not None:
        raise err
    return 0


def cmd_info(c: Client, a: argparse.Namespace) -> int:
    info = c.info()
    if a.format:
        sys.stdout.write(fmt.render_each(a.format, [info]))
        return 0
    runtimes = " ".join(sorted(info.get("Runtimes") or {}))
    lines = [
        "Server:",
        f" Containers: {info.get('Containers', 0)}",
        f"  Running: {info.get('ContainersRunning', 0)}",
        f"  Paused: {info.get('ContainersPaused', 0)}",
        f"  Stopped: {info.get('ContainersStopped', 0)}",
        f" Images: {info.get('Images', 0)}",
        f" Server Version: {info.get('ServerVersion', '')}",
        f" Storage Driver: {info.get('Driver', '')}",
        f" Cgroup Driver: {info.get('CgroupDriver', '')}",
        f" Cgroup Version: {info.get('CgroupVersion', '')}",
        f" Runtimes: {runtimes}",
        f" Default Runtime: {info.get('DefaultRuntime', '')}",
        f" Kernel Version: {info.get('KernelVersion', '')}",
        f" Operating System: {info.get('OperatingSystem', '')}",
        f" OSType: {info.get('OSType', '')}",
        f" Architecture: {info.get('Architecture', '')}",
        f" CPUs: {info.get('NCPU', 0)}",
        f" Total Memory: {fmt.bytes_size(float(info.get('MemTotal') or 0))}",
        f" Name: {info.get('Name', '')}",
        f" ID: {info.get('ID', '')}",
        f" Docker Root Dir: {info.get('DockerRootDir', '')}",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def cmd_events(c: Client, a: argparse.Namespace) -> int:
    from dockyard.cli.containers import _since_param
    resp = c.events(_since_param(a.since), _since_param(a.until, "until"), parse_filters(a.filter))
    for ev in resp.iter_json():
        if a.format:
            sys.stdout.write(fmt.render_each(a.format, [ev]))
        else:
            actor = ev.get("Actor") or {}
            attrs = actor.get("Attributes") or {}
            ns = int(ev.get("timeNano") or int(ev.get("time", 0)) * 1_000_000_000)
            line = f"{fmt.rfc3339nano_fixed(ns)} {ev.get('Type', '')} {ev.get('Action', '')} {actor.get('ID', '')}"
            if attrs:
                line += " (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")"
            sys.stdout.write(line + "\n")
        sys.stdout.flush()
    return 0


def cmd_bootstrap(c: Client, a: argparse.Namespace) -> int:
    from pathlib import Path

    from dockyard.client.busybox import build_archive
    if a.what != "busybox":
        raise errors.InvalidArgument(f"unknown bootstrap image {a.what!r}: only busybox is supported")
    data = build_archive(Path(a.busybox), a.tag or "busybox:latest")
    _print_json_stream(c.load(data))
    return 0
