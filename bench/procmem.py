"""What an engine's processes cost in memory: RSS and PSS from /proc/<pid>/smaps_rollup.

An engine's processes are found three ways, all of which a benchmark can set up without knowing the
engine's process model: processes that carry the engine's *marker* in their environment (the daemon
was started with it; its children — containerd, shims, dockyard's shim host — inherit it), the
descendants of its daemon's pid, and the parent of each container's init (Docker's
containerd-shim-runc-v2, Podman's conmon, dockyard's shim host). The containers' own processes are
left out: they are the ones in another pid namespace than ours.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")


@dataclass
class Usage:
    """Summed over a set of processes: RSS and PSS in kB, and the processes by name."""
    rss_kb: int = 0
    pss_kb: int = 0
    names: Counter[str] = field(default_factory=Counter)

    def minus(self, other: Usage) -> Usage:
        return Usage(self.rss_kb - other.rss_kb, self.pss_kb - other.pss_kb, self.names - other.names)

    def describe(self) -> str:
        return ", ".join(f"{n} × {c}" if c > 1 else n for n, c in sorted(self.names.items())) or "none"


@dataclass(frozen=True)
class _Proc:
    pid: int
    ppid: int
    name: str
    marked: bool
    pidns: str


def _read(pid: int, marker: bytes) -> _Proc | None:
    base = PROC / str(pid)
    try:
        stat = (base / "stat").read_text()
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        environ = (base / "environ").read_bytes()
        pidns = os.readlink(base / "ns" / "pid")
    except (OSError, ValueError):
        return None  # gone, or a kernel thread
    marked = bool(marker) and b"\0" + marker + b"\0" in b"\0" + environ + b"\0"
    return _Proc(pid, ppid, comm, marked, pidns)


def _snapshot(marker: bytes) -> dict[int, _Proc]:
    procs = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (p := _read(int(entry.name), marker)) is not None:
            procs[p.pid] = p
    return procs


def rss_pss_kb(pid: int) -> tuple[int, int]:
    rss = pss = 0
    try:
        for line in (PROC / str(pid) / "smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def engine_pids(marker: str, roots: Iterable[int] = (), container_pids: Iterable[int] = ()) -> set[int]:
    """The engine's processes (see the module's docstring), not the containers' own."""
    procs = _snapshot(f"DYBENCH_ENGINE={marker}".encode() if marker else b"")
    own_ns = os.readlink("/proc/self/ns/pid")
    children: dict[int, list[int]] = {}
    for p in procs.values():
        children.setdefault(p.ppid, []).append(p.pid)
    stack = [p.pid for p in procs.values() if p.marked]
    stack += [r for r in roots if r in procs]
    stack += [procs[c].ppid for c in container_pids if c in procs and procs[c].ppid > 1]
    found: set[int] = set()
    while stack:
        pid = stack.pop()
        if pid not in found:
            found.add(pid)
            stack += children.get(pid, [])
    me = os.getpid()
    return {pid for pid in found if pid in procs and procs[pid].pidns == own_ns and pid != me
            and pid != 1}


def usage(pids: Iterable[int]) -> Usage:
    total = Usage()
    for pid in pids:
        rss, pss = rss_pss_kb(pid)
        if rss == 0 and pss == 0:
            continue  # exited, or a zombie
        total.rss_kb += rss
        total.pss_kb += pss
        total.names[process_name(pid)] += 1
    return total


def process_name(pid: int) -> str:
    """The program's name; for a Python process, its script or ``-m`` module."""
    try:
        argv = (PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    names = [os.path.basename(a.decode(errors="replace")) for a in argv if a]
    if not names:
        return "?"
    if names[0].startswith("python") and len(names) > 1:
        return names[2] if names[1] == "-m" and len(names) > 2 else names[1]
    return names[0]


def marker_env(marker: str) -> dict[str, str]:
    """The environment entry that marks an engine's processes."""
    return {"DYBENCH_ENGINE": marker}
