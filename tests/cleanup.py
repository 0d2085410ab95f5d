"""Clean-up helpers every live test uses: kill what a run started, unmount what it mounted."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
from pathlib import Path


def kill_processes_naming(path: Path) -> None:
    """SIGKILL every process whose command line names ``path`` or whose working directory is
    under it (the daemon's shim host lives in ``<exec-root>/shims``, an exec'd shim in its state
    dir)."""
    needle = str(path).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            cwd = ""
        try:
            if needle in (entry / "cmdline").read_bytes() or cwd.startswith(str(path) + "/"):
                os.kill(int(entry.name), signal.SIGKILL)
        except OSError:
            pass


def unmount_under(root: Path) -> None:
    """Lazily unmount everything mounted at or below ``root``, deepest first."""
    prefix = str(root)
    with open("/proc/self/mountinfo") as f:
        targets = [line.split()[4] for line in f]
    inside = (t for t in targets if t == prefix or t.startswith(prefix + "/"))
    for target in sorted(inside, key=len, reverse=True):
        subprocess.run(["umount", "-l", target], check=False, capture_output=True)


def stop_process(proc: subprocess.Popen[bytes], grace: float = 10) -> None:
    """SIGTERM ``proc`` if it still runs, SIGKILL after ``grace`` seconds; reaped either way."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def stop_and_clean(proc: subprocess.Popen[bytes], exec_root: Path, data_root: Path) -> None:
    """SIGTERM a daemon (SIGKILL after 30 s), then kill what it left running under ``exec_root``,
    unmount both roots and remove the exec root."""
    stop_process(proc, 30)
    kill_processes_naming(exec_root)
    unmount_under(data_root)
    unmount_under(exec_root)
    shutil.rmtree(exec_root, ignore_errors=True)


def remove_network_leftovers(args: list[str], data_root: Path) -> None:
    """What a daemon killed with containers running leaves by design (live restore keeps them
    wired): its bridges and its nftables table. Tests remove them so runs leave nothing behind."""
    import json
    import sqlite3
    flags = {a: b for a, b in itertools.pairwise(args) if a.startswith("--")}
    bridges = [flags["--bridge"]] if "--bridge" in flags else []
    db = data_root / "metadata.db"
    if db.exists():
        try:
            with sqlite3.connect(db) as conn:
                rows = conn.execute("SELECT record FROM networks").fetchall()
            bridges += [json.loads(r[0]).get("bridge", "") for r in rows]
        except sqlite3.Error:
            pass
    for bridge in filter(None, bridges):
        subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)
    if "--firewall-table" in flags:
        subprocess.run(["nft", "delete", "table", "inet", flags["--firewall-table"]], capture_output=True,
                       check=False)
