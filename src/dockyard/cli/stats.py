"""``dockyard stats [OPTIONS] [CONTAINER...]``: docker-cli's resource usage table.

One thread per container reads its ``GET /containers/{id}/stats`` stream and keeps the latest
row; the main thread renders the rows (twice a second, redrawn in place on a terminal; once per
new sample as plain tables otherwise). Without container arguments the set follows container
events as docker-cli does: ``start`` (and ``create`` with ``--all``) adds, ``destroy`` (and
``die`` without ``--all``) removes. The CPU and memory figures use docker-cli's formulas.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from dockyard import errors
from dockyard.cli import formatting as fmt

DEFAULT_FORMAT = ("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t"
                  "{{.BlockIO}}\t{{.PIDs}}")
HEADERS = {"Container": "CONTAINER", "Name": "NAME", "ID": "CONTAINER ID", "CPUPerc": "CPU %",
           "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
           "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}
STALE_AFTER = 2.0   # docker-cli zeroes a row ("--") that got no sample for this long
REFRESH = 0.5       # docker-cli's redraw ticker
PIPE_REFRESH = 1.0  # not a terminal: at most one table per daemon sampling interval


def add_stats_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="Show all containers (default shows just running)")
    p.add_argument("--no-stream", action="store_true", help="Disable streaming stats and only pull the first result")
    p.add_argument("--no-trunc", action="store_true", help="Do not truncate output")
    p.add_argument("--format", default="")
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    p.set_defaults(fn=cmd_stats)


# ---------------------------------------------------------------- docker-cli's formulas


def cpu_percent(pre: dict[str, Any], cur: dict[str, Any]) -> float:
    """CPU % over the interval between precpu_stats and cpu_stats, scaled to the online CPUs."""
    cpu_delta = float((cur.get("cpu_usage") or {}).get("total_usage", 0)) - \
        float((pre.get("cpu_usage") or {}).get("total_usage", 0))
    system_delta = float(cur.get("system_cpu_usage", 0)) - float(pre.get("system_cpu_usage", 0))
    online = float(cur.get("online_cpus", 0)) or float(len((cur.get("cpu_usage") or {}).get("percpu_usage") or []))
    if system_delta > 0.0 and cpu_delta > 0.0:
        return cpu_delta / system_delta * online * 100.0
    return 0.0


def mem_usage_no_cache(mem: dict[str, Any]) -> float:
    """Usage minus the inactive page cache: total_inactive_file (cgroup v1) or inactive_file (v2)."""
    usage = int(mem.get("usage", 0))
    stats = mem.get("stats") or {}
    v1 = stats.get("total_inactive_file")
    if v1 is not None and int(v1) < usage:
        return float(usage - int(v1))
    v2 = int(stats.get("inactive_file", 0))
    if v2 < usage:
        return float(usage - v2)
    return float(usage)


def mem_percent(limit: float, used: float) -> float:
    return used / limit * 100.0 if limit != 0 else 0.0


def block_io(blkio: dict[str, Any]) -> tuple[int, int]:
    """Bytes read and written: io_service_bytes_recursive entries whose op starts with r or w."""
    read = write = 0
    for entry in (blkio or {}).get("io_service_bytes_recursive") or []:
        op = str(entry.get("op", ""))[:1].lower()
        if op == "r":
            read += int(entry.get("value", 0))
        elif op == "w":
            write += int(entry.get("value", 0))
    return read, write


def network_io(networks: dict[str, Any] | None) -> tuple[float, float]:
    rx = tx = 0.0
    for counters in (networks or {}).values():
        rx += float(counters.get("rx_bytes", 0))
        tx += float(counters.get("tx_bytes", 0))
    return rx, tx


# ---------------------------------------------------------------- rows


@dataclass(frozen=True)
class Entry:
    """docker-cli's StatsEntry: what one row shows."""
    container: str
    name: str = ""
    id: str = ""
    cpu: float = 0.0
    memory: float = 0.0
    memory_limit: float = 0.0
    memory_percent: float = 0.0
    net_rx: float = 0.0
    net_tx: float = 0.0
    block_read: float = 0.0
    block_write: float = 0.0
    pids: int = 0
    invalid: bool = False


