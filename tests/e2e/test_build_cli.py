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
    for text, line in (("ARG V=${x\nFROM busybox\n", 1), ("FROM ${img\n", 1), ("FROM busybox\nARG b=${y\n", 2)):
        (ctx / "Dockerfile").write_text(text)  # substitution errors name their line, in ARG and FROM too
        res = daemon.cli("build", str(ctx), check=False)
        assert res.returncode == 1 and f"Dockerfile:{line}: failed to process".encode() in res.stderr, res.stderr
        assert b"syntax error: missing '}'" in res.stderr
    (ctx / "Dockerfile").write_text("FROM nosuchimage-xyz\n")
    res = daemon.cli("build", str(ctx), check=False)
    assert res.returncode == 1 and b"nosuchimage-xyz" in res.stderr
    assert _state(daemon) == before


def test_context_upload_with_long_names_links_and_a_big_file(daemon: LiveDaemon, tmp_path: Path) -> None:
    """The CLI's planned tar (sent with a Content-Length, big files by sendfile, long and non-ASCII
    names through tarfile's PAX records) arrives whole: the image holds the same bytes."""
    import hashlib
    import os

    tag = unique("upload")
    ctx = tmp_path / "ctx"
    deep = ctx / ("d" * 70) / ("e" * 70)
    deep.mkdir(parents=True)
    (deep / "long.txt").write_text("long\n")
    (ctx / "café.txt").write_text("accent\n")
    (ctx / "link").symlink_to("café.txt")
    big = os.urandom(3 << 20)
    (ctx / "big.bin").write_bytes(big)
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY . /ctx/\n")
    try:
        daemon.cli("build", "-q", "-t", tag, str(ctx), timeout=120)
        out = daemon.cli("run", "--rm", tag, "sh", "-c",
                         f"md5sum /ctx/big.bin; cat /ctx/{'d' * 70}/{'e' * 70}/long.txt /ctx/link").stdout.decode()
        assert out == f"{hashlib.md5(big).hexdigest()}  /ctx/big.bin\nlong\naccent\n"
    finally:
        daemon.cli("rmi", tag, check=False)


MORE = r"""FROM scratch AS files
COPY --parents keep/a/one.txt keep/b/two.txt /tree/
COPY --exclude=*.log logs/ /logs/

FROM --platform=$BUILDPLATFORM busybox AS base
MAINTAINER someone@example.com
ONBUILD RUN echo triggered > /onbuild.txt

FROM base
COPY --from=files /tree /tree
COPY --from=files /logs /logs
COPY --link --chmod=0755 <<-EOT /usr/local/bin/hello
	#!/bin/sh
	echo "hello $1"
	EOT
COPY <<'RAW' /raw.txt
$HOME stays
RAW
RUN --mount=type=bind,source=keep,target=/ctx cat /ctx/a/one.txt > /bound.txt && test ! -e /ctx/x
RUN --network=none ip link | grep -c ': ' > /links.txt
ADD keep/b/ /added/
STOPSIGNAL 9
"""


def test_build_more_instructions(daemon: LiveDaemon, tmp_path: Path) -> None:
    tag = unique("more")
    ctx = tmp_path / "ctx"
    (ctx / "keep" / "a").mkdir(parents=True)
    (ctx / "keep" / "b").mkdir()
    (ctx / "logs").mkdir()
    (ctx / "keep" / "a" / "one.txt").write_text("one\n")
    (ctx / "keep" / "b" / "two.txt").write_text("two\n")
    (ctx / "logs" / "keep.txt").write_text("kept\n")
    (ctx / "logs" / "drop.log").write_text("dropped\n")
    (ctx / "Dockerfile").write_text(MORE)
    out = daemon.cli("build", "--progress=plain", "-t", tag, str(ctx)).stdout.decode()
    assert "# Executing 1 build trigger" in out
    try:
        info = _inspect(daemon, tag)
        assert info["Author"] == "someone@example.com" and info["Config"]["StopSignal"] == "9"
        assert info["Config"]["OnBuild"] is None  # triggers ran and are not inherited further
        files = daemon.cli("run", "--rm", tag, "sh", "-c",
                           "cat /onbuild.txt /tree/keep/a/one.txt /tree/keep/b/two.txt /logs/keep.txt "
                           "/bound.txt /raw.txt /links.txt /added/two.txt; ls /logs; hello there").stdout
        assert files.decode().split("\n") == [
            "triggered", "one", "two", "kept", "one", "$HOME stays", "1", "two", "keep.txt", "hello there", ""]
        mode = daemon.cli("run", "--rm", tag, "stat", "-c", "%a", "/usr/local/bin/hello").stdout
        assert mode == b"755\n"
    finally:
        daemon.cli("rmi", tag, check=False)


