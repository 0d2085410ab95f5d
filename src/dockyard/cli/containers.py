"""Container commands: run/create/start/stop/.../ps/logs/inspect/exec/attach."""

from __future__ import annotations

import argparse
import json
import sys
import time

from dockyard import errors
from dockyard.cli import formatting as fmt
from dockyard.client.api import Client
from dockyard.client.transport import DaemonUnreachable

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~3 ms to import on every CLI run
    from typing import Any


def _err(msg: str) -> None:
    sys.stderr.write(msg + "\n")


def _daemon_err(exc: errors.DockyardError) -> None:
    """Print a daemon's refusal; no daemon at all goes up to main's single line instead."""
    if isinstance(exc, DaemonUnreachable):
        raise exc
    _err(f"Error response from daemon: {exc}")


def parse_filters(items: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        if not eq:
            raise errors.InvalidArgument("bad format of filter (expected name=value)")
        out.setdefault(key, []).append(value)
    return out


def _start_exit_code(message: str) -> int:
    """docker's status for a container that could not start: 127 the command is not there, 126 it
    cannot be run (EACCES, EISDIR), 125 anything else."""
    if ("executable file not found" in message or "no such file or directory" in message
            or "system cannot find the file specified" in message):
        return 127
    if "permission denied" in message or "is a directory" in message:
        return 126
    return 125


def create_or_run(c: Client, a: argparse.Namespace, run: bool) -> int:
    from dockyard.cli.interactive import attach_and_pump, terminal_size
    from dockyard.cli.netopts import localhost_dns_warning  # here: off `ps`'s path
    from dockyard.cli.runopts import create_body
    detach = getattr(a, "detach", False) if run else True
    tty_size = terminal_size() if a.tty else None
    body = create_body(a, a.image, a.command, tty_size)
    healthcheck = health_config(a)
    if healthcheck is not None:
        body["Healthcheck"] = healthcheck
    policy = getattr(a, "pull", "missing") or "missing"
    if policy not in ("missing", "always", "never"):
        _err(f'invalid pull option: \'{policy}\': must be one of "always", "missing" or "never"')
        return 125
    from dockyard.cli.hostopts import CidFile
    try:
        cidfile = CidFile(a.cidfile)
    except errors.DockyardError as exc:
        _err(str(exc))
        return 125
    try:
        if policy == "always":
            _pull(c, a.image, a)
        try:
            created = c.create_container(body, a.name)
        except errors.NotFound as exc:
            if policy != "missing" or "No such image" not in str(exc):
                raise
            if not getattr(a, "quiet", False):
                _err(f"Unable to find image '{a.image}' locally")  # as docker: pull, then create again
            _pull(c, a.image, a)
            created = c.create_container(body, a.name)
    except errors.DockyardError as exc:
        cidfile.discard()
        _daemon_err(exc)
        return 125
    except BaseException:
        cidfile.discard()
        raise
    cid = created["Id"]
    cidfile.write(cid)
    local_dns = localhost_dns_warning(body["HostConfig"].get("Dns") or [])
    for w in [*(created.get("Warnings") or []), *([local_dns] if local_dns else [])]:
        _err(f"WARNING: {w}")
    if not run:
        print(cid)
        return 0
    if detach:
        try:
            c.start(cid)
        except errors.DockyardError as exc:
            _daemon_err(exc)
            return _start_exit_code(str(exc))
        print(cid)
        return 0
    wait_conn = c.wait_send(cid, "removed" if a.rm else "next-exit")
    start_error: list[int] = []

    def start() -> None:
        try:
            c.start(cid)
        except errors.DockyardError as exc:
            _daemon_err(exc)
            start_error.append(_start_exit_code(str(exc)))
            raise

    try:
        error = attach_and_pump(c, cid, tty=a.tty, stdin=body["AttachStdin"], stdout=body["AttachStdout"],
                                stderr=body["AttachStderr"], detach_keys=a.detach_keys,
                                before_pump=start, sig_proxy=a.sig_proxy != "false")
    except errors.DockyardError:
        if start_error:
            return start_error[0]
        raise
    if error:
        _err(error)
    code, werr = c.wait_result(wait_conn)
    if werr:
        _err(f"Error response from daemon: {werr}")
        return 125
    return code


def _pull(c: Client, image: str, a: argparse.Namespace) -> None:
    """Pull with the progress on stderr (stdout is the container's): redrawn in place when stderr
    is a terminal, plain lines otherwise, nothing with ``-q``."""
    from dockyard.cli.distribution import show_progress
    from dockyard.client import auth
    show_progress(c.pull(image, getattr(a, "platform", None), auth.header_for(auth.server_of(image))),
                  sys.stderr, quiet=bool(getattr(a, "quiet", False)))


def cmd_start(c: Client, a: argparse.Namespace) -> int:
    from dockyard.cli.interactive import attach_and_pump
    if a.attach or a.interactive:
        ref = a.containers[0]
        info = c.inspect_container(ref)
        cfg = info.get("Config") or {}
        tty = bool(cfg.get("Tty"))
        wait_conn = c.wait_send(ref, "next-exit")
        error = attach_and_pump(c, ref, tty=tty, stdin=a.interactive and bool(cfg.get("OpenStdin")),
                                stdout=True, stderr=True, detach_keys=a.detach_keys,
                                before_pump=lambda: c.start(ref), sig_proxy=not tty)
        if error:
            _err(error)
        return c.wait_result(wait_conn)[0]
    return each(a.containers, lambda r: c.start(r))


def each(refs: list[str], op: Any, echo: bool = True) -> int:
    """Apply op to each ref; print the ref on success, the daemon error otherwise (exit 1)."""
    failed = False
    for ref in refs:
        try:
            op(ref)
            if echo:
                print(ref)
        except errors.DockyardError as exc:
            _daemon_err(exc)
            failed = True
    return 1 if failed else 0


_PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
               "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS",
               "Size": "SIZE", "Names": "NAMES", "Labels": "LABELS", "Label": "LABEL",
               "Mounts": "MOUNTS", "Networks": "NETWORKS", "LocalVolumes": "LOCAL VOLUMES"}


