"""`system prune -a --volumes` gives the disk back: after images, builds, containers with logs,
anonymous volumes and networks come and go, the data root holds the same files as a fresh
engine's (the metadata database may keep freed pages, within a bound)."""

from __future__ import annotations

import os
from pathlib import Path

import docker
import pytest

from tests.conftest import LiveDaemon, start_daemon, stop_daemon, unique

pytestmark = pytest.mark.root

DB_SLACK = 512 * 1024   # SQLite keeps freed pages in the file (no VACUUM on the hot path)


def files(root: Path) -> dict[str, int]:
    """Regular files and sizes; not the events journal, which is bounded by design (4 × 4 MiB)
    and is history, not something a prune should erase."""
    out = {}
    for dirpath, _, names in os.walk(root):
        if Path(dirpath).relative_to(root).parts[:1] == ("events",):
            continue
        for name in names:
            p = Path(dirpath) / name
            if p.is_file() and not p.is_symlink():
                out[str(p.relative_to(root))] = p.stat().st_size
    return out


def assert_df_accounts_for(d: LiveDaemon, on_disk: dict[str, int]) -> None:
    """`system df` names every byte the engine keeps: layers (unpacked and stored blobs),
    containers (writable layer and logs) and volumes add up to the data root's files, less the
    engine's own bookkeeping (metadata databases, the events journal, the lock)."""
    client = docker.DockerClient(base_url=d.host)
    try:
        du = client.df()
    finally:
        client.close()
    accounted = (du["LayersSize"] + sum(c["SizeRw"] for c in du["Containers"])
                 + sum(v["UsageData"]["Size"] for v in du["Volumes"]))
    data = sum(s for p, s in on_disk.items() if not Path(p).name.startswith(("metadata.db", "dockyardd.lock")))
    logs = sum(s for p, s in on_disk.items() if "-json.log" in p)
    assert logs > 100_000
    # directories count in the walk of a snapshot (4 KiB each), not in the file sum
    assert data <= accounted <= data * 1.05 + 1_000_000, (data, accounted)


def test_system_prune_returns_to_the_empty_engine(tmp_path: Path) -> None:
    d = start_daemon(tmp_path)
    try:
        baseline = files(d.data_root)
        d.cli("bootstrap", "busybox", timeout=120)
        ctx = tmp_path / "ctx"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text("FROM busybox\nRUN dd if=/dev/zero of=/big bs=1M count=4\n"
                                        "VOLUME /data\n")
        image = unique("prune-img")
        d.docker("build", "-q", "-t", image, str(ctx), timeout=120)
        name = unique("prune-logs")
        d.docker("run", "--name", name, image, "sh", "-c",
                 "for i in $(seq 3000); do echo log line $i; done; echo x > /data/f")
        d.docker("network", "create", unique("prune-net"))
        during = files(d.data_root)
        assert any(p.endswith("-json.log") for p in during)
        assert sum(during.values()) > sum(baseline.values()) + 4_000_000
        assert_df_accounts_for(d, during)
        d.docker("rm", name)                  # its anonymous volume stays until pruned
        d.docker("system", "prune", "-a", "--volumes", "-f", timeout=120)
        after = files(d.data_root)
        # the engine's and the snapshotter's SQLite files: their logs are folded in and truncated
        def is_db(p: str) -> bool:
            return Path(p).name.startswith("metadata.db")
        assert {p for p in after if not is_db(p)} == {p for p in baseline if not is_db(p)}, \
            sorted(set(after) ^ set(baseline))
        assert {p: s for p, s in after.items() if not is_db(p)} == \
            {p: s for p, s in baseline.items() if not is_db(p)}
        assert all(s == 0 for p, s in after.items() if p.endswith("-wal"))
        assert sum(s for p, s in after.items() if is_db(p)) <= \
            sum(s for p, s in baseline.items() if is_db(p)) + DB_SLACK
        df = d.docker("system", "df", "--format", "{{.TotalCount}} {{.Size}}").stdout.decode()
        assert df.split() == ["0", "0B"] * 4, df
    finally:
        stop_daemon(d)