def test_builder_prune_and_system_df(daemon: LiveDaemon, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    marker = unique("prune")
    (ctx / "Dockerfile").write_text(f"FROM busybox\nRUN echo {marker} > /m && head -c 100000 /dev/zero > /z\n")
    image = daemon.cli("build", "-q", str(ctx)).stdout.decode().strip()
    df = daemon.cli("system", "df").stdout.decode()
    assert df.splitlines()[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert any(line.startswith("Build Cache") for line in df.splitlines())
    # docker's `df -v` table has no DESCRIPTION column; a template reaches the descriptions
    described = ("system", "df", "-v", "--format", "{{range .BuildCache}}{{.Description}};{{end}}")
    verbose = daemon.cli(*described).stdout.decode()
    assert marker in verbose  # the RUN step's cache entry, described
    daemon.cli("rmi", image)
    res = daemon.cli("builder", "prune", "-f").stdout.decode()
    assert "Total reclaimed space:" in res and "Deleted build cache objects:" in res
    assert marker not in daemon.cli(*described).stdout.decode()
    again = daemon.cli("build", "--progress=plain", str(ctx)).stdout.decode()
    assert "Using cache" not in again  # the cache really went
    daemon.cli("rmi", again.strip().split()[-1], check=False)


def test_cancelled_build_cleans_up(daemon: LiveDaemon, tmp_path: Path) -> None:
    import subprocess
    import time

    from tests.conftest import BIN
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    marker = unique("slow")
    (ctx / "Dockerfile").write_text(f"FROM busybox\nRUN echo {marker} && sleep 60\n")
    before = _state(daemon)
    proc = subprocess.Popen([str(BIN / "dockyard"), "-H", daemon.host, "build", "--progress=plain", str(ctx)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    for line in proc.stdout:
        if marker.encode() in line and b"RUN" not in line:
            break  # the RUN container is running
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _state(daemon) != before:
        time.sleep(0.2)
    assert _state(daemon) == before


def test_add_url_over_loopback_and_refused_without_network(daemon: LiveDaemon, tmp_path: Path) -> None:
    import http.server
    import threading

    served = tmp_path / "served"
    served.mkdir()
    (served / "payload.txt").write_text("fetched over loopback\n")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*a, directory=str(served), **kw)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/payload.txt"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM busybox\nADD {url} /srv/\n")
    tag = unique("addurl")
    try:
        daemon.cli("build", "-t", tag, str(ctx))
        out = daemon.cli("run", "--rm", tag, "sh", "-c", "cat /srv/payload.txt; stat -c %a /srv/payload.txt")
        assert out.stdout == b"fetched over loopback\n600\n"
        res = daemon.cli("build", "--network", "none", str(ctx), check=False)
        assert res.returncode == 1 and b"no network" in res.stderr
    finally:
        server.shutdown()
        daemon.cli("rmi", tag, check=False)


def test_cache_from_an_image(daemon: LiveDaemon, tmp_path: Path) -> None:
    """With the build cache gone, ``--cache-from IMAGE`` reuses that image's layers and rebuilds
    the byte-identical image (a RUN that would write something else is not re-run)."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nENV A=1\nRUN date +%N > /stamp\nCMD [\"cat\", \"/stamp\"]\n")
    tag = unique("cachefrom")
    try:
        first = daemon.cli("build", "-q", "-t", tag, str(ctx)).stdout.decode().strip()
        stamp = daemon.cli("run", "--rm", tag).stdout
        daemon.cli("builder", "prune", "-f")
        out = daemon.cli("build", "--progress=plain", "--cache-from", tag, "-t", tag, str(ctx)).stdout.decode()
        assert out.count("Using cache") == 3 and "Running in" not in out
        assert daemon.cli("image", "inspect", "-f", "{{.Id}}", tag).stdout.decode().strip() == first
        assert daemon.cli("run", "--rm", tag).stdout == stamp
    finally:
        daemon.cli("rmi", tag, check=False)
