"""The Dockerfile builder: stages, steps, the cache, and Docker's classic progress stream.

Each stage is an asyncio task; a stage waits only for the stages it copies from or starts from, so
independent stages run side by side, and stages the target does not need are never built. Steps
that change files produce one layer each (RUN from the container's upper dir, COPY/ADD from a
mount of the stage's rootfs); metadata steps only change the config. Every step, metadata ones
included, goes through the cache so an unchanged rebuild returns the byte-identical image.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.build import steps
from dockyard.build.cache import BuildCache
from dockyard.build.dockerfile.instructions import (
    Arg,
    Instruction,
    Plan,
    Stage,
    expand_word,
    parse_instruction,
    plan,
)
from dockyard.build.dockerfile.parser import parse
from dockyard.build.dockerfile.shell import Lex
from dockyard.build.layers import LayerStore
from dockyard.build.options import PROXY_ARGS, BuildOptions, Executor, Progress
from dockyard.build.state import State
from dockyard.errors import DockyardError, InvalidArgument
from dockyard.images.util import host_arch


def platform_args() -> dict[str, str]:
    arch = host_arch()
    plat = f"linux/{arch}"
    return {"TARGETPLATFORM": plat, "TARGETOS": "linux", "TARGETARCH": arch, "TARGETVARIANT": "",
            "BUILDPLATFORM": plat, "BUILDOS": "linux", "BUILDARCH": arch, "BUILDVARIANT": ""}


@dataclass
class StageRun:
    """What one stage accumulates while it runs."""
    stage: Stage
    state: State
    args: dict[str, str] = field(default_factory=dict)      # ARGs in scope with their values
    cmd_set: bool = False                                  # CMD given in this stage (ENTRYPOINT keeps it)


class Builder:
    def __init__(self, opts: BuildOptions, executor: Executor, layers: LayerStore, cache: BuildCache,
                 progress: Progress, cache_mounts: Path) -> None:
        self.o = opts
        self.cache_mounts = cache_mounts  # RUN --mount=type=cache directories live here
        self.executor = executor
        self.layers = layers
        self.cache = cache
        self.progress = progress
        self.used_args: set[str] = set()
        self.step_no = 0
        self.total = 0
        self.escape = "\\"
        self.meta: dict[str, str] = {}
        self.plan_ = Plan([], [])
        self.tasks: dict[int, asyncio.Task[State]] = {}
        self.cleanups: list[asyncio.Task[None]] = []

    def defer(self, work: Coroutine[Any, Any, None]) -> None:
        """Run clean-up work (removing a finished RUN container) next to the following steps."""
        self.cleanups.append(asyncio.ensure_future(work))

    def say(self, text: str) -> None:
        if not self.o.quiet:
            self.progress.stream(text)

    # -- planning -----------------------------------------------------------------------------
    def _plan(self) -> tuple[Plan, list[int], dict[str, str]]:
        df = parse(self.o.dockerfile, self.o.dockerfile_name)
        self.escape = df.escape
        p = plan(df, self.o.dockerfile_name)
        meta = dict(platform_args())
        lex = Lex(df.escape)
        for arg in p.meta_args:
            for name, default in arg.pairs:
                if name in self.o.build_args and self.o.build_args[name] is not None:
                    meta[name] = str(self.o.build_args[name])
                    self.used_args.add(name)
                elif default is not None:
                    meta[name] = expand_word(lex, default, meta, arg.line, self.o.dockerfile_name)
        target = len(p.stages) - 1
        if self.o.target:
            names = [s.name for s in p.stages]
            if self.o.target not in names:
                raise InvalidArgument(f"failed to reach build target {self.o.target} in Dockerfile")
            target = names.index(self.o.target)
        needed: list[int] = []
        self._collect(p, target, meta, lex, needed)
        return p, sorted(needed), meta

    def stage_index(self, p: Plan, ref: str, before: int) -> int | None:
        for s in p.stages[:before]:
            if s.name is not None and s.name == ref.lower():
                return s.index
        if ref.isdigit() and int(ref) < before:
            return int(ref)
        return None

    def _deps(self, p: Plan, stage: Stage, meta: dict[str, str], lex: Lex) -> list[int]:
        refs = [expand_word(lex, stage.base.image, meta, stage.base.line, self.o.dockerfile_name)]
        refs += [ref for ins in stage.commands for ref in steps.from_refs(ins)]
        out = []
        for ref in refs:
            idx = self.stage_index(p, ref, stage.index) if ref else None
            if idx is not None:
                out.append(idx)
        return out

    def _collect(self, p: Plan, index: int, meta: dict[str, str], lex: Lex, out: list[int]) -> None:
        if index in out:
            return
        out.append(index)
        for dep in self._deps(p, p.stages[index], meta, lex):
            self._collect(p, dep, meta, lex, out)

    # -- running ------------------------------------------------------------------------------
    async def build(self) -> State:
        p, needed, meta = self._plan()
        self.total = sum(1 + len(p.stages[i].commands) for i in needed)
        self.meta = meta
        self.plan_ = p
        for i in needed:
            self.tasks[i] = asyncio.ensure_future(self._stage(p.stages[i]))
        try:
            await asyncio.gather(*self.tasks.values())
        except BaseException:
            for t in self.tasks.values():
                t.cancel()
            await asyncio.gather(*self.tasks.values(), return_exceptions=True)
            raise
        finally:  # shielded: a cancelled build still removes its containers before it returns
            await asyncio.shield(asyncio.gather(*self.cleanups, return_exceptions=True))
        final = self.tasks[needed[-1]].result()
        unused = sorted(a for a in self.o.build_args if a not in self.used_args and a not in PROXY_ARGS
                        and a not in platform_args())
        if unused:
            self.say(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n")
        return final

    async def stage_state(self, index: int) -> State:
        return await self.tasks[index] if index in self.tasks else await self._missing(index)

    async def _missing(self, index: int) -> State:
        raise InvalidArgument(f"stage {index} is not part of this build")

    async def _stage(self, stage: Stage) -> State:
        lex = Lex(self.escape)
        ref = expand_word(lex, stage.base.image, self.meta, stage.base.line, self.o.dockerfile_name)
        self._step(stage.base.original or f"FROM {stage.base.image}")
        idx = self.stage_index(self.plan_, ref, stage.index)
        if idx is not None:
            state = (await self.stage_state(idx)).copy()
        elif ref.lower() == "scratch":
            state = State.scratch()
        else:
            state = await self.executor.base(ref)
        self.say(" --->\n" if ref.lower() == "scratch" else f" ---> {_short(state.id)}\n")
        run = StageRun(stage, state)
        triggers = list(state.run_config.get("OnBuild") or [])
        if triggers:
            state.run_config["OnBuild"] = None
            self.say(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}\n")
            for text in triggers:
                df = parse(str(text), self.o.dockerfile_name)
                for node in df.nodes:
                    await self._instruction(run, parse_instruction(node, self.o.dockerfile_name), lex)
        for ins in stage.commands:
            self._step(ins.original)
            await self._instruction(run, ins, lex)
        return run.state

    def _step(self, text: str) -> None:
        self.step_no += 1
        self.say(f"Step {self.step_no}/{self.total} : {text}\n")

    async def _instruction(self, run: StageRun, ins: Instruction, lex: Lex) -> None:
        if isinstance(ins, Arg):
            self._arg(run, ins, lex)
        step = await steps.make_step(self, run, ins, lex)
        if step is None:
            self.say(f" ---> {_short(run.state.id)}\n")
            return
        try:
            parent = run.state.id
            hit = None if self.o.no_cache else self.cache.lookup(parent, step.cache_string)
            if hit is None and self.o.cache_from:
                hit = await self._from_cache_images(run.state, step)
                if hit is not None:
                    self.cache.store(parent, step.cache_string, hit, step.description, 0)
            if hit is not None:
                self.say(" ---> Using cache\n")
                run.state = hit
            else:
                if step.announce:
                    self.say(step.announce)
                new, size = await step.execute()
                self.cache.store(parent, step.cache_string, new, step.description, size)
                run.state = new
        finally:
            step.close()
        self.say(f" ---> {_short(run.state.id)}\n")

    async def _from_cache_images(self, state: State, step: steps.Step) -> State | None:
        """``--cache-from``: an image whose history continues ``state``'s with this very step gives
        the step's layer (its own) or timestamp (metadata steps are re-applied, which is cheap)."""
        history = state.config.get("history") or []
        diff_ids = state.diff_ids
        for ref in self.o.cache_from:
            try:
                image = await self.executor.base(ref)
            except DockyardError:
                continue
            ih = image.config.get("history") or []
            idiffs = image.diff_ids
            if (len(ih) <= len(history) or idiffs[:len(diff_ids)] != diff_ids
                    or [(h.get("created_by"), bool(h.get("empty_layer"))) for h in ih[:len(history)]]
                    != [(h.get("created_by"), bool(h.get("empty_layer"))) for h in history]):
                continue
            entry = ih[len(history)]
            if entry.get("created_by") != step.created_by or bool(entry.get("empty_layer")) == step.makes_layer:
                continue
            if step.makes_layer:
                if len(idiffs) <= len(diff_ids):
                    continue
                new = state.copy()
                new.add_layer(idiffs[len(diff_ids)])
                new.config.setdefault("history", []).append(dict(entry))
                new.config["created"] = entry.get("created")
                return new
            new, _ = await step.execute()
            new.config["history"][-1]["created"] = entry.get("created")
            new.config["created"] = entry.get("created")
            return new
        return None

    def _arg(self, run: StageRun, ins: Arg, lex: Lex) -> None:
        for name, default in ins.pairs:
            if name in self.o.build_args and self.o.build_args[name] is not None:
                value: str | None = str(self.o.build_args[name])
                self.used_args.add(name)
            elif default is not None:
                value = expand_word(lex, default, {**run.args, **run.state.env()}, ins.line,
                                    self.o.dockerfile_name)
            elif name in self.meta:
                value = self.meta[name]  # ARG without a value imports the global one
            else:
                value = None
            if value is not None:
                run.args[name] = value
            else:  # declared without a value: expands to "" and is not in RUN's environment
                run.args.pop(name, None)

    def run_env(self, run: StageRun) -> list[str]:
        """The environment a RUN sees: the image's ENV, then ARGs not shadowed by an ENV."""
        env = run.state.env()
        out = [f"{k}={v}" for k, v in env.items()]
        out += [f"{k}={v}" for k, v in run.args.items() if k not in env]
        out += [f"{k}={v}" for k, v in self.o.build_args.items()
                if k in PROXY_ARGS and v is not None and k not in env and k not in run.args]
        return out

    def args_prefix(self, run: StageRun) -> str:
        """Docker's ``|N k=v ...`` marker of the build args a RUN saw (cache and history)."""
        env = run.state.env()
        items = [f"{k}={v}" for k, v in sorted(run.args.items()) if k not in env and k not in platform_args()]
        return f"|{len(items)} {' '.join(items)} " if items else ""

    def progress_output(self) -> Callable[[bytes], None]:
        def out(data: bytes) -> None:
            self.say(data.decode("utf-8", "replace"))
        return out


def _short(state_id: str) -> str:
    return state_id.split(":", 1)[-1][:12]
