#!/usr/bin/env python3
"""Network benchmark: TCP throughput container → container on a user-defined network and host →
published port on 127.0.0.1, and what bridge networking adds to ``run --rm busybox true``;
dockyard next to a private dockerd (bridge networking on, its own bridge) when one is installed.

Traffic stays on this machine: loopback and the networks the run creates. Docker's iptables chains
and bridge are removed afterwards when they did not exist before the run. Writes
bench/results/network.md.

    .venv/bin/python bench/net_bench.py [--runs 5] [--mb 512]
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
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import PrivateDockerd, client_env, free_port, interleave, summarize  # noqa: E402
from tests.conftest import start_daemon, stop_daemon  # noqa: E402

from dockyard.client.busybox import build_archive  # noqa: E402

# The traffic's two ends are Python programs entered (nsenter --net) into the containers' network
# namespaces: busybox nc moves ~1 KiB per syscall and would measure itself, not the network path.
RECEIVER = """
import socket
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", 5001)); srv.listen(4); print("ready", flush=True)
buf = bytearray(1 << 20)
while True:
    c, _ = srv.accept()
    with c:
        while c.recv_into(buf):
            pass
"""
SENDER = """
import socket, sys, time
total, chunk = int(sys.argv[2]), b"\\0" * (1 << 20)
s = socket.create_connection((sys.argv[1], 5001)); t0 = time.perf_counter(); sent = 0
while sent < total:
    s.sendall(chunk); sent += len(chunk)
s.shutdown(socket.SHUT_WR)
while s.recv(4096):
    pass
print(time.perf_counter() - t0)
"""


class Engine:
    """One engine driven through the stock docker CLI (the same client for both)."""

    def __init__(self, name: str, env: dict[str, str]) -> None:
        self.name = name
        self.env = env

    def docker(self, *args: str, check: bool = True) -> str:
        res = subprocess.run(["docker", *args], capture_output=True, env=self.env, timeout=300)
        if check and res.returncode != 0:
            raise SystemExit(f"{self.name}: docker {' '.join(args)}: {res.stderr.decode()}")
        return (res.stdout + res.stderr).decode()


def _send(port: int, total: int) -> float:
    """Seconds to push ``total`` bytes into 127.0.0.1:port until the sink has read them all."""
    chunk = b"\0" * (1 << 20)
    deadline = time.monotonic() + 20
    while True:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    with s:
        t0 = time.perf_counter()
        sent = 0
        while sent < total:
            s.sendall(chunk)
            sent += len(chunk)
        s.shutdown(socket.SHUT_WR)
        while s.recv(4096):  # the sink closes once it has read everything
            pass
        return time.perf_counter() - t0


def _value(fn: Callable[[], object]) -> float:
    v = fn()
    assert isinstance(v, float)
    return v


def _mb_per_s(total: int, transfer: Callable[[], float]) -> float:
    return total / transfer() / 1e6


def _pid(e: Engine, name: str) -> int:
    return int(e.docker("inspect", "-f", "{{.State.Pid}}", name).strip())


def _c2c_seconds(e: Engine, tag: str, total: int) -> float:
    """Seconds to move ``total`` bytes from the src container to the sink container by name's IP."""
    net = f"bench-{tag}"
    ip = e.docker("inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{net}").IPAddress}}}}',
                  f"sink-{tag}").strip()
    res = subprocess.run(["nsenter", f"--net=/proc/{_pid(e, f'src-{tag}')}/ns/net", sys.executable, "-c",
                          SENDER, ip, str(total)], capture_output=True, text=True, timeout=300)
    if res.returncode != 0:
        raise SystemExit(f"{e.name}: container to container transfer failed: {res.stderr}")
    return float(res.stdout.strip())


