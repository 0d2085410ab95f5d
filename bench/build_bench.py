#!/usr/bin/env python3
"""Image build time, side by side: dockyard vs Docker (BuildKit and the classic builder).

The same context (a Dockerfile with COPY, RUN, ENV and metadata steps over ~300 small files) is
built cold (``--no-cache``) and fully cached, interleaved across engines, and the medians are
compared. Writes bench/results/build.md.

    .venv/bin/python bench/build_bench.py [--runs 10]

Docker runs as its own dockerd on a private socket and data root (never the system daemon); its
BuildKit is driven through Debian's docker 20.10 CLI (``/usr/bin/docker``, which has BuildKit built
in). Nothing is pulled: the busybox image is made locally and loaded into each engine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import BIN, PrivateDockerd, client_env, interleave, run, summarize  # noqa: E402
from tests.conftest import LiveDaemon, start_daemon, stop_daemon  # noqa: E402

from dockyard.client.busybox import build_archive  # noqa: E402

DOCKERFILE = """FROM busybox
ENV APP=/app MODE=bench
WORKDIR /app
COPY src/ ./src/
RUN find src -type f | wc -l > count && cat src/*/* | md5sum > sum
COPY config.txt ./
RUN sed -e 's/^/cfg: /' config.txt > config.out
LABEL bench=yes
EXPOSE 8080
CMD ["cat", "/app/sum"]
"""


def make_context(base: Path) -> Path:
    ctx = base / "context"
    for d in range(10):
        sub = ctx / "src" / f"pkg{d}"
        sub.mkdir(parents=True)
        for f in range(30):
            (sub / f"file{f}.txt").write_bytes(os.urandom(4096).hex().encode())
    (ctx / "config.txt").write_text("alpha\nbeta\n")
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    return ctx


def build_cases(ctx: Path, dockyard_host: str, docker_config: Path,
                dockerd_env: Mapping[str, str] | None) -> dict[str, Callable[[], object]]:
    """Cold (``--no-cache``) and cached builds of ``ctx``: dockyard's CLI, the stock docker CLI's
    classic builder against dockyardd, and — with ``dockerd_env`` — Docker's BuildKit and classic
    builder (Debian's docker 20.10 CLI, which has BuildKit built in)."""
    # --network none everywhere: the private dockerd runs without its bridge (and RUN needs none)
    dy = [str(BIN / "dockyard"), "-H", dockyard_host, "build", "-q", "--network", "none", "-t", "bench-build"]
    cases: dict[str, Callable[[], object]] = {
        "dockyard build (cold)": lambda: run([*dy, "--no-cache", str(ctx)]),
        "dockyard build (cached)": lambda: run([*dy, str(ctx)]),
    }
    if shutil.which("docker"):  # the same Go client as Docker's cases, talking to dockyardd
        denv = client_env(dockyard_host, docker_config, DOCKER_BUILDKIT="0")
        dk = ["docker", "build", "-q", "--network", "none", "-t", "bench-build"]
        cases["docker CLI → dockyardd (cached)"] = lambda: run([*dk, str(ctx)], env=denv)
    if dockerd_env is not None and Path("/usr/bin/docker").exists():
        bk = {**dockerd_env, "DOCKER_BUILDKIT": "1"}
        classic = {**dockerd_env, "DOCKER_BUILDKIT": "0"}
        d = ["/usr/bin/docker", "build", "-q", "--network", "none", "-t", "bench-build"]
        cases["docker BuildKit (cold)"] = lambda: run([*d, "--no-cache", str(ctx)], env=bk)
        cases["docker BuildKit (cached)"] = lambda: run([*d, str(ctx)], env=bk)
        cases["docker classic (cold)"] = lambda: run([*d, "--no-cache", str(ctx)], env=classic)
        cases["docker classic (cached)"] = lambda: run([*d, str(ctx)], env=classic)
    return cases


def prune_docker_builds(dockerd_env: Mapping[str, str]) -> None:
    subprocess.run(["docker", "builder", "prune", "-af"], capture_output=True, env=dockerd_env)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="dybench-build-"))
    archive = base / "busybox.tar"
    archive.write_bytes(build_archive(tag="busybox:latest"))
    ctx = make_context(base)
    daemon: LiveDaemon = start_daemon(base / "dockyardd")
    dockerd: PrivateDockerd | None = None
    try:
        daemon.cli("load", "-i", str(archive))
        dockerd_env = None
        if shutil.which("dockerd") and Path("/usr/bin/docker").exists():
            dockerd = PrivateDockerd(base / "dockerd")
            if dockerd.start():
                run(["docker", "load", "-i", str(archive)], env=dockerd.env)
                dockerd_env = dockerd.env
            else:
                print("dockerd did not start; Docker is left out", file=sys.stderr)
        cases = build_cases(ctx, daemon.host, base / "dcfg", dockerd_env)
        samples = interleave(cases, args.runs)  # the warm-up round fills every cache
    finally:
        stop_daemon(daemon)
        if dockerd is not None:
            prune_docker_builds(dockerd.env)
            dockerd.stop()
        shutil.rmtree(base, ignore_errors=True)

    stats = {name: summarize(s) for name, s in samples.items()}
    lines = [f"# Image build time ({args.runs} runs each, interleaved)", "",
             f"Machine: {os.uname().release}, {os.cpu_count()} CPUs. Times in ms. Context: 300 files "
             "of 8 KB, 2 COPY + 2 RUN + 6 metadata steps.", "",
             "| case | min | median | max |", "|---|---:|---:|---:|"]
    for name, st in stats.items():
        lines.append(f"| {name} | {st['min']:.1f} | {st['median']:.1f} | {st['max']:.1f} |")
    lines.append("")
    for kind in ("cold", "cached"):
        mine = stats[f"dockyard build ({kind})"]["median"]
        for peer in ("docker BuildKit", "docker classic"):
            key = f"{peer} ({kind})"
            if key in stats:
                lines.append(f"- {kind}: dockyard / {peer} = **{mine / stats[key]['median']:.2f}×**")
    text = "\n".join(lines) + "\n"
    out = HERE / "results" / "build.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
