#!/usr/bin/env python3
"""Load test: many concurrent API clients, then many containers at once; errors, leaks, latency.

Phase 1: ``--clients`` threads (32) each run ``--iterations`` cycles per round of
create → start → exec (``echo``, output checked) → logs (content checked) → rm -f, for
``--rounds`` rounds after a warm-up round. Phase 2: ``--containers`` (200) ``sleep`` containers
running at once (``GET /containers/json`` must list them all running), then all removed.

Between rounds and after each phase it takes a snapshot of what the engine holds: the daemon's RSS,
threads and fds; the engine's helper processes (shims, containerd, …) and their fds and RSS; the
containers' processes; mounts and nsfs (netns) mounts under the engine's roots; cgroups named after
this run's containers; ports of the engine's bridge. Leaks are the final snapshot (everything
removed) minus the baseline taken after the warm-up round, and must all be 0.

Both engines are driven by the same client (the docker SDK's low-level ``APIClient``, one per
thread, over the engine's unix socket) and run the same busybox image, made locally and loaded into
each (nothing is pulled). Docker is a private dockerd (own socket, data root and exec root, no
bridge, no iptables) and is measured only when ``dockerd`` is installed. Writes
bench/results/load.md.

    .venv/bin/python bench/load_bench.py [--clients 32] [--rounds 3] [--iterations 8]
                                         [--containers 200] [--engines dockyard,docker]

``tests/integration/test_load.py`` runs the same code at a small scale against the test daemon.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

LABEL = "dockyard.load-test"
API_VERSION = "1.41"  # Debian 12's dockerd (20.10) speaks up to 1.41; the same for both engines
CGROUP_ROOT = Path("/sys/fs/cgroup")


# ----------------------------------------------------------------------------- what is measured
@dataclass(frozen=True)
class Target:
    """One engine under test: where its API is and what belongs to it on the host."""
    name: str
    sock: Path
    daemon_pid: int
    roots: tuple[Path, ...]          # data root, exec root: mounts and processes naming them are its
    bridge: str | None = None        # ports of this bridge are its containers' veths
    network: str = "none"            # the containers' network mode


@dataclass(frozen=True)
class Snapshot:
    label: str
    daemon_rss_kb: int
    daemon_threads: int
    daemon_fds: int
    helper_procs: int        # engine processes in the host's pid namespace other than the daemon
    helper_fds: int
    helper_rss_kb: int
    container_procs: int     # engine processes inside containers' pid namespaces
    mounts: int              # mount points at or under the engine's roots (host mount namespace)
    nsfs_mounts: int         # of which network/other namespace bind mounts
    cgroups: int             # cgroup directories named after this run's containers
    bridge_ports: int
    containers: int          # containers carrying this run's label, as the API lists them (all=1)


# what must come back to the baseline once every container is removed
LEAK_FIELDS = ("daemon_fds", "helper_procs", "helper_fds", "container_procs", "mounts", "nsfs_mounts",
               "cgroups", "bridge_ports", "containers")


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _status(pid: int) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in _read(Path(f"/proc/{pid}/status")).splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def _fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def _rss_kb(status: dict[str, str]) -> int:
    return int(status.get("VmRSS", "0 kB").split()[0])


def engine_processes(target: Target) -> tuple[list[int], list[int]]:
    """(helpers, container processes): the daemon's descendants and every process whose command
    line or working directory names one of the engine's roots, with their descendants; split by
    pid namespace (ours → helper, another → a container's). The daemon itself is in neither."""
    needles = [str(r).encode() for r in target.roots]
    parents: dict[int, int] = {}
    seeds = {target.daemon_pid}
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        stat = _read(Path(f"/proc/{pid}/stat"))
        if not stat:
            continue
        parents[pid] = int(stat.rsplit(")", 1)[1].split()[1])
        if pid == me:
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            cwd = os.readlink(f"/proc/{pid}/cwd").encode()
        except OSError:
            cmdline, cwd = b"", b""
        if any(n in cmdline or cwd == n or cwd.startswith(n + b"/") for n in needles):
            seeds.add(pid)
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    todo = list(seeds)
    while todo:
        pid = todo.pop()
        if pid in found or pid not in parents:
            continue
        found.add(pid)
        todo.extend(children.get(pid, ()))
    found.discard(target.daemon_pid)
    my_ns = os.readlink("/proc/self/ns/pid")
    helpers: list[int] = []
    containers: list[int] = []
    for pid in sorted(found):
        try:
            ns = os.readlink(f"/proc/{pid}/ns/pid")
        except OSError:
            continue
        (helpers if ns == my_ns else containers).append(pid)
    return helpers, containers


def engine_mounts(target: Target) -> tuple[int, int]:
    """(mount points at or under the roots, of which nsfs) in our mount namespace."""
    prefixes = [str(r) for r in target.roots]
    total = nsfs = 0
    for line in _read(Path("/proc/self/mountinfo")).splitlines():
        parts = line.split()
        point = parts[4]
        if any(point == p or point.startswith(p + "/") for p in prefixes):
            total += 1
            fstype = parts[parts.index("-") + 1]
            nsfs += fstype == "nsfs"
    return total, nsfs


def cgroups_named(ids: set[str]) -> int:
    """cgroup directories (any hierarchy, up to four levels deep) whose name holds one of ``ids``
    (``<parent>/<id>`` with cgroupfs, ``docker-<id>.scope`` with systemd)."""
    if not ids:
        return 0
    count = 0

    def walk(path: Path, depth: int) -> None:
        nonlocal count
        try:
            entries = list(os.scandir(path))
        except OSError:
            return
        for e in entries:
            if not e.is_dir(follow_symlinks=False):
                continue
            name = e.name.removeprefix("docker-").removesuffix(".scope")
            if name in ids:
                count += 1
            elif depth < 4:
                walk(Path(e.path), depth + 1)

    walk(CGROUP_ROOT, 0)
    return count


def bridge_ports(bridge: str | None) -> int:
    if not bridge:
        return 0
    try:
        return len(os.listdir(f"/sys/class/net/{bridge}/brif"))
    except OSError:
        return 0


class Tracker:
    """Per-request latencies by operation, failures, and the ids of every container made."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.samples: dict[str, list[float]] = {}
        self.failures: list[str] = []
        self.retries: dict[str, int] = {}
        self.ids: set[str] = set()

    @contextmanager
    def op(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        ms = (time.perf_counter() - t0) * 1000.0
        with self.lock:
            self.samples.setdefault(name, []).append(ms)

    def fail(self, what: str) -> None:
        with self.lock:
            self.failures.append(what)

    def retry(self, what: str) -> None:
        with self.lock:
            self.retries[what] = self.retries.get(what, 0) + 1

    @property
    def requests(self) -> int:
        return sum(len(s) for s in self.samples.values())


def _leak(r: Result, name: str) -> str:
    """A leak figure of one run: final minus baseline."""
    return str(getattr(r.final, name) - getattr(r.baseline, name))


def percentile(samples: list[float], q: float) -> float:
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[int(q) - 1]


def client(target: Target) -> Any:
    import docker
    return docker.APIClient(base_url=f"unix://{target.sock}", version=API_VERSION, timeout=300)


def snapshot(target: Target, tracker: Tracker, label: str, api: Any) -> Snapshot:
    st = _status(target.daemon_pid)
    helpers, ctrs = engine_processes(target)
    hstat = [_status(p) for p in helpers]
    mounts, nsfs = engine_mounts(target)
    with tracker.lock:
        ids = set(tracker.ids)
    listed = api.containers(all=True, filters={"label": LABEL})
    return Snapshot(label, _rss_kb(st), int(st.get("Threads", "0")), _fd_count(target.daemon_pid),
                    len(helpers), sum(_fd_count(p) for p in helpers), sum(_rss_kb(s) for s in hstat),
                    len(ctrs), mounts, nsfs, cgroups_named(ids), bridge_ports(target.bridge), len(listed))


def settled(target: Target, tracker: Tracker, label: str, api: Any, baseline: Snapshot | None,
            wait: float = 15.0) -> Snapshot:
    """A snapshot once what is torn down asynchronously (shims exiting, cgroups being removed) has
    caught up: the first that matches ``baseline`` on every leak figure, else the last one taken."""
    deadline = time.monotonic() + wait
    while True:
        snap = snapshot(target, tracker, label, api)
        if baseline is None or not leaks(baseline, snap) or time.monotonic() > deadline:
            return snap
        time.sleep(0.5)


def leaks(baseline: Snapshot, final: Snapshot) -> dict[str, int]:
    """What ``final`` holds beyond ``baseline`` (fewer than the baseline is no leak: e.g. an idle
    keep-alive connection the daemon has since closed)."""
    out = {}
    for name in LEAK_FIELDS:
        diff = getattr(final, name) - getattr(baseline, name)
        if diff > 0:
            out[name] = diff
    return out


# ------------------------------------------------------------------------------------ the phases
def _cmd(marker: str) -> list[str]:
    return ["sh", "-c", f"echo started-{marker}; exec sleep 3600"]


def _create(api: Any, target: Target, tracker: Tracker, run_id: str, name: str, op: str) -> str:
    with tracker.op(op):
        ctr = api.create_container(
            "busybox", _cmd(name), name=name, labels={LABEL: run_id},
            host_config=api.create_host_config(network_mode=target.network))
    cid: str = ctr["Id"]
    with tracker.lock:
        tracker.ids.add(cid)
    return cid


def cycle(api: Any, target: Target, tracker: Tracker, run_id: str, name: str) -> None:
    """create → start → exec → logs → rm -f, each output checked; failures recorded, not raised."""
    cid = None
    step = "create"
    try:
        cid = _create(api, target, tracker, run_id, name, "create")
        step = "start"
        with tracker.op("start"):
            api.start(cid)
        step = "exec create"
        with tracker.op("exec create"):
            ex = api.exec_create(cid, ["echo", f"hi-{name}"])
        step = "exec start"
        with tracker.op("exec start"):
            out = api.exec_start(ex["Id"])
        if out != f"hi-{name}\n".encode():
            raise AssertionError(f"exec output {out[:200]!r}")
        step = "logs"
        want = f"started-{name}".encode()
        for attempt in range(20):
            with tracker.op("logs"):
                logs = api.logs(cid, stdout=True, stderr=True)
            if want in logs:
                break
            tracker.retry("logs (line not written yet)")
            time.sleep(0.05 * (attempt + 1))
        else:
            raise AssertionError(f"logs {logs[:200]!r} lack {want!r}")
        step = "rm -f"
        with tracker.op("rm -f"):
            api.remove_container(cid, force=True)
        cid = None
    except Exception as exc:
        tracker.fail(f"{step} {name}: {type(exc).__name__}: {str(exc)[:300]}")
    finally:
        if cid is not None:
            try:
                api.remove_container(cid, force=True)
            except Exception as exc:
                tracker.fail(f"cleanup rm {name}: {type(exc).__name__}: {str(exc)[:300]}")


def run_threads(n: int, fn: Callable[[int], None]) -> float:
    """``fn(i)`` on ``n`` threads started together; wall time in seconds. Exceptions propagate."""
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def body(i: int) -> None:
        try:
            barrier.wait()
            fn(i)
        except BaseException as exc:
            errors.append(exc)
            traceback.print_exc()

    threads = [threading.Thread(target=body, args=(i,), name=f"load-{i}") for i in range(n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - t0


def phase1_round(target: Target, tracker: Tracker, run_id: str, clients: int, iterations: int,
                 tag: str) -> float:
    def body(i: int) -> None:
        api = client(target)
        try:
            for k in range(iterations):
                cycle(api, target, tracker, run_id, f"dyload-{run_id}-{tag}-{i}-{k}")
        finally:
            api.close()
    return run_threads(clients, body)


def phase2(target: Target, tracker: Tracker, run_id: str, clients: int, count: int,
           on_running: Callable[[], None]) -> tuple[float, float, int]:
    """``count`` containers running at once: started by ``clients`` threads, listed, then removed.
    Returns (seconds to get them all running, seconds to remove them, how many the API listed
    running); ``on_running`` runs while they all run."""
    made: list[str] = []
    lock = threading.Lock()

    def starter(i: int) -> None:
        api = client(target)
        try:
            for k in range(i, count, clients):
                name = f"dyload-{run_id}-many-{k}"
                try:
                    cid = _create(api, target, tracker, run_id, name, "create (phase 2)")
                    with lock:
                        made.append(cid)
                    with tracker.op("start (phase 2)"):
                        api.start(cid)
                except Exception as exc:
                    tracker.fail(f"phase 2 {name}: {type(exc).__name__}: {str(exc)[:300]}")
        finally:
            api.close()

    up = run_threads(clients, starter)
    api = client(target)
    try:
        running = 0
        for _ in range(10):
            with tracker.op("list (phase 2)"):
                listed = api.containers(filters={"label": LABEL, "status": "running"})
            running = sum(1 for c in listed if c["Id"] in made)
        if running != count:
            tracker.fail(f"phase 2: {running} of {count} containers listed running")
        on_running()
    finally:
        api.close()

    def remover(i: int) -> None:
        api = client(target)
        try:
            for cid in made[i::clients]:
                try:
                    with tracker.op("rm -f (phase 2)"):
                        api.remove_container(cid, force=True)
                except Exception as exc:
                    tracker.fail(f"phase 2 rm {cid[:12]}: {type(exc).__name__}: {str(exc)[:300]}")
        finally:
            api.close()

    down = run_threads(clients, remover)
    return up, down, running


@dataclass
class Result:
    target: Target
    version: str
    tracker: Tracker
    snapshots: list[Snapshot] = field(default_factory=list)
    baseline: Snapshot | None = None
    final: Snapshot | None = None
    phase1_seconds: list[float] = field(default_factory=list)
    phase1_cycles: int = 0
    phase2: tuple[float, float, int] = (0.0, 0.0, 0)
    daemon_log_errors: int = 0
    loadavg: tuple[str, str] = ("", "")   # the host's load average before and after the run

    @property
    def leaks(self) -> dict[str, int]:
        assert self.baseline is not None and self.final is not None
        return leaks(self.baseline, self.final)

    def rss_growth_kb(self) -> int:
        """Daemon RSS after the last phase-1 round minus after the first measured one."""
        rounds = [s for s in self.snapshots if s.label.startswith("after round")]
        return rounds[-1].daemon_rss_kb - rounds[0].daemon_rss_kb if len(rounds) > 1 else 0


def run_load(target: Target, *, clients: int, rounds: int, iterations: int, containers: int,
             warmup_iterations: int = 1, log: Callable[[str], None] = print) -> Result:
    """The whole load test against one engine; every container it makes is gone afterwards."""
    run_id = uuid.uuid4().hex[:8]
    tracker = Tracker()
    api = client(target)
    try:
        version = api.version().get("Version", "?")
        res = Result(target, version, tracker)
        load_before = loadavg()
        res.snapshots.append(snapshot(target, tracker, "start", api))
        log(f"[{target.name}] warm-up round: {clients} clients × {warmup_iterations}")
        warm = Tracker()  # its latencies are not reported; its failures and containers count
        phase1_round(target, warm, run_id, clients, warmup_iterations, "warm")
        tracker.failures += [f"warm-up: {f}" for f in warm.failures]
        tracker.ids |= warm.ids
        res.baseline = settled(target, tracker, "after warm-up (baseline)", api, None)
        res.snapshots.append(res.baseline)
        for r in range(1, rounds + 1):
            secs = phase1_round(target, tracker, run_id, clients, iterations, f"r{r}")
            res.phase1_seconds.append(secs)
            res.phase1_cycles += clients * iterations
            snap = settled(target, tracker, f"after round {r}", api, res.baseline)
            res.snapshots.append(snap)
            log(f"[{target.name}] round {r}: {clients * iterations} cycles in {secs:.1f} s, "
                f"rss {snap.daemon_rss_kb} kB, fds {snap.daemon_fds}, failures {len(tracker.failures)}")

        def while_running() -> None:
            res.snapshots.append(snapshot(target, tracker, f"{containers} running", api))

        log(f"[{target.name}] phase 2: {containers} containers at once")
        res.phase2 = phase2(target, tracker, run_id, clients, containers, while_running)
        res.final = settled(target, tracker, "all removed (final)", api, res.baseline)
        res.loadavg = (load_before, loadavg())
        res.snapshots.append(res.final)
        log(f"[{target.name}] done: {tracker.requests} requests, {len(tracker.failures)} failures, "
            f"leaks {res.leaks or 'none'}")
        return res
    finally:
        # whatever failed above, no container of this run stays behind
        try:
            for c in api.containers(all=True, filters={"label": f"{LABEL}={run_id}"}):
                api.remove_container(c["Id"], force=True)
        except Exception:
            pass
        api.close()


# ------------------------------------------------------------------------------------ the report
OPS = ["create", "start", "exec create", "exec start", "logs", "rm -f",
       "create (phase 2)", "start (phase 2)", "list (phase 2)", "rm -f (phase 2)"]


def report(results: list[Result], args: argparse.Namespace, machine: dict[str, str]) -> str:
    names = [r.target.name for r in results]
    lines = ["# Load test: concurrent API clients and many containers at once", "",
             f"Date: {machine['date']}. Machine: {machine['kernel']}, {machine['cpus']} CPUs, "
             f"{machine['mem']} RAM, Python {platform.python_version()}. "
             + "; ".join(f"{r.target.name} {r.version}" for r in results) + ".", "",
             f"Phase 1: {args.clients} concurrent clients (threads, one docker SDK `APIClient` each, "
             f"API {API_VERSION}, unix socket), each doing {args.iterations} cycles per round of "
             "create → start → exec `echo` (output checked) → logs (content checked) → rm -f, "
             f"{args.rounds} rounds after an unmeasured warm-up round. "
             f"Phase 2: {args.containers} busybox `sleep` containers running at once "
             f"(created and started by the same {args.clients} clients, listed 10× via "
             "`GET /containers/json`), then all removed. Containers' network: "
             + ", ".join(f"{r.target.name} `{r.target.network}`" for r in results) + "; Docker is a "
             "private dockerd (own roots, `--bridge=none --iptables=false`). Latencies include "
             "the client's own time in a Python process on the same 2 CPUs.", ""]
    hdr = "| op | " + " | ".join(f"{n} n | {n} p50 | {n} p99" for n in names)
    if len(results) == 2:
        hdr += f" | p50 {names[0]}/{names[1]} | p99 {names[0]}/{names[1]}"
    lines += ["## Latency per request (ms)", "", hdr + " |",
              "|---|" + "---:|" * (3 * len(names) + (2 if len(results) == 2 else 0))]
    for op in OPS:
        row = [op]
        stats = []
        for r in results:
            s = r.tracker.samples.get(op, [])
            if s:
                p50, p99 = percentile(s, 50), percentile(s, 99)
                stats.append((p50, p99))
                row += [str(len(s)), f"{p50:.1f}", f"{p99:.1f}"]
            else:
                stats.append((float("nan"), float("nan")))
                row += ["0", "–", "–"]
        if len(results) == 2:
            row += [f"{stats[0][0] / stats[1][0]:.2f}×", f"{stats[0][1] / stats[1][1]:.2f}×"]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Totals", "", "| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]

    def total_row(label: str, fn: Callable[[Result], str]) -> None:
        lines.append(f"| {label} | " + " | ".join(fn(r) for r in results) + " |")

    total_row("requests made (measured)", lambda r: str(r.tracker.requests))
    total_row("failures", lambda r: str(len(r.tracker.failures)))
    total_row("logs re-read (line not yet written)", lambda r: str(sum(r.tracker.retries.values())))
    total_row("phase 1 cycles", lambda r: str(r.phase1_cycles))
    total_row("phase 1 wall time per round (s)", lambda r: ", ".join(f"{s:.1f}" for s in r.phase1_seconds))
    total_row("phase 1 cycles/s", lambda r: f"{r.phase1_cycles / sum(r.phase1_seconds):.1f}"
              if r.phase1_seconds else "–")
    total_row(f"phase 2: time to {args.containers} running (s)", lambda r: f"{r.phase2[0]:.1f}")
    total_row("phase 2: listed running", lambda r: str(r.phase2[2]))
    total_row(f"phase 2: time to remove {args.containers} (s)", lambda r: f"{r.phase2[1]:.1f}")
    total_row("daemon RSS growth round 1 → last round (kB)", lambda r: str(r.rss_growth_kb()))
    total_row("error lines in the daemon's log", lambda r: str(r.daemon_log_errors))
    total_row("host load average (1/5/15 min) before → after", lambda r: " → ".join(r.loadavg))
    lines += ["", "## Leaks (final, everything removed − baseline after warm-up; must be 0; "
              "a negative figure is fewer than the baseline, not a leak)", "",
              "| figure | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for name in LEAK_FIELDS:
        total_row(name.replace("_", " "), partial(_leak, name=name))
    total_row("**total leaks**", lambda r: f"**{sum(r.leaks.values())}**")
    cols = [f.name for f in fields(Snapshot) if f.name != "label"]
    for r in results:
        lines += ["", f"## Resources over the run: {r.target.name}", "",
                  "| when | " + " | ".join(c.replace("_", " ") for c in cols) + " |",
                  "|---|" + "---:|" * len(cols)]
        for snap in r.snapshots:
            lines.append(f"| {snap.label} | " + " | ".join(str(getattr(snap, c)) for c in cols) + " |")
    failures = [(r.target.name, f) for r in results for f in r.tracker.failures]
    if failures:
        lines += ["", "## Failures (first 20)", ""]
        lines += [f"- {n}: {f}" for n, f in failures[:20]]
    lines += ["", "Helpers: the engine's processes in the host's pid namespace other than the daemon "
              "(dockyard: its shim host; Docker: containerd and one containerd-shim per container). "
              "RSS in kB. Rerun: `.venv/bin/python bench/load_bench.py`."]
    return "\n".join(lines) + "\n"


def loadavg() -> str:
    return " ".join(_read(Path("/proc/loadavg")).split()[:3])


def machine_info() -> dict[str, str]:
    mem = int(_read(Path("/proc/meminfo")).split()[1]) / (1024 * 1024)
    return {"kernel": os.uname().release, "cpus": str(os.cpu_count()), "mem": f"{mem:.0f} GiB",
            "date": datetime.date.today().isoformat()}


def daemon_bridge(argv: Any) -> str | None:
    """The ``--bridge`` a test daemon was started with."""
    argv = list(argv)
    return str(argv[argv.index("--bridge") + 1]) if "--bridge" in argv else None


# lines of a daemon log (dockerd's format, which dockyardd shares) that report a failure
LOG_ERRORS = ("level=error", "level=fatal", "Traceback", "database is locked")


def count_log_errors(path: Path, needles: tuple[str, ...]) -> int:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return 0
    return sum(1 for line in text.splitlines() if any(n in line for n in needles))


# ------------------------------------------------------------------------------------------ main
def main() -> int:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "src"))
    sys.path.insert(0, str(HERE))
    from common import PrivateDockerd
    from tests.conftest import start_daemon, stop_daemon

    from dockyard.client.busybox import build_archive

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=8, help="cycles per client per round")
    ap.add_argument("--containers", type=int, default=200)
    ap.add_argument("--engines", default="dockyard,docker")
    ap.add_argument("--network", default="none",
                    help="dockyard's containers' network (none|bridge); Docker's private dockerd has no bridge")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "load.md")
    ap.add_argument("--logs", type=Path, help="copy the daemons' logs into this directory")
    args = ap.parse_args()
    engines = args.engines.split(",")
    base = Path(tempfile.mkdtemp(prefix="dyload-"))
    base.chmod(0o711)
    archive = base / "busybox.tar"
    archive.write_bytes(build_archive(tag="busybox:latest"))
    results: list[Result] = []
    kw = {"clients": args.clients, "rounds": args.rounds, "iterations": args.iterations,
          "containers": args.containers}
    try:
        if "dockyard" in engines:
            # the tests' daemon logs at debug level; the benchmark measures the default, as for dockerd
            daemon = start_daemon(base / "dockyardd", "--log-level", "info")
            try:
                daemon.cli("load", "-i", str(archive))
                target = Target("dockyard", daemon.sock, daemon.proc.pid, (daemon.data_root, daemon.exec_root),
                                bridge=daemon_bridge(daemon.proc.args), network=args.network)
                res = run_load(target, **kw)
                res.daemon_log_errors = count_log_errors(daemon.log, LOG_ERRORS)
                results.append(res)
            finally:
                if args.logs:
                    shutil.copy(daemon.log, args.logs / "dockyardd.log")
                stop_daemon(daemon)
        if "docker" in engines and shutil.which("dockerd") and shutil.which("docker"):
            dockerd = PrivateDockerd(base / "dockerd")
            dockerd.base.mkdir()
            try:
                if dockerd.start():
                    subprocess.run(["docker", "load", "-i", str(archive)], env=dockerd.env, check=True,
                                   capture_output=True)
                    assert dockerd.proc is not None
                    target = Target("docker", dockerd.sock, dockerd.proc.pid,
                                    (dockerd.base / "data", dockerd.exec_root))
                    res = run_load(target, **kw)
                    res.daemon_log_errors = count_log_errors(dockerd.base / "dockerd.log", LOG_ERRORS)
                    results.append(res)
                else:
                    print("dockerd did not start; Docker is left out", file=sys.stderr)
            finally:
                if args.logs and (dockerd.base / "dockerd.log").exists():
                    shutil.copy(dockerd.base / "dockerd.log", args.logs / "dockerd.log")
                dockerd.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    text = report(results, args, machine_info())
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(text)
    print(text)
    bad = any(r.tracker.failures or r.leaks for r in results)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
