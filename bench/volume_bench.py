#!/usr/bin/env python3
"""Data benchmark: ``docker cp`` of a ~200 MB tree into and out of a container, and create + first
mount of a new volume that copy-up fills from the image (``run --rm -v NEW:/data img true``);
dockyard next to a private dockerd when one is installed, both driven by the stock docker CLI.

Writes bench/results/volumes.md.

    .venv/bin/python bench/volume_bench.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import PrivateDockerd, client_env, summarize, timed  # noqa: E402
from tests.conftest import start_daemon, stop_daemon  # noqa: E402

from dockyard.client.busybox import build_archive  # noqa: E402

FILES, FILE_KB = 2000, 100          # the cp tree: 2000 files of 100 KB in 20 directories (~200 MB)
IMAGE_FILES, IMAGE_FILE_KB = 1000, 20  # the copy-up image: 1000 files of 20 KB under /data (~20 MB)


def make_tree(root: Path, files: int, kb: int) -> None:
    for i in range(files):
        d = root / f"d{i % 20:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:05d}").write_bytes(os.urandom(kb * 1024))


def docker(env: dict[str, str], *args: str) -> None:
    res = subprocess.run(["docker", *args], capture_output=True, env=env, timeout=600)
    if res.returncode != 0:
        raise SystemExit(f"docker {' '.join(args)}: {res.stderr.decode()}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if shutil.which("docker") is None:
        raise SystemExit("the stock docker CLI is needed (it drives both engines)")
    base = Path(tempfile.mkdtemp(prefix="dyvolbench-"))
    tree = base / "tree"
    make_tree(tree, FILES, FILE_KB)
    ctx = base / "ctx"
    make_tree(ctx / "data", IMAGE_FILES, IMAGE_FILE_KB)
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY data /data\n")
    archive = base / "busybox.tar"
    archive.write_bytes(build_archive(tag="busybox:latest"))
    daemon = start_daemon(base / "dockyardd")
    dockerd: PrivateDockerd | None = None
    engines: dict[str, dict[str, str]] = {}
    samples: dict[str, list[float]] = {}
    tag = uuid.uuid4().hex[:6]
    try:
        daemon.cli("load", "-i", str(archive))
        daemon.cli("build", "-q", "-t", "copyup:bench", str(ctx), timeout=600)
        daemon.cli("save", "-o", str(base / "copyup.tar"), "copyup:bench")
        engines["dockyard"] = client_env(daemon.host, base / "cfg")
        if shutil.which("dockerd"):
            dockerd = PrivateDockerd(base / "dockerd")
            if dockerd.start():
                for tar in (archive, base / "copyup.tar"):
                    docker(dockerd.env, "load", "-i", str(tar))
                engines["docker"] = dockerd.env
            else:
                print("dockerd did not start; Docker is left out", file=sys.stderr)
        cases: dict[str, Callable[[], object]] = {}
        for name, e in engines.items():
            docker(e, "run", "-d", "--name", f"cp-{tag}", "--network", "none", "busybox", "sleep", "3600")
            out = base / f"out-{name}"

            def cp_in(e: dict[str, str] = e) -> None:
                docker(e, "cp", str(tree), f"cp-{tag}:/tree")

            def cp_out(e: dict[str, str] = e, out: Path = out) -> None:
                shutil.rmtree(out, ignore_errors=True)
                docker(e, "cp", f"cp-{tag}:/tree", str(out))

            def first_mount(e: dict[str, str] = e) -> None:
                vol = f"v{uuid.uuid4().hex[:10]}"
                docker(e, "run", "--rm", "--network", "none", "-v", f"{vol}:/data", "copyup:bench", "true")
                docker(e, "volume", "rm", vol)

            cases[f"{name}: cp 200 MB tree in"] = cp_in
            cases[f"{name}: cp 200 MB tree out"] = cp_out
            cases[f"{name}: new volume, copy-up 20 MB, run --rm"] = first_mount
        for fn in cases.values():
            fn()
        samples = {n: [] for n in cases}
        for _ in range(args.runs):
            for n, fn in cases.items():
                samples[n].append(timed(fn))
    finally:
        for e in engines.values():
            subprocess.run(["docker", "rm", "-f", f"cp-{tag}"], capture_output=True, env=e)
        stop_daemon(daemon)
        if dockerd is not None:
            dockerd.stop()
        shutil.rmtree(base, ignore_errors=True)
    report(samples, args.runs)
    return 0


def report(samples: dict[str, list[float]], runs: int) -> None:
    stats = {n: summarize(s) for n, s in samples.items()}
    lines = ["# Data benchmark: cp and volume copy-up", "",
             f"Machine: {os.uname().release}, {os.cpu_count()} CPUs. {runs} runs each, interleaved, ms; "
             "both engines driven by the same stock docker CLI.", "",
             "| case | min | median | max |", "|---|---:|---:|---:|"]
    lines += [f"| {n} | {s['min']:.0f} | {s['median']:.0f} | {s['max']:.0f} |" for n, s in stats.items()]
    lines.append("")
    for case in ("cp 200 MB tree in", "cp 200 MB tree out", "new volume, copy-up 20 MB, run --rm"):
        mine, theirs = stats.get(f"dockyard: {case}"), stats.get(f"docker: {case}")
        if mine and theirs:
            lines.append(f"- {case}: dockyard / Docker = **{mine['median'] / theirs['median']:.2f}×** time")
    text = "\n".join(lines) + "\n"
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "volumes.md").write_text(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