class PsRow:
    """docker/cli ContainerContext: the fields ``ps --format`` can use."""

    def __init__(self, c: dict[str, Any], trunc: bool) -> None:
        self.c = c
        self.trunc = trunc

    @property
    def ID(self) -> str:
        cid = str(self.c.get("Id", ""))
        return cid[:12] if self.trunc else cid

    @property
    def Image(self) -> str:
        img = str(self.c.get("Image") or "")
        if not img:
            return "<no image>"
        if self.trunc and "@" in img:
            img = img.split("@", 1)[0]
        if self.trunc and img.startswith("sha256:"):
            return img[7:19]
        return img

    @property
    def Command(self) -> str:
        cmd = str(self.c.get("Command") or "")
        return fmt.go_quote(fmt.ellipsis(cmd, 20) if self.trunc else cmd)

    @property
    def CreatedAt(self) -> str:
        return fmt.go_time(float(self.c.get("Created", 0)))

    @property
    def RunningFor(self) -> str:
        return fmt.since(float(self.c.get("Created", 0)))

    @property
    def Ports(self) -> str:
        out = []
        for p in self.c.get("Ports") or []:
            proto = p.get("Type", "tcp")
            if p.get("PublicPort"):
                out.append(f"{p.get('IP', '0.0.0.0')}:{p['PublicPort']}->{p['PrivatePort']}/{proto}")
            else:
                out.append(f"{p.get('PrivatePort')}/{proto}")
        return ", ".join(out)

    @property
    def State(self) -> str:
        return str(self.c.get("State", ""))

    @property
    def Status(self) -> str:
        return str(self.c.get("Status", ""))

    @property
    def Size(self) -> str:
        rw, root = self.c.get("SizeRw") or 0, self.c.get("SizeRootFs") or 0
        return f"{fmt.human_size(rw)} (virtual {fmt.human_size(root)})"

    @property
    def Names(self) -> str:
        names = [n.lstrip("/") for n in self.c.get("Names") or []]
        if self.trunc:
            names = [n for n in names if "/" not in n][:1] or names[:1]
        return ",".join(names)

    @property
    def Labels(self) -> str:
        return ",".join(f"{k}={v}" for k, v in sorted((self.c.get("Labels") or {}).items()))

    def Label(self, name: str) -> str:
        return str((self.c.get("Labels") or {}).get(name, ""))

    @property
    def Mounts(self) -> str:
        names = []
        for m in self.c.get("Mounts") or []:
            name = m.get("Name") or m.get("Source", "")
            names.append(fmt.ellipsis(name, 15) if self.trunc else name)
        return ",".join(names)

    @property
    def Networks(self) -> str:
        nets = ((self.c.get("NetworkSettings") or {}).get("Networks") or {})
        return ",".join(sorted(nets))

    @property
    def LocalVolumes(self) -> str:
        return str(sum(1 for m in self.c.get("Mounts") or [] if m.get("Driver") == "local"))

    def to_json(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in sorted(_PS_HEADERS) if k != "Label"}


