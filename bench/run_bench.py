#!/usr/bin/env python3
"""Container start latency, side by side: dockyard vs raw runc (the floor) vs Docker/Podman.

Runs every case for every engine interleaved (so drift hits all alike) and reports
min/median/max and the ratio of medians to each peer.  Writes bench/results/run.md.

    .venv/bin/python bench/run_bench.py [--runs 30]

It starts its own dockyardd on a private socket and data root and removes them afterwards.
Docker and Podman are measured only when their engine answers (``docker info`` / ``podman info``);
nothing is ever pulled: the busybox image is made locally and loaded into each engine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import BIN, PrivateDockerd, api_call, client_env, interleave, make_runc_bundle, run, summarize  # noqa: E402
from tests.conftest import LiveDaemon, start_daemon, stop_daemon  # noqa: E402

from dockyard.client.busybox import build_archive  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="dybench-"))
    archive = base / "busybox.tar"
    archive.write_bytes(build_archive(tag="busybox:latest"))
    daemon: LiveDaemon = start_daemon(base / "dockyardd")
    dockerd: PrivateDockerd | None = None
    cases: dict[str, Callable[[], object]] = {}
    try:
        daemon.cli("load", "-i", str(archive))
        bundle = make_runc_bundle(base)
        runc_root = base / "runc-root"

        cases["runc run (floor)"] = lambda: run(
            ["runc", "--root", str(runc_root), "run", "--bundle", str(bundle), f"b{uuid.uuid4().hex[:12]}"])
        cases["dockyard run --rm busybox true"] = lambda: run(
            [str(BIN / "dockyard"), "-H", daemon.host, "run", "--rm", "busybox", "true"])
        cases["API create+start+wait+rm"] = lambda: _create_start(daemon)
        if shutil.which("docker"):
            env = client_env(daemon.host, base / "docker-config")
            cases["docker CLI → dockyardd run --rm"] = lambda: run(
                ["docker", "run", "--rm", "busybox", "true"], env=env)
        if shutil.which("dockerd") and shutil.which("docker"):
            dockerd = PrivateDockerd(base / "dockerd")
            if dockerd.start():
                run(["docker", "load", "-i", str(archive)], env=dockerd.env)
                cases["dockerd: docker run --rm busybox true"] = lambda: run(
                    ["docker", "run", "--rm", "--network", "none", "busybox", "true"], env=dockerd.env)
            else:
                print("dockerd did not start; Docker is left out", file=sys.stderr)
        if shutil.which("podman"):
            pbase = base / "podman"
            popts = ["--root", str(pbase / "root"), "--runroot", f"/run/dybench-podman-{uuid.uuid4().hex[:6]}"]
            run(["podman", *popts, "load", "-i", str(archive)])
            cases["podman run --rm busybox true"] = lambda: run(
                ["podman", *popts, "run", "--rm", "--network", "none", "busybox", "true"])
        samples = interleave(cases, args.runs)
    finally:
        stop_daemon(daemon)
        if dockerd is not None:
            dockerd.stop()
        shutil.rmtree(base, ignore_errors=True)

    stats = {name: summarize(s) for name, s in samples.items()}
    floor = stats["runc run (floor)"]["median"]
    mine = stats["dockyard run --rm busybox true"]["median"]
    lines = [f"# Container start latency ({args.runs} runs each, interleaved)", "",
             f"Machine: {os.uname().release}, {os.cpu_count()} CPUs. Times in ms.", "",
             "| case | min | median | max | dockyard run / this |", "|---|---:|---:|---:|---:|"]
    for name, st in stats.items():
        ratio = mine / st["median"] if st["median"] else float("nan")
        lines.append(f"| {name} | {st['min']:.1f} | {st['median']:.1f} | {st['max']:.1f} | {ratio:.2f}× |")
    lines += ["", f"dockyard run --rm / raw runc run = **{mine / floor:.2f}×** (goal ≤ 4×)."]
    text = "\n".join(lines) + "\n"
    out = HERE / "results" / "run.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text)
    print(text)
    return 0


def _api(daemon: LiveDaemon, method: str, path: str, body: object | None = None) -> bytes:
    """One HTTP request over the daemon's unix socket (no CLI process start in the measurement)."""
    return api_call(daemon.sock, method, "/v1.45" + path, body)


def _create_start(daemon: LiveDaemon) -> None:
    cid = json.loads(_api(daemon, "POST", "/containers/create", {"Image": "busybox", "Cmd": ["true"]}))["Id"]
    _api(daemon, "POST", f"/containers/{cid}/start")
    _api(daemon, "POST", f"/containers/{cid}/wait")
    _api(daemon, "DELETE", f"/containers/{cid}")


if __name__ == "__main__":
    raise SystemExit(main())
