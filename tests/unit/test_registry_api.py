"""The registry server (`dockyard registry serve`) over real HTTP on loopback: every endpoint of the
OCI distribution spec v1.1 it serves, its error codes, chunked/resumed/cancelled/concurrent uploads,
cross-repository mounts, content negotiation, pagination, referrers, deletes and `registry gc`."""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cleanup import stop_process

DOCKYARD = str(Path(sys.executable).parent / "dockyard")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Resp:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def error_code(self) -> str:
        return str(self.json()["errors"][0]["code"])


class Registry:
    """A `dockyard registry serve` process on a free loopback port, with its own root and log."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.log = root.parent / f"{root.name}-{uuid.uuid4().hex[:8]}.log"
        self._log_file = open(self.log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([DOCKYARD, "registry", "serve", "--addr", "127.0.0.1:0",
                                      "--root", str(root)], stdout=subprocess.DEVNULL, stderr=self._log_file)
        self.port = 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not self.port:
            m = re.search(rb"listening on http://127\.0\.0\.1:(\d+)", self.log.read_bytes())
            if m:
                self.port = int(m.group(1))
            elif self.proc.poll() is not None:
                break
            else:
                time.sleep(0.02)
        if not self.port:
            self.stop()
            raise AssertionError(f"registry did not start: {self.log.read_text()}")

    def stop(self) -> None:
        stop_process(self.proc)
        self._log_file.close()

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> Resp:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return Resp(r.status, r.headers, r.read())
        finally:
            conn.close()

    # -- helpers -------------------------------------------------------------------------------------
    def push_blob(self, repo: str, data: bytes) -> str:
        digest = sha256(data)
        r = self.request("POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", data)
        assert r.status == 201, r.body
        return digest

    def push_manifest(self, repo: str, ref: str, obj: dict[str, Any], media_type: str = OCI_MANIFEST,
                      expect: int = 201) -> tuple[str, Resp]:
        data = json.dumps(obj).encode()
        r = self.request("PUT", f"/v2/{repo}/manifests/{ref}", data, {"Content-Type": media_type})
        assert r.status == expect, r.body
        return sha256(data), r

    def push_image(self, repo: str, ref: str, payload: bytes = b"layer", media_type: str = OCI_MANIFEST,
                   **extra: Any) -> tuple[str, dict[str, Any]]:
        config = json.dumps({"architecture": "amd64", "os": "linux", "x": payload.hex()}).encode()
        cfg, layer = self.push_blob(repo, config), self.push_blob(repo, payload)
        config_type = OCI_CONFIG if media_type == OCI_MANIFEST else "application/vnd.docker.container.image.v1+json"
        obj = {"schemaVersion": 2, "mediaType": media_type,
               "config": {"mediaType": config_type, "digest": cfg, "size": len(config)},
               "layers": [{"mediaType": LAYER, "digest": layer, "size": len(payload)}], **extra}
        digest, _ = self.push_manifest(repo, ref, obj, media_type)
        return digest, obj


def _start(tmp: Path, name: str = "root") -> Registry:
    return Registry(tmp / name)


@pytest.fixture
def tmpdir_clean() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="dockyard-registry-test-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def shared() -> Iterator[Registry]:
    d = Path(tempfile.mkdtemp(prefix="dockyard-registry-test-"))
    reg = _start(d)
    try:
        yield reg
    finally:
        reg.stop()
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def reg(shared: Registry) -> Registry:
    return shared


@pytest.fixture
def repo() -> str:
    return f"test/r{uuid.uuid4().hex[:10]}"


@pytest.fixture
def fresh(tmpdir_clean: Path) -> Iterator[Registry]:
    r = _start(tmpdir_clean)
    try:
        yield r
    finally:
        r.stop()


def _blob_files(root: Path) -> list[Path]:
    return [p for p in (root / "content" / "blobs").rglob("*") if p.is_file()]


def _ingests(root: Path) -> list[Path]:
    return list((root / "content" / "ingest").iterdir())


# -- base, errors, names ----------------------------------------------------------------------------

def test_base_endpoint_and_request_log(reg: Registry) -> None:
    r = reg.request("GET", "/v2/")
    assert r.status == 200
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert reg.request("HEAD", "/v2/").status == 200
    deadline = time.monotonic() + 5  # one access-log line per request, on stderr
    while b'"HEAD /v2/ HTTP/1.1" 200' not in reg.log.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert b'"GET /v2/ HTTP/1.1" 200' in reg.log.read_bytes()
    assert b'"HEAD /v2/ HTTP/1.1" 200' in reg.log.read_bytes()


def test_name_tag_digest_validation_and_unsupported(reg: Registry) -> None:
    r = reg.request("GET", "/v2/Bad_Name/tags/list")
    assert (r.status, r.error_code()) == (400, "NAME_INVALID")
    r = reg.request("POST", "/v2/a//b/blobs/uploads/")
    assert (r.status, r.error_code()) == (400, "NAME_INVALID")
    r = reg.request("PUT", "/v2/ok/manifests/-badtag", b"{}", {"Content-Type": OCI_MANIFEST})
    assert (r.status, r.error_code()) == (400, "TAG_INVALID")
    r = reg.request("HEAD", "/v2/ok/blobs/sha256:123")
    assert r.status == 400
    r = reg.request("GET", "/v2/ok/blobs/md5:" + "0" * 32)
    assert (r.status, r.error_code()) == (400, "DIGEST_INVALID")
    r = reg.request("POST", "/v2/ok/manifests/latest")
    assert (r.status, r.error_code()) == (405, "UNSUPPORTED")
    body = r.json()["errors"][0]
    assert set(body) >= {"code", "message"}


# -- blobs and uploads --------------------------------------------------------------------------------

def test_monolithic_upload_head_get_and_ranges(reg: Registry, repo: str) -> None:
    data = bytes(range(256)) * 4
    digest = sha256(data)
    r = reg.request("POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", data)
    assert r.status == 201
    assert r.headers["Location"] == f"/v2/{repo}/blobs/{digest}"
    assert r.headers["Docker-Content-Digest"] == digest
    r = reg.request("HEAD", f"/v2/{repo}/blobs/{digest}")
    assert r.status == 200 and r.body == b""
    assert r.headers["Content-Length"] == str(len(data))
    assert r.headers["Docker-Content-Digest"] == digest
    r = reg.request("GET", f"/v2/{repo}/blobs/{digest}")
    assert r.status == 200 and r.body == data
    r = reg.request("GET", f"/v2/{repo}/blobs/{digest}", headers={"Range": "bytes=10-19"})
    assert r.status == 206 and r.body == data[10:20]
    assert r.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    r = reg.request("GET", f"/v2/{repo}/blobs/{digest}", headers={"Range": f"bytes={len(data) + 5}-"})
    assert r.status == 416
    r = reg.request("GET", f"/v2/{repo}/blobs/{sha256(b'nope')}")
    assert (r.status, r.error_code()) == (404, "BLOB_UNKNOWN")
    r = reg.request("GET", f"/v2/other{repo[4:]}/blobs/{digest}")  # stored, but not in that repo
    assert (r.status, r.error_code()) == (404, "BLOB_UNKNOWN")


def test_post_then_put_with_body(reg: Registry, repo: str) -> None:
    r = reg.request("POST", f"/v2/{repo}/blobs/uploads/")
    assert r.status == 202
    loc = r.headers["Location"]
    assert re.fullmatch(rf"/v2/{repo}/blobs/uploads/[0-9a-f-]{{36}}", loc)
    assert r.headers["Range"] == "0-0"
    assert loc.endswith(r.headers["Docker-Upload-UUID"])
    r = reg.request("PUT", f"{loc}?digest={sha256(b'hello')}", b"hello")
    assert r.status == 201
    assert reg.request("GET", f"/v2/{repo}/blobs/{sha256(b'hello')}").body == b"hello"


def test_sha512_digest_is_verified(reg: Registry, repo: str) -> None:
    data = b"sha512 content"
    digest = "sha512:" + hashlib.sha512(data).hexdigest()
    loc = reg.request("POST", f"/v2/{repo}/blobs/uploads/").headers["Location"]
    assert reg.request("PATCH", loc, data).status == 202
    assert reg.request("PUT", f"{loc}?digest={digest}").status == 201
    assert reg.request("GET", f"/v2/{repo}/blobs/{digest}").body == data
    bad = "sha512:" + hashlib.sha512(b"other").hexdigest()
    r = reg.request("POST", f"/v2/{repo}/blobs/uploads/?digest={bad}", data)
    assert (r.status, r.error_code()) == (400, "DIGEST_INVALID")


def test_chunked_upload_in_order_and_out_of_order(reg: Registry, repo: str) -> None:
    data = b"0123456789abcdefghijKLMNO"
    loc = reg.request("POST", f"/v2/{repo}/blobs/uploads/").headers["Location"]
    r = reg.request("PATCH", loc, data[:10], {"Content-Range": "0-9", "Content-Type": "application/octet-stream"})
    assert r.status == 202 and r.headers["Range"] == "0-9"
    loc = r.headers["Location"]
    # out of order: skips bytes 10..14, and a replay of 0-9
    for bad in ("15-24", "0-9"):
        r = reg.request("PATCH", loc, data[int(bad.split("-")[0]):int(bad.split("-")[1]) + 1],
                        {"Content-Range": bad})
        assert (r.status, r.error_code()) == (416, "BLOB_UPLOAD_INVALID")
        assert r.headers["Range"] == "0-9" and r.headers["Location"] == loc
    r = reg.request("PATCH", loc, data[10:20], {"Content-Range": "10-19"})
    assert r.status == 202 and r.headers["Range"] == "0-19"
    r = reg.request("PUT", f"{loc}?digest={sha256(data)}", data[20:], {"Content-Range": "20-24"})
    assert r.status == 201
    assert reg.request("GET", f"/v2/{repo}/blobs/{sha256(data)}").body == data


def test_chunk_length_mismatch_is_size_invalid(reg: Registry, repo: str) -> None:
    loc = reg.request("POST", f"/v2/{repo}/blobs/uploads/").headers["Location"]
    r = reg.request("PATCH", loc, b"12345", {"Content-Range": "0-9"})
    assert (r.status, r.error_code()) == (400, "SIZE_INVALID")
    assert reg.request("GET", loc).headers["Range"] == "0-0"


def test_streamed_patches_status_and_resume_after_interruption(reg: Registry, repo: str) -> None:
    data = bytes(range(200)) * 500  # 100 kB
    loc = reg.request("POST", f"/v2/{repo}/blobs/uploads/").headers["Location"]
    r = reg.request("PATCH", loc, data[:30000])  # no Content-Range: streamed append
    assert r.status == 202 and r.headers["Range"] == "0-29999"
    # an interrupted chunk: announce 50000 bytes, send 20000, hang up
    with socket.create_connection(("127.0.0.1", reg.port)) as s:
        s.sendall(f"PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Length: 50000\r\n"
                  f"Content-Range: 30000-79999\r\n\r\n".encode() + data[30000:50000])
        time.sleep(0.3)
    deadline = time.monotonic() + 5
    while True:
        r = reg.request("GET", loc)
        assert r.status == 204
        if r.headers["Range"] == "0-49999" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert r.headers["Range"] == "0-49999" and r.headers["Docker-Upload-UUID"] in loc
    assert reg.request("HEAD", f"/v2/{repo}/blobs/{sha256(data)}").status == 404  # still invisible
    r = reg.request("PATCH", loc, data[50000:], {"Content-Range": f"50000-{len(data) - 1}"})
    assert r.status == 202
    assert reg.request("PUT", f"{loc}?digest={sha256(data)}").status == 201
    assert reg.request("GET", f"/v2/{repo}/blobs/{sha256(data)}").body == data


def test_cancel_and_unknown_uploads(reg: Registry, repo: str) -> None:
    loc = reg.request("POST", f"/v2/{repo}/blobs/uploads/").headers["Location"]
    assert reg.request("PATCH", loc, b"partial").status == 202
    assert reg.request("DELETE", loc).status == 204
    for method in ("GET", "PATCH", "DELETE"):
        r = reg.request(method, loc, b"x" if method == "PATCH" else None)
        assert (r.status, r.error_code()) == (404, "BLOB_UPLOAD_UNKNOWN")
    loc = reg.request("POST", f"/v2/{repo}/blobs/uploads/").headers["Location"]
    r = reg.request("GET", loc.replace(repo, repo + "x"))  # a session belongs to its repository
    assert (r.status, r.error_code()) == (404, "BLOB_UPLOAD_UNKNOWN")
    r = reg.request("GET", f"/v2/{repo}/blobs/uploads/not-a-uuid")
    assert (r.status, r.error_code()) == (404, "BLOB_UPLOAD_UNKNOWN")
    r = reg.request("PUT", loc)
    assert (r.status, r.error_code()) == (400, "DIGEST_INVALID")


def test_wrong_digest_stores_nothing(fresh: Registry) -> None:
    repo = "corrupt/upload"
    data = b"the real bytes"
    loc = fresh.request("POST", f"/v2/{repo}/blobs/uploads/").headers["Location"]
    assert fresh.request("PATCH", loc, data).status == 202
    wrong = sha256(b"something else")
    r = fresh.request("PUT", f"{loc}?digest={wrong}")
    assert (r.status, r.error_code()) == (400, "DIGEST_INVALID")
    for d in (wrong, sha256(data)):
        assert fresh.request("HEAD", f"/v2/{repo}/blobs/{d}").status == 404
    assert fresh.request("GET", loc).status == 404  # the session is gone too
    r = fresh.request("POST", f"/v2/{repo}/blobs/uploads/?digest={wrong}", data)
    assert (r.status, r.error_code()) == (400, "DIGEST_INVALID")
    assert _blob_files(fresh.root) == [] and _ingests(fresh.root) == []
    assert list((fresh.root / "uploads").iterdir()) == []


def test_cross_repository_mount(reg: Registry, repo: str) -> None:
    digest = reg.push_blob(repo, b"shared layer")
    target = repo + "-mount"
    r = reg.request("POST", f"/v2/{target}/blobs/uploads/?mount={digest}&from={repo}")
    assert r.status == 201
    assert r.headers["Location"] == f"/v2/{target}/blobs/{digest}"
    assert reg.request("GET", f"/v2/{target}/blobs/{digest}").body == b"shared layer"
    # not in `from`: a normal upload session instead
    missing = sha256(b"never pushed")
    r = reg.request("POST", f"/v2/{target}/blobs/uploads/?mount={missing}&from={repo}")
    assert r.status == 202 and "/blobs/uploads/" in r.headers["Location"]
    r = reg.request("POST", f"/v2/{target}/blobs/uploads/?mount={digest}&from={repo}-elsewhere")
    assert r.status == 202


def test_blob_delete(reg: Registry, repo: str) -> None:
    digest = reg.push_blob(repo, b"to delete")
    r = reg.request("DELETE", f"/v2/{repo}/blobs/{digest}")
    assert r.status == 202
    r = reg.request("HEAD", f"/v2/{repo}/blobs/{digest}")
    assert r.status == 404
    r = reg.request("DELETE", f"/v2/{repo}/blobs/{digest}")
    assert (r.status, r.error_code()) == (404, "BLOB_UNKNOWN")


def test_concurrent_uploads_of_the_same_blob(fresh: Registry) -> None:
    data = bytes(range(256)) * 8192  # 2 MiB
    digest = sha256(data)
    results: list[int] = []
    errors: list[BaseException] = []

    def upload(i: int) -> None:
        try:
            repo = f"conc/r{i % 3}"
            loc = fresh.request("POST", f"/v2/{repo}/blobs/uploads/").headers["Location"]
            half = len(data) // 2
            assert fresh.request("PATCH", loc, data[:half], {"Content-Range": f"0-{half - 1}"}).status == 202
            results.append(fresh.request("PUT", f"{loc}?digest={digest}", data[half:]).status)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and results == [201] * 9
    for i in range(3):
        r = fresh.request("GET", f"/v2/conc/r{i}/blobs/{digest}")
        assert r.status == 200 and r.body == data
    assert len(_blob_files(fresh.root)) == 1 and _ingests(fresh.root) == []


# -- manifests -----------------------------------------------------------------------------------------

def test_manifest_put_get_head_negotiation_and_deletes(reg: Registry, repo: str) -> None:
    digest, obj = reg.push_image(repo, "v1")
    data = json.dumps(obj).encode()
    r = reg.request("PUT", f"/v2/{repo}/manifests/v1", data, {"Content-Type": OCI_MANIFEST})
    assert r.status == 201
    assert r.headers["Docker-Content-Digest"] == digest
    assert r.headers["Location"] == f"/v2/{repo}/manifests/{digest}"
    assert "OCI-Subject" not in r.headers
    for ref in ("v1", digest):
        r = reg.request("GET", f"/v2/{repo}/manifests/{ref}",
                        headers={"Accept": f"{DOCKER_MANIFEST}, {OCI_MANIFEST}"})
        assert r.status == 200 and r.body == data
        assert r.headers["Content-Type"] == OCI_MANIFEST and r.headers["Docker-Content-Digest"] == digest
        r = reg.request("HEAD", f"/v2/{repo}/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
        assert r.status == 200 and r.body == b"" and r.headers["Content-Length"] == str(len(data))
    assert reg.request("GET", f"/v2/{repo}/manifests/v1").status == 200  # no Accept: anything goes
    r = reg.request("GET", f"/v2/{repo}/manifests/v1", headers={"Accept": DOCKER_MANIFEST})
    assert (r.status, r.error_code()) == (404, "MANIFEST_UNKNOWN")
    r = reg.request("GET", f"/v2/{repo}/manifests/nosuchtag")
    assert (r.status, r.error_code()) == (404, "MANIFEST_UNKNOWN")
    # a second tag, then tag deletion (v1.1) leaves the manifest
    reg.push_manifest(repo, "v2", obj)
    assert reg.request("DELETE", f"/v2/{repo}/manifests/v1").status == 202
    assert reg.request("GET", f"/v2/{repo}/manifests/v1").status == 404
    assert reg.request("GET", f"/v2/{repo}/manifests/{digest}").status == 200
    r = reg.request("DELETE", f"/v2/{repo}/manifests/v1")
    assert (r.status, r.error_code()) == (404, "MANIFEST_UNKNOWN")
    # deletion by digest takes the remaining tags along
    assert reg.request("DELETE", f"/v2/{repo}/manifests/{digest}").status == 202
    for ref in (digest, "v2"):
        assert reg.request("GET", f"/v2/{repo}/manifests/{ref}").status == 404
    r = reg.request("DELETE", f"/v2/{repo}/manifests/{digest}")
    assert (r.status, r.error_code()) == (404, "MANIFEST_UNKNOWN")


def test_put_by_digest_and_docker_types(reg: Registry, repo: str) -> None:
    digest, obj = reg.push_image(repo, "docker", b"docker layer", DOCKER_MANIFEST)
    data = json.dumps(obj).encode()
    r = reg.request("PUT", f"/v2/{repo}/manifests/{digest}", data, {"Content-Type": DOCKER_MANIFEST})
    assert r.status == 201 and r.headers["Docker-Content-Digest"] == digest
    r = reg.request("PUT", f"/v2/{repo}/manifests/{sha256(b'x')}", data, {"Content-Type": DOCKER_MANIFEST})
    assert (r.status, r.error_code()) == (400, "DIGEST_INVALID")
    listing = {"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [
        {"mediaType": DOCKER_MANIFEST, "digest": digest, "size": len(data),
         "platform": {"architecture": "amd64", "os": "linux"}}]}
    list_digest, _ = reg.push_manifest(repo, "multi", listing, DOCKER_LIST)
    r = reg.request("GET", f"/v2/{repo}/manifests/multi", headers={"Accept": f"{DOCKER_LIST},{OCI_INDEX}"})
    assert r.status == 200 and r.headers["Content-Type"] == DOCKER_LIST
    assert r.headers["Docker-Content-Digest"] == list_digest
    r = reg.request("GET", f"/v2/{repo}/manifests/multi", headers={"Accept": OCI_INDEX})
    assert (r.status, r.error_code()) == (404, "MANIFEST_UNKNOWN")


def test_manifest_with_missing_blobs_or_children_is_refused(reg: Registry, repo: str) -> None:
    cfg = reg.push_blob(repo, b"{}")
    missing = sha256(b"not uploaded")
    obj = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "config": {"mediaType": OCI_CONFIG, "digest": cfg, "size": 2},
           "layers": [{"mediaType": LAYER, "digest": missing, "size": 12}]}
    _, r = reg.push_manifest(repo, "broken", obj, expect=400)
    assert r.error_code() == "MANIFEST_BLOB_UNKNOWN"
    assert r.json()["errors"][0]["detail"] == {"digest": missing}
    assert reg.request("GET", f"/v2/{repo}/manifests/broken").status == 404
    # a blob of another repository does not count
    other = reg.push_blob(repo + "-other", b"elsewhere")
    obj["layers"] = [{"mediaType": LAYER, "digest": other, "size": 9}]
    _, r = reg.push_manifest(repo, "broken", obj, expect=400)
    assert r.error_code() == "MANIFEST_BLOB_UNKNOWN"
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX,
             "manifests": [{"mediaType": OCI_MANIFEST, "digest": missing, "size": 100}]}
    _, r = reg.push_manifest(repo, "idx", index, OCI_INDEX, expect=400)
    assert r.error_code() == "MANIFEST_BLOB_UNKNOWN"


def test_invalid_manifests(reg: Registry, repo: str) -> None:
    cases = [
        (b"not json", OCI_MANIFEST),
        (b"[]", OCI_MANIFEST),
        (json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode(), OCI_MANIFEST),
        (json.dumps({"schemaVersion": 1, "config": {}, "layers": []}).encode(), OCI_MANIFEST),
        (json.dumps({"schemaVersion": 2, "layers": []}).encode(), OCI_MANIFEST),
        (json.dumps({"schemaVersion": 2, "config": {"mediaType": OCI_CONFIG, "digest": "sha256:x",
                                                    "size": 1}, "layers": []}).encode(), OCI_MANIFEST),
        (json.dumps({"schemaVersion": 2, "manifests": []}).encode(), "text/plain"),
    ]
    for body, ctype in cases:
        r = reg.request("PUT", f"/v2/{repo}/manifests/bad", body, {"Content-Type": ctype})
        assert (r.status, r.error_code()) == (400, "MANIFEST_INVALID"), body
    r = reg.request("PUT", f"/v2/{repo}/manifests/big", b" " * (4 * 1024 * 1024 + 1),
                    {"Content-Type": OCI_MANIFEST})
    assert (r.status, r.error_code()) == (413, "SIZE_INVALID")


# -- tags, catalog, referrers ---------------------------------------------------------------------------

def _follow(reg: Registry, path: str, key: str) -> list[list[str]]:
    pages: list[list[str]] = []
    while path:
        r = reg.request("GET", path)
        assert r.status == 200, r.body
        pages.append(r.json()[key])
        link = r.headers.get("Link")
        if link is None:
            break
        m = re.fullmatch(r'<([^>]+)>; rel="next"', link)
        assert m, link
        path = m.group(1)
    return pages


def test_tags_list_pagination(reg: Registry, repo: str) -> None:
    _, obj = reg.push_image(repo, "a")
    for tag in ("e", "c", "b", "d"):
        reg.push_manifest(repo, tag, obj)
    r = reg.request("GET", f"/v2/{repo}/tags/list")
    assert r.json() == {"name": repo, "tags": ["a", "b", "c", "d", "e"]} and "Link" not in r.headers
    assert _follow(reg, f"/v2/{repo}/tags/list?n=2", "tags") == [["a", "b"], ["c", "d"], ["e"]]
    r = reg.request("GET", f"/v2/{repo}/tags/list?n=2&last=b")
    assert r.json()["tags"] == ["c", "d"]
    assert r.headers["Link"] == f'</v2/{repo}/tags/list?n=2&last=d>; rel="next"'
    assert reg.request("GET", f"/v2/{repo}/tags/list?n=5").headers.get("Link") is None
    r = reg.request("GET", f"/v2/{repo}/tags/list?n=-1")
    assert (r.status, r.error_code()) == (400, "PAGINATION_NUMBER_INVALID")
    r = reg.request("GET", f"/v2/{repo}-unknown/tags/list")
    assert (r.status, r.error_code()) == (404, "NAME_UNKNOWN")


def test_catalog_pagination(fresh: Registry) -> None:
    assert fresh.request("GET", "/v2/_catalog").json() == {"repositories": []}
    for name in ("zeta", "alpha/one", "alpha", "mid/x/y"):
        fresh.push_image(name, "latest")
    fresh.push_blob("blobs/only", b"no manifest here")
    r = fresh.request("GET", "/v2/_catalog")
    assert r.json() == {"repositories": ["alpha", "alpha/one", "mid/x/y", "zeta"]}
    assert _follow(fresh, "/v2/_catalog?n=3", "repositories") == [["alpha", "alpha/one", "mid/x/y"], ["zeta"]]
    r = fresh.request("GET", "/v2/_catalog?n=1&last=alpha/one")
    assert r.json()["repositories"] == ["mid/x/y"]
    assert r.headers["Link"] == '</v2/_catalog?n=1&last=mid%2Fx%2Fy>; rel="next"'


def test_referrers_with_and_without_filter(reg: Registry, repo: str) -> None:
    subject, obj = reg.push_image(repo, "app")
    subject_size = len(json.dumps(obj).encode())
    empty = reg.push_blob(repo, b"{}")
    sig = reg.push_blob(repo, b"signature")
    subj = {"mediaType": OCI_MANIFEST, "digest": subject, "size": subject_size}
    sbom_type = "application/vnd.example.sbom"
    artifact = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": sbom_type,
                "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
                "layers": [{"mediaType": "application/octet-stream", "digest": sig, "size": 9}],
                "subject": subj, "annotations": {"org.example.kind": "sbom"}}
    sbom, r = reg.push_manifest(repo, sha256(json.dumps(artifact).encode()), artifact)
    assert r.headers["OCI-Subject"] == subject
    sig_type = "application/vnd.example.signature"   # artifact type taken from config.mediaType
    signature = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                 "config": {"mediaType": sig_type, "digest": empty, "size": 2},
                 "layers": [{"mediaType": "application/octet-stream", "digest": sig, "size": 9}],
                 "subject": subj}
    sig_digest, _ = reg.push_manifest(repo, "sig", signature)
    index_ref = {"schemaVersion": 2, "mediaType": OCI_INDEX, "artifactType": "application/vnd.example.bundle",
                 "manifests": [], "subject": subj}
    idx_digest, _ = reg.push_manifest(repo, "bundle", index_ref, OCI_INDEX)

    r = reg.request("GET", f"/v2/{repo}/referrers/{subject}")
    assert r.status == 200 and r.headers["Content-Type"] == OCI_INDEX
    assert "OCI-Filters-Applied" not in r.headers
    index = r.json()
    assert index["schemaVersion"] == 2 and index["mediaType"] == OCI_INDEX
    by_digest = {m["digest"]: m for m in index["manifests"]}
    assert set(by_digest) == {sbom, sig_digest, idx_digest}
    assert by_digest[sbom] == {"mediaType": OCI_MANIFEST, "digest": sbom, "size": len(json.dumps(artifact)),
                               "artifactType": sbom_type, "annotations": {"org.example.kind": "sbom"}}
    assert by_digest[sig_digest]["artifactType"] == sig_type
    assert by_digest[idx_digest]["mediaType"] == OCI_INDEX

    r = reg.request("GET", f"/v2/{repo}/referrers/{subject}?artifactType={sbom_type}")
    assert r.headers["OCI-Filters-Applied"] == "artifactType"
    assert [m["digest"] for m in r.json()["manifests"]] == [sbom]
    r = reg.request("GET", f"/v2/{repo}/referrers/{sha256(b'no referrers')}")
    assert r.status == 200 and r.json()["manifests"] == []
    r = reg.request("GET", f"/v2/{repo}/referrers/sha256:zz")
    assert (r.status, r.error_code()) == (400, "DIGEST_INVALID")
    assert reg.request("DELETE", f"/v2/{repo}/manifests/{sbom}").status == 202
    r = reg.request("GET", f"/v2/{repo}/referrers/{subject}")
    assert {m["digest"] for m in r.json()["manifests"]} == {sig_digest, idx_digest}


# -- restarts and garbage collection --------------------------------------------------------------------

def _gc(root: Path, *args: str) -> str:
    res = subprocess.run([DOCKYARD, "registry", "gc", "--root", str(root), *args], capture_output=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout.decode()


def test_upload_resumes_after_restart_and_gc(tmpdir_clean: Path) -> None:
    reg = _start(tmpdir_clean)
    try:
        kept, kept_obj = reg.push_image("app/kept", "v1", b"kept layer")
        child, _ = reg.push_image("app/multi", "amd64", b"child layer")
        child_size = len(reg.request("GET", f"/v2/app/multi/manifests/{child}").body)
        reg.push_manifest("app/multi", "latest", {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": child, "size": child_size}]}, OCI_INDEX)
        reg.request("DELETE", "/v2/app/multi/manifests/amd64")  # untagged child, kept through the index
        gone, gone_obj = reg.push_image("app/gone", "v1", b"gone layer")
        assert reg.request("DELETE", f"/v2/app/gone/manifests/{gone}").status == 202
        orphan = reg.push_blob("app/kept", b"orphan blob")
        stale = reg.request("POST", "/v2/app/kept/blobs/uploads/").headers["Location"]
        data = b"resumable " * 1000
        resumed = reg.request("POST", "/v2/app/kept/blobs/uploads/").headers["Location"]
        assert reg.request("PATCH", resumed, data[:4000]).status == 202
    finally:
        reg.stop()
    root = reg.root

    reg = _start(tmpdir_clean)
    try:
        assert reg.request("GET", resumed).headers["Range"] == "0-3999"  # re-hashed from disk
        r = reg.request("PATCH", resumed, data[4000:], {"Content-Range": f"4000-{len(data) - 1}"})
        assert r.status == 202
        assert reg.request("PUT", f"{resumed}?digest={sha256(data)}").status == 201
    finally:
        reg.stop()

    gone_blobs = {gone, gone_obj["config"]["digest"], gone_obj["layers"][0]["digest"]}
    before = {p.name for p in _blob_files(root)}
    out = _gc(root, "--dry-run", "--min-age", "0")
    assert {p.name for p in _blob_files(root)} == before
    listed = set(re.findall(r"would delete blob (\S+)", out))
    assert listed == gone_blobs | {orphan, sha256(data)}
    assert f"would delete upload {stale.rsplit('/', 1)[1]}" not in out  # not stale yet
    out = _gc(root, "--dry-run")  # default grace period: recent blobs are kept
    assert "would delete blob" not in out

    out = _gc(root, "--min-age", "0", "--upload-ttl", "0")
    assert set(re.findall(r"deleted blob (\S+)", out)) == listed
    assert f"deleted upload {stale.rsplit('/', 1)[1]}" in out
    assert list((root / "uploads").iterdir()) == [] and _ingests(root) == []

    reg = _start(tmpdir_clean)
    try:
        for d in (kept, kept_obj["config"]["digest"], kept_obj["layers"][0]["digest"]):
            assert reg.request("HEAD", f"/v2/app/kept/{'manifests' if d == kept else 'blobs'}/{d}").status == 200
        assert reg.request("GET", f"/v2/app/multi/manifests/{child}").status == 200
        for d in (orphan, sha256(data)):
            assert reg.request("HEAD", f"/v2/app/kept/blobs/{d}").status == 404
        r = reg.request("HEAD", f"/v2/app/gone/blobs/{gone_obj['layers'][0]['digest']}")
        assert r.status == 404
        assert reg.request("GET", stale).status == 404
    finally:
        reg.stop()
