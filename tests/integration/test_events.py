"""``GET /events`` through a live daemon: replay from the on-disk journal across a restart (docker CLI
and raw API time forms), the docker SDK, and a subscriber that never reads being dropped without
blocking the daemon or growing its memory."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.conftest import LiveDaemon, restart_daemon, start_daemon, stop_daemon, unique
from tests.unixhttp import UnixHTTPConnection as _UnixHTTP

pytestmark = pytest.mark.root


def api_events(d: LiveDaemon, accept: str = "", **query: str) -> tuple[int, list[dict[str, Any]], str]:
    conn = _UnixHTTP(d.sock)
    try:
        conn.request("GET", "/v1.44/events?" + urllib.parse.urlencode(query),
                     headers={"Accept": accept} if accept else {})
        resp = conn.getresponse()
        body = resp.read().decode()
        if resp.status != 200:
            return resp.status, [], body
        return resp.status, [json.loads(line) for line in body.splitlines() if line.strip()], \
            resp.getheader("Content-Type", "")
    finally:
        conn.close()


def cli_events(d: LiveDaemon, *args: str) -> list[dict[str, Any]]:
    out = d.docker("events", *args, "--format", "{{json .}}").stdout.decode()
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_events_replay_across_a_restart(tmp_path: Path) -> None:
    d = start_daemon(tmp_path)
    try:
        d.cli("bootstrap", "busybox", timeout=120)
        d = _replay_across_a_restart(d)
    finally:
        stop_daemon(d)


def _replay_across_a_restart(d: LiveDaemon) -> LiveDaemon:
    name, vol = unique("evc"), unique("evv")
    since = f"{time.time() - 1:.9f}"
    d.docker("run", "--rm", "--name", name, "--label", "evtest=1", "busybox", "true")
    d.docker("volume", "create", vol)
    d = restart_daemon(d, kill=True)    # SIGKILL: what the journal had buffered must be on disk
    d.docker("volume", "rm", vol)
    until = f"{time.time() + 1:.9f}"

    events = cli_events(d, "--since", since, "--until", until)
    mine = [(e["Type"], e["Action"]) for e in events
            if e["Actor"]["Attributes"].get("name") in (name, vol) or e["Actor"]["ID"] == vol]
    for want in [("container", "create"), ("container", "start"), ("container", "die"),
                 ("container", "destroy"), ("volume", "create"), ("volume", "destroy")]:
        assert want in mine, (want, mine)
    assert mine.index(("container", "create")) < mine.index(("volume", "create")) \
        < mine.index(("volume", "destroy"))
    times = [e["timeNano"] for e in events]
    assert times == sorted(times)
    ctr = next(e for e in events if e["Type"] == "container" and e["Action"] == "create"
               and e["Actor"]["Attributes"].get("name") == name)
    assert ctr["status"] == "create" and ctr["id"] == ctr["Actor"]["ID"] and ctr["from"] == "busybox"
    assert ctr["time"] == ctr["timeNano"] // 10**9 and ctr["scope"] == "local"

    # the CLI's own time forms (it sends unix seconds), and filters on the replay
    vols = cli_events(d, "--since", "10m", "--until", "0s", "--filter", f"volume={vol}")
    assert [e["Action"] for e in vols] == ["create", "destroy"]
    assert {e["Type"] for e in cli_events(d, "--since", since, "--until", until,
                                           "--filter", "label=evtest=1")} == {"container"}

    # the raw API also takes RFC 3339 and durations; ``until`` in the past returns after the replay
    rfc = datetime.fromtimestamp(float(since), UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    status, got, ctype = api_events(d, since=rfc, until=until,
                                    filters=json.dumps({"container": [name]}))
    assert status == 200 and ctype == "application/json"
    actions = [e["Action"] for e in got]
    assert actions[0] == "create" and "start" in actions and actions[-1] == "destroy"
    status, got, ctype = api_events(d, accept="application/x-ndjson", since="15m", until="1s",
                                    filters=json.dumps({"volume": [vol]}))
    assert [e["Action"] for e in got] == ["create", "destroy"] and ctype == "application/x-ndjson"
    status, _, body = api_events(d, since=until, until=since)
    assert status == 400 and "cannot be after" in body
    status, _, body = api_events(d, since="yesterday")
    assert status == 400 and "since" in body

    segments = list((d.data_root / "events").glob("events-*.jsonl"))
    assert segments and all(p.stat().st_size <= (4 << 20) + 4096 for p in segments)
    return d


def test_sdk_events(daemon: LiveDaemon) -> None:
    client = docker.DockerClient(base_url=daemon.host, version="1.44")
    label = unique("sdk")
    start = datetime.now(UTC)
    try:
        ctr = client.containers.create("busybox", ["true"], labels={"sdktest": label})
        ctr.remove()
        until = int(time.time()) + 1
        got = list(client.events(since=start, until=until, decode=True,
                                 filters={"label": f"sdktest={label}"}))
        assert [e["Action"] for e in got] == ["create", "destroy"]
        assert all(e["id"] == ctr.id and e["Actor"]["ID"] == ctr.id for e in got)

        # a stream without ``until`` follows live events (``since`` closes the race with its start)
        stream = client.events(since=int(time.time()) - 1, decode=True, filters={"type": "volume"})
        seen: list[dict[str, Any]] = []
        vol = unique("sdkv")

        def read() -> None:
            for ev in stream:
                seen.append(ev)
                if ev["Actor"]["ID"] == vol:
                    return
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        client.volumes.create(vol).remove()
        reader.join(60)
        stream.close()
        assert seen and seen[-1]["Actor"]["ID"] == vol and seen[-1]["Action"] == "create"
    finally:
        client.close()


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_slow_consumer_is_dropped_and_blocks_nothing(daemon: LiveDaemon) -> None:
    api = docker.APIClient(base_url=daemon.host, version="1.44")
    repo = unique("slow")
    drop_line = "dropping a subscriber"
    drops_before = daemon.log.read_text(errors="replace").count(drop_line)
    sentinel = unique("sentinel")
    fast_seen: list[str] = []
    fast_api = docker.APIClient(base_url=daemon.host, version="1.44")
    fast = fast_api.events(since=int(time.time()) - 1, decode=True, filters={"type": ["volume"]})

    def read_fast() -> None:   # a consumer that keeps up sees everything, slow one or not
        for ev in fast:
            fast_seen.append(ev["Actor"]["ID"])
            if ev["Actor"]["ID"] == sentinel:
                return
    fast_reader = threading.Thread(target=read_fast, daemon=True)
    fast_reader.start()

    slow = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(str(daemon.sock))
    slow.sendall(b"GET /v1.44/events HTTP/1.1\r\nHost: docker\r\n\r\n")
    slow.settimeout(60)
    head = b""
    while b"\r\n\r\n" not in head:
        head += slow.recv(1)
    assert head.startswith(b"HTTP/1.1 200")
    rss_before = _rss_kib(daemon.proc.pid)

    def churn(i: int) -> None:
        api.tag("busybox", repo, f"t{i}")
        api.remove_image(f"{repo}:t{i}")

    try:
        with ThreadPoolExecutor(4) as pool:
            done = 0
            # the slow stream stops being read: its socket fills, then its backlog; keep making
            # events (2 per churn) until the daemon drops it, with a cap far above what it takes
            while daemon.log.read_text(errors="replace").count(drop_line) == drops_before:
                assert done < 20000, "the slow subscriber was never dropped"
                list(pool.map(churn, range(done, done + 250)))
                done += 250
                # API calls and containers keep working while the slow subscriber is stuck
                daemon.docker("run", "--rm", "busybox", "true")
        rss_after = _rss_kib(daemon.proc.pid)
        print(f"slow subscriber dropped after {2 * done} events; RSS {rss_before} -> {rss_after} KiB")
        assert rss_after - rss_before < 100 * 1024, (rss_before, rss_after)

        # the dropped stream ends: reading what was buffered reaches EOF
        total = 0
        while True:
            try:
                chunk = slow.recv(1 << 16)
            except ConnectionResetError:
                break
            if not chunk:
                break
            total += len(chunk)
        assert total > 0

        api.create_volume(sentinel)
        api.remove_volume(sentinel)
        fast_reader.join(60)
        assert sentinel in fast_seen
    finally:
        slow.close()
        fast.close()
        fast_api.close()
        for img in api.images(name=repo):   # any tag a failed run left behind
            for tag in img.get("RepoTags") or []:
                if tag.startswith(repo + ":"):
                    api.remove_image(tag)
        api.close()
