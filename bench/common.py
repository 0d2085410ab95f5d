"""What the benchmarks in bench/ share: paths, timing, a private dockerd, loopback registries.

Importing this module puts the checkout's ``src/`` and its root on ``sys.path``, so a benchmark run
as ``.venv/bin/python bench/x.py`` can import ``dockyard`` and the tests' daemon helpers.
Nothing here contacts anything but loopback; every process and directory it starts has a ``stop``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (ROOT / "src", ROOT):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from tests.cleanup import unmount_under  # noqa: E402
from tests.unixhttp import UnixHTTPConnection  # noqa: E402

BIN = Path(sys.executable).parent
RESULTS = HERE / "results"


def timed(fn: Callable[[], object]) -> float:
    """Milliseconds ``fn`` takes."""
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000.0


def run(cmd: list[str], env: Mapping[str, str] | None = None, timeout: float = 900) -> str:
    """Run ``cmd``; its stdout, or SystemExit with the tail of its stderr when it fails."""
    res = subprocess.run(cmd, capture_output=True, env=env, timeout=timeout)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.decode()[-500:]}")
    return res.stdout.decode()


def summarize(samples: list[float]) -> dict[str, float]:
    return {"min": min(samples), "median": statistics.median(samples), "max": max(samples)}


def interleave(cases: Mapping[str, Callable[[], object]], runs: int, warmup: bool = True,
               measure: Callable[[Callable[[], object]], float] = timed,
               prepare: Mapping[str, Callable[[], object]] | None = None) -> dict[str, list[float]]:
    """``runs`` rounds of every case in turn (drift hits all alike), after one warm-up round.
    ``prepare[name]``, when given, runs untimed before each run of that case."""
    prepare = prepare or {}
    if warmup:
        for name, fn in cases.items():
            if name in prepare:
                prepare[name]()
            fn()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, fn in cases.items():
            if name in prepare:
                prepare[name]()
            samples[name].append(measure(fn))
    return samples


def seconds(fn: Callable[[], object]) -> float:
    """Seconds ``fn`` takes (a ``measure`` for :func:`interleave`)."""
    return timed(fn) / 1000.0


class Cli:
    """An engine's command line: ``argv`` (program and global flags) and its environment.
    ``registry_flags`` go on push and pull (podman's ``--tls-verify=false`` for loopback)."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str] | None = None,
                 registry_flags: tuple[str, ...] = ()) -> None:
        self.name = name
        self.argv = argv
        self.env = dict(env) if env is not None else None
        self.registry_flags = registry_flags

    def __call__(self, *args: str, timeout: float = 900) -> str:
        return run([*self.argv, *args], env=self.env, timeout=timeout)

    def quiet(self, *args: str, timeout: float = 900) -> int:
        """Run, ignore the output; the exit status."""
        return subprocess.run([*self.argv, *args], capture_output=True, env=self.env,
                              timeout=timeout).returncode


def client_env(host: str, config_dir: Path, **extra: str) -> dict[str, str]:
    """The environment for the stock docker CLI talking to ``host`` (no DOCKER_* of the caller's)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update(DOCKER_HOST=host, DOCKER_CONFIG=str(config_dir), **extra)
    return env


def make_runc_bundle(base: Path, args: tuple[str, ...] = ("/bin/true",)) -> Path:
    """An OCI bundle of the host's static busybox for raw ``runc run`` (the floor)."""
    bundle = base / "bundle"
    rootfs = bundle / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", rootfs / "bin" / "busybox")
    for applet in ("true", "sleep", "sh"):
        (rootfs / "bin" / applet).symlink_to("busybox")
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["terminal"] = False
    spec["process"]["args"] = list(args)
    (bundle / "config.json").write_text(json.dumps(spec))
    return bundle


