"""``dockyard cp`` without a daemon: argument and path rules (docker/cli cp.go, moby's CopyInfo and
PrepareArchiveCopy), the extraction below the destination, globs and several sources."""

from __future__ import annotations

import argparse
import io
import os
import stat
import tarfile
from pathlib import Path
from typing import Any

import pytest

from dockyard import errors
from dockyard.cli import cp, cpextract

GO_DIR = 1 << 31


def tar_of(*entries: tarfile.TarInfo | tuple[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for e in entries:
            if isinstance(e, tarfile.TarInfo):
                tf.addfile(e)
            else:
                ti = tarfile.TarInfo(e[0])
                ti.size, ti.mode, ti.mtime = len(e[1]), 0o640, 1_500_000_000
                tf.addfile(ti, io.BytesIO(e[1]))
    return buf.getvalue()


def info(name: str, kind: bytes, link: str = "", mode: int = 0o755) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname, ti.mode, ti.mtime = kind, link, mode, 1_400_000_000
    return ti


def extract(dest: Path, data: bytes, rename: Any = lambda n: n) -> None:
    ex = cpextract.Extractor(str(dest), rename)
    try:
        ex.run(io.BytesIO(data))
    finally:
        ex.close()


# -- paths ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("arg", "want"), [
    ("c:/x", ("c", "/x")), ("c:x/y", ("c", "x/y")), ("/abs:x", ("", "/abs:x")), ("./a:b", ("", "./a:b")),
    ("file", ("", "file")), ("-", ("", "-")), ("c:", ("c", "")), ("c:/a:b", ("c", "/a:b")),
])
def test_split_cp_arg(arg: str, want: tuple[str, str]) -> None:
    assert cp.split_cp_arg(arg) == want


def test_go_path_helpers() -> None:
    assert [cp.clean(p) for p in ("", "//a//b/", "a/../..", "/a/./b/..")] == [".", "/a/b", "..", "/a"]
    assert [cp.base(p) for p in ("", "/", "/a/b/", "a/.", "x")] == [".", "/", "b", ".", "x"]
    assert cp.preserve("/a/b", "a/b/.") == "/a/b/."
    assert cp.preserve("/a/b", "a/b/") == "/a/b/"
    assert cp.preserve("/", "/") == "/"
    assert cp.split_dir_entry("/a/b/.") == ("/a/b", ".")
    assert cp.split_dir_entry("/a/b/") == ("/a", "b")
    assert cp.split_dir_entry("/") == ("/", "/")
    assert cp.split_dir_entry("rel") == (".", "rel")


def test_rebase_name_and_rebase() -> None:
    assert cp.rebase_name("/c/link/", "/c/target") == ("/c/target/", "link")
    assert cp.rebase_name("/c/link/.", "/c/target") == ("/c/target/.", "")
    assert cp.rebase_name("/c/same", "/d/same") == ("/d/same", "")
    assert cp.rebase("dir/x", "dir", "new") == "new/x"
    assert cp.rebase("dir", "dir", "new") == "new"
    assert cp.rebase("./x", ".", "out") == "out/x"
    assert cp.rebase("/etc/passwd", "/", "root") == "root/etc/passwd"   # the root's names start with "/"
    assert cp.rebase("dirx/y", "dir", "new") == "dirx/y"


def test_prepare_copy() -> None:
    assert cp.prepare_copy("f", False, "/d", True, True) == ("/d", None)          # into a directory
    assert cp.prepare_copy("f", False, "/d/g", True, False) == ("/d", "g")        # over a file
    assert cp.prepare_copy("f", False, "/d/new", False, False) == ("/d", "new")   # a new name
    assert cp.prepare_copy("src", True, "/d/new", False, False) == ("/d", "new")  # a new directory
    with pytest.raises(errors.InvalidArgument, match="cannot copy directory"):
        cp.prepare_copy("src", True, "/d/g", True, False)
    with pytest.raises(errors.InvalidArgument, match="no such directory"):
        cp.prepare_copy("f", False, "/d/new/", False, False)


def test_sizes_and_summary() -> None:
    assert [cp.human_size(n) for n in (0, 999, 1234, 1_000_000, 10_240)] == ["0B", "999B", "1.23kB", "1MB", "10.2kB"]
    assert cp.summary(5, 5, "/x") == "Successfully copied 5B to /x\n"
    assert cp.summary(5, 2048, "c:/x") == "Successfully copied 5B (transferred 2.05kB) to c:/x\n"