def entry_from(container: str, v: dict[str, Any]) -> Entry:
    mem_stats = v.get("memory_stats") or {}
    memory = mem_usage_no_cache(mem_stats)
    limit = float(mem_stats.get("limit", 0))
    rx, tx = network_io(v.get("networks"))
    blk_r, blk_w = block_io(v.get("blkio_stats") or {})
    return Entry(container=container, name=str(v.get("name", "")), id=str(v.get("id", "")),
                 cpu=cpu_percent(v.get("precpu_stats") or {}, v.get("cpu_stats") or {}),
                 memory=memory, memory_limit=limit, memory_percent=mem_percent(limit, memory),
                 net_rx=rx, net_tx=tx, block_read=float(blk_r), block_write=float(blk_w),
                 pids=int((v.get("pids_stats") or {}).get("current", 0)))


def invalidated(e: Entry) -> Entry:
    """docker-cli's SetErrorAndReset: numbers zeroed, the row shown as "--"."""
    return Entry(container=e.container, name=e.name, id=e.id, invalid=True)


def _pct(value: float) -> str:
    return f"{value:.2f}%"


class StatsRow:
    """docker-cli's statsContext: the fields ``--format`` can use."""

    def __init__(self, e: Entry, trunc: bool) -> None:
        self.e = e
        self.trunc = trunc

    @property
    def Container(self) -> str:
        return self.e.container

    @property
    def Name(self) -> str:
        return self.e.name[1:] if len(self.e.name) > 1 else "--"

    @property
    def ID(self) -> str:
        return self.e.id[:12] if self.trunc else self.e.id

    @property
    def CPUPerc(self) -> str:
        return "--" if self.e.invalid else _pct(self.e.cpu)

    @property
    def MemUsage(self) -> str:
        if self.e.invalid:
            return "-- / --"
        return f"{fmt.bytes_size(self.e.memory)} / {fmt.bytes_size(self.e.memory_limit)}"

    @property
    def MemPerc(self) -> str:
        return "--" if self.e.invalid else _pct(self.e.memory_percent)

    @property
    def NetIO(self) -> str:
        return "--" if self.e.invalid else f"{fmt.human_size(self.e.net_rx)} / {fmt.human_size(self.e.net_tx)}"

    @property
    def BlockIO(self) -> str:
        if self.e.invalid:
            return "--"
        return f"{fmt.human_size(self.e.block_read)} / {fmt.human_size(self.e.block_write)}"

    @property
    def PIDs(self) -> str:
        return "--" if self.e.invalid else str(self.e.pids)

    def to_json(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in sorted(HEADERS)}


def render(entries: list[Entry], template: str, trunc: bool) -> str:
    return fmt.render_list(template, [StatsRow(e, trunc) for e in entries], HEADERS)


# ---------------------------------------------------------------- collection


class Collector(threading.Thread):
    """Reads one container's stats stream; ``entry`` is its latest row, ``error`` why it ended."""

    def __init__(self, client: Any, container: str, stream: bool) -> None:
        super().__init__(daemon=True)
        self.client, self.container, self.stream = client, container, stream
        self.entry = Entry(container)
        self.error: errors.DockyardError | None = None
        self.first = threading.Event()     # set by the first sample or the error
        self.updated = 0.0                 # monotonic time of the latest sample
        self.seq = 0                       # samples received so far
        self.stopped = False

    def run(self) -> None:
        try:
            for sample in self.client.stats(self.container, stream=self.stream).iter_json():
                if self.stopped:
                    return
                self.entry, self.updated = entry_from(self.container, sample), time.monotonic()
                self.seq += 1
                self.first.set()
                if not self.stream:
                    return
        except errors.DockyardError as exc:
            self.error = exc
            self.entry = invalidated(self.entry)
        finally:
            self.first.set()

    def current(self) -> Entry:
        if self.stream and self.error is None and self.updated and \
                time.monotonic() - self.updated > STALE_AFTER:
            return invalidated(self.entry)
        return self.entry


