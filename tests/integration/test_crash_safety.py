"""The daemon is SIGKILLed at seeded random moments during load, build, commit, rm, volume create
and network create; after each restart `system check` finds nothing wrong, the engine works, and
no mount, cgroup or network device of the dead operation is left."""

from __future__ import annotations

import random
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import BIN, LiveDaemon, restart_daemon, start_daemon, stop_daemon, unique

pytestmark = pytest.mark.root

SEED = 20261128
KILLS_PER_OP = 2


def _docker(d: LiveDaemon, *args: str) -> subprocess.Popen[bytes]:
    import os
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update(DOCKER_HOST=d.host, DOCKER_CONFIG=str(d.data_root.parent / "docker-config"))
    return subprocess.Popen(["docker", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


def _dockyard(d: LiveDaemon, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([str(BIN / "dockyard"), "-H", d.host, *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_kill_at_random_moments_leaves_a_consistent_store(tmp_path: Path) -> None:
    d = start_daemon(tmp_path)
    rng = random.Random(SEED)
    try:
        d.cli("bootstrap", "busybox", timeout=120)
        ctx = tmp_path / "ctx"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text("FROM busybox\nRUN dd if=/dev/urandom of=/a bs=1M count=24\n"
                                        "RUN dd if=/dev/urandom of=/b bs=1M count=24\n")
        d.docker("build", "-q", "-t", "crash-src", str(ctx), timeout=180)
        saved = tmp_path / "img.tar"
        d.docker("save", "-o", str(saved), "crash-src", timeout=120)
        d.docker("rmi", "crash-src")

        def load() -> subprocess.Popen[bytes]:
            return _docker(d, "load", "-i", str(saved))

        def build() -> subprocess.Popen[bytes]:
            (ctx / "Dockerfile").write_text(f"FROM busybox\nRUN echo {unique()} > /id && "
                                            "dd if=/dev/urandom of=/c bs=1M count=32\n")
            return _dockyard(d, "build", "-q", "-t", unique("crash-b"), str(ctx))

        def commit() -> subprocess.Popen[bytes]:
            name = unique("crash-c")
            d.docker("run", "--name", name, "busybox", "dd", "if=/dev/urandom", "of=/big", "bs=1M", "count=32")
            return _docker(d, "commit", name, unique("crash-ci"))

        def rm() -> subprocess.Popen[bytes]:
            name = unique("crash-rm")
            d.docker("run", "-d", "--name", name, "-v", "/anon", "busybox", "sleep", "600")
            return _docker(d, "rm", "-f", "-v", name)

        def volume() -> subprocess.Popen[bytes]:
            return _docker(d, "volume", "create", unique("crash-v"))

        def network() -> subprocess.Popen[bytes]:
            return _docker(d, "network", "create", unique("crash-n"))

        ops: dict[str, Callable[[], subprocess.Popen[bytes]]] = {
            "load": load, "build": build, "commit": commit, "rm": rm, "volume create": volume,
            "network create": network}
        tried = interrupted = 0
        for name, op in ops.items():
            t0 = time.monotonic()   # one undisturbed run: how long the operation takes here
            assert op().wait(120) == 0, name
            took = time.monotonic() - t0
            for _ in range(KILLS_PER_OP):
                delay = rng.uniform(0.0, took)
                print(f"kill {delay:.3f}s into {name} (takes {took:.3f}s)", flush=True)
                proc = op()
                time.sleep(delay)
                d = restart_daemon(d, kill=True)
                interrupted += proc.wait(120) != 0
                tried += 1
                res = d.cli("system", "check", check=False, timeout=120)
                assert res.returncode == 0, f"after a kill {delay:.3f}s into {name}: {res.stdout.decode()}"
                # the engine works: it runs a container and lists what it has
                assert d.docker("run", "--rm", "busybox", "true").returncode == 0
                d.docker("images", "-q")
                d.docker("volume", "ls", "-q")
                d.docker("network", "ls", "-q")
        assert tried == len(ops) * KILLS_PER_OP
        print(f"\ncrash safety: {tried} kills, {interrupted} operations cut short, 0 inconsistencies")
        assert interrupted >= 1   # the kills do land inside operations, not only between them
    finally:
        stop_daemon(d)