def test_local_destination(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("f")
    os.symlink("dir", tmp_path / "l1")
    os.symlink(str(tmp_path / "l1"), tmp_path / "l2")
    assert cp.local_dest(str(tmp_path / "l2")) == (str(tmp_path / "dir"), True, True)
    assert cp.local_dest(str(tmp_path / "new")) == (str(tmp_path / "new"), False, False)
    with pytest.raises(FileNotFoundError):
        cp.local_dest(str(tmp_path / "nope/new"))
    with pytest.raises(NotADirectoryError):                     # cmd_cp reports "…: not a directory"
        cp.local_dest(str(tmp_path / "file/new"))
    with pytest.raises(errors.InvalidArgument, match="does not exist"):
        cp.validate_output(str(tmp_path / "nope/x"))
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(errors.InvalidArgument, match="must be a directory or a regular file"):
        cp.validate_output(str(tmp_path / "fifo"))


# -- extraction -------------------------------------------------------------------------------

def test_extract_keeps_modes_links_and_times(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    dest.mkdir()
    extract(dest, tar_of(info("top/", tarfile.DIRTYPE, mode=0o750), ("top/f", b"data"),
                         info("top/l", tarfile.SYMTYPE, "f"), info("top/h", tarfile.LNKTYPE, "top/f"),
                         info("top/p", tarfile.FIFOTYPE, mode=0o640), info("top/dev", tarfile.CHRTYPE)))
    top = dest / "top"
    assert stat.S_IMODE(top.stat().st_mode) == 0o750 and int(top.stat().st_mtime) == 1_400_000_000
    assert (top / "f").read_bytes() == b"data" and stat.S_IMODE((top / "f").stat().st_mode) == 0o640
    assert os.readlink(top / "l") == "f"
    assert (top / "h").stat().st_ino == (top / "f").stat().st_ino
    assert stat.S_ISFIFO((top / "p").lstat().st_mode) and stat.S_IMODE((top / "p").lstat().st_mode) == 0o640
    assert not (top / "dev").exists()                                   # device nodes are skipped


def test_extract_never_leaves_the_destination(tmp_path: Path) -> None:
    dest, outside = tmp_path / "d", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    with pytest.raises(errors.InvalidArgument, match="is outside of"):
        extract(dest, tar_of(("../escape", b"x")))
    extract(dest, tar_of(("/abs/name", b"x")))                          # absolute: below dest
    assert (dest / "abs/name").exists()
    with pytest.raises(errors.InvalidArgument, match="not followed"):
        extract(dest, tar_of(info("l", tarfile.SYMTYPE, str(outside)), ("l/pwned", b"x")))
    os.symlink("../outside", dest / "mine")                             # one already there: neither
    with pytest.raises(errors.InvalidArgument, match="not followed"):
        extract(dest, tar_of(("mine/pwned", b"x")))
    with pytest.raises(errors.InvalidArgument, match="is outside of"):
        extract(dest, tar_of(info("h", tarfile.LNKTYPE, "../outside/x")))
    (dest / "l2").mkdir()
    extract(dest, tar_of(info("l2", tarfile.DIRTYPE)))                  # a directory merges
    assert os.listdir(outside) == []


def test_extract_refuses_to_replace_a_directory(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    with pytest.raises(errors.InvalidArgument) as exc:
        extract(tmp_path, tar_of(("sub", b"file")))
    assert str(exc.value) == f'cannot overwrite directory "{tmp_path}/sub" with non-directory "{tmp_path}"'
    (tmp_path / "f").write_text("old")
    extract(tmp_path, tar_of(("f", b"new")))                            # a file replaces a file
    assert (tmp_path / "f").read_text() == "new"


def test_glob_filter() -> None:
    rename = cp._matches("*.log")
    assert [rename(n) for n in ("./", "./a.log", "./a.log/x", "./.h.log", "./sub/b.log", "./b.txt")] == [
        None, "a.log", "a.log/x", None, None, None]
    assert cp._matches(".h*")("./.h.log") == ".h.log"
    assert cp._glob_parts("/var/log/*.log") == ("/var/log", "*.log")
    assert cp._glob_parts("/var/log/x.log") is None


# -- whole commands against a fake client -------------------------------------------------------

class FakeResponse:
    def __init__(self, data: bytes) -> None:
        self.body = io.BytesIO(data)
        self.body.read1 = self.body.read  # type: ignore[method-assign]

    def close(self) -> None:
        pass


class FakeClient:
    """A container with /d (a directory holding file f) and /f (a file)."""

    def __init__(self) -> None:
        self.puts: list[tuple[str, str, list[str], bool]] = []
        self.gets: list[str] = []

    def stat_path(self, ctr: str, path: str) -> dict[str, Any]:
        p = cp.clean("/" + path)
        if p == "/d":
            return {"name": "d", "size": 0, "mode": GO_DIR | 0o755, "linkTarget": ""}
        if p == "/f":
            return {"name": "f", "size": 3, "mode": 0o644, "linkTarget": ""}
        if p == "/dl":
            return {"name": "dl", "size": 2, "mode": (1 << 27) | 0o777, "linkTarget": "/d"}
        raise errors.NotFound(f"Could not find the file {path} in container {ctr}")

    def get_archive(self, ctr: str, path: str) -> tuple[dict[str, Any], FakeResponse]:
        self.gets.append(path)
        st = self.stat_path(ctr, path)
        if st["mode"] & GO_DIR:
            top = "." if cp.current_dir(path) else "d"
            data = tar_of(info(top + "/", tarfile.DIRTYPE), (f"{top}/f", b"abc"), (f"{top}/g.log", b"g"))
        else:
            data = tar_of(("f", b"abc"))
        return st, FakeResponse(data)

    def put_archive(self, ctr: str, path: str, tar: Any, copy_uid_gid: bool = False, **_: Any) -> None:
        data = tar.read() if hasattr(tar, "read") else tar
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            self.puts.append((ctr, path, tf.getnames(), copy_uid_gid))


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    cp.add_cp_flags(p)
    return p.parse_args(argv)


def test_flags() -> None:
    a = parse("-a", "-L", "-q", "c:/x", "-")
    assert (a.archive, a.follow_link, a.quiet, a.paths, a.fn) == (True, True, True, ["c:/x", "-"], cp.cmd_cp)


def test_argument_errors(tmp_path: Path) -> None:
    c = FakeClient()
    for argv, text in ((["c:/x"], "at least 2"), (["", "x"], "source can not be empty"),
                       (["c:/x", ""], "destination can not be empty"),
                       (["c:/x", "c:/y"], "copying between containers is not supported"),
                       (["a", "b"], "must specify at least one container source"),
                       (["c:/d", "c:/f", str(tmp_path / "nodir")], "must be a directory"),
                       (["c:/d", "c:/f", "-"], "single source"),
                       ([str(tmp_path), str(tmp_path), "c:/f"], "must be a directory")):
        with pytest.raises(errors.InvalidArgument, match=text):
            cp.cmd_cp(c, parse(*argv))


def test_copy_from_container_rules(tmp_path: Path) -> None:
    c = FakeClient()
    cp.cmd_cp(c, parse("c:/d", str(tmp_path / "new")))                 # a directory to a new name
    assert sorted(os.listdir(tmp_path / "new")) == ["f", "g.log"]
    cp.cmd_cp(c, parse("c:/d", str(tmp_path)))                          # into an existing directory
    assert (tmp_path / "d/f").read_bytes() == b"abc"
    cp.cmd_cp(c, parse("c:/d/.", str(tmp_path / "new")))               # the contents, merged
    cp.cmd_cp(c, parse("c:/f", str(tmp_path / "renamed")))
    assert (tmp_path / "renamed").read_bytes() == b"abc"
    cp.cmd_cp(c, parse("-L", "c:/dl", str(tmp_path / "followed")))     # -L: the link's target
    assert c.gets[-1] == "/d" and (tmp_path / "followed/f").exists()
    with pytest.raises(errors.InvalidArgument, match="cannot copy directory"):
        cp.cmd_cp(c, parse("c:/d", str(tmp_path / "renamed")))
    (tmp_path / "globbed").mkdir()
    cp.cmd_cp(c, parse("c:/d/*.log", "c:/f", str(tmp_path / "globbed")))
    assert sorted(os.listdir(tmp_path / "globbed")) == ["f", "g.log"] and c.gets[-2] == "/d/."


def test_copy_to_container_rules(tmp_path: Path) -> None:
    c = FakeClient()
    src = tmp_path / "src"
    src.mkdir()
    (src / "x").write_text("x")
    cp.cmd_cp(c, parse("-a", str(src), "c:/d"))                        # into an existing directory
    assert c.puts[-1] == ("c", "/d", ["src", "src/x"], True)
    cp.cmd_cp(c, parse(str(src), "c:/d/new"))                          # a new name: rebased
    assert c.puts[-1][1:3] == ("/d", ["new", "new/x"])
    cp.cmd_cp(c, parse(str(src / "x"), "c:/f"))                        # a file over a file
    assert c.puts[-1][1:3] == ("/", ["f"])
    cp.cmd_cp(c, parse(str(src) + "/.", "c:/dl"))                      # a link to a directory, contents
    assert c.puts[-1][1:3] == ("/d", [".", "./x"])
    cp.cmd_cp(c, parse(str(src / "x"), str(src / "x"), "c:/d/"))
    assert len(c.puts) == 6
