"""The HTTP layer over a small fake engine (the engine is not under test here): version routing,
status mapping, Docker headers, image-name routes, wait/logs streaming, and attach hijacking with
half-close and detach keys over a real loopback connection."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from dockyard.api.app import build_app
from dockyard.api.streams import frame, unframe
from dockyard.engine.types import (
    ContainerConfig,
    ContainerRecord,
    CreateOptions,
    HostConfig,
    LogEntry,
    LogsOptions,
)
from dockyard.errors import Conflict, NotFound, NotModified


class FakeSession:
    def __init__(self, tty: bool = False) -> None:
        self.tty = tty
        self.out: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        self.stdin = b""
        self.stdin_closed = False
        self.closed = False

    async def read(self) -> tuple[int, bytes] | None:
        return await self.out.get()

    async def write(self, data: bytes) -> None:
        self.stdin += data
        # echo stdin back on stdout, like `cat`
        self.out.put_nowait((1, data))

    async def close_stdin(self) -> None:
        self.stdin_closed = True
        self.out.put_nowait((2, b"eof"))
        self.out.put_nowait(None)

    async def close(self) -> None:
        self.closed = True


class FakeEngine:
    def __init__(self) -> None:
        self.created: list[CreateOptions] = []
        self.exit = asyncio.Event()
        self.sessions: list[FakeSession] = []
        self.tagged: list[tuple[str, str, str]] = []
        self.log_cancelled = False

    def version(self) -> dict[str, Any]:
        return {"version": "0.0.1"}

    def get_container(self, ref: str) -> ContainerRecord:
        if ref != "c1":
            raise NotFound(f"No such container: {ref}")
        return ContainerRecord(id="c1", name="one", created="2024-01-01T00:00:00Z", image_id="sha256:x",
                               image_ref="busybox", config=ContainerConfig(image="busybox"), host_config=HostConfig())

    def readable_logs(self, ref: str) -> ContainerRecord:
        return self.get_container(ref)

    async def create_container(self, opts: CreateOptions) -> tuple[str, list[str]]:
        self.created.append(opts)
        return "c1", []

    async def start_container(self, ref: str) -> None:
        self.get_container(ref)
        raise NotModified("container already started")

    async def kill_container(self, ref: str, signal: str = "KILL") -> None:
        raise Conflict(f"Container {ref} is not running")

    async def wait_container(self, ref: str, condition: str = "not-running") -> tuple[int, str]:
        await self.exit.wait()
        return 3, ""

    async def logs(self, ref: str, opts: LogsOptions) -> AsyncIterator[LogEntry]:
        yield LogEntry("stdout", b"out\n", "2024-01-01T00:00:00.000000001Z")
        yield LogEntry("stderr", b"err\n", "2024-01-01T00:00:00.000000002Z")
        if opts.follow:
            try:
                await asyncio.Event().wait()
            finally:
                self.log_cancelled = True

    async def attach(self, ref: str, stdin: bool, stdout: bool, stderr: bool, logs: bool = False,
                     stream: bool = True) -> FakeSession:
        session = FakeSession()
        self.sessions.append(session)
        return session

    async def inspect_image(self, name: str) -> Any:
        raise NotFound(f"No such image: {name}")

    async def pull_image(self, ref: str, platform: str, creds: Any, emit: Any, all_tags: bool = False) -> str:
        if ref != "busybox:latest":
            emit({"status": f"Pulling from {ref}"})
        raise NotFound(f"manifest for {ref} not found: manifest unknown")

    async def tag_image(self, source: str, repo: str, tag: str = "") -> None:
        self.tagged.append((source, repo, tag))


def run(engine: FakeEngine, tmp_path: Path,
        body: Callable[[TestClient[Any, Any]], Awaitable[None]]) -> None:
    async def main() -> None:
        server = TestServer(build_app(engine, tmp_path), handler_cancellation=True)
        async with TestClient(server) as client:
            await body(client)
    asyncio.run(main())


def test_version_routing_and_headers(tmp_path: Path) -> None:
    async def body(c: TestClient[Any, Any]) -> None:
        for path in ("/_ping", "/v1.45/_ping", "/v1.24/_ping"):
            r = await c.get(path)
            assert r.status == 200 and await r.text() == "OK"
            assert r.headers["Api-Version"] == "1.45" and r.headers["Ostype"] == "linux"
            assert r.headers["Docker-Experimental"] == "false" and r.headers["Server"].startswith("Docker/")
            assert r.headers["Cache-Control"] == "no-cache, no-store, must-revalidate"
        r = await c.head("/_ping")
        assert r.status == 200 and r.headers["Api-Version"] == "1.45"
        r = await c.get("/v1.99/version")
        assert r.status == 400
        assert (await r.json())["message"] == "client version 1.99 is too new. Maximum supported API version is 1.45"
        r = await c.get("/v1.12/version")
        assert r.status == 400 and (await r.json())["message"] == (
            "client version 1.12 is too old. Minimum supported API version is 1.24, "
            "please upgrade your client to a newer version")
        r = await c.get("/v1.41/version")
        assert r.status == 200 and (await r.json())["Version"] == "0.0.1"
        r = await c.get("/v1.45/no/such/route")
        assert r.status == 404 and (await r.json()) == {"message": "page not found"}
    run(FakeEngine(), tmp_path, body)


def test_statuses_come_from_error_categories(tmp_path: Path) -> None:
    engine = FakeEngine()

    async def body(c: TestClient[Any, Any]) -> None:
        r = await c.get("/containers/nope/json")
        assert r.status == 404 and r.content_type == "application/json"
        assert await r.json() == {"message": "No such container: nope"}
        assert (await c.post("/containers/c1/start")).status == 304
        r = await c.post("/v1.45/containers/c1/kill")
        assert r.status == 409 and (await r.json())["message"] == "Container c1 is not running"
        r = await c.post("/containers/create", data=b'{"Image": "busybox",', headers={"Content-Type": "application/json"})
        assert r.status == 400 and (await r.json())["message"].startswith("invalid JSON in container create body")
        r = await c.post("/containers/create", json={"Image": "busybox", "HostConfig": {"Memory": "1g"}})
        assert r.status == 400
        assert (await r.json())["message"] == "invalid HostConfig.Memory: expected an integer, got a string"
        r = await c.post("/containers/create?name=bad/name", json={"Image": "busybox"})
        assert r.status == 400
        r = await c.post("/containers/create?name=web", json={"Image": "busybox", "Cmd": ["true"]})
        assert r.status == 201 and await r.json() == {"Id": "c1", "Warnings": []}
        assert engine.created[0].name == "web" and engine.created[0].config.cmd == ["true"]
    run(engine, tmp_path, body)


def test_image_names_with_slashes_and_colons(tmp_path: Path) -> None:
    engine = FakeEngine()

    async def body(c: TestClient[Any, Any]) -> None:
        r = await c.get("/v1.45/images/localhost:5000/team/app:1.0/json")
        assert r.status == 404 and (await r.json())["message"] == "No such image: localhost:5000/team/app:1.0"
        r = await c.post("/images/reg.io/a/b:latest/tag?repo=reg.io/c&tag=v2")
        assert r.status == 201
        assert engine.tagged == [("reg.io/a/b:latest", "reg.io/c", "v2")]
        r = await c.post("/images/create?fromImage=busybox&tag=latest")  # fails before any progress
        assert r.status == 404 and (await r.json())["message"] == (
            "manifest for busybox:latest not found: manifest unknown")
        r = await c.post("/images/create?fromImage=other&tag=1")  # fails mid-stream: errorDetail
        lines = [json.loads(x) for x in (await r.text()).splitlines()]
        assert r.status == 200 and lines[0] == {"status": "Pulling from other:1"}
        assert lines[-1]["error"] == "manifest for other:1 not found: manifest unknown"
    run(engine, tmp_path, body)


def test_wait_sends_headers_before_the_exit(tmp_path: Path) -> None:
    engine = FakeEngine()

    async def body(c: TestClient[Any, Any]) -> None:
        r = await c.post("/containers/c1/wait")
        assert r.status == 200  # headers arrived while the container still runs
        assert not engine.exit.is_set()
        engine.exit.set()
        assert json.loads(await r.read()) == {"StatusCode": 3, "Error": None}
        assert (await c.post("/containers/c1/wait?condition=bogus")).status == 400
        assert (await c.post("/containers/zz/wait")).status == 404
    run(engine, tmp_path, body)


def test_logs_are_multiplexed_and_follow_is_cancelled_on_disconnect(tmp_path: Path) -> None:
    engine = FakeEngine()

    async def body(c: TestClient[Any, Any]) -> None:
        r = await c.get("/containers/c1/logs?stdout=1&stderr=1&timestamps=1")
        assert r.headers["Content-Type"] == "application/vnd.docker.multiplexed-stream"
        frames, rest = unframe(await r.read())
        assert frames == [(1, b"2024-01-01T00:00:00.000000001Z out\n"), (2, b"2024-01-01T00:00:00.000000002Z err\n")]
        assert rest == b""
        r = await c.get("/containers/c1/logs")
        assert r.status == 400
        r = await c.get("/containers/c1/logs?stdout=1&follow=1")
        assert await r.content.readexactly(len(frame(1, b"out\n"))) == frame(1, b"out\n")
        r.close()
        for _ in range(100):
            if engine.log_cancelled:
                break
            await asyncio.sleep(0.02)
        assert engine.log_cancelled
    run(engine, tmp_path, body)


async def _raw_attach(c: TestClient[Any, Any], query: str, upgrade: bool) -> tuple[asyncio.StreamReader,
                                                                                   asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_connection(c.host, c.port)
    head = f"POST /v1.45/containers/c1/attach?{query} HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\n"
    if upgrade:
        head += "Connection: Upgrade\r\nUpgrade: tcp\r\n"
    writer.write((head + "\r\n").encode())
    await writer.drain()
    headers = await reader.readuntil(b"\r\n\r\n")
    return reader, writer, headers


def test_attach_upgrade_stdin_half_close(tmp_path: Path) -> None:
    engine = FakeEngine()

    async def body(c: TestClient[Any, Any]) -> None:
        reader, writer, headers = await _raw_attach(c, "stream=1&stdin=1&stdout=1&stderr=1", upgrade=True)
        assert headers.startswith(b"HTTP/1.1 101 UPGRADED\r\n")
        assert b"Upgrade: tcp" in headers and b"Connection: Upgrade" in headers
        assert b"Content-Type: application/vnd.docker.multiplexed-stream" in headers
        writer.write(b"hello")
        await writer.drain()
        assert await reader.readexactly(13) == frame(1, b"hello")
        writer.write_eof()  # stdin EOF; output must keep flowing
        assert await reader.readexactly(11) == frame(2, b"eof")
        assert await reader.read() == b""
        writer.close()
        assert engine.sessions[0].stdin == b"hello" and engine.sessions[0].stdin_closed
        assert engine.sessions[0].closed
    run(engine, tmp_path, body)


def test_attach_without_upgrade_and_detach_keys(tmp_path: Path) -> None:
    engine = FakeEngine()

    async def body(c: TestClient[Any, Any]) -> None:
        reader, writer, headers = await _raw_attach(c, "stream=1&stdin=1&stdout=1&detachKeys=ctrl-a", upgrade=False)
        assert headers.startswith(b"HTTP/1.1 200 OK\r\n") and b"Transfer-Encoding" not in headers
        writer.write(b"ab\x01ignored")
        await writer.drain()
        assert await reader.readexactly(10) == frame(1, b"ab")
        assert await asyncio.wait_for(reader.read(), 5) == b""  # detached: the server ended the stream
        writer.close()
        session = engine.sessions[0]
        assert session.stdin == b"ab" and not session.stdin_closed and session.closed
        r = await c.post("/containers/c1/attach?stream=1&detachKeys=ctrl-1")
        assert r.status == 400
    run(engine, tmp_path, body)
