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
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests.cleanup import unmount_under  # noqa: E402
from tests.conftest import LiveDaemon, start_daemon, stop_daemon  # noqa: E402

from dockyard.client.busybox import build_archive  # noqa: E402

BIN = Path(sys.executable).parent


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000.0


def run(cmd: list[str], env: dict[str, str] | None = None) -> None:
    res = subprocess.run(cmd, capture_output=True, env=env)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.decode()[-500:]}")


def make_runc_bundle(base: Path) -> Path:
    bundle = base / "bundle"
    rootfs = bundle / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", rootfs / "bin" / "busybox")
    (rootfs / "bin" / "true").symlink_to("busybox")
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["/bin/true"]
    (bundle / "config.json").write_text(json.dumps(spec))
    return bundle


class PrivateDockerd:
    """Debian's dockerd on a private socket, data root and exec root; never the system daemon."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.sock = Path(f"/run/dybench-dockerd-{uuid.uuid4().hex[:6]}.sock")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        self.env["DOCKER_HOST"] = f"unix://{self.sock}"
        self.env["DOCKER_CONFIG"] = str(base / "docker-config")
        self.exec_root = Path(f"/run/dybench-dockerd-exec-{uuid.uuid4().hex[:6]}")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, networked: bool = False) -> bool:
        """``networked``: Docker's default bridge, iptables rules and userland proxy (the network
        benchmark); otherwise no networking at all, so nothing is written to the host's firewall."""
        log = open(self.base / "dockerd.log", "wb")  # noqa: SIM115 - lives as long as dockerd
        net_flags = [] if networked else ["--bridge=none", "--iptables=false", "--ip-masq=false"]
        self.proc = subprocess.Popen(
            ["dockerd", "-H", f"unix://{self.sock}", "--data-root", str(self.base / "data"),
             "--exec-root", str(self.exec_root), "--pidfile", str(self.base / "dockerd.pid"), *net_flags],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if subprocess.run(["docker", "info"], capture_output=True, env=self.env).returncode == 0:
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.25)
        return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            ids = subprocess.run(["docker", "ps", "-aq"], capture_output=True, env=self.env).stdout.split()
            if ids:
                subprocess.run(["docker", "rm", "-f", *[i.decode() for i in ids]], capture_output=True,
                               env=self.env)
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        unmount_under(self.base)
        unmount_under(self.exec_root)
        shutil.rmtree(self.exec_root, ignore_errors=True)
        self.sock.unlink(missing_ok=True)


def summarize(samples: list[float]) -> dict[str, float]:
    return {"min": min(samples), "median": statistics.median(samples), "max": max(samples)}


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
            env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
            env["DOCKER_HOST"] = daemon.host
            env["DOCKER_CONFIG"] = str(base / "docker-config")
            cases["docker CLI → dockyardd run --rm"] = lambda: run(
                ["docker", "run", "--rm", "busybox", "true"], env=env)
        if shutil.which("dockerd") and shutil.which("docker"):
            dockerd = PrivateDockerd(base / "dockerd")
            dockerd.base.mkdir()
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
        for fn in cases.values():  # warm-up
            fn()
        samples: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.runs):
            for name, fn in cases.items():
                samples[name].append(timed(fn))
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
    import http.client
    import socket

    conn = http.client.HTTPConnection("localhost")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(daemon.sock))
    conn.sock = sock
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, "/v1.45" + path, body=data, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    out = resp.read()
    conn.close()
    if resp.status >= 300:
        raise SystemExit(f"{method} {path}: {resp.status} {out[:300]!r}")
    return out


def _create_start(daemon: LiveDaemon) -> None:
    cid = json.loads(_api(daemon, "POST", "/containers/create", {"Image": "busybox", "Cmd": ["true"]}))["Id"]
    _api(daemon, "POST", f"/containers/{cid}/start")
    _api(daemon, "POST", f"/containers/{cid}/wait")
    _api(daemon, "DELETE", f"/containers/{cid}")


if __name__ == "__main__":
    raise SystemExit(main())
