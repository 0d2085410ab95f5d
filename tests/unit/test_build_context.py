""".dockerignore rules, the client's context tar, the daemon's context unpacking (hostile tars
included), and COPY/ADD's copy rules — all on plain directories, no root needed except chown."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from dockyard.build.context import context_from_tar
from dockyard.build.copy import checksum, copy_into, parse_chmod, resolve_chown, resolve_in, resolve_sources
from dockyard.build.trees import DirTree
from dockyard.client.buildcontext import tar_context
from dockyard.dockerignore import Matcher, read_patterns
from dockyard.errors import InvalidArgument, NotFound

ROOT = os.geteuid() == 0


@pytest.mark.parametrize(("patterns", "path", "excluded"), [
    (["*.log"], "a.log", True), (["*.log"], "dir/a.log", False), (["**/*.log"], "dir/sub/a.log", True),
    (["node_modules"], "node_modules/x/y.js", True), (["/abs"], "abs/f", True),
    (["docs", "!docs/keep.md"], "docs/keep.md", False), (["docs", "!docs/keep.md"], "docs/other.md", True),
    (["!keep", "*"], "keep", True),  # the last matching pattern wins
    (["a?c"], "abc", True), (["[a-c]x"], "bx", True), (["[^a-c]x"], "dx", True),
    (["dir/**"], "dir", False), (["dir/**"], "dir/x", True), (["\\*lit"], "*lit", True),
])
def test_dockerignore_rules(patterns: list[str], path: str, excluded: bool) -> None:
    assert Matcher(read_patterns("\n".join(patterns))).excluded(path) is excluded


def test_dockerignore_reading_and_exceptions_below() -> None:
    pats = read_patterns("# comment\n\n  ./a/../b/  \n!c\n/d\n")
    assert pats == ["b", "!c", "d"]
    m = Matcher(["vendor", "!vendor/keep/**"])
    assert m.may_have_exceptions_below("vendor") and not m.may_have_exceptions_below("other")
    with pytest.raises(InvalidArgument):
        Matcher(["[unterminated"])


def _tree(base: Path) -> Path:
    ctx = base / "ctx"
    (ctx / "src" / "deep").mkdir(parents=True)
    (ctx / "src" / "a.py").write_text("a")
    (ctx / "src" / "deep" / "b.py").write_text("b")
    (ctx / "src" / "deep" / "c.log").write_text("c")
    (ctx / "secret.key").write_text("k")
    (ctx / "Dockerfile").write_text("FROM busybox\n")
    (ctx / ".dockerignore").write_text("**/*.log\n*.key\nDockerfile\n")
    return ctx


def test_client_tar_applies_dockerignore_and_keeps_dockerfile(tmp_path: Path) -> None:
    ctx = _tree(tmp_path)
    buf = io.BytesIO()
    name = tar_context(ctx, None, buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tf:
        names = sorted(tf.getnames())
        owners = {(m.uid, m.gid) for m in tf.getmembers()}
    assert name == "Dockerfile"
    assert names == [".dockerignore", "Dockerfile", "src", "src/a.py", "src/deep", "src/deep/b.py"]
    assert owners == {(0, 0)}


def test_client_tar_with_dockerfile_outside(tmp_path: Path) -> None:
    ctx = _tree(tmp_path)
    outside = tmp_path / "elsewhere.Dockerfile"
    outside.write_text("FROM scratch\n")
    buf = io.BytesIO()
    name = tar_context(ctx, str(outside), buf)
    assert name.startswith(".dockerfile.")
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tf:
        f = tf.extractfile(name)
        assert f is not None and f.read() == b"FROM scratch\n"


def test_daemon_context_applies_dockerignore_and_finds_dockerfile(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for path in sorted(_tree(tmp_path).rglob("*")):
            tf.add(path, arcname=str(path.relative_to(tmp_path / "ctx")), recursive=False)
    buf.seek(0)
    ctx = context_from_tar(buf, tmp_path / "work")
    try:
        assert ctx.dockerfile_text == "FROM busybox\n"
        assert sorted(ctx.tree.walk()) == [".dockerignore", "src", "src/a.py", "src/deep", "src/deep/b.py"]
        with ctx.tree.open("src/deep/b.py") as f:
            assert f.read() == b"b"
        unpacked = ctx.tree.path("")  # a real directory only when asked (RUN --mount=type=bind)
        assert sorted(str(p.relative_to(unpacked)) for p in unpacked.rglob("*")) == sorted(ctx.tree.walk())
    finally:
        ctx.close()
    assert list((tmp_path / "work").iterdir()) == []


def test_daemon_context_bare_dockerfile_and_missing_dockerfile(tmp_path: Path) -> None:
    ctx = context_from_tar(io.BytesIO(b"FROM busybox\nRUN true\n"), tmp_path)
    assert ctx.dockerfile_text.startswith("FROM busybox") and ctx.tree.walk() == []
    ctx.close()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("other")
        tf.addfile(info, io.BytesIO(b""))
    buf.seek(0)
    with pytest.raises(InvalidArgument, match="Cannot locate specified Dockerfile: Dockerfile"):
        context_from_tar(buf, tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_daemon_context_refuses_escapes(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        link = tarfile.TarInfo("evil")
        link.type, link.linkname = tarfile.SYMTYPE, "/"
        tf.addfile(link)
        data = b"pwned"
        info = tarfile.TarInfo("evil/tmp/pwned-by-context")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    buf.seek(0)
    with pytest.raises(InvalidArgument, match="goes through a symlink"):
        context_from_tar(buf, tmp_path / "w")
    assert not Path("/tmp/pwned-by-context").exists()
    assert list((tmp_path / "w").iterdir()) == []
    for name in ("../up", "/abs"):
        bad = io.BytesIO()
        with tarfile.open(fileobj=bad, mode="w") as tf:
            tf.addfile(tarfile.TarInfo(name), io.BytesIO(b""))
        bad.seek(0)
        with pytest.raises(InvalidArgument, match="outside the context"):
            context_from_tar(bad, tmp_path / "w")


def test_resolve_sources_globs_and_clamping(tmp_path: Path) -> None:
    ctx = _tree(tmp_path)
    assert resolve_sources(DirTree(ctx), ["src/*.py"]) == ["src/a.py"]
    assert resolve_sources(DirTree(ctx), ["src/*/b.py", "../../secret.key"]) == ["src/deep/b.py", "secret.key"]
    assert resolve_sources(DirTree(ctx), ["."]) == [""]
    assert resolve_sources(DirTree(ctx), ["src/deep/*"], ["*.log"]) == ["src/deep/b.py"]
    with pytest.raises(NotFound, match=r'"/missing.txt": not found'):
        resolve_sources(DirTree(ctx), ["missing.txt"])
    with pytest.raises(NotFound):
        resolve_sources(DirTree(ctx), ["*.nothing"])


def test_resolve_in_keeps_symlinks_inside(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "link").symlink_to("/etc")
    (root / "up").symlink_to("../../../..")
    assert resolve_in(root, "link/passwd") == root / "etc" / "passwd"
    assert resolve_in(root, "up/etc") == root / "etc"


def test_checksum_sees_content_not_mtime(tmp_path: Path) -> None:
    ctx = _tree(tmp_path)
    first = checksum(DirTree(ctx), ["src"])
    os.utime(ctx / "src" / "a.py", (1, 1))
    assert checksum(DirTree(ctx), ["src"]) == first
    (ctx / "src" / "a.py").write_text("A")
    assert checksum(DirTree(ctx), ["src"]) != first
    os.chmod(ctx / "src" / "a.py", 0o600)
    assert checksum(DirTree(ctx), ["src"]) != checksum(DirTree(ctx), ["src/deep"])


def test_copy_rules(tmp_path: Path) -> None:
    ctx = _tree(tmp_path)
    dest = tmp_path / "rootfs"
    (dest / "app").mkdir(parents=True)
    (dest / "escape").symlink_to("/")
    copy_into(DirTree(ctx), ["src"], dest, "/app/", "/", chown=None, chmod=None, is_add=False, dest_is_dir_hint=False)
    assert (dest / "app" / "a.py").read_text() == "a" and (dest / "app" / "deep" / "b.py").exists()
    copy_into(DirTree(ctx), ["src/a.py"], dest, "renamed.py", "/app", chown=None, chmod=0o640, is_add=False,
              dest_is_dir_hint=False)
    assert (dest / "app" / "renamed.py").read_text() == "a"
    assert (dest / "app" / "renamed.py").stat().st_mode & 0o777 == 0o640
    copy_into(DirTree(ctx), ["src/a.py"], dest, "/escape/tmp/", "/", chown=None, chmod=None, is_add=False,
              dest_is_dir_hint=False)
    assert (dest / "tmp" / "a.py").exists()  # through the rootfs's own "/"
    with pytest.raises(InvalidArgument, match="must be a directory and end with a /"):
        copy_into(DirTree(ctx), ["src/a.py", "secret.key"], dest, "/one", "/", chown=None, chmod=None, is_add=False,
                  dest_is_dir_hint=False)


def test_add_extracts_local_archives(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    with tarfile.open(ctx / "pkg.tar.gz", "w:gz") as tf:
        info = tarfile.TarInfo("inner/file.txt")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"hi"))
    dest = tmp_path / "rootfs"
    dest.mkdir()
    copy_into(DirTree(ctx), ["pkg.tar.gz"], dest, "/opt/", "/", chown=None, chmod=None, is_add=True, dest_is_dir_hint=False)
    assert (dest / "opt" / "inner" / "file.txt").read_text() == "hi"
    copy_into(DirTree(ctx), ["pkg.tar.gz"], dest, "/copied/", "/", chown=None, chmod=None, is_add=False,
              dest_is_dir_hint=False)
    assert (dest / "copied" / "pkg.tar.gz").exists()  # COPY never extracts


def test_chown_names_from_the_rootfs(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\nstaff:x:50:\n")
    assert resolve_chown("app", root) == (1000, 1001)
    assert resolve_chown("app:staff", root) == (1000, 50)
    assert resolve_chown("42", root) == (42, 42)
    assert resolve_chown("42:7", root) == (42, 7)
    with pytest.raises(InvalidArgument, match="unable to find user nobody"):
        resolve_chown("nobody", root)
    with pytest.raises(InvalidArgument, match="invalid chmod"):
        parse_chmod("u+x")
    if ROOT:
        ctx = tmp_path / "ctx"
        ctx.mkdir()
        (ctx / "f").write_text("x")
        copy_into(DirTree(ctx), ["f"], root, "/home/app/", "/", chown=(1000, 1001), chmod=None, is_add=False,
                  dest_is_dir_hint=False)
        st = (root / "home" / "app" / "f").stat()
        assert (st.st_uid, st.st_gid) == (1000, 1001)


def test_stream_indexer_matches_file_index(tmp_path: Path) -> None:
    from dockyard.build.context import StreamIndexer, context_from_file
    buf = io.BytesIO()
    tar_context(_tree(tmp_path), None, buf)
    data = buf.getvalue()
    body = tmp_path / "body.tar"
    indexer = StreamIndexer(body, tmp_path)
    with open(body, "wb") as out:
        for i in range(0, len(data), 700):  # chunks that do not line up with tar blocks
            out.write(data[i:i + 700])
            indexer.feed(data[i:i + 700])
    tree = indexer.result()
    assert tree is not None
    ctx = context_from_file(body, tmp_path, "Dockerfile", tree)
    assert sorted(ctx.tree.walk()) == [".dockerignore", "src", "src/a.py", "src/deep", "src/deep/b.py"]
    with ctx.tree.open("src/a.py") as f:
        assert f.read() == b"a"
    ctx.close()
    import gzip
    other = StreamIndexer(tmp_path / "gz.tar", tmp_path)
    other.feed(gzip.compress(data))
    assert other.result() is None  # compressed: indexed from the file afterwards instead


def _odd_tree(base: Path) -> Path:
    """Entries ``tarfile`` must help with (long and non-ASCII names) next to plain ones, and a file
    big enough to go by sendfile."""
    from dockyard.client.buildcontext import BIG
    ctx = _tree(base)
    long_dir = ctx / ("d" * 60) / ("e" * 60)
    long_dir.mkdir(parents=True)
    (long_dir / "long-name.txt").write_text("long")
    (ctx / "café.txt").write_text("accent")
    (ctx / "link").symlink_to("src/a.py")
    (ctx / "big.bin").write_bytes(os.urandom(BIG + 4321))
    (ctx / "empty").write_bytes(b"")
    (ctx / "block").write_bytes(b"x" * 512)  # data that ends on a block boundary needs no padding
    return ctx


def test_client_tar_headers_are_tarfiles_own(tmp_path: Path) -> None:
    from dockyard.client.buildcontext import _header
    cases = [("a/b.txt", tarfile.REGTYPE, 123, ""), ("d/", tarfile.DIRTYPE, 0, ""),
             ("l", tarfile.SYMTYPE, 0, "../x"), ("n" * 150, tarfile.REGTYPE, 1, ""),
             ("ü.txt", tarfile.REGTYPE, 2, ""), ("big", tarfile.REGTYPE, 8 ** 11 + 1, "")]
    for name, kind, size, link in cases:
        ti = tarfile.TarInfo(name)
        ti.type, ti.size, ti.mode, ti.mtime, ti.linkname = kind, size, 0o755, 1_700_000_000, link
        assert _header(name, 0o100755, size, 1_700_000_000, kind, link) == \
            ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"), name


def test_client_tar_planned_size_and_content(tmp_path: Path) -> None:
    from dockyard.client.buildcontext import ContextTar
    ctx = _odd_tree(tmp_path)
    plan = ContextTar(ctx, None)
    buf = io.BytesIO()
    plan.write(buf)
    data = buf.getvalue()
    assert len(data) == plan.size
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = {m.name: m for m in tf.getmembers()}
        long_name = f"{'d' * 60}/{'e' * 60}/long-name.txt"
        for name in (long_name, "café.txt", "big.bin", "empty", "block"):
            f = tf.extractfile(members[name])
            assert f is not None and f.read() == (ctx / name).read_bytes(), name
        assert members["link"].issym() and members["link"].linkname == "src/a.py"
        assert members[f"{'d' * 60}/{'e' * 60}"].isdir()
        assert "secret.key" not in members and "src/deep/c.log" not in members


def test_client_tar_on_a_socket_matches_the_file_form(tmp_path: Path) -> None:
    import socket
    import threading

    from dockyard.client.buildcontext import ContextTar
    ctx = _odd_tree(tmp_path)
    plan = ContextTar(ctx, None)
    written = io.BytesIO()
    plan.write(written)
    a, b = socket.socketpair()
    got = bytearray()

    def drain() -> None:
        while chunk := b.recv(1 << 16):
            got.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    with a:
        plan.send_to(a)  # big.bin goes by sendfile
    reader.join()
    b.close()
    assert bytes(got) == written.getvalue()


def test_client_tar_refuses_a_file_that_changed_size(tmp_path: Path) -> None:
    from dockyard.client.buildcontext import ContextTar
    ctx = _tree(tmp_path)
    plan = ContextTar(ctx, None)
    plan.plan()
    (ctx / "src" / "a.py").write_text("")  # shrank after the length was announced
    with pytest.raises(InvalidArgument, match=r"a\.py changed size while the build context was being sent"):
        plan.write(io.BytesIO())
    (ctx / "src" / "a.py").write_text("longer than planned")
    with pytest.raises(InvalidArgument, match="changed size"):
        plan.write(io.BytesIO())