class Board:
    """The collectors in display order; changed by the event thread, read by the renderer."""

    def __init__(self, client: Any, stream: bool) -> None:
        self.client, self.stream = client, stream
        self.lock = threading.Lock()
        self.collectors: list[Collector] = []

    def add(self, container: str) -> Collector | None:
        with self.lock:
            if any(c.container == container for c in self.collectors):
                return None
            col = Collector(self.client, container, self.stream)
            self.collectors.append(col)
        col.start()
        return col

    def remove(self, container: str) -> None:
        with self.lock:
            for col in [c for c in self.collectors if c.container == container]:
                col.stopped = True
                self.collectors.remove(col)

    def snapshot(self) -> list[Collector]:
        with self.lock:
            return list(self.collectors)


def _follow_events(client: Any, board: Board, show_all: bool, subscribed: threading.Event) -> None:
    adds = {"start", "create"} if show_all else {"start"}
    drops = {"destroy"} if show_all else {"destroy", "die"}
    try:
        resp = client.events(None, None, {"type": ["container"]})
        subscribed.set()
        for ev in resp.iter_json():
            action, actor = ev.get("Action") or ev.get("status", ""), (ev.get("Actor") or {}).get("ID", "")
            if not actor:
                continue
            if action in adds:
                board.add(actor)
            elif action in drops:
                board.remove(actor)
    except errors.DockyardError:
        pass  # the table keeps what it has; the daemon going away ends the stats streams too
    finally:
        subscribed.set()


def _template(fmt_flag: str) -> str:
    return DEFAULT_FORMAT if fmt_flag in ("", "table") else fmt_flag


def cmd_stats(c: Any, a: argparse.Namespace) -> int:
    stream = not a.no_stream
    board = Board(c, stream)
    show_all = not a.containers
    if show_all:
        if stream:  # subscribe before listing so that no container started in between is missed
            subscribed = threading.Event()
            threading.Thread(target=_follow_events, args=(c, board, a.all, subscribed), daemon=True).start()
            subscribed.wait(5)
        for ctr in c.list_containers(all=a.all):
            board.add(str(ctr.get("Id", "")))
    else:
        for ref in a.containers:
            board.add(ref)
    for col in board.snapshot():
        col.first.wait(None if not stream else STALE_AFTER)
    if not show_all:
        failed = [col.error for col in board.snapshot() if col.error is not None]
        for err in failed[:-1]:
            sys.stderr.write(f"Error response from daemon: {err}\n")
        if failed:
            raise failed[-1]
    template, trunc = _template(a.format), not a.no_trunc
    if not stream:
        sys.stdout.write(render([col.current() for col in board.snapshot()], template, trunc))
        return 0
    return _live(board, template, trunc, show_all)


def _live(board: Board, template: str, trunc: bool, show_all: bool) -> int:
    """Redraw until interrupted; with named containers, until all their streams have ended."""
    tty = sys.stdout.isatty()
    last_seen = -1
    while True:
        cols = board.snapshot()
        if not cols and not show_all:
            if tty:
                sys.stdout.write("\033[H\033[J")
            return 0
        text = render([col.current() for col in cols], template, trunc)
        if tty:  # in place: home, each line then erase-to-end-of-line, erase what is below
            sys.stdout.write("\033[H" + "".join(line + "\033[K\n" for line in text.split("\n")) + "\033[J")
        elif sum(col.seq for col in cols) != last_seen:  # a pipe: a plain table per new round of samples
            last_seen = sum(col.seq for col in cols)
            sys.stdout.write(text)
        sys.stdout.flush()
        if not show_all and not any(col.is_alive() for col in cols):
            return 0
        time.sleep(REFRESH if tty else PIPE_REFRESH)
