"""json-file log: Docker's line format, splitting, rotation, and reading back (tail, since, follow)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

from dockyard.shim.jsonlog import (
    MAX_LINE,
    JSONLogWriter,
    follow_log,
    format_time,
    log_files,
    parse_time,
    read_log,
)


def test_time_format_matches_go_rfc3339nano() -> None:
    assert format_time(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"
    assert format_time(1_700_000_000_120_000_000) == "2023-11-14T22:13:20.12Z"
    assert format_time(1_700_000_000_000_000_001) == "2023-11-14T22:13:20.000000001Z"
    assert parse_time("2023-11-14T22:13:20.12Z") == 1_700_000_000.12
    assert parse_time("2023-11-14T23:13:20+01:00") == 1_700_000_000.0


def test_lines_are_docker_json(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    w = JSONLogWriter(path)
    w.write("stdout", b"hello\nwor", ns=1_700_000_000_000_000_000)
    w.write("stderr", b"oops\n", ns=1_700_000_000_500_000_000)
    w.write("stdout", b"ld\n\xff\n", ns=1_700_000_001_000_000_000)
    w.write("stdout", b"no newline")
    w.close()
    lines = path.read_bytes().splitlines()
    assert lines[0] == b'{"log":"hello\\n","stream":"stdout","time":"2023-11-14T22:13:20Z"}'
    assert json.loads(lines[1]) == {"log": "oops\n", "stream": "stderr", "time": "2023-11-14T22:13:20.5Z"}
    assert json.loads(lines[2])["log"] == "world\n"
    assert json.loads(lines[3])["log"] == "\ufffd\n"  # invalid UTF-8 replaced, as Go's encoder does
    assert json.loads(lines[4])["log"] == "no newline"  # flushed at close
    assert [e.data for e in read_log(path)] == [b"hello\n", b"oops\n", b"world\n", "\ufffd\n".encode(),
                                                b"no newline"]


def test_long_lines_split_at_16k(tmp_path: Path) -> None:
    path = tmp_path / "log"
    w = JSONLogWriter(path)
    w.write("stdout", b"x" * (MAX_LINE * 2 + 10) + b"\n")
    w.close()
    sizes = [len(e.data) for e in read_log(path)]
    assert sizes == [MAX_LINE, MAX_LINE, 11]


def test_rotation_keeps_max_files_each_bounded(tmp_path: Path) -> None:
    path = tmp_path / "log"
    w = JSONLogWriter(path, max_size=1000, max_file=3)
    for i in range(200):
        w.write("stdout", f"line {i}\n".encode())
    w.close()
    assert [p.name for p in log_files(path)] == ["log.2", "log.1", "log"]
    assert all(p.stat().st_size <= 1000 for p in log_files(path))
    got = [int(e.data.split()[1]) for e in read_log(path)]
    assert got == list(range(got[0], 200))
    assert [e.data for e in read_log(path, tail=2)] == [b"line 198\n", b"line 199\n"]
    # tail reaching back across files
    n = len(list(read_log(path)))
    assert len(list(read_log(path, tail=n - 1))) == n - 1
    assert len(list(read_log(path, tail=10_000))) == n
    assert list(read_log(path, tail=0)) == []


def test_max_file_one_truncates(tmp_path: Path) -> None:
    path = tmp_path / "log"
    w = JSONLogWriter(path, max_size=500, max_file=1)
    for i in range(100):
        w.write("stdout", f"line {i}\n".encode())
    w.close()
    assert [p.name for p in log_files(path)] == ["log"]
    assert path.stat().st_size <= 500
    assert list(read_log(path))[-1].data == b"line 99\n"


def test_since_until(tmp_path: Path) -> None:
    path = tmp_path / "log"
    w = JSONLogWriter(path)
    for i in range(5):
        w.write("stdout", f"{i}\n".encode(), ns=(1_000 + i) * 1_000_000_000)
    w.close()
    assert [e.data for e in read_log(path, since=1002)] == [b"2\n", b"3\n", b"4\n"]
    assert [e.data for e in read_log(path, since=1001, until=1002.5)] == [b"1\n", b"2\n"]


def test_follow_sync_across_rotation(tmp_path: Path) -> None:
    path = tmp_path / "log"
    w = JSONLogWriter(path, max_size=300, max_file=5)
    w.write("stdout", b"before\n")
    finished = threading.Event()

    def writer() -> None:
        for i in range(20):
            w.write("stdout", f"after {i}\n".encode())
            time.sleep(0.01)
        finished.set()

    t = threading.Thread(target=writer)
    got: list[bytes] = []
    gen = read_log(path, follow=True, stop=finished.is_set, poll_interval=0.005)
    got.append(next(gen).data)
    t.start()
    got += [e.data for e in gen]
    t.join()
    w.close()
    assert got == [b"before\n"] + [f"after {i}\n".encode() for i in range(20)]


def test_follow_async(tmp_path: Path) -> None:
    path = tmp_path / "log"
    w = JSONLogWriter(path)
    w.write("stdout", b"one\n")

    async def go() -> list[bytes]:
        stop = False
        out: list[bytes] = []

        async def produce() -> None:
            nonlocal stop
            for word in (b"two\n", b"three\n"):
                await asyncio.sleep(0.02)
                w.write("stderr", word)
            stop = True

        task = asyncio.create_task(produce())
        async for entry in follow_log(path, tail=1, stop=lambda: stop, poll_interval=0.005):
            out.append(entry.data)
        await task
        return out

    assert asyncio.run(go()) == [b"one\n", b"two\n", b"three\n"]
    w.close()


def test_missing_and_torn_lines(tmp_path: Path) -> None:
    path = tmp_path / "log"
    assert list(read_log(path)) == []
    path.write_bytes(b'{"log":"ok\\n","stream":"stdout","time":"2023-11-14T22:13:20Z"}\nnot json\n{"log":"par')
    assert [e.data for e in read_log(path)] == [b"ok\n"]


def test_encoding_matches_json_dumps(tmp_path: Path) -> None:
    path = tmp_path / "log"
    w = JSONLogWriter(path)
    text = 'q"uo\\te \t ctl\x01 üñí <&> \u2028 😀\n'
    w.write("stderr", text.encode(), ns=1_700_000_000_000_000_000)
    w.close()
    expected = json.dumps({"log": text, "stream": "stderr", "time": "2023-11-14T22:13:20Z"},
                          ensure_ascii=False, separators=(",", ":"))
    assert path.read_text() == expected + "\n"
    assert next(read_log(path)).data == text.encode()
