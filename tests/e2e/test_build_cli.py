"""Issue 3: ``dockyard build`` against a live daemon — the image config and filesystem a Dockerfile
produces, the cache, multi-stage targets, and failures that leave nothing behind."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest

from tests.conftest import LiveDaemon, unique

pytestmark = pytest.mark.root

EVERYTHING = r"""# syntax=docker/dockerfile:1
ARG BASE=busybox
FROM ${BASE} AS tools
RUN mkdir -p /out && echo built-in-tools > /out/tool.txt

FROM $BASE AS unused
RUN echo this stage is never needed && exit 7

FROM ${BASE} AS final
ARG VERSION=1.0
ARG EMPTY
ENV APP_HOME=/srv/app \
    VERSION_COPY=${VERSION} GREETING="hello world"
LABEL org.example.name="demo" org.example.version=$VERSION
WORKDIR $APP_HOME
WORKDIR sub
COPY --chown=daemon:daemon --chmod=0640 files/a.txt files/b*.txt ./
COPY files/dir/ /srv/dir/
COPY --from=tools /out/tool.txt /srv/tool.txt
ADD files/archive.tar.gz /srv/extracted/
COPY <<EOF /srv/heredoc.txt
value=${VERSION}
EOF
RUN <<SCRIPT
set -e
echo "from heredoc $VERSION" > /srv/run-heredoc.txt
SCRIPT
RUN ["/bin/sh", "-c", "echo exec-form > /srv/exec.txt"]
RUN --mount=type=cache,target=/cache echo cached >> /cache/count && cat /cache/count | wc -l > /srv/cache-lines
RUN --mount=type=tmpfs,target=/scratch touch /scratch/x && test ! -e /srv/scratch
RUN rm /srv/dir/remove-me.txt
SHELL ["/bin/sh", "-ec"]
RUN echo "shell=$0 version=$VERSION empty=[$EMPTY]" > /srv/shell.txt
USER daemon:daemon
EXPOSE 8080 53/udp
VOLUME ["/data"]
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=30s --timeout=5s --retries=2 CMD ["true"]
ONBUILD RUN echo child
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /srv/heredoc.txt"]
"""


def _context(tmp: Path, dockerfile: str) -> Path:
    ctx = tmp / "ctx"
    (ctx / "files" / "dir").mkdir(parents=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    (ctx / "files" / "a.txt").write_text("A\n")
    (ctx / "files" / "b1.txt").write_text("B1\n")
    (ctx / "files" / "b2.txt").write_text("B2\n")
    (ctx / "files" / "dir" / "keep.txt").write_text("keep\n")
    (ctx / "files" / "dir" / "remove-me.txt").write_text("gone\n")
    (ctx / "files" / "secret.key").write_text("never sent\n")
    (ctx / ".dockerignore").write_text("# comment\n**/*.key\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        data = b"inside the archive\n"
        info = tarfile.TarInfo("pkg/readme.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    (ctx / "files" / "archive.tar.gz").write_bytes(gzip.compress(buf.getvalue()))
    return ctx


def _inspect(daemon: LiveDaemon, ref: str) -> dict:
    return json.loads(daemon.cli("image", "inspect", ref).stdout)[0]


def _cat(daemon: LiveDaemon, ref: str, *paths: str) -> str:
    res = daemon.cli("run", "--rm", "--entrypoint", "/bin/cat", "-u", "0", ref, *paths)
    return res.stdout.decode()


def test_build_every_instruction(daemon: LiveDaemon, tmp_path: Path) -> None:
    tag = unique("everything")
    ctx = _context(tmp_path, EVERYTHING)
    res = daemon.cli("build", "--progress=plain", "-t", tag, "--build-arg", "VERSION=2.5",
                     "--label", "extra=yes", str(ctx), timeout=180)
    out = res.stdout.decode()
    assert "this stage is never needed" not in out  # the unused stage was skipped
    assert "Successfully tagged " + tag in out
    try:
        cfg = _inspect(daemon, tag)["Config"]
        assert cfg["WorkingDir"] == "/srv/app/sub"
        assert "APP_HOME=/srv/app" in cfg["Env"] and "VERSION_COPY=2.5" in cfg["Env"]
        assert "GREETING=hello world" in cfg["Env"]
        assert not any(e.startswith("VERSION=") for e in cfg["Env"])  # ARGs do not persist
        assert cfg["Labels"] == {"org.example.name": "demo", "org.example.version": "2.5", "extra": "yes"}
        assert cfg["User"] == "daemon:daemon"
        assert cfg["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
        assert cfg["Volumes"] == {"/data": {}}
        assert cfg["StopSignal"] == "SIGUSR1"
        assert cfg["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 30 * 10**9,
                                      "Timeout": 5 * 10**9, "Retries": 2}
        assert cfg["OnBuild"] == ["RUN echo child"]
        assert cfg["Entrypoint"] == ["/bin/sh", "-c"] and cfg["Cmd"] == ["cat /srv/heredoc.txt"]
        assert cfg["Shell"] == ["/bin/sh", "-ec"]
        # the filesystem
        assert _cat(daemon, tag, "/srv/app/sub/a.txt", "/srv/app/sub/b1.txt", "/srv/app/sub/b2.txt") == \
            "A\nB1\nB2\n"
        listing = daemon.cli("run", "--rm", "--entrypoint", "/bin/ls", tag, "-ln", "/srv/app/sub").stdout.decode()
        assert all(" 1 1 " in line and line.startswith("-rw-r-----")
                   for line in listing.splitlines()[1:]), listing  # daemon is 1:1 in busybox
        assert _cat(daemon, tag, "/srv/dir/keep.txt", "/srv/tool.txt") == "keep\nbuilt-in-tools\n"
        assert _cat(daemon, tag, "/srv/extracted/pkg/readme.txt") == "inside the archive\n"
        assert _cat(daemon, tag, "/srv/heredoc.txt", "/srv/run-heredoc.txt", "/srv/exec.txt") == \
            "value=2.5\nfrom heredoc 2.5\nexec-form\n"
        assert _cat(daemon, tag, "/srv/shell.txt") == "shell=/bin/sh version=2.5 empty=[]\n"
        gone = daemon.cli("run", "--rm", "--entrypoint", "/bin/sh", tag, "-c",
                          "test -e /srv/dir/remove-me.txt || test -e /srv/app/sub/secret.key || echo gone")
        assert gone.stdout == b"gone\n"
        assert daemon.cli("run", "--rm", tag).stdout == b"value=2.5\n"
        history = json.loads(daemon.cli("history", "--no-trunc", "--format", "{{json .}}", tag).stdout
                             .splitlines()[0])
        assert "CMD" in history["CreatedBy"]
    finally:
        daemon.cli("rmi", tag, check=False)


def test_cached_rebuild_and_change(daemon: LiveDaemon, tmp_path: Path) -> None:
    tag = unique("cache")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY a.txt /a.txt\nRUN cat /a.txt > /b.txt\n"
                                    "ENV X=1\nCMD [\"cat\", \"/b.txt\"]\n")
    (ctx / "a.txt").write_text("one\n")
    try:
        first = daemon.cli("build", "-q", "-t", tag, str(ctx)).stdout.decode().strip()
        again = daemon.cli("build", "--progress=plain", "-t", tag, str(ctx)).stdout.decode()
        assert again.count("Using cache") == 4
        assert f"Successfully built {first.split(':')[1][:12]}" in again
        (ctx / "a.txt").write_text("two\n")
        changed = daemon.cli("build", "--progress=plain", "-t", tag, str(ctx)).stdout.decode()
        assert changed.count("Using cache") == 0  # COPY changed, everything after it reruns
        assert daemon.cli("run", "--rm", tag).stdout == b"two\n"
        nocache = daemon.cli("build", "--progress=plain", "--no-cache", "-t", tag, str(ctx)).stdout.decode()
        assert "Using cache" not in nocache
    finally:
        daemon.cli("rmi", tag, check=False)


def test_target_stage(daemon: LiveDaemon, tmp_path: Path) -> None:
    tag = unique("target")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox AS one\nRUN echo one > /which\n"
                                    "FROM busybox AS two\nRUN echo two > /which && exit 3\n")
    try:
        daemon.cli("build", "--target", "one", "-t", tag, str(ctx))
        assert daemon.cli("run", "--rm", tag, "cat", "/which").stdout == b"one\n"
        bad = daemon.cli("build", "--target", "nope", str(ctx), check=False)
        assert bad.returncode != 0 and b"failed to reach build target nope" in bad.stderr
    finally:
        daemon.cli("rmi", tag, check=False)


def _state(daemon: LiveDaemon) -> tuple[set[str], set[str], str]:
    containers = set(daemon.cli("ps", "-aq", "--no-trunc").stdout.decode().split())
    images = set(daemon.cli("images", "-aq", "--no-trunc").stdout.decode().split())
    mounts = Path("/proc/self/mountinfo").read_text()
    return containers, images, "\n".join(line for line in mounts.splitlines() if str(daemon.data_root) in line)


def test_failures_leave_nothing_behind(daemon: LiveDaemon, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    before = _state(daemon)
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo about to fail && exit 3\n")
    res = daemon.cli("build", "--progress=plain", "-t", unique("fail"), str(ctx), check=False)
    assert res.returncode == 3
    assert b"about to fail" in res.stdout
    assert b"The command '/bin/sh -c echo about to fail && exit 3' returned a non-zero code: 3" in res.stderr
    (ctx / "Dockerfile").write_text("FROM busybox\n\nRUNN echo typo\n")
    res = daemon.cli("build", str(ctx), check=False)
    assert res.returncode == 1 and b"Dockerfile:3: unknown instruction: RUNN" in res.stderr
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY missing.txt /x\n")
    res = daemon.cli("build", str(ctx), check=False)
    assert res.returncode == 1 and b"missing.txt" in res.stderr and b"not found" in res.stderr
    res = daemon.cli("build", "-t", "Bad:Tag:x", str(ctx), check=False)
    assert res.returncode == 1 and b"invalid reference format" in res.stderr
    (ctx / "Dockerfile").write_text("FROM nosuchimage-xyz\n")
    res = daemon.cli("build", str(ctx), check=False)
    assert res.returncode == 1 and b"nosuchimage-xyz" in res.stderr
    assert _state(daemon) == before