class PrivateDockerd:
    """Debian's dockerd on a private socket, data root and exec root; never the system daemon.

    It starts a containerd of its own (a child); ``extra_env`` is added to dockerd's environment,
    which that containerd and its shims inherit (the memory benchmark finds them by it)."""

    def __init__(self, base: Path, extra_env: Mapping[str, str] | None = None) -> None:
        self.base = base
        self.sock = Path(f"/run/dybench-dockerd-{uuid.uuid4().hex[:6]}.sock")
        self.env = client_env(f"unix://{self.sock}", base / "docker-config")
        self.exec_root = Path(f"/run/dybench-dockerd-exec-{uuid.uuid4().hex[:6]}")
        self.extra_env = dict(extra_env or {})
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, networked: bool = False) -> bool:
        """``networked``: Docker's default bridge, iptables rules and userland proxy (the network
        benchmark); otherwise no networking at all, so nothing is written to the host's firewall."""
        self.base.mkdir(parents=True, exist_ok=True)
        log = open(self.base / "dockerd.log", "wb")  # noqa: SIM115 - lives as long as dockerd
        net_flags = [] if networked else ["--bridge=none", "--iptables=false", "--ip-masq=false"]
        self.proc = subprocess.Popen(
            ["dockerd", "-H", f"unix://{self.sock}", "--data-root", str(self.base / "data"),
             "--exec-root", str(self.exec_root), "--pidfile", str(self.base / "dockerd.pid"), *net_flags],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, **self.extra_env})
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
                self.proc.wait()
        unmount_under(self.base)
        unmount_under(self.exec_root)
        shutil.rmtree(self.exec_root, ignore_errors=True)
        self.sock.unlink(missing_ok=True)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
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


class Registries:
    """Registries on 127.0.0.1 for push/pull: Debian's docker-registry (the CNCF distribution
    registry) when installed, and ``dockyard registry serve``. ``hosts``: label → host:port.
    ``reset(label)`` restarts one on the same port with empty storage, so that a push to it has to
    upload every layer (clients mount blobs across repositories of a registry they pushed to)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.base.mkdir(parents=True, exist_ok=True)
        self.hosts: dict[str, str] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.argv: dict[str, list[str]] = {}
        self.roots: dict[str, Path] = {}

    def start(self) -> dict[str, str]:
        if shutil.which("docker-registry"):
            port = free_port()
            root = self.base / "distribution"
            cfg = self.base / "distribution.yml"
            cfg.write_text(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: "
                           f"{root}\nhttp:\n  addr: 127.0.0.1:{port}\n")
            self._start("distribution", port, root, ["docker-registry", "serve", str(cfg)])
        probe = subprocess.run([str(BIN / "dockyard"), "registry", "serve", "--help"], capture_output=True)
        if probe.returncode == 0:
            port = free_port()
            root = self.base / "dyregistry"
            self._start("dockyard registry", port, root, [str(BIN / "dockyard"), "registry", "serve", "--addr",
                                                          f"127.0.0.1:{port}", "--root", str(root)])
        return self.hosts

    def _start(self, label: str, port: int, root: Path, argv: list[str]) -> None:
        self.hosts[label], self.roots[label], self.argv[label] = f"127.0.0.1:{port}", root, argv
        self.procs[label] = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(f"http://{self.hosts[label]}/v2/")

    def reset(self, label: str) -> None:
        _terminate(self.procs.pop(label))
        shutil.rmtree(self.roots[label], ignore_errors=True)
        self._start(label, int(self.hosts[label].rsplit(":", 1)[1]), self.roots[label], self.argv[label])

    def stop(self) -> None:
        for p in self.procs.values():
            _terminate(p)
        self.procs.clear()


def _terminate(p: subprocess.Popen[bytes]) -> None:
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def api_call(sock: Path, method: str, path: str, body: object | None = None) -> bytes:
    """One request on a fresh connection; the body, or SystemExit on a status >= 300."""
    conn = UnixHTTPConnection(sock)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        out = resp.read()
    finally:
        conn.close()
    if resp.status >= 300:
        raise SystemExit(f"{method} {path}: {resp.status} {out[:300]!r}")
    return out
