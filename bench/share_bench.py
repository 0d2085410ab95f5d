#!/usr/bin/env python3
"""Push and pull throughput on loopback: dockyard's engine and Docker's, against the same registry.

A ~200 MB image of four random (incompressible) layers on busybox is built with dockyard, loaded
into a private dockerd, and pushed to / pulled from a registry on 127.0.0.1 — Debian's
docker-registry (the CNCF distribution registry), and ``dockyard registry serve`` when this
checkout has it. Every push goes to a fresh repository and every pull starts with the image
removed, so each run moves all four layers. Writes bench/results/share.md.

    .venv/bin/python bench/share_bench.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from run_bench import BIN, PrivateDockerd, run, summarize  # noqa: E402
from tests.conftest import LiveDaemon, start_daemon, stop_daemon  # noqa: E402

from dockyard.client.busybox import build_archive  # noqa: E402

LAYER_MB = 50
DOCKERFILE = "".join(f"RUN head -c {LAYER_MB * 1000 * 1000} /dev/urandom > /blob{i}\n" for i in range(4))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str) -> None:
    for _ in range(200):
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not come up")


def start_registries(base: Path) -> tuple[dict[str, str], list[subprocess.Popen[bytes]]]:
    hosts: dict[str, str] = {}
    procs: list[subprocess.Popen[bytes]] = []
    if shutil.which("docker-registry"):
        port = free_port()
        cfg = base / "distribution.yml"
        cfg.write_text(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: "
                       f"{base / 'distribution'}\nhttp:\n  addr: 127.0.0.1:{port}\n")
        procs.append(subprocess.Popen(["docker-registry", "serve", str(cfg)], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        hosts["distribution"] = f"127.0.0.1:{port}"
    probe = subprocess.run([str(BIN / "dockyard"), "registry", "serve", "--help"], capture_output=True)
    if probe.returncode == 0:
        port = free_port()
        procs.append(subprocess.Popen([str(BIN / "dockyard"), "registry", "serve", "--addr", f"127.0.0.1:{port}",
                                       "--root", str(base / "dyregistry")], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        hosts["dockyard registry"] = f"127.0.0.1:{port}"
    for host in hosts.values():
        wait_http(f"http://{host}/v2/")
    return hosts, procs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="dybench-share-"))
    (base / "ctx").mkdir()
    (base / "ctx" / "Dockerfile").write_text("FROM busybox\n" + DOCKERFILE)
    archive = base / "busybox.tar"
    archive.write_bytes(build_archive(tag="busybox:latest"))
    daemon: LiveDaemon = start_daemon(base / "dockyardd")
    dockerd: PrivateDockerd | None = None
    hosts, procs = start_registries(base)
    samples: dict[str, list[float]] = {}
    try:
        daemon.cli("load", "-i", str(archive))
        daemon.cli("build", "-q", "--network", "none", "-t", "bench/share", str(base / "ctx"), timeout=600)
        image_tar = base / "image.tar"
        daemon.cli("save", "-o", str(image_tar), "bench/share")
        size_mb = 4 * LAYER_MB
        cases: dict[str, Callable[[], None]] = {}
        dy = [str(BIN / "dockyard"), "-H", daemon.host]
        denv = None
        if shutil.which("dockerd") and shutil.which("docker"):
            dockerd = PrivateDockerd(base / "dockerd")
            dockerd.base.mkdir()
            if dockerd.start():
                run(["docker", "load", "-i", str(image_tar)], env=dockerd.env)
                denv = dockerd.env
        for label, host in hosts.items():
            def dy_push(host: str = host) -> None:
                ref = f"{host}/p{uuid.uuid4().hex[:8]}/share:1"
                run([*dy, "tag", "bench/share", ref])
                run([*dy, "push", ref])
                run([*dy, "rmi", ref])

            def dy_pull(host: str = host) -> None:
                # nothing of the image may stay local, or its layers "Already exist"
                subprocess.run([*dy, "rmi", "-f", "bench/share", *[f"{h}/pull/share:1" for h in hosts.values()]],
                               capture_output=True)
                run([*dy, "pull", f"{host}/pull/share:1"])
                run([*dy, "tag", f"{host}/pull/share:1", "bench/share"])

            run([*dy, "tag", "bench/share", f"{host}/pull/share:1"])
            run([*dy, "push", f"{host}/pull/share:1"])
            run([*dy, "rmi", f"{host}/pull/share:1"])
            cases[f"dockyard push → {label}"] = dy_push
            cases[f"dockyard pull ← {label}"] = dy_pull
            if denv is not None:
                env = denv

                def dk_push(host: str = host, env: dict[str, str] = env) -> None:
                    ref = f"{host}/d{uuid.uuid4().hex[:8]}/share:1"
                    run(["docker", "tag", "bench/share", ref], env=env)
                    run(["docker", "push", ref], env=env)
                    run(["docker", "rmi", ref], env=env)

                def dk_pull(host: str = host, env: dict[str, str] = env) -> None:
                    subprocess.run(["docker", "rmi", "-f", "bench/share",
                                    *[f"{h}/pull/share:1" for h in hosts.values()]], capture_output=True, env=env)
                    run(["docker", "pull", f"{host}/pull/share:1"], env=env)
                    run(["docker", "tag", f"{host}/pull/share:1", "bench/share"], env=env)

                cases[f"docker push → {label}"] = dk_push
                cases[f"docker pull ← {label}"] = dk_pull
        samples = {name: [] for name in cases}
        for _ in range(args.runs):
            for name, fn in cases.items():
                t0 = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - t0)
    finally:
        stop_daemon(daemon)
        if dockerd is not None:
            dockerd.stop()
        for p in procs:
            p.terminate()
            p.wait(10)
        shutil.rmtree(base, ignore_errors=True)
    lines = [f"# Push and pull on loopback ({args.runs} runs each, interleaved)", "",
             f"Machine: {os.uname().release}, {os.cpu_count()} CPUs. Image: busybox + 4 × {LAYER_MB} MB "
             "random layers (uncompressed in dockyard's store; Docker gzips on push).", "",
             "| case | median s | MB/s (median) |", "|---|---:|---:|"]
    for name, s in samples.items():
        st = summarize(s)
        lines.append(f"| {name} | {st['median']:.2f} | {size_mb / st['median']:.0f} |")
    text = "\n".join(lines) + "\n"
    out = HERE / "results" / "share.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text)
    print(text)
    return 0


def _exists(dy: list[str], ref: str) -> bool:
    return subprocess.run([*dy, "image", "inspect", ref], capture_output=True).returncode == 0


if __name__ == "__main__":
    raise SystemExit(main())
