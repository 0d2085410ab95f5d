"""The archive API (``docker cp``): stock docker CLI and ``dockyard cp`` against a live daemon, on
running and stopped containers, plus the in-root resolution, archiving and extraction of
engine/ctrfs.py, tarwrite.py and tarextract.py on hand-made trees (escapes through symlinks,
hostile tars, a racing symlink swap)."""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from dockyard import errors
from dockyard.client.api import Client
from dockyard.client.transport import parse_host
from dockyard.engine.ctrfs import ContainerFS
from dockyard.engine.tarextract import TarExtractor
from dockyard.engine.tarwrite import TarWriter
from tests.conftest import LiveDaemon, unique

pytestmark = pytest.mark.root

Manifest = list[tuple[str, int, int, int, int, str, tuple[str, ...], int]]


def client(daemon: LiveDaemon) -> Client:
    return Client(parse_host(daemon.host))


def run(daemon: LiveDaemon, *args: str) -> str:
    name = unique("cp")
    daemon.docker("run", "-d", "--name", name, *args, "busybox", "sleep", "600")
    return name


def rm(daemon: LiveDaemon, *names: str) -> None:
    daemon.docker("rm", "-f", *names, check=False)


def sh(daemon: LiveDaemon, name: str, script: str) -> str:
    return daemon.docker("exec", name, "sh", "-c", script).stdout.decode()


# -- manifests: (path, type, mode, uid, gid, link target, hardlink group, mtime) ----------------

def dir_manifest(root: Path) -> Manifest:
    entries: list[tuple[str, os.stat_result]] = []
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(top) / name
            entries.append((str(p.relative_to(root)), os.lstat(p)))
    groups: dict[tuple[int, int], list[str]] = {}
    for rel, st in entries:
        if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
            groups.setdefault((st.st_dev, st.st_ino), []).append(rel)
    out: Manifest = []
    for rel, st in entries:
        link = os.readlink(root / rel) if stat.S_ISLNK(st.st_mode) else ""
        group = tuple(sorted(groups.get((st.st_dev, st.st_ino), []))) if not stat.S_ISDIR(st.st_mode) else ()
        out.append((rel, stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, link,
                    group if len(group) > 1 else (), int(st.st_mtime)))
    return sorted(out)


