"""``GET /containers/{id}/attach/ws`` against a live daemon: a web console's attach — keystrokes in
as websocket messages, the container's output back unframed; closing the socket detaches and leaves
the container running; a plain (non-websocket) request is a 400."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from tests.conftest import LiveDaemon, unique

pytestmark = pytest.mark.root


async def _session(daemon: LiveDaemon, name: str) -> tuple[bytes, int, str]:
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(daemon.sock))) as http:
        url = f"http://x/v1.45/containers/{name}/attach/ws?stream=1&stdin=1&stdout=1&stderr=1"
        async with http.ws_connect(url) as ws:
            await ws.send_str("hello over websocket\n")
            await ws.send_bytes(b"echo to-stderr >&2\n")
            got = b""
            while b"\nto-stderr\n" not in got:
                msg = await asyncio.wait_for(ws.receive(), 20)
                assert msg.type == aiohttp.WSMsgType.BINARY, msg
                got += msg.data
        async with http.get(f"http://x/v1.45/containers/{name}/attach/ws?stream=1&stdout=1") as plain:
            return got, plain.status, (await plain.json())["message"]


def test_attach_over_websocket(daemon: LiveDaemon) -> None:
    name = unique("ws")
    # a shell reading its stdin: each line is echoed (stdout), the second one writes to stderr
    daemon.cli("run", "-d", "-i", "--name", name, "busybox", "sh", "-c",
               'while read -r line; do echo "$line"; case "$line" in echo*) eval "$line";; esac; done')
    try:
        got, status, message = asyncio.run(_session(daemon, name))
        assert got.startswith(b"hello over websocket\n") and b"\nto-stderr\n" in got
        assert b"\x01\x00\x00\x00" not in got and b"\x02\x00\x00\x00" not in got  # raw, never multiplexed
        assert status == 400 and "websocket" in message
        state = json.loads(daemon.cli("inspect", name).stdout)[0]["State"]
        assert state["Running"]  # closing the websocket detached; the container goes on
    finally:
        daemon.cli("rm", "-f", name, check=False)