def _receiver(e: Engine, name: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(["nsenter", f"--net=/proc/{_pid(e, name)}/ns/net", sys.executable, "-c", RECEIVER],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.readline()  # "ready"
    return proc


def setup(e: Engine, tag: str, port: int) -> list[subprocess.Popen[str]]:
    net = f"bench-{tag}"
    e.docker("network", "create", net)
    e.docker("run", "-d", "--name", f"sink-{tag}", "--network", net, "busybox", "sleep", "3600")
    e.docker("run", "-d", "--name", f"pub-{tag}", "-p", f"127.0.0.1:{port}:5001", "busybox", "sleep", "3600")
    e.docker("run", "-d", "--name", f"src-{tag}", "--network", net, "busybox", "sleep", "3600")
    return [_receiver(e, f"sink-{tag}"), _receiver(e, f"pub-{tag}")]


def teardown(e: Engine, tag: str) -> None:
    e.docker("rm", "-f", f"sink-{tag}", f"pub-{tag}", f"src-{tag}", check=False)
    e.docker("network", "rm", f"bench-{tag}", check=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--mb", type=int, default=512)
    ap.add_argument("--start-runs", type=int, default=15)
    args = ap.parse_args()
    if shutil.which("docker") is None:
        raise SystemExit("the stock docker CLI is needed (it drives both engines)")
    base = Path(tempfile.mkdtemp(prefix="dynetbench-"))
    archive = base / "busybox.tar"
    archive.write_bytes(build_archive(tag="busybox:latest"))
    tables_before = _nft_tables()
    had_docker0 = Path("/sys/class/net/docker0").exists()
    daemon = start_daemon(base / "dockyardd")
    dockerd: PrivateDockerd | None = None
    engines: list[tuple[Engine, int]] = []
    samples: dict[str, list[float]] = {}
    receivers: list[subprocess.Popen[str]] = []
    tag = uuid.uuid4().hex[:6]
    try:
        daemon.cli("load", "-i", str(archive))
        env = client_env(daemon.host, base / "docker-config")
        engines.append((Engine("dockyard", env), free_port()))
        if shutil.which("dockerd"):
            dockerd = PrivateDockerd(base / "dockerd")
            if dockerd.start(networked=True):
                subprocess.run(["docker", "load", "-i", str(archive)], env=dockerd.env, check=True,
                               capture_output=True)
                engines.append((Engine("docker", dockerd.env), free_port()))
            else:
                print("dockerd did not start; Docker is left out", file=sys.stderr)
        total = args.mb << 20
        for e, port in engines:
            receivers += setup(e, tag, port)
        cases: dict[str, Callable[[], object]] = {}
        for e, port in engines:
            cases[f"{e.name}: host → published port (MB/s)"] = (
                partial(_mb_per_s, total, partial(_send, port, total)))
            cases[f"{e.name}: container → container (MB/s)"] = (
                partial(_mb_per_s, total, partial(_c2c_seconds, e, tag, total)))
        samples = interleave(cases, args.runs, measure=_value)
        start: dict[str, Callable[[], object]] = {}
        for e, _ in engines:
            for mode in ("none", "bridge"):
                start[f"{e.name}: run --rm --network {mode}"] = (
                    partial(e.docker, "run", "--rm", "--network", mode, "busybox", "true"))
        samples.update(interleave(start, args.start_runs))
    finally:
        for proc in receivers:
            proc.kill()
            proc.wait()
        for e, _ in engines:
            teardown(e, tag)
        stop_daemon(daemon)
        if dockerd is not None:
            dockerd.stop()
            _remove_docker_leftovers(tables_before, had_docker0)
        shutil.rmtree(base, ignore_errors=True)
    write_report(samples, args)
    return 0


def _nft_tables() -> set[str]:
    out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    return {line.strip() for line in out.splitlines() if line.startswith("table")}


def _remove_docker_leftovers(tables_before: set[str], had_docker0: bool) -> None:
    """dockerd leaves its iptables(-nft) chains and docker0 behind when it stops: remove what this
    run created, and nothing that was there before it."""
    for table in _nft_tables() - tables_before:
        if "dytest_" not in table:
            subprocess.run(["nft", "delete", *table.split()], capture_output=True)
    if not had_docker0:
        subprocess.run(["ip", "link", "del", "docker0"], capture_output=True)


def write_report(samples: dict[str, list[float]], args: argparse.Namespace) -> None:
    stats = {name: summarize(s) for name, s in samples.items()}
    lines = ["# Network benchmark", "",
             f"Machine: {os.uname().release}, {os.cpu_count()} CPUs. Throughput: {args.mb} MiB per transfer between Python "
             "sockets entered into the containers' network namespaces (and the host's), "
             f"{args.runs} runs; start latency: {args.start_runs} runs, ms. Both engines driven by the "
             "same stock docker CLI; Docker with its defaults (bridge, userland proxy for 127.0.0.1).", "",
             "| case | min | median | max |", "|---|---:|---:|---:|"]
    for name, st in stats.items():
        lines.append(f"| {name} | {st['min']:.1f} | {st['median']:.1f} | {st['max']:.1f} |")
    lines.append("")

    def med(name: str) -> float | None:
        return stats[name]["median"] if name in stats else None

    for what in ("host → published port (MB/s)", "container → container (MB/s)"):
        mine, theirs = med(f"dockyard: {what}"), med(f"docker: {what}")
        if mine and theirs:
            lines.append(f"- {what.split(' (')[0]}: dockyard / Docker = **{mine / theirs:.2f}×** throughput")
    for engine in ("dockyard", "docker"):
        none, bridge = med(f"{engine}: run --rm --network none"), med(f"{engine}: run --rm --network bridge")
        if none is not None and bridge is not None:
            lines.append(f"- {engine}: bridge networking adds **{bridge - none:.1f} ms** to `run --rm`")
    text = "\n".join(lines) + "\n"
    out = HERE / "results" / "network.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
