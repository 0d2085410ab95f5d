"""One Dockerfile instruction as a build step: its cache string and how to execute it.

History strings follow Docker's classic builder (``/bin/sh -c #(nop)  ENV a=b``, ``|1 A=b /bin/sh
-c make``), which is also what the cache string is made of, so what a step depends on is visible in
``docker history``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import posixpath
import re
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.build import copy as copyops
from dockyard.build.dockerfile.instructions import (
    EXPANDS,
    Add,
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    Healthcheck,
    Instruction,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    Stopsignal,
    User,
    Volume,
    Workdir,
    expand,
)
from dockyard.build.dockerfile.shell import Lex
from dockyard.build.options import BuildFailed, RunSpec
from dockyard.build.state import State
from dockyard.build.trees import DirTree, Tree
from dockyard.errors import InvalidArgument
from dockyard.oci.digest import Digest

if TYPE_CHECKING:
    from dockyard.build.builder import Builder, StageRun

NOP = "/bin/sh -c #(nop)  "
DEFAULT_SHELL = ["/bin/sh", "-c"]


@dataclass
class Step:
    cache_string: str
    description: str
    execute: Callable[[], Awaitable[tuple[State, int]]]
    announce: str = ""                    # printed before executing (not on a cache hit)
    created_by: str = ""                  # its history entry (matches --cache-from images)
    makes_layer: bool = True
    resources: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def close(self) -> None:
        self.resources.close()


def from_refs(ins: Instruction) -> list[str]:
    """Stages or images an instruction reads from (``COPY --from``, ``RUN --mount=from=``)."""
    if isinstance(ins, Copy) and ins.from_:
        return [ins.from_]
    if isinstance(ins, Run):
        return [m["from"] for m in ins.mounts if m.get("from")]
    return []


def _kind(ins: Instruction) -> str:
    return type(ins).__name__.lower()


async def make_step(b: Builder, run: StageRun, ins: Instruction, lex: Lex) -> Step | None:
    env = {**run.args, **run.state.env()}
    if _kind(ins) in EXPANDS:
        ins = expand(ins, lex, env, b.o.dockerfile_name)
    if isinstance(ins, Arg):
        return None  # scoping only (BuildKit keeps ARG out of the image)
    if isinstance(ins, Run):
        return await _run_step(b, run, ins)
    if isinstance(ins, Copy | Add):
        return await _copy_step(b, run, ins, lex, env)
    return _meta_step(run, ins)


# -- metadata -------------------------------------------------------------------------------------
def _meta_step(run: StageRun, ins: Instruction) -> Step:
    base = run.state
    text, change = _meta_change(run, ins, base)

    async def execute() -> tuple[State, int]:
        new = base.copy()
        change(new)
        new.add_history(NOP + text, empty_layer=True)
        return new, 0

    return Step("nop:" + text, text, execute, created_by=NOP + text, makes_layer=False)


def _argv(form_shell: bool, cmd: list[str], state: State) -> list[str]:
    if not form_shell:
        return list(cmd)
    shell = list(state.run_config.get("Shell") or DEFAULT_SHELL)
    return [*shell, " ".join(cmd)]


def _meta_change(run: StageRun, ins: Instruction, base: State) -> tuple[str, Callable[[State], None]]:
    cfg = base.run_config
    if isinstance(ins, Env):
        def env(s: State) -> None:
            for k, v in ins.pairs:
                s.set_env(k, v)
        return "ENV " + " ".join(f"{k}={v}" for k, v in ins.pairs), env
    if isinstance(ins, Label):
        def label(s: State) -> None:
            s.run_config["Labels"] = {**(s.run_config.get("Labels") or {}), **dict(ins.pairs)}
        return "LABEL " + " ".join(f"{k}={v}" for k, v in ins.pairs), label
    if isinstance(ins, Workdir):
        path = ins.path if ins.path.startswith("/") else posixpath.join(cfg.get("WorkingDir") or "/", ins.path)
        path = posixpath.normpath(path) if path != "/" else path
        return f"WORKDIR {path}", lambda s: s.run_config.__setitem__("WorkingDir", path)
    if isinstance(ins, User):
        return f"USER {ins.user}", lambda s: s.run_config.__setitem__("User", ins.user)
    if isinstance(ins, Expose):
        ports = _ports(ins.ports)

        def expose(s: State) -> None:
            s.run_config["ExposedPorts"] = {**(s.run_config.get("ExposedPorts") or {}), **{p: {} for p in ports}}
        return "EXPOSE " + " ".join(ports), expose
    if isinstance(ins, Volume):
        def volume(s: State) -> None:
            s.run_config["Volumes"] = {**(s.run_config.get("Volumes") or {}), **{p: {} for p in ins.paths}}
        return f"VOLUME {json.dumps(ins.paths)}", volume
    if isinstance(ins, Stopsignal):
        return f"STOPSIGNAL {ins.signal}", lambda s: s.run_config.__setitem__("StopSignal", ins.signal)
    if isinstance(ins, Cmd):
        argv = _argv(ins.shell_form, ins.cmd, base)
        run.cmd_set = True
        return f"CMD {json.dumps(argv)}", lambda s: s.run_config.__setitem__("Cmd", argv)
    if isinstance(ins, Entrypoint):
        argv = _argv(ins.shell_form, ins.cmd, base)
        keep_cmd = run.cmd_set

        def entrypoint(s: State) -> None:
            s.run_config["Entrypoint"] = argv
            if not keep_cmd:  # Docker: a new ENTRYPOINT drops a CMD inherited from the base image
                s.run_config["Cmd"] = None
        return f"ENTRYPOINT {json.dumps(argv)}", entrypoint
    if isinstance(ins, Shell):
        return f"SHELL {json.dumps(ins.shell)}", lambda s: s.run_config.__setitem__("Shell", list(ins.shell))
    if isinstance(ins, Healthcheck):
        hc: dict[str, Any] = {"Test": list(ins.test)}
        for key, value in (("Interval", ins.interval), ("Timeout", ins.timeout),
                           ("StartPeriod", ins.start_period), ("StartInterval", ins.start_interval),
                           ("Retries", ins.retries)):
            if value:
                hc[key] = value
        return f"HEALTHCHECK {json.dumps(hc, sort_keys=True)}", \
            lambda s: s.run_config.__setitem__("Healthcheck", hc)
    if isinstance(ins, Onbuild):
        def onbuild(s: State) -> None:
            s.run_config["OnBuild"] = [*(s.run_config.get("OnBuild") or []), ins.expression]
        return f"ONBUILD {ins.expression}", onbuild
    if isinstance(ins, Maintainer):
        return f"MAINTAINER {ins.name}", lambda s: s.config.__setitem__("author", ins.name)
    raise InvalidArgument(f"{ins.original}: not supported by this builder")


def _ports(specs: list[str]) -> list[str]:
    out: list[str] = []
    for spec in specs:
        port, _, proto = spec.partition("/")
        proto = (proto or "tcp").lower()
        if proto not in ("tcp", "udp", "sctp"):
            raise InvalidArgument(f"invalid proto: {proto}")
        lo, _, hi = port.partition("-")
        try:
            first, last = int(lo), int(hi or lo)
        except ValueError as exc:
            raise InvalidArgument(f"invalid containerPort: {port}") from exc
        if not 0 < first <= last <= 65535:
            raise InvalidArgument(f"invalid range specified for container port: {port}")
        out += [f"{p}/{proto}" for p in range(first, last + 1)]
    return out


# -- RUN ------------------------------------------------------------------------------------------
async def _run_step(b: Builder, run: StageRun, ins: Run) -> Step:
    base = run.state
    cmdline = list(ins.cmd)
    if ins.heredocs and ins.shell_form:
        line = " ".join(cmdline).strip()
        if len(ins.heredocs) == 1 and re.fullmatch(r"\d*<<-?\s*['\"]?" + re.escape(ins.heredocs[0].name) +
                                                   r"['\"]?", line):
            doc = ins.heredocs[0]  # RUN <<EOF: the here-document is the script
            cmdline = [_untab(doc.content) if doc.chomp else doc.content]
        else:  # RUN cmd <<EOF: the shell feeds the here-documents itself
            cmdline = [line + "\n" + "".join(h.content + h.name + "\n" for h in ins.heredocs)]
    argv = _argv(ins.shell_form, cmdline, base)
    prefix = b.args_prefix(run)
    created_by = prefix + " ".join(argv)
    network = ins.network or b.o.network_mode
    step = Step("", created_by, lambda: _never(), created_by=created_by)
    binds, tmpfs, mount_key = await _mounts(b, run, ins, step)
    step.cache_string = "run:" + json.dumps({"argv": argv, "args": prefix, "network": network,
                                             "mounts": mount_key}, sort_keys=True)

    async def execute() -> tuple[State, int]:
        spec = RunSpec(argv=argv, env=b.run_env(run), user=str(base.run_config.get("User") or ""),
                       workdir=str(base.run_config.get("WorkingDir") or "/"), network=network,
                       extra_hosts=list(b.o.extra_hosts), shm_size=b.o.shm_size, binds=binds, tmpfs=tmpfs)
        result = await b.executor.run(base, spec, b.progress_output(),
                                      lambda cid: b.say(f" ---> Running in {cid[:12]}\n"))
        short = result.container_id[:12]
        try:
            if result.exit_code != 0:
                raise BuildFailed(f"The command '{' '.join(argv)}' returned a non-zero code: "
                                  f"{result.exit_code}", result.exit_code)
            diff_id = await asyncio.to_thread(b.layers.adopt, base.chain_id, result.upper)
        finally:
            b.defer(b.executor.cleanup(result.container_id))  # awaited before the build returns
            b.say(f"Removing intermediate container {short}\n")
        return _with_layer(b, base, diff_id, created_by)

    step.execute = execute
    return step


def fetch_url(url: str, into: Path, expected: str | None) -> str:
    """Download ``url`` into ``into`` (mode 0600, mtime from Last-Modified, as Docker's ADD);
    returns the file name. ``expected`` is ADD --checksum's ``sha256:<hex>``."""
    import email.utils
    import urllib.parse
    import urllib.request

    name = posixpath.basename(urllib.parse.urlsplit(url).path) or "download"
    target = into / name
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(target, "wb") as out:
            while chunk := resp.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
            modified = resp.headers.get("Last-Modified")
    except OSError as exc:
        raise BuildFailed(f"ADD {url}: {getattr(exc, 'reason', None) or exc}") from exc
    if expected and expected != f"sha256:{digest.hexdigest()}":
        raise BuildFailed(f"ADD {url}: digest mismatch: expected {expected}, got sha256:{digest.hexdigest()}")
    os.chmod(target, 0o600)
    if modified:
        with contextlib.suppress(TypeError, ValueError):
            ts = email.utils.parsedate_to_datetime(modified).timestamp()
            os.utime(target, (ts, ts))
    return name


def _expand_heredoc(lex: Lex, text: str, env: dict[str, str]) -> str:
    """Variables in an unquoted here-document expand; quotes in it are literal text."""
    return re.sub(r"\$(\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)",
                  lambda m: lex.process_word(m.group(0), env), text)


def _untab(text: str) -> str:
    return "".join(line.lstrip("\t") for line in text.splitlines(keepends=True))


async def _never() -> tuple[State, int]:
    raise AssertionError("step executed before it was set up")


def _with_layer(b: Builder, base: State, diff_id: str, created_by: str) -> tuple[State, int]:
    """``base`` plus one layer and its history entry; and the layer's size."""
    new = base.copy()
    new.add_layer(diff_id)
    new.add_history(created_by, empty_layer=False)
    return new, int(b.layers.content.info(Digest.parse(diff_id)).size)


async def _mounts(b: Builder, run: StageRun, ins: Run, step: Step) -> tuple[list[str], dict[str, str], list[Any]]:
    binds: list[str] = []
    tmpfs: dict[str, str] = {}
    key: list[Any] = []
    workdir = str(run.state.run_config.get("WorkingDir") or "/")
    for m in ins.mounts:
        kind = m.get("type", "bind")
        target = m.get("target") or m.get("dst") or m.get("destination") or ""
        if kind == "secret":
            target = target or f"/run/secrets/{m.get('id') or ''}"
        if not target:
            raise InvalidArgument(f"RUN --mount type={kind} needs a target")
        target = target if target.startswith("/") else posixpath.join(workdir, target)
        if kind == "cache":
            ident = m.get("id") or target
            d = b.cache_mounts / hashlib.sha256(ident.encode()).hexdigest()[:32]
            d.mkdir(parents=True, exist_ok=True)
            if m.get("uid") or m.get("gid"):
                os.chown(d, int(m.get("uid") or 0), int(m.get("gid") or 0))
            if m.get("mode"):
                os.chmod(d, int(m["mode"], 8))
            binds.append(f"{d}:{target}")
            key.append(["cache", ident, target])
        elif kind == "tmpfs":
            tmpfs[target] = f"size={m['size']}" if m.get("size") else ""
            key.append(["tmpfs", target, m.get("size", "")])
        elif kind == "bind":
            tree, ref = await _source_root(b, run, m.get("from"), step)
            source = copyops.resolve_sources(tree, [m.get("source") or m.get("src") or "/"])
            path = await asyncio.to_thread(tree.path, source[0])
            binds.append(f"{path}:{target}:ro")
            key.append(["bind", ref, m.get("source", ""), target,
                        await asyncio.to_thread(copyops.checksum, tree, source)])
        elif kind in ("secret", "ssh"):
            if m.get("required", "false").lower() in ("true", "1", ""):
                raise BuildFailed(f"{kind} {m.get('id') or 'default'}: not provided (this API has no "
                                  "secrets; use a cache or bind mount)")
        else:
            raise InvalidArgument(f"unsupported mount type {kind!r}")
    return binds, tmpfs, key


async def _source_root(b: Builder, run: StageRun, ref: str | None, step: Step) -> tuple[Tree, str]:
    """The tree a COPY or a bind mount reads from: the context, an earlier stage or an image."""
    if not ref:
        return b.o.context, "context"
    idx = b.stage_index(b.plan_, ref, run.stage.index)
    if idx is not None:
        state = await b.stage_state(idx)
    else:
        state = await b.executor.base(ref)
    root = step.resources.enter_context(b.layers.view(state.chain_id))
    return DirTree(root), state.id


# -- COPY / ADD -----------------------------------------------------------------------------------
async def _copy_step(b: Builder, run: StageRun, ins: Copy | Add, lex: Lex, env: dict[str, str]) -> Step:
    base = run.state
    name = "ADD" if isinstance(ins, Add) else "COPY"
    step = Step("", "", lambda: _never())
    from_ref = ins.from_ if isinstance(ins, Copy) else None
    src_root: Tree
    if ins.heredocs:
        tmp = Path(step.resources.enter_context(tempfile.TemporaryDirectory(prefix="build-heredoc-")))
        for h in ins.heredocs:
            content = _untab(h.content) if h.chomp else h.content
            (tmp / h.name).write_text(_expand_heredoc(lex, content, env) if h.expand else content)
        src_root, ref, sources = DirTree(tmp), "heredoc", [h.name for h in ins.heredocs]
    else:
        urls = [s for s in ins.sources if copyops.is_url(s)]
        if isinstance(ins, Add) and urls:
            if len(urls) != len(ins.sources):
                raise BuildFailed(f"{name}: mixing URLs and local paths in one ADD is not supported")
            if b.o.network_mode == "none":
                raise BuildFailed(f"{name} {' '.join(urls)}: this build has no network (--network=none), "
                                  "so URLs cannot be fetched; put the file in the build context")
            tmp = Path(step.resources.enter_context(tempfile.TemporaryDirectory(prefix="build-add-")))
            sources = [await asyncio.to_thread(fetch_url, url, tmp, ins.checksum) for url in urls]
            src_root, ref = DirTree(tmp), "url"
        else:
            src_root, ref = await _source_root(b, run, from_ref, step)
            sources = await asyncio.to_thread(copyops.resolve_sources, src_root, list(ins.sources),
                                              list(ins.excludes))
    digest = await asyncio.to_thread(copyops.checksum, src_root, sources, list(ins.excludes))
    first = src_root.entry(sources[0]) if len(sources) == 1 else None
    kind = "file" if first is not None and first.kind != "dir" else "dir"
    dest = ins.dest
    workdir = str(base.run_config.get("WorkingDir") or "/")
    flags = "".join(f"--{k}={v} " for k, v in (("from", from_ref), ("chown", ins.chown),
                                                  ("chmod", ins.chmod)) if v)
    created_by = f"/bin/sh -c #(nop) {name} {flags}{kind}:{digest.split(':')[-1]} in {dest} "
    step.description = step.created_by = created_by
    step.cache_string = "copy:" + json.dumps({"name": name, "ref": ref, "sum": digest, "dest": dest,
                                              "workdir": workdir, "chown": ins.chown, "chmod": ins.chmod,
                                              "parents": ins.parents, "sources": sources}, sort_keys=True)
    chmod = copyops.parse_chmod(ins.chmod) if ins.chmod else None
    extract = isinstance(ins, Add) and ref != "url"  # ADD unpacks local archives, never downloads
    dir_hint = dest.endswith("/") or len(sources) > 1

    def change(root: Path) -> None:
        owner = copyops.resolve_chown(ins.chown, root) if ins.chown else None
        if ins.parents:
            for rel in sources:
                sub = posixpath.dirname(rel)
                target = posixpath.join(dest, sub) + "/" if sub else dest
                copyops.copy_into(src_root, [rel], root, target, workdir, chown=owner, chmod=chmod,
                                  is_add=extract, dest_is_dir_hint=True, excludes=ins.excludes)
        else:
            copyops.copy_into(src_root, sources, root, dest, workdir, chown=owner, chmod=chmod,
                              is_add=extract, dest_is_dir_hint=dir_hint, excludes=ins.excludes)

    async def execute() -> tuple[State, int]:
        diff_id = await asyncio.to_thread(b.layers.mutate, base.chain_id, change)
        return _with_layer(b, base, diff_id, created_by)

    step.execute = execute
    return step
