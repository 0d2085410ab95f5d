"""stdcopy framing, create-body flags, the busybox archive."""

from __future__ import annotations

import argparse
import io
import json
import tarfile
from pathlib import Path

import pytest

from dockyard.cli.runopts import add_run_flags, create_body, ram_in_bytes, split_interspersed
from dockyard.client.stream import Demuxer, demux, frame
from dockyard.errors import Internal, InvalidArgument


def test_demux_frames_split_anywhere() -> None:
    data = frame(1, b"hello\n") + frame(2, b"oops\n") + frame(1, b"")
    assert demux(data) == [(1, b"hello\n"), (2, b"oops\n"), (1, b"")]
    d = Demuxer()
    got = [f for i in range(len(data)) for f in d.feed(data[i:i + 1])]
    assert got == [(1, b"hello\n"), (2, b"oops\n"), (1, b"")]


def test_demux_truncated_and_bad_stream() -> None:
    with pytest.raises(Internal):
        demux(frame(1, b"abc")[:-1])
    with pytest.raises(Internal):
        demux(b"\x09\x00\x00\x00\x00\x00\x00\x01x")


def _parse(argv: list[str]) -> dict:
    p = argparse.ArgumentParser(add_help=False)
    add_run_flags(p)
    head, rest = split_interspersed(p, argv)
    p.add_argument("image")
    a = p.parse_args(head)
    return create_body(a, a.image, rest)


def test_create_body_like_docker_cli() -> None:
    body = _parse(["-d", "--rm", "-e", "A=1", "-m", "64m", "--cpus", "1.5", "--pids-limit", "50", "--init",
                   "--network", "none", "-l", "k=v", "-w", "/tmp", "-u", "nobody", "--hostname", "h",
                   "--entrypoint", "/bin/sh", "busybox", "-c", "echo hi"])
    assert body["Image"] == "busybox"
    assert body["Cmd"] == ["-c", "echo hi"]
    assert body["Entrypoint"] == ["/bin/sh"]
    assert body["Env"] == ["A=1"]
    assert body["Labels"] == {"k": "v"}
    assert (body["WorkingDir"], body["User"], body["Hostname"]) == ("/tmp", "nobody", "h")
    assert (body["AttachStdin"], body["AttachStdout"], body["OpenStdin"]) == (False, False, False)
    hc = body["HostConfig"]
    assert hc["Memory"] == 64 * 1024 * 1024
    assert hc["NanoCpus"] == 1_500_000_000
    assert hc["PidsLimit"] == 50 and hc["Init"] is True and hc["AutoRemove"] is True
    assert hc["NetworkMode"] == "none"
    assert hc["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    json.dumps(body)


def test_create_body_interactive_and_restart() -> None:
    body = _parse(["-it", "--restart", "on-failure:3", "busybox"])
    assert body["Cmd"] is None and body["Tty"] is True
    assert (body["AttachStdin"], body["OpenStdin"], body["StdinOnce"]) == (True, True, True)
    assert body["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    with pytest.raises(InvalidArgument):
        _parse(["--rm", "--restart", "always", "busybox"])


def test_ram_in_bytes() -> None:
    assert ram_in_bytes("512") == 512
    assert ram_in_bytes("1g") == 1 << 30
    assert ram_in_bytes("10MB") == 10 << 20
    with pytest.raises(InvalidArgument):
        ram_in_bytes("lots")


@pytest.mark.skipif(not Path("/bin/busybox").exists(), reason="needs busybox-static")
def test_busybox_archive_is_deterministic_docker_archive() -> None:
    from dockyard.client.busybox import build_archive
    data = build_archive(tag="bb:test")
    assert data == build_archive(tag="bb:test")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        assert manifest[0]["RepoTags"] == ["bb:test"]
        config = json.load(tar.extractfile(manifest[0]["Config"]))  # type: ignore[arg-type]
        assert config["config"]["Cmd"] == ["sh"]
        layer = tar.extractfile(manifest[0]["Layers"][0]).read()  # type: ignore[union-attr]
    import hashlib
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer).hexdigest()]
    with tarfile.open(fileobj=io.BytesIO(layer)) as lt:
        members = {m.name: m for m in lt.getmembers()}
    assert members["bin/busybox"].isfile()
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "busybox"
    assert members["tmp"].mode == 0o1777
    sbin = [m for n, m in members.items() if n.startswith("usr/sbin/") and m.issym()]
    assert sbin and sbin[0].linkname == "../../bin/busybox"
    assert "nobody:x:65534" in lt_text(layer, "etc/passwd")


def lt_text(layer: bytes, name: str) -> str:
    with tarfile.open(fileobj=io.BytesIO(layer)) as lt:
        return lt.extractfile(name).read().decode()  # type: ignore[union-attr]
