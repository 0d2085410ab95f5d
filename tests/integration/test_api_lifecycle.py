"""Containers, exec and images through raw HTTP on a live dockyardd's unix socket."""

from __future__ import annotations

import io
import json
import socket
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.api.streams import unframe
from tests.integration.test_daemon_helpers import Daemon, UnixHTTPConnection, start, stop
from tests.integration.test_engine_fixtures import busybox_archive

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, str]]:
    base = tmp_path_factory.mktemp("api")
    d = start(base)
    try:
        tag = f"busybox:api-{uuid.uuid4().hex[:8]}"
        busybox_archive(base / "bb.tar", tag)
        status, headers, body = d.request("POST", "/v1.45/images/load?quiet=1", raw=(base / "bb.tar").read_bytes())
        assert status == 200 and headers["content-type"] == "application/json", body
        assert json.loads(body.splitlines()[0]) == {"stream": f"Loaded image: {tag}\n"}
        yield d, tag
    finally:
        for c in d.json("GET", "/containers/json?all=1"):
            d.request("DELETE", f"/containers/{c['Id']}?force=1")
        stop(d)


def hijack(d: Daemon, path: str, body: bytes = b"") -> tuple[socket.socket, bytes]:
    """Open a hijacked stream the way the docker CLI does (Upgrade: tcp)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(str(d.sock))
    head = (f"POST {path} HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    sock.sendall(head + body)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        assert chunk, buf
        buf += chunk
    headers, _, rest = buf.partition(b"\r\n\r\n")
    assert headers.startswith(b"HTTP/1.1 101 UPGRADED"), headers
    return sock, rest


def read_all(sock: socket.socket, initial: bytes) -> bytes:
    out = initial
    while chunk := sock.recv(65536):
        out += chunk
    return out


def test_run_wait_logs_inspect_remove(daemon: tuple[Daemon, str]) -> None:
    d, image = daemon
    name = f"api-{uuid.uuid4().hex[:8]}"
    since = time.time() - 1
    created = d.json("POST", f"/v1.45/containers/create?name={name}", expect=201,
                     body={"Image": image, "Cmd": ["sh", "-c", "echo out; echo err >&2; exit 3"]})
    cid = created["Id"]
    assert created["Warnings"] == []
    assert d.json("GET", f"/containers/{name}/json")["State"]["Status"] == "created"
    status, _, _ = d.request("POST", f"/v1.45/containers/{cid}/start")
    assert status == 204
    assert d.json("POST", f"/v1.45/containers/{cid}/wait") == {"StatusCode": 3, "Error": None}
    info = d.json("GET", f"/v1.45/containers/{name}/json")
    assert info["Name"] == f"/{name}" and info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 3
    assert info["Config"]["Image"] == image and info["Path"] == "sh"
    status, headers, body = d.request("GET", f"/containers/{cid}/logs?stdout=1&stderr=1")
    assert headers["content-type"] == "application/vnd.docker.multiplexed-stream"
    frames, rest = unframe(body)
    assert sorted(frames) == [(1, b"out\n"), (2, b"err\n")] and rest == b""
    listed = d.json("GET", "/containers/json?all=1")
    assert any(c["Id"] == cid and c["Status"].startswith("Exited (3)") for c in listed)
    assert all(c["Id"] != cid for c in d.json("GET", "/containers/json"))
    status, _, body = d.request("GET", f"/events?since={since}&until={time.time() + 0.5}")
    actions = [json.loads(line)["Action"] for line in body.splitlines() if json.loads(line)["id"] == cid]
    assert actions[:3] == ["create", "start", "die"] or {"create", "start", "die"} <= set(actions)
    assert d.request("DELETE", f"/containers/{cid}")[0] == 204
    assert d.request("GET", f"/containers/{cid}/json")[0] == 404


def test_states_and_status_codes(daemon: tuple[Daemon, str]) -> None:
    d, image = daemon
    cid = d.json("POST", "/containers/create", {"Image": image, "Cmd": ["sleep", "60"]}, expect=201)["Id"]
    assert d.request("POST", f"/containers/{cid}/start")[0] == 204
    assert d.request("POST", f"/containers/{cid}/start")[0] == 304
    assert d.request("DELETE", f"/containers/{cid}")[0] == 409
    top = d.json("GET", f"/containers/{cid}/top")
    assert "PID" in top["Titles"] and any("sleep" in " ".join(p) for p in top["Processes"])
    assert d.request("POST", f"/containers/{cid}/pause")[0] == 204
    assert d.json("GET", f"/containers/{cid}/json")["State"]["Paused"] is True
    assert d.request("POST", f"/containers/{cid}/unpause")[0] == 204
    assert d.request("POST", f"/containers/{cid}/stop?t=1")[0] == 204
    assert d.request("POST", f"/containers/{cid}/stop")[0] == 304
    state = d.json("GET", f"/containers/{cid}/json")["State"]
    assert state["Running"] is False and state["ExitCode"] in (137, 143)
    assert d.request("DELETE", f"/containers/{cid}?force=1")[0] == 204


def test_attach_stdin_and_exec(daemon: tuple[Daemon, str]) -> None:
    d, image = daemon
    cid = d.json("POST", "/containers/create", expect=201, body={
        "Image": image, "Cmd": ["cat"], "OpenStdin": True, "StdinOnce": True, "AttachStdin": True})["Id"]
    sock, rest = hijack(d, f"/v1.45/containers/{cid}/attach?stream=1&stdin=1&stdout=1&stderr=1")
    try:
        assert d.request("POST", f"/containers/{cid}/start")[0] == 204
        sock.sendall(b"through stdin\n")
        sock.shutdown(socket.SHUT_WR)
        frames, tail = unframe(read_all(sock, rest))
    finally:
        sock.close()
    assert b"".join(data for _, data in frames) == b"through stdin\n" and tail == b""
    assert d.json("POST", f"/containers/{cid}/wait")["StatusCode"] == 0
    d.request("DELETE", f"/containers/{cid}?force=1")

    # without StdinOnce (docker run -d -i, then docker attach) the client's EOF ends only the attach:
    # the container's stdin stays open for the next one, as with dockerd
    cid = d.json("POST", "/containers/create", expect=201, body={
        "Image": image, "Cmd": ["cat"], "OpenStdin": True, "StdinOnce": False})["Id"]
    assert d.request("POST", f"/containers/{cid}/start")[0] == 204
    for text in (b"first attach\n", b"second attach\n"):
        sock, rest = hijack(d, f"/v1.45/containers/{cid}/attach?stream=1&stdin=1&stdout=1")
        try:
            sock.sendall(text)
            got = rest
            while text not in b"".join(data for _, data in unframe(got)[0]):
                got += sock.recv(65536)
            sock.shutdown(socket.SHUT_WR)
            read_all(sock, b"")  # the daemon ends the attach
        finally:
            sock.close()
        assert d.json("GET", f"/containers/{cid}/json")["State"]["Running"] is True
    d.request("DELETE", f"/containers/{cid}?force=1")

    cid = d.json("POST", "/containers/create", {"Image": image, "Cmd": ["sleep", "60"]}, expect=201)["Id"]
    d.request("POST", f"/containers/{cid}/start")
    exec_id = d.json("POST", f"/containers/{cid}/exec", expect=201, body={
        "Cmd": ["sh", "-c", "echo in-exec; exit 5"], "AttachStdout": True, "AttachStderr": True})["Id"]
    sock, rest = hijack(d, f"/v1.45/exec/{exec_id}/start", json.dumps({"Detach": False, "Tty": False}).encode())
    try:
        frames, _ = unframe(read_all(sock, rest))
    finally:
        sock.close()
    assert frames == [(1, b"in-exec\n")]
    for _ in range(50):
        inspected = d.json("GET", f"/exec/{exec_id}/json")
        if not inspected["Running"]:
            break
        time.sleep(0.1)
    assert inspected["ExitCode"] == 5 and inspected["ContainerID"] == cid
    d.request("DELETE", f"/containers/{cid}?force=1")


def test_images_endpoints(daemon: tuple[Daemon, str]) -> None:
    d, image = daemon
    assert any(image in (i["RepoTags"] or []) for i in d.json("GET", "/v1.45/images/json"))
    detail = d.json("GET", f"/v1.45/images/{image}/json")
    assert image in detail["RepoTags"] and detail["Os"] == "linux"
    target = f"localhost:5000/team/bb-{uuid.uuid4().hex[:6]}"
    assert d.request("POST", f"/images/{image}/tag?repo={target}&tag=v1")[0] == 201
    assert d.json("GET", f"/images/{target}:v1/json")["Id"] == detail["Id"]
    assert d.json("GET", f"/images/{target}:v1/history")[0]["Id"] == detail["Id"]
    status, headers, body = d.request("GET", f"/images/get?names={target}:v1")
    assert status == 200 and headers["content-type"] == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert "manifest.json" in tar.getnames()
    assert d.json("DELETE", f"/images/{target}:v1") == [{"Untagged": f"{target}:v1"}]
    assert d.request("GET", f"/images/{target}:v1/json")[0] == 404
    status, _, body = d.request("POST", "/images/create?fromImage=busybox&tag=latest")
    # docker.io names go to the test daemon's --default-registry (a closed loopback port)
    assert status >= 500 and b"cannot reach registry 127.0.0.1:1" in body
    assert not list((d.data_root / "tmp").glob("*.tar"))


def test_import_from_body(daemon: tuple[Daemon, str], tmp_path: Path) -> None:
    d, _ = daemon
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"hi\n"))
    repo = f"imported-{uuid.uuid4().hex[:6]}"
    status, _, body = d.request("POST", f"/images/create?fromSrc=-&repo={repo}&tag=t&message=m", raw=buf.getvalue())
    assert status == 200, body
    image_id = json.loads(body)["status"]
    assert d.json("GET", f"/images/{repo}:t/json")["Id"] == image_id
    d.request("DELETE", f"/images/{repo}:t")


def test_events_stream_live_and_stop_on_disconnect(daemon: tuple[Daemon, str]) -> None:
    d, image = daemon
    conn = UnixHTTPConnection(d.sock, timeout=20)
    try:
        conn.request("GET", '/v1.45/events?filters={"type":["container"]}')
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("Content-Type") == "application/json"
        name = f"ev-{uuid.uuid4().hex[:8]}"
        cid = d.json("POST", f"/containers/create?name={name}", {"Image": image, "Cmd": ["true"]}, expect=201)["Id"]
        event = json.loads(resp.readline())
        assert event["Type"] == "container" and event["Action"] == "create" and event["Actor"]["ID"] == cid
        assert event["status"] == "create" and event["id"] == cid and event["Actor"]["Attributes"]["name"] == name
    finally:
        conn.close()
    d.request("DELETE", f"/containers/{cid}")
    assert d.request("GET", "/_ping")[0] == 200