def cmd_ps(c: Client, a: argparse.Namespace) -> int:
    limit = 1 if a.latest else (a.last if a.last and a.last > 0 else None)
    rows = c.list_containers(all=a.all or bool(limit), limit=limit, size=a.size,
                             filters=parse_filters(a.filter))
    items = [PsRow(r, not a.no_trunc) for r in rows]
    if a.quiet:
        sys.stdout.write("".join(r.ID + "\n" for r in items))
        return 0
    template = a.format
    if not template or template == "table":
        template = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t"
                    "{{.Ports}}\t{{.Names}}" + ("\t{{.Size}}" if a.size else ""))
    sys.stdout.write(fmt.render_list(template, items, _PS_HEADERS))
    return 0


def _since_param(text: str | None, flag: str = "since") -> str | None:
    """Docker's --since/--until: unix seconds, a Go duration before now, or an RFC 3339 time."""
    if not text:
        return None
    import re
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return text
    m = re.fullmatch(r"((?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+)", text)
    if m:
        mult = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
        total = sum(float(n) * mult[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text))
        return f"{time.time() - total:.9f}"
    try:
        return f"{fmt.parse_go_time(text):.9f}"
    except ValueError as exc:
        raise errors.InvalidArgument(
            f'invalid value for "{flag}": failed to parse value as time or duration: "{text}"') from exc


def cmd_logs(c: Client, a: argparse.Namespace) -> int:
    info = c.inspect_container(a.container)
    tty = bool((info.get("Config") or {}).get("Tty"))
    params = {"stdout": True, "stderr": True, "follow": a.follow or None,
              "timestamps": a.timestamps or None, "since": _since_param(a.since),
              "until": _since_param(a.until, "until"), "tail": a.tail, "details": a.details or None}
    from dockyard.client.stream import copy_output
    resp = c.logs(a.container, params)
    err = copy_output(resp.iter_chunks(), tty)
    if err:
        _err(err)
    return 0


def cmd_inspect(c: Client, a: argparse.Namespace, kind: str | None = None) -> int:
    kind = kind or a.type
    found: list[Any] = []
    failed = False
    for ref in a.names:
        obj: Any = None
        for k in ([kind] if kind else ["container", "image"]):
            try:
                obj = c.inspect_container(ref, size=a.size) if k == "container" else c.inspect_image(ref)
                break
            except errors.NotFound:
                continue
        if obj is None:
            what = {"container": "container", "image": "image"}.get(kind or "", "object")
            _err(f"Error: No such {what}: {ref}")
            failed = True
            continue
        found.append(obj)
    if a.format:
        sys.stdout.write(fmt.render_each(a.format, found))
    else:
        sys.stdout.write(json.dumps(found, indent=4, ensure_ascii=False) + "\n")
    return 1 if failed else 0


def cmd_exec(c: Client, a: argparse.Namespace) -> int:
    from dockyard.cli.interactive import run_exec
    body = {"User": a.user, "Privileged": a.privileged, "Tty": a.tty, "AttachStdin": a.interactive and not a.detach,
            "AttachStdout": not a.detach, "AttachStderr": not a.detach, "DetachKeys": a.detach_keys or "",
            "Env": a.env, "WorkingDir": a.workdir, "Cmd": a.command}
    if not a.command:
        raise errors.InvalidArgument("exec requires at least 2 arguments")
    return run_exec(c, a.container, body, a.detach)