def names_in(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return tf.getnames()


def member_data(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        f = tf.extractfile(name)
        assert f is not None
        return f.read()


def tar_manifest(data: bytes, top: str) -> Manifest:
    """The same manifest from an archive of ``top`` (its own entry left out)."""
    kinds = {tarfile.DIRTYPE: stat.S_IFDIR, tarfile.SYMTYPE: stat.S_IFLNK, tarfile.FIFOTYPE: stat.S_IFIFO}
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = [m for m in tf if m.name.rstrip("/") != top]
    groups: dict[str, set[str]] = {}
    for m in members:
        if m.islnk():
            g = groups.setdefault(m.linkname, {m.linkname}) | {m.name}
            for n in g:
                groups[n] = g
    by_name = {m.name: m for m in members}
    out: Manifest = []
    for m in members:
        first = by_name.get(m.linkname, m) if m.islnk() else m
        rel = m.name.rstrip("/").removeprefix(top + "/")
        group = tuple(sorted(n.removeprefix(top + "/") for n in groups.get(m.name, ())))
        out.append((rel, kinds.get(first.type, stat.S_IFREG), first.mode, first.uid, first.gid,
                    first.linkname if first.issym() else "", group, int(first.mtime)))
    return sorted(out)


def make_tree(root: Path) -> None:
    """Modes, numeric owners, set-id and sticky bits, symlinks (relative, absolute, dangling),
    hardlinks and a fifo."""
    (root / "dir750").mkdir(parents=True)
    (root / "dir750/file640").write_text("some data\n")
    (root / "dir750/setuid").write_bytes(b"\x7fELF-not-really")
    (root / "sticky").mkdir()
    (root / "empty").mkdir()
    (root / "hard1").write_text("linked\n")
    os.link(root / "hard1", root / "dir750/hard2")
    os.symlink("dir750/file640", root / "link_rel")
    os.symlink("/etc/passwd", root / "link_abs")
    os.symlink("nowhere", root / "dangling")
    os.mkfifo(root / "fifo", 0o600)
    owners = {"dir750": (1234, 567), "dir750/file640": (1234, 567), "dir750/setuid": (0, 0),
              "sticky": (0, 0), "empty": (4321, 4321), "hard1": (65534, 65534), "link_rel": (1234, 567),
              "link_abs": (0, 0), "dangling": (7, 8), "fifo": (99, 98)}
    modes = {"dir750": 0o750, "dir750/file640": 0o640, "dir750/setuid": 0o4755, "sticky": 0o1777,
             "empty": 0o700, "hard1": 0o600, "fifo": 0o620}
    for rel, (uid, gid) in owners.items():
        os.chown(root / rel, uid, gid, follow_symlinks=False)
    for rel, mode in modes.items():
        os.chmod(root / rel, mode)
    for i, rel in enumerate(sorted(owners, key=len, reverse=True)):
        os.utime(root / rel, (1_600_000_000 + i, 1_600_000_000 + i), follow_symlinks=False)


def without_owners(m: Manifest) -> Manifest:
    return [(p, t, mode, 0, 0, link, g, mt) for p, t, mode, _, _, link, g, mt in m]


# -- docker cp ----------------------------------------------------------------------------------

@pytest.mark.parametrize("state", ["running", "created", "exited"])
def test_docker_cp_round_trip(daemon: LiveDaemon, tmp_path: Path, state: str) -> None:
    src = tmp_path / "tree"
    make_tree(src)
    name = unique("cp")
    if state == "running":
        daemon.docker("run", "-d", "--name", name, "busybox", "sleep", "600")
    else:
        daemon.docker("create", "--name", name, "busybox", "true")
        if state == "exited":
            daemon.docker("start", "-a", name)
    try:
        daemon.docker("cp", "-a", str(src), f"{name}:/tmp/")
        raw = daemon.docker("cp", f"{name}:/tmp/tree", "-").stdout
        assert tar_manifest(raw, "tree") == dir_manifest(src)  # owners, modes, links, hardlinks kept
        back = tmp_path / "back"
        daemon.docker("cp", f"{name}:/tmp/tree", str(back))
        assert without_owners(dir_manifest(back)) == without_owners(dir_manifest(src))
        if state == "running":
            assert "some data" in sh(daemon, name, "cat /tmp/tree/dir750/file640")
    finally:
        rm(daemon, name)


def test_docker_cp_path_rules(daemon: LiveDaemon, tmp_path: Path) -> None:
    name = run(daemon)
    try:
        sh(daemon, name, "mkdir -p /d/sub && echo a > /d/a && echo b > /d/sub/b && ln -s /d /dl")
        daemon.docker("cp", f"{name}:/d/.", str(tmp_path / "contents"))       # "/." copies the contents
        assert sorted(os.listdir(tmp_path / "contents")) == ["a", "sub"]
        daemon.docker("cp", f"{name}:/dl", str(tmp_path / "link"))            # a last link: not followed
        assert os.readlink(tmp_path / "link") == "/d"
        daemon.docker("cp", f"{name}:/dl/", str(tmp_path / "followed"))       # "/": followed
        assert sorted(os.listdir(tmp_path / "followed")) == ["a", "sub"]
        daemon.docker("cp", "-L", f"{name}:/dl", str(tmp_path / "dashL"))
        assert (tmp_path / "dashL/sub/b").read_text() == "b\n"
        (tmp_path / "f").write_text("file")
        daemon.docker("cp", str(tmp_path / "f"), f"{name}:/d/renamed")        # a file to a new name
        assert sh(daemon, name, "cat /d/renamed") == "file"
        res = daemon.docker("cp", str(tmp_path / "f"), f"{name}:/d/sub/nodir/", check=False)
        assert res.returncode != 0
        (tmp_path / "sub").write_text("not a dir")
        res = daemon.docker("cp", str(tmp_path / "sub"), f"{name}:/d/", check=False)
        assert 'cannot overwrite directory "/d/sub" with non-directory "/d"' in res.stderr.decode()
        tar = daemon.docker("cp", f"{name}:/d/a", "-").stdout
        daemon.docker("cp", "-", f"{name}:/d/sub/", input=tar)               # "-": a tar on stdin
        assert sh(daemon, name, "cat /d/sub/a") == "a\n"
        daemon.docker("cp", str(tmp_path / "contents"), f"{name}:/d/newdir")  # a directory, new name
        assert sorted(sh(daemon, name, "ls /d/newdir").split()) == ["a", "sub"]
        events = daemon.docker("events", "--since", "0", "--until", str(int(time.time()) + 1), "--filter",
                               f"container={name}", "--format", "{{.Action}}").stdout.decode().split()
        assert "archive-path" in events and "extract-to-dir" in events
    finally:
        rm(daemon, name)


def test_cp_ownership_follows_docker(daemon: LiveDaemon, tmp_path: Path) -> None:
    """dockerd's actual semantics: without -a the tar's owner stays; -a gives everything to the
    container's user (moby's tarCopyOptions), here a numeric one not in /etc/passwd."""
    f = tmp_path / "owned"
    f.write_text("x")
    os.chown(f, 4321, 4322)
    name = run(daemon, "--user", "1000:1001")
    try:
        daemon.docker("cp", str(f), f"{name}:/tmp/plain")
        daemon.docker("cp", "-a", str(f), f"{name}:/tmp/archived")
        assert sh(daemon, name, "stat -c '%u:%g' /tmp/plain /tmp/archived").split() == ["4321:4322", "1000:1001"]
    finally:
        rm(daemon, name)


# -- dockyard cp extensions -------------------------------------------------------------------

def test_dockyard_cp_several_sources_and_globs(daemon: LiveDaemon, tmp_path: Path) -> None:
    name = run(daemon)
    try:
        sh(daemon, name, "mkdir -p /srv/sub && for f in a.txt b.txt c.log .hidden.log sub/d.log; do "
                         "echo $f > /srv/$f; done")
        out = tmp_path / "out"
        out.mkdir()
        daemon.cli("cp", f"{name}:/srv/a.txt", f"{name}:/srv/b.txt", str(out) + "/")
        assert sorted(os.listdir(out)) == ["a.txt", "b.txt"]
        logs = tmp_path / "logs"
        logs.mkdir()
        daemon.cli("cp", f"{name}:/srv/*.log", str(logs))
        assert sorted(os.listdir(logs)) == ["c.log"]      # no hidden file, nothing from sub/
        daemon.cli("cp", f"{name}:/srv/s*", f"{name}:/srv/.h*", str(logs))
        assert (logs / "sub/d.log").read_text() == "sub/d.log\n"
        assert (logs / ".hidden.log").exists()
        streamed = daemon.cli("cp", f"{name}:/srv/[ab].txt", "-").stdout
        assert sorted(names_in(streamed)) == ["a.txt", "b.txt"]
        res = daemon.cli("cp", f"{name}:/srv/*.none", str(logs), check=False)
        assert res.returncode != 0 and b"Could not find the file /srv/*.none" in res.stderr
        res = daemon.cli("cp", f"{name}:/srv/a.txt", f"{name}:/srv/b.txt", str(tmp_path / "missing"), check=False)
        assert res.returncode != 0 and b"must be a directory" in res.stderr
        (tmp_path / "x1").write_text("1")
        (tmp_path / "x2").write_text("2")
        daemon.cli("cp", str(tmp_path / "x1"), str(tmp_path / "x2"), f"{name}:/srv/sub")
        assert sh(daemon, name, "cat /srv/sub/x1 /srv/sub/x2") == "12"
        res = daemon.cli("cp", str(tmp_path / "x1"), str(tmp_path / "x2"), f"{name}:/srv/a.txt", check=False)
        assert res.returncode != 0 and b"must be a directory" in res.stderr
    finally:
        rm(daemon, name)


def test_dockyard_cp_single_matches_docker(daemon: LiveDaemon, tmp_path: Path) -> None:
    src = tmp_path / "tree"
    make_tree(src)
    name = unique("cp")
    daemon.docker("create", "--name", name, "busybox", "true")
    try:
        daemon.cli("cp", "-a", str(src), f"{name}:/tmp/")
        raw = daemon.cli("cp", f"{name}:/tmp/tree", "-").stdout
        assert tar_manifest(raw, "tree") == dir_manifest(src)
        daemon.cli("cp", f"{name}:/tmp/tree", str(tmp_path / "back"))
        assert without_owners(dir_manifest(tmp_path / "back")) == without_owners(dir_manifest(src))
        (tmp_path / "there").mkdir()
        daemon.cli("cp", f"{name}:/tmp/tree/.", str(tmp_path / "there"))
        assert sorted(os.listdir(tmp_path / "there")) == sorted(os.listdir(src))
    finally:
        rm(daemon, name)


# -- the API ----------------------------------------------------------------------------------

def test_head_stat_header(daemon: LiveDaemon) -> None:
    name = run(daemon)
    c = client(daemon)
    try:
        sh(daemon, name, "mkdir /sd && chmod 1750 /sd && printf 12345 > /sd/f && ln -s f /sd/l && ln -s /sd /dl")
        d = c.stat_path(name, "/sd")
        assert d["name"] == "sd" and d["mode"] == (1 << 31) | (1 << 20) | 0o750 and d["linkTarget"] == ""
        f = c.stat_path(name, "/sd/f")
        assert (f["name"], f["size"], f["mode"]) == ("f", 5, 0o644)
        seconds = f["mtime"].removesuffix("Z").split(".")[0]
        mtime = datetime.fromisoformat(seconds + "+00:00").timestamp()
        assert abs(mtime - float(sh(daemon, name, "stat -c %Y /sd/f"))) < 2
        link = c.stat_path(name, "/sd/l")
        assert link["mode"] == (1 << 27) | 0o777 and link["linkTarget"] == "/sd/f"
        assert c.stat_path(name, "/dl")["linkTarget"] == "/sd"
        assert c.stat_path(name, "/dl/") == {**d, "name": "dl"}             # a trailing "/" follows
        with pytest.raises(errors.InvalidArgument):
            c.stat_path(name, "/sd/l/")                                    # … and a file is no dir
        raw = daemon.docker("container", "cp", f"{name}:/sd/f", "-").stdout
        assert names_in(raw) == ["f"]
        stat_hdr, resp = c.get_archive(name, "/")
        names = names_in(resp.read())
        assert stat_hdr["name"] == "/" and "/sd/f" in names                # moby names the root "/"
        conn = http.client.HTTPConnection("localhost")
        conn.sock = socket.socket(socket.AF_UNIX)
        conn.sock.connect(str(daemon.sock))
        conn.request("HEAD", f"/v1.45/containers/{name}/archive?path=/sd/f")
        header = conn.getresponse().getheader("X-Docker-Container-Path-Stat") or ""
        conn.close()
        assert list(json.loads(base64.b64decode(header))) == ["name", "size", "mode", "mtime", "linkTarget"]
    finally:
        rm(daemon, name)


def test_missing_path_and_bad_requests(daemon: LiveDaemon) -> None:
    name = run(daemon)
    c = client(daemon)
    try:
        with pytest.raises(errors.NotFound) as info:
            c.get_archive(name, "/nope/x")
        assert str(info.value) == f"Could not find the file /nope/x in container {name}"
        with pytest.raises(errors.NotFound):
            c.stat_path(name, "/nope")
        with pytest.raises(errors.InvalidArgument):
            c.get_archive(name, "")
        with pytest.raises(errors.InvalidArgument) as bad:
            c.put_archive(name, "/etc/passwd", b"")
        assert str(bad.value) == "extraction point is not a directory"
        res = daemon.docker("cp", f"{name}:/nope", "/tmp/", check=False)
        assert res.returncode != 0 and f"Could not find the file /nope in container {name}" in res.stderr.decode()
        with pytest.raises(errors.InvalidArgument) as esc:
            c.put_archive(name, "/tmp", _tar(("../../evil", b"x")))
        assert "is outside of" in str(esc.value)
    finally:
        rm(daemon, name)


def test_read_only_rootfs_and_mounts(daemon: LiveDaemon, tmp_path: Path) -> None:
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    (rw / "from-host").write_text("host\n")
    (tmp_path / "f").write_text("f\n")
    vol = unique("vol")
    name = unique("cp")
    daemon.docker("create", "--name", name, "--read-only", "-v", f"{rw}:/data", "-v", f"{ro}:/ro:ro",
                  "-v", f"{vol}:/vol", "--tmpfs", "/scratch", "busybox", "sleep", "600")
    try:
        res = daemon.docker("cp", str(tmp_path / "f"), f"{name}:/tmp/", check=False)
        assert res.returncode != 0 and "container rootfs is marked read-only" in res.stderr.decode()
        with pytest.raises(errors.InvalidArgument) as info:
            client(daemon).put_archive(name, "/tmp", _tar(("f", b"x")))
        assert getattr(info.value, "status", None) == 400   # what dockerd answers (errdefs.InvalidParameter)
        res = daemon.docker("cp", str(tmp_path / "f"), f"{name}:/ro/", check=False)
        assert "mounted volume is marked read-only" in res.stderr.decode()
        daemon.docker("cp", str(tmp_path / "f"), f"{name}:/data/")          # stopped: into the bind
        assert (rw / "f").read_text() == "f\n"
        daemon.docker("cp", str(tmp_path / "f"), f"{name}:/vol/")
        daemon.docker("start", name)
        assert sh(daemon, name, "cat /vol/f /data/f") == "f\nf\n"
        daemon.docker("cp", str(tmp_path / "f"), f"{name}:/scratch/")       # running: into its tmpfs
        assert sh(daemon, name, "cat /scratch/f") == "f\n"
        out = daemon.docker("cp", f"{name}:/data/from-host", "-").stdout
        assert member_data(out, "from-host") == b"host\n"
    finally:
        rm(daemon, name)
        daemon.docker("volume", "rm", "-f", vol, check=False)


def _tar(*entries: tuple[str, bytes | str]) -> bytes:
    """Entries: (name, bytes) a file, (name, "->target") a symlink, (name, "=>target") a hardlink."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, what in entries:
            ti = tarfile.TarInfo(name)
            if isinstance(what, str):
                ti.type = tarfile.SYMTYPE if what.startswith("->") else tarfile.LNKTYPE
                ti.linkname = what[2:]
                tf.addfile(ti)
            else:
                ti.size = len(what)
                tf.addfile(ti, io.BytesIO(what))
    return buf.getvalue()


@pytest.mark.parametrize("state", ["running", "created"])
def test_cp_into_symlinks_to_root_stays_inside(daemon: LiveDaemon, tmp_path: Path, state: str) -> None:
    tag = f"dy-archive-{uuid.uuid4().hex[:12]}"
    name = unique("cp")
    if state == "running":
        daemon.docker("run", "-d", "--name", name, "busybox", "sh", "-c",
                      "ln -s / /escape && mkdir -p /a/b && ln -s ../../ /a/b/up && sleep 600")
        sh(daemon, name, "while [ ! -L /a/b/up ]; do sleep 0.05; done")
    else:
        daemon.docker("create", "--name", name, "busybox", "true")
        (tmp_path / "prep").mkdir()
        os.symlink("/", tmp_path / "prep/escape")
        daemon.docker("cp", str(tmp_path / "prep/escape"), f"{name}:/")
        daemon.cli("cp", "-", f"{name}:/", input=_tar(("a/b/up", "->../../")))
    host_paths = [Path("/") / f"{tag}-{i}" for i in range(6)]
    try:
        for i in range(2):
            (tmp_path / f"{tag}-{i}").write_text("x")
        daemon.docker("cp", str(tmp_path / f"{tag}-0"), f"{name}:/escape")
        daemon.cli("cp", str(tmp_path / f"{tag}-1"), f"{name}:/a/b/up/")
        c = client(daemon)
        c.put_archive(name, "/escape", _tar((f"{tag}-2", b"x")))
        c.put_archive(name, "/a/b/up", _tar(("x", "->/"), (f"x/{tag}-3", b"x")))     # through a link it made
        c.put_archive(name, "/tmp", _tar((f"/{tag}-4", b"x"), ("y", "->../../../../"), (f"y/{tag}-5", b"x")))
        for p in host_paths:
            assert not p.exists(), f"{p} was written on the host"
        listing = daemon.docker("cp", f"{name}:/", "-").stdout
        names = set(names_in(listing))
        assert {f"/{tag}-{i}" for i in (0, 1, 2, 3, 5)} <= names and f"/tmp/{tag}-4" in names
    finally:
        for p in host_paths:
            if p.exists():
                p.unlink()
        rm(daemon, name)


def test_racing_symlink_swap_never_reaches_the_host(daemon: LiveDaemon, tmp_path: Path) -> None:
    """The container swaps /race/d between a directory and a link to "/" while we copy into and
    out of it: writes land inside the container, reads never see the host."""
    tag = f"dy-race-{uuid.uuid4().hex[:12]}"
    secret = Path("/tmp") / f"{tag}-secret"
    secret.mkdir()
    (secret / "host-only").write_text("secret")
    host = [d / f"{tag}-{i}" for i in range(60) for d in (Path("/"), Path("/sub"), secret, secret / "sub")]
    name = run(daemon)
    c = client(daemon)
    try:
        daemon.docker("exec", "-d", name, "sh", "-c", "mkdir /race; while :; do mkdir /race/d; rmdir /race/d; "
                      f"ln -s / /race/d; rm /race/d; ln -s {secret} /race/d; rm /race/d; done")
        landed = 0
        for i in range(60):
            try:
                c.put_archive(name, "/race/d", _tar((f"{tag}-{i}", b"x"), (f"sub/{tag}-{i}", b"y")))
                landed += 1
            except errors.DockyardError:
                pass
            try:
                _, resp = c.get_archive(name, "/race/d/")
                assert b"host-only" not in resp.read()
            except errors.DockyardError:
                pass
        assert landed > 0
        assert not [p for p in host if p.exists()], "written on the host"
        assert os.listdir(secret) == ["host-only"]
    finally:
        rm(daemon, name)
        for p in host:
            if p.exists():
                p.unlink()
        shutil.rmtree(secret)


# -- ctrfs, tarwrite and tarextract on hand-made trees ------------------------------------------

@pytest.fixture()
def rootfs(tmp_path: Path) -> Iterator[tuple[Path, ContainerFS]]:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    os.symlink("/", root / "abs")
    os.symlink("../../../..", root / "etc/up")
    (tmp_path / "vol").mkdir()
    (tmp_path / "vol/in-volume").write_text("v")
    fs = ContainerFS(os.open(root, os.O_PATH | os.O_DIRECTORY), readonly=False)
    fs.add_mount("/abs/data", os.open(tmp_path / "vol", os.O_PATH), ro=False)
    try:
        yield root, fs
    finally:
        fs.close()


def test_walk_stays_in_root(rootfs: tuple[Path, ContainerFS]) -> None:
    root, fs = rootfs
    for path in ("/abs/etc/passwd", "etc/up/etc/passwd", "/../../etc/passwd", "/abs/abs/etc/up/etc/passwd"):
        frame, _ = fs.walk(path.split("/"))
        try:
            assert frame.names == ("etc", "passwd")
            assert os.readlink(f"/proc/self/fd/{frame.fd}") == str(root / "etc/passwd")
        finally:
            os.close(frame.fd)
    frame, _ = fs.walk(["etc", "up", "data", "in-volume"])   # the mount's destination, reached by a link
    assert frame.names == ("data", "in-volume")
    os.close(frame.fd)
    assert fs.resolve_names("/etc/up/nothing/../x") == ("x",)


def test_extract_and_archive_hostile_tar(rootfs: tuple[Path, ContainerFS], tmp_path: Path) -> None:
    root, fs = rootfs
    target, _ = fs.walk(["etc", "up"])    # the link resolves to the container root
    ex = TarExtractor(fs, target, no_overwrite=False, owner=(5, 6))
    data = _tar(("l", "->/"), ("l/etc/planted", b"p"), ("/abs-name", b"a"), ("h", "=>etc/passwd"),
                ("data/through-mount", b"m"))
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tf:
            for m in tf:
                ex.entry(tf, m)
        ex.finish()
    finally:
        ex.close()
        os.close(target.fd)
    assert (root / "etc/planted").read_bytes() == b"p"
    assert (root / "abs-name").stat().st_uid == 5
    assert (root / "h").stat().st_ino == (root / "etc/passwd").stat().st_ino
    assert (tmp_path / "vol/through-mount").read_bytes() == b"m"
    assert not (root / "data").exists()
    buf = io.BytesIO()
    frame, _ = fs.walk(["abs", "data"])
    try:
        with tarfile.open(fileobj=buf, mode="w|", format=tarfile.PAX_FORMAT) as tf:
            TarWriter(fs, tf).run(frame, "data")
    finally:
        os.close(frame.fd)
    assert names_in(buf.getvalue()) == [
        "data", "data/in-volume", "data/through-mount"]


_SWAPPER = """
import os, shutil, sys
d, outside = sys.argv[1], sys.argv[2]
relative = os.path.relpath(outside, os.path.dirname(d))
while True:
    for make in (lambda: os.mkdir(d), lambda: os.symlink(outside, d), lambda: os.symlink(relative, d)):
        try:
            shutil.rmtree(d) if not os.path.islink(d) else os.unlink(d)
        except OSError:
            pass
        try:
            make()
        except OSError:
            pass
"""


def test_racing_swap_in_engine(rootfs: tuple[Path, ContainerFS], tmp_path: Path) -> None:
    """Extraction while another process swaps rootfs/race/d between a directory and links (absolute
    and relative) to the host's tmp_path/outside: nothing may appear outside the rootfs."""
    root, fs = rootfs
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "race").mkdir()
    swap = subprocess.Popen([sys.executable, "-c", _SWAPPER, str(root / "race/d"), str(outside)])
    walked, deadline = 0, time.monotonic() + 10
    try:
        while walked < 300 and time.monotonic() < deadline:  # until 300 copies ran into race/d
            try:
                target, _ = fs.walk(["race", "d"])
            except OSError:
                continue
            walked += 1
            i = walked
            ex = TarExtractor(fs, target, no_overwrite=False, owner=None)
            try:
                with tarfile.open(fileobj=io.BytesIO(_tar((f"f{i}", b"x"), (f"s/f{i}", b"y"))), mode="r|") as tf:
                    for m in tf:
                        ex.entry(tf, m)
            except (OSError, errors.DockyardError):
                pass
            finally:
                ex.close()
                os.close(target.fd)
    finally:
        swap.kill()
        swap.wait()
    assert walked == 300
    assert os.listdir(outside) == []
