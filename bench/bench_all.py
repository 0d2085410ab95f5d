#!/usr/bin/env python3
"""dockyard side by side with Docker and Podman, every case of issue 9 in one run.

    .venv/bin/python bench/bench_all.py            # full: bench/results/summary.md + summary.png
    .venv/bin/python bench/bench_all.py --quick    # few runs, to check it works: summary-quick.*

Engines: dockyard (its own dockyardd), Docker (Debian's dockerd and the containerd it starts, on a
private socket, data root and exec root, no bridge and no iptables rules) and Podman (own storage
and run root) when installed, plus raw ``runc run`` of the same busybox bundle as the floor. The
same locally made busybox image is loaded into each; nothing is pulled from anywhere, and all
traffic stays on loopback (two registries on 127.0.0.1). Cases of one kind run for every engine
in the same rounds, interleaved, so drift hits all alike. Everything started is stopped and
removed at the end, pass or fail (also on Ctrl-C or SIGTERM).

Phases, in order: idle daemon memory on fresh engines; memory per idle container (20 ``sleep``
containers, first on the fresh engines, then again on warm ones); API requests per second with 50
containers present (those 20 running, 30 created); ``run --rm``, ``run -d`` + ``rm -f`` and CLI start
latency; image build cold and cached; push/pull and save/load of a ~200 MB four-layer image; layer
unpack (load of 20000 small files, 200 MB); idle daemon memory again after all that.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import FrameType

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from build_bench import build_cases, make_context  # noqa: E402
from common import (  # noqa: E402
    BIN,
    RESULTS,
    Cli,
    Registries,
    UnixHTTPConnection,
    interleave,
    make_runc_bundle,
    run,
    seconds,
    timed,
)
from engines import Engine, docker_cli_to, start_docker, start_dockyard, start_podman, version  # noqa: E402
from manyfiles import write_archive  # noqa: E402
from report import Goal, Group, Results, markdown, plot  # noqa: E402
from share_bench import IMAGE, SIZE_MB, ShareCases, build_share_image  # noqa: E402

from dockyard.client.busybox import build_archive  # noqa: E402


@dataclass(frozen=True)
class Plan:
    runs: int            # latency cases: run --rm, run -d + rm -f, CLI start
    build_runs: int
    share_runs: int      # push/pull, save/load, unpack
    mem_reps: int        # warm repetitions of the idle-container memory case
    api_rounds: int
    api_seconds: float   # each round: this long per engine and endpoint
    settle: float        # seconds engines idle before memory is read
    idle_containers: int = 20
    api_containers: int = 50
    unpack_files: int = 20000
    unpack_mb: int = 200


QUICK = Plan(runs=3, build_runs=1, share_runs=1, mem_reps=1, api_rounds=2, api_seconds=0.5, settle=1.0)
FULL = Plan(runs=30, build_runs=10, share_runs=5, mem_reps=3, api_rounds=5, api_seconds=3.0, settle=3.0)

PING, LIST = "GET /_ping", "GET /containers/json?all=1"
G_RUN = Group("run", "run --rm busybox true, end to end", "ms",
              note="Every engine with `--network none` (the private dockerd has no bridge); the "
                   "`default bridge network` row is dockyard as a user gets it by default.")
G_RUND = Group("rund", "run -d busybox sleep 3600, then rm -f", "ms")
G_CLI = Group("cli", "CLI start", "ms", note="`ps` asks the engine (no containers); `--version` does not.")
G_MEM = Group("mem", "Memory each idle container adds", "MB",
              note="Sum of RSS and of PSS (`/proc/<pid>/smaps_rollup`) over every process the engine runs, "
                   "containers' own processes excepted, after 20 `sleep` containers are started, minus the "
                   "same sum before, / 20. *fresh*: the first containers a new engine runs (dockyard's shim "
                   "host starts with them and is counted in full); *warm*: 20 more after those were removed.")
G_IDLE = Group("idle", "Idle daemon memory", "MB",
               note="No container. dockyard: dockyardd, plus its shim host once one has been started; Docker: "
                    "dockerd + its containerd; Podman has no daemon.")
G_API = Group("api", "API requests per second over the unix socket", "req/s", higher_better=True,
              note="One HTTP/1.1 keep-alive connection, requests back to back for a fixed time; 50 containers "
                   "present: the memory case's running `sleep` containers, the rest created, never started.")
G_BUILD = Group("build", "Image build (300-file context, 2 COPY + 2 RUN)", "ms",
                note="cold: `--no-cache`; cached: unchanged context. The `docker CLI → dockyardd` row is the "
                     "stock CLI's classic builder against dockyardd.")
G_SHARE = Group("share", f"Push and pull of a {SIZE_MB} MB four-layer image on loopback", "s",
                derived=(("MB/s", SIZE_MB),),
                note="Every push goes to a registry emptied just before (else docker mounts the layers from "
                     "a repository it pushed before and uploads nothing); every pull starts with the image "
                     "removed (both untimed). distribution: Debian's docker-registry.")
G_SAVELOAD = Group("saveload", f"save / load of the same {SIZE_MB} MB image", "s", derived=(("MB/s", SIZE_MB),),
                   note="load: the same docker-archive (written by dockyard) into each engine, image removed first.")


def unpack_group(plan: Plan) -> Group:
    return Group("unpack", f"Layer unpack: load of {plan.unpack_files} files, {plan.unpack_mb} MB in 4 layers",
                 "s", derived=(("files/s", plan.unpack_files), ("MB/s", plan.unpack_mb)),
                 note="`load -i` of an uncompressed docker-archive, the image removed first (untimed).")


GOALS = [
    Goal("run --rm: dockyard ≤ 0.5× Docker (own CLIs)", "run", ("dockyard", ""), ("docker", ""), "<=", 0.5),
    Goal("run --rm: dockyard ≤ 0.5× Podman (own CLIs)", "run", ("dockyard", ""), ("podman", ""), "<=", 0.5),
    Goal("run --rm: dockyard ≤ 3× raw runc run", "run", ("dockyard", ""), ("runc run (floor)", ""), "<=", 3),
    Goal("run --rm, same docker CLI: dockyardd ≤ 0.5× dockerd", "run", ("docker CLI → dockyardd", ""),
         ("docker", ""), "<=", 0.5),
    Goal("idle container RSS (fresh) below Docker's", "mem", ("dockyard", "RSS, fresh"), ("docker", "RSS, fresh"),
         "<", 1),
    Goal("idle container PSS (fresh) below Docker's", "mem", ("dockyard", "PSS, fresh"), ("docker", "PSS, fresh"),
         "<", 1),
    Goal("idle container RSS (fresh) ≤ Podman's conmon", "mem", ("dockyard", "RSS, fresh"),
         ("podman", "RSS, fresh"), "<=", 1),
    Goal("idle container RSS (fresh) ≤ 2 MB (conmon's, as issue 9 measured it)", "mem", ("dockyard", "RSS, fresh"),
         None, "<=", 2),
    Goal("API GET /containers/json (50 containers) ≥ dockerd's req/s", "api", ("dockyard", LIST),
         ("docker", LIST), ">=", 1),
    Goal("cached rebuild no slower than BuildKit", "build", ("dockyard", "cached"), ("docker BuildKit", "cached"),
         "<=", 1),
    Goal("cold build no slower than BuildKit", "build", ("dockyard", "cold"), ("docker BuildKit", "cold"), "<=", 1),
    Goal("push to distribution: time ≤ Docker's (throughput ≥)", "share", ("dockyard", "push → distribution"),
         ("docker", "push → distribution"), "<=", 1),
    Goal("pull from distribution: time ≤ Docker's (throughput ≥)", "share", ("dockyard", "pull ← distribution"),
         ("docker", "pull ← distribution"), "<=", 1),
    Goal("layer unpack: time ≤ Docker's (throughput ≥)", "unpack", ("dockyard", ""), ("docker", ""), "<=", 1),
    Goal("`dockyard --version` under 100 ms", "cli", ("dockyard", "--version"), None, "<", 100),
    Goal("`dockyard ps` under 100 ms", "cli", ("dockyard", "ps"), None, "<", 100),
]

Key = tuple[str, str, str]  # (group, who, variant)


def requests_per_second(sock: Path, path: str, secs: float, cap: int = 1_000_000) -> float:
    """GET ``path`` back to back on one keep-alive connection for ``secs`` (at most ``cap`` times)."""
    conn = UnixHTTPConnection(sock)
    n = 0
    t0 = now = time.perf_counter()
    try:
        while now - t0 < secs and n < cap:
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise SystemExit(f"GET {path} on {sock}: {resp.status} {body[:200]!r}")
            n += 1
            now = time.perf_counter()
    finally:
        conn.close()
    return n / (now - t0)


class Bench:
    def __init__(self, plan: Plan, base: Path, stack: contextlib.ExitStack, args: argparse.Namespace) -> None:
        self.plan, self.base, self.stack, self.args = plan, base, stack, args
        self.res = Results()
        self.engines: list[Engine] = []
        self.hosts: dict[str, str] = {}
        self.push_registries = Registries(base / "registries-push")  # emptied before each push
        self.docker_to_dy: Cli | None = None
        self.live: dict[str, list[str]] = {}  # engine → containers this run left for the API phase

    def log(self, msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    def interleaved(self, cases: dict[Key, Callable[[], object]], runs: int, *, warmup: bool = True,
                    measure: Callable[[Callable[[], object]], float] = timed,
                    prepare: dict[Key, Callable[[], object]] | None = None) -> None:
        names = {"\t".join(k): k for k in cases}
        samples = interleave({n: cases[k] for n, k in names.items()}, runs, warmup=warmup, measure=measure,
                             prepare={n: prepare[k] for n, k in names.items() if prepare and k in prepare})
        for n, values in samples.items():
            self.res.add(*names[n], values)

    # ------------------------------------------------------------------------------------ set-up
    def setup(self) -> None:
        archive = self.base / "busybox.tar"
        archive.write_bytes(build_archive(tag="busybox:latest"))
        self.log("starting dockyardd")
        dy = start_dockyard(self.base)
        self.stack.callback(dy.stop)
        self.engines.append(dy)
        for name, starter in (("docker", start_docker), ("podman", start_podman)):
            if name in self.args.skip_engine:
                continue
            self.log(f"starting {name} (if installed)")
            engine = starter(self.base)
            if engine is not None:
                self.stack.callback(engine.stop)
                self.engines.append(engine)
        for e in self.engines:
            e.cli("load", "-i", str(archive))
        if shutil.which("docker"):
            self.docker_to_dy = docker_cli_to(dy, self.base / "docker-config")
        registries = Registries(self.base / "registries-pull")
        self.stack.callback(registries.stop)
        self.hosts = registries.start()
        self.stack.callback(self.push_registries.stop)
        self.push_registries.start()
        self.log("engines: " + ", ".join(e.name for e in self.engines) + "; registries: " + ", ".join(self.hosts))

    def engine(self, name: str) -> Engine | None:
        return next((e for e in self.engines if e.name == name), None)

    # ----------------------------------------------------------------------------------- memory
    def idle_memory(self, when: str) -> None:
        self.res.group(G_IDLE)
        time.sleep(self.plan.settle)
        for e in self.engines:
            if not e.roots:
                continue
            u = e.memory()
            self.res.add("idle", e.name, f"RSS, {when}", [u.rss_kb / 1024])
            self.res.add("idle", e.name, f"PSS, {when}", [u.pss_kb / 1024])
            self.res.note("idle", f"{e.name}, {when}: {u.describe()}")

    def container_memory(self) -> None:
        self.res.group(G_MEM)
        n = self.plan.idle_containers
        for rep in range(1 + self.plan.mem_reps):
            when = "fresh" if rep == 0 else "warm"
            self.log(f"memory per idle container: {n} containers per engine, {when}")
            for e in self.engines:
                before = e.memory()
                ids = [e.cli("run", "-d", *e.run_opts, "busybox", "sleep", "3600").split()[-1] for _ in range(n)]
                time.sleep(self.plan.settle)
                added = e.memory(ids).minus(before)
                self.res.add("mem", e.name, f"RSS, {when}", [added.rss_kb / 1024 / n])
                self.res.add("mem", e.name, f"PSS, {when}", [added.pss_kb / 1024 / n])
                if rep == 0:
                    self.res.note("mem", f"{e.name}: processes added by {n} containers: {added.describe()}")
                if rep < self.plan.mem_reps:
                    e.cli("rm", "-f", *ids)
                else:
                    self.live[e.name] = ids

    # -------------------------------------------------------------------------------------- API
    def api(self) -> None:
        self.res.group(G_API)
        engines = [e for e in self.engines if e.sock is not None]
        for e in engines:
            running = len(self.live.get(e.name, []))
            self.res.note("api", f"{e.name}: {running} containers running, "
                                 f"{self.plan.api_containers - running} created")
            self.live[e.name] = self.live.get(e.name, []) + [
                e.cli("create", *e.run_opts, "busybox", "true").split()[-1]
                for _ in range(self.plan.api_containers - len(self.live.get(e.name, [])))]
            assert e.sock is not None
            conn = UnixHTTPConnection(e.sock)
            conn.request("GET", "/containers/json?all=1")
            listed = len(json.loads(conn.getresponse().read()))
            conn.close()
            if listed != self.plan.api_containers:
                self.res.note("api", f"{e.name} listed {listed} containers, not {self.plan.api_containers}")
        self.log(f"API requests per second: {self.plan.api_rounds} rounds of {self.plan.api_seconds} s")
        cases: dict[Key, Callable[[], object]] = {}
        for e in engines:
            for label in (PING, LIST):
                assert e.sock is not None
                cases[("api", e.name, label)] = partial(requests_per_second, e.sock, label.split()[1],
                                                        self.plan.api_seconds)
        self.interleaved(cases, self.plan.api_rounds, measure=_value)
        for e in engines:
            e.cli("rm", "-f", *self.live.pop(e.name, []))
        for e in self.engines:  # podman without an API socket
            if self.live.get(e.name):
                e.cli("rm", "-f", *self.live.pop(e.name))

    # ---------------------------------------------------------------------------------- latency
    def latency(self) -> None:
        for g in (G_RUN, G_RUND, G_CLI):
            self.res.group(g)
        bundle = make_runc_bundle(self.base)
        runc_root = self.base / "runc-root"
        cases: dict[Key, Callable[[], object]] = {
            ("run", "runc run (floor)", ""): lambda: run(
                ["runc", "--root", str(runc_root), "run", "--bundle", str(bundle), f"b{uuid.uuid4().hex[:12]}"]),
        }
        clis: list[tuple[str, Cli, tuple[str, ...]]] = []
        for e in self.engines:
            clis.append((e.name, e.cli, e.run_opts))
            if e.name == "dockyard" and self.docker_to_dy is not None:
                clis.append((self.docker_to_dy.name, self.docker_to_dy, e.run_opts))
        for who, cli, opts in clis:
            cases[("run", who, "")] = partial(cli, "run", "--rm", *opts, "busybox", "true")
            cases[("rund", who, "")] = partial(_run_d_rm, cli, opts)
        dy = self.engines[0]
        cases[("run", "dockyard", "default bridge network")] = lambda: dy.cli("run", "--rm", "busybox", "true")
        for e in self.engines:
            cases[("cli", e.name, "--version")] = partial(run, [e.cli.argv[0], "--version"], env=e.cli.env)
            cases[("cli", e.name, "ps")] = partial(e.cli, "ps")
        self.log(f"latency: {len(cases)} cases × {self.plan.runs} runs")
        self.interleaved(cases, self.plan.runs)

    # ------------------------------------------------------------------------------------ build
    def build(self) -> None:
        self.res.group(G_BUILD)
        ctx = make_context(self.base)
        dy, docker, podman = self.engine("dockyard"), self.engine("docker"), self.engine("podman")
        assert dy is not None and dy.sock is not None
        named = build_cases(ctx, f"unix://{dy.sock}", self.base / "docker-config",
                            docker.cli.env if docker is not None else None)
        cases: dict[Key, Callable[[], object]] = {}
        for name, fn in named.items():
            who, variant = name[:-1].rsplit(" (", 1)
            cases[("build", "dockyard" if who == "dockyard build" else who, variant)] = fn
        if podman is not None:
            pb = ["build", "-q", "--network", "none", "--pull=never", "-t", "bench-build"]
            cases[("build", "podman", "cold")] = lambda: podman.cli(*pb, "--no-cache", str(ctx))
            cases[("build", "podman", "cached")] = lambda: podman.cli(*pb, str(ctx))
        self.log(f"build: {len(cases)} cases × {self.plan.build_runs} runs")
        self.interleaved(cases, self.plan.build_runs)  # the warm-up round fills every cache

    # ----------------------------------------------------------------------- push/pull, save/load
    def share(self) -> None:
        self.res.group(G_SHARE)
        self.res.group(G_SAVELOAD)
        self.log(f"building the {SIZE_MB} MB image")
        image_tar = build_share_image(self.engines[0].cli, self.base)
        ShareCases.seed(self.engines[0].cli, self.hosts)
        cases: dict[Key, Callable[[], object]] = {}
        prepare: dict[Key, Callable[[], object]] = {}
        for e in self.engines:
            if e.name != "dockyard":
                e.cli("load", "-i", str(image_tar))
            sc = ShareCases(e.cli, self.hosts, self.push_registries)
            if self._pushes(sc):
                for label, fn in sc.cases.items():
                    cases[("share", e.name, label)] = fn
                    prepare[("share", e.name, label)] = sc.prepare[label]
            else:  # e.g. podman 4.3 cannot push the uncompressed layers of a docker-archive
                self.log(f"{e.name} cannot push this image; its push/pull cases are left out")
            out = self.base / f"saved-{e.name}.tar"
            save = partial(e.cli, "save", "-o", str(out), IMAGE)
            if self._works(partial(out.unlink, missing_ok=True), save):
                cases[("saveload", e.name, "save")] = save
                prepare[("saveload", e.name, "save")] = partial(out.unlink, missing_ok=True)
            else:  # podman 4.3 cannot save a docker-archive's uncompressed layers either
                self.log(f"{e.name} cannot save this image; its save case is left out")
            cases[("saveload", e.name, "load")] = partial(e.cli, "load", "-i", str(image_tar))
            prepare[("saveload", e.name, "load")] = sc.remove_image
        self.log(f"push/pull, save/load: {len(cases)} cases × {self.plan.share_runs} runs")
        self.interleaved(cases, self.plan.share_runs, warmup=False, measure=seconds, prepare=prepare)
        for e in self.engines:
            (self.base / f"saved-{e.name}.tar").unlink(missing_ok=True)
            e.cli.quiet("rmi", "-f", IMAGE)
        image_tar.unlink()

    @classmethod
    def _pushes(cls, sc: ShareCases) -> bool:
        """One untimed push: an engine that cannot push the image has no push/pull figures."""
        label = next(label for label in sc.cases if label.startswith("push"))
        return cls._works(sc.prepare[label], sc.cases[label])

    @staticmethod
    def _works(prepare: Callable[[], object], case: Callable[[], object]) -> bool:
        """Run a case once, untimed: False when the engine cannot do it at all."""
        try:
            prepare()
            case()
        except (Exception, SystemExit):
            return False
        return True

    def unpack(self) -> None:
        g = unpack_group(self.plan)
        self.res.group(g)
        archive = self.base / "manyfiles.tar"
        tag = "bench/manyfiles:1"
        self.log(f"writing the {self.plan.unpack_files}-file image")
        write_archive(archive, tag, self.plan.unpack_files, self.plan.unpack_mb)
        cases: dict[Key, Callable[[], object]] = {}
        prepare: dict[Key, Callable[[], object]] = {}
        for e in self.engines:
            cases[("unpack", e.name, "")] = partial(e.cli, "load", "-i", str(archive))
            prepare[("unpack", e.name, "")] = partial(e.cli.quiet, "rmi", "-f", tag)
        self.log(f"unpack: {len(cases)} cases × {self.plan.share_runs} runs")
        self.interleaved(cases, self.plan.share_runs, warmup=False, measure=seconds, prepare=prepare)
        for e in self.engines:
            e.cli.quiet("rmi", "-f", tag)
        archive.unlink()

    # ----------------------------------------------------------------------------------- report
    def header(self, started: str, load_start: str) -> list[str]:
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        mem_kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
        mode = "quick (few runs: for checking the harness, not for quoting)" if self.args.quick else "full"
        p = self.plan
        versions = [
            ("dockyard", version([str(BIN / "dockyard"), "--version"])),
            ("docker CLI", version(["docker", "--version"])),
            ("docker CLI for BuildKit", version(["/usr/bin/docker", "--version"])),
            ("dockerd", version(["dockerd", "--version"])),
            ("containerd", version(["containerd", "--version"])),
            ("runc", version(["runc", "--version"])),
            ("podman", version(["podman", "--version"])),
            ("conmon", version(["conmon", "--version"])),
            ("distribution registry", version(["docker-registry", "--version"])),
            ("python", sys.version.split()[0]),
        ]
        lines = [
            "# dockyard side by side: Docker, Podman and raw runc", "",
            f"Generated by `bench/bench_all.py{' --quick' if self.args.quick else ''}` on {started} (UTC). "
            f"Mode: {mode}.", "",
            f"- Machine: Linux {os.uname().release}, {os.cpu_count()} CPUs, {mem_kb / 1024 / 1024:.1f} GiB memory; "
            f"load average at start {load_start}, at end {_loadavg()}",
            f"- Engines measured: {', '.join(e.name for e in self.engines)} (+ raw runc)",
            f"- Runs: latency {p.runs}, build {p.build_runs}, push/pull/save/load/unpack {p.share_runs}, "
            f"memory 1 fresh + {p.mem_reps} warm, API {p.api_rounds} rounds × {p.api_seconds} s; "
            "each after one untimed warm-up round except push/pull/save/load/unpack", "",
            "| component | version |", "|---|---|",
            *[f"| {name} | {v} |" for name, v in versions],
        ]
        return lines


def _compiled_sources() -> dict[str, float]:
    """Byte-compile dockyard's sources, as an installed package has them (an editable install under
    PYTHONDONTWRITEBYTECODE would otherwise compile every CLI module on every run), and return
    their mtimes, so that a source edited during the run is reported instead of skewing the CLI
    cases unnoticed."""
    import compileall
    src = HERE.parent / "src"
    compileall.compile_dir(str(src), quiet=1)
    return {str(f): f.stat().st_mtime for f in src.rglob("*.py")}


def _run_d_rm(cli: Cli, opts: tuple[str, ...]) -> None:
    cli("rm", "-f", cli("run", "-d", *opts, "busybox", "sleep", "3600").split()[-1])


def _value(fn: Callable[[], object]) -> float:
    """A ``measure`` for cases that return what they measured."""
    v = fn()
    assert isinstance(v, float)
    return v


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="few runs, to check the harness end to end")
    ap.add_argument("--runs", type=int, help="latency runs (overrides the mode's)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="directory for summary.md and summary.png")
    ap.add_argument("--skip-engine", action="append", default=[], choices=["docker", "podman"])
    ap.add_argument("--only", action="append", default=[],
                    choices=["memory", "api", "latency", "build", "share", "unpack"],
                    help="run only these phases (repeatable); idle memory is always measured")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_all.py needs root (it runs container engines)")
    plan = QUICK if args.quick else FULL
    if args.runs:
        plan = dataclasses.replace(plan, runs=args.runs)
    phases = set(args.only) or {"memory", "api", "latency", "build", "share", "unpack"}

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)
    sources = _compiled_sources()
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")
    load_start = _loadavg()
    t0 = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="dybench-all-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, base, True)
        bench = Bench(plan, base, stack, args)
        bench.setup()
        bench.idle_memory("fresh")
        if "memory" in phases:
            bench.container_memory()
        if "api" in phases:
            bench.api()
        for e in bench.engines:  # whatever the phases left
            if bench.live.get(e.name):
                e.cli("rm", "-f", *bench.live.pop(e.name))
        if "latency" in phases:
            bench.latency()
        if "build" in phases:
            bench.build()
        if "share" in phases:
            bench.share()
        if "unpack" in phases:
            bench.unpack()
        bench.idle_memory("after the workload")
        header = bench.header(started, load_start)
        if _compiled_sources() != sources:
            header.insert(3, "**Warning: dockyard's sources changed during this run; the CLI cases after the "
                             "change paid for byte-compiling them. Do not quote it.**\n")
        bench.log("stopping engines and registries")
    header.append(f"\nThe run took {(time.monotonic() - t0) / 60:.1f} minutes. Plot: "
                  f"`{'summary-quick.png' if args.quick else 'summary.png'}`.")
    stem = "summary-quick" if args.quick else "summary"
    args.out.mkdir(parents=True, exist_ok=True)
    text = markdown(bench.res, header, GOALS)
    (args.out / f"{stem}.md").write_text(text)
    plot(bench.res, args.out / f"{stem}.png", f"dockyard side by side — {started} UTC — {os.cpu_count()} CPUs")
    print(text)
    print(f"wrote {args.out / (stem + '.md')} and {args.out / (stem + '.png')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
