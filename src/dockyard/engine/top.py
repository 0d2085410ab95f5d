"""``top``: the container's pids from the runtime, described by the host's ``ps``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from dockyard.errors import Internal, InvalidArgument


async def _run(*argv: str) -> bytes:
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise Internal(f"{argv[0]} failed: {err.decode(errors='replace').strip()}")
    return out


async def top(runtime: str, runtime_root: Path, cid: str, ps_args: str) -> tuple[list[str], list[list[str]]]:
    pids = {int(p) for p in json.loads(await _run(runtime, "--root", str(runtime_root), "ps",
                                                  "--format", "json", cid) or b"[]")}
    args = ps_args.split() if ps_args else ["-ef"]
    try:
        out = (await _run("ps", *args)).decode(errors="replace")
    except Internal as exc:
        raise InvalidArgument(f"Error running ps: {exc}") from exc
    return parse_ps(out, pids)


def parse_ps(output: str, pids: set[int]) -> tuple[list[str], list[list[str]]]:
    lines = [ln for ln in output.splitlines() if ln.strip()]
    if not lines:
        return [], []
    titles = lines[0].split()
    if "PID" not in titles:
        raise InvalidArgument("Couldn't find PID field in ps output")
    pid_index = titles.index("PID")
    rows = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        try:
            pid = int(fields[pid_index])
        except (ValueError, IndexError):
            continue
        if pid in pids:
            rows.append(fields)
    return titles, rows