def cmd_attach(c: Client, a: argparse.Namespace) -> int:
    from dockyard.cli.interactive import attach_and_pump
    info = c.inspect_container(a.container)
    state = info.get("State") or {}
    if not state.get("Running"):
        raise errors.Conflict("You cannot attach to a stopped container, start it first")
    cfg = info.get("Config") or {}
    tty = bool(cfg.get("Tty"))
    error = attach_and_pump(c, a.container, tty=tty, stdin=not a.no_stdin and bool(cfg.get("OpenStdin")),
                            stdout=True, stderr=True, detach_keys=a.detach_keys, before_pump=lambda: None,
                            sig_proxy=a.sig_proxy != "false" and not tty)
    if error:
        _err(error)
    state = (c.inspect_container(a.container).get("State") or {})
    return 0 if state.get("Running") else int(state.get("ExitCode") or 0)


def cmd_top(c: Client, a: argparse.Namespace) -> int:
    res = c.top(a.container, " ".join(a.ps_args) or None)
    lines = ["\t".join(res.get("Titles") or [])] + ["\t".join(p) for p in res.get("Processes") or []]
    sys.stdout.write(fmt.tabwrite("\n".join(lines) + "\n", minwidth=20))
    return 0


def cmd_wait(c: Client, a: argparse.Namespace) -> int:
    def op(ref: str) -> None:
        print(c.wait(ref)[0])
    return each(a.containers, op, echo=False)


def add_health_flags(p: argparse.ArgumentParser) -> None:
    """``run``/``create``: docker's healthcheck flags."""
    p.add_argument("--health-cmd", default="")
    for flag in ("interval", "timeout", "start-period", "start-interval"):
        p.add_argument(f"--health-{flag}", default="0s")
    p.add_argument("--health-retries", type=int, default=0)
    p.add_argument("--no-healthcheck", action="store_true")


_GO_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def go_duration(text: str, flag: str) -> int:
    """Go's time.ParseDuration (what docker's duration flags take), in nanoseconds."""
    import re
    body = text.strip().lstrip("+-")
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", body)
    if body == "0":
        return 0
    if not parts or "".join(n + u for n, u in parts) != body:
        raise errors.InvalidArgument(f'invalid argument "{text}" for "--{flag}" flag: '
                                     f'time: invalid duration "{text}"')
    total = round(sum(float(n) * _GO_UNITS[u] for n, u in parts))
    return -total if text.strip().startswith("-") else total


def health_config(a: argparse.Namespace) -> dict[str, Any] | None:
    """Config.Healthcheck as the docker CLI builds it (None: the image's stays)."""
    if not hasattr(a, "no_healthcheck"):
        return None
    values = {flag: go_duration(getattr(a, "health_" + flag.replace("-", "_")), "health-" + flag)
              for flag in ("interval", "timeout", "start-period", "start-interval")}
    have = bool(a.health_cmd) or a.health_retries != 0 or any(values.values())
    if a.no_healthcheck:
        if have:
            raise errors.InvalidArgument("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not have:
        return None
    for flag, value in [*values.items(), ("retries", a.health_retries)]:
        if value < 0:
            raise errors.InvalidArgument(f"--health-{flag} cannot be negative")
    out: dict[str, Any] = {"Test": ["CMD-SHELL", a.health_cmd]} if a.health_cmd else {}
    for flag, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod"),
                      ("start-interval", "StartInterval")):
        if values[flag]:
            out[key] = values[flag]
    if a.health_retries:
        out["Retries"] = a.health_retries
    return out


def cmd_update(c: Client, a: argparse.Namespace) -> int:
    from dockyard.cli.runopts import resource_fields, restart_policy
    body = resource_fields(a)
    if a.restart:
        body["RestartPolicy"] = restart_policy(a.restart)
    if not body:
        raise errors.InvalidArgument("you must provide one or more flags when using this command")

    def op(ref: str) -> None:
        for w in c.update(ref, body).get("Warnings") or []:
            _err(f"WARNING: {w}")
    return each(a.containers, op)


def confirm(question: str, force: bool) -> bool:
    if force:
        return True
    sys.stdout.write(f"{question}\nAre you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def cmd_container_prune(c: Client, a: argparse.Namespace) -> int:
    if not confirm("WARNING! This will remove all stopped containers.", a.force):
        return 0
    rep = c.prune_containers(parse_filters(a.filter))
    deleted = rep.get("ContainersDeleted") or []
    out = ""
    if deleted:
        out += "Deleted Containers:\n" + "".join(d + "\n" for d in deleted) + "\n"
    out += f"Total reclaimed space: {fmt.human_size(rep.get('SpaceReclaimed') or 0, 4)}\n"
    sys.stdout.write(out)
    return 0
