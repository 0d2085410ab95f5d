"""Typed instructions from parser nodes: flags, argument forms, Docker's error texts, the stage plan and
per-instruction word expansion (``expand``)."""

from __future__ import annotations

import pytest

from dockyard.build.dockerfile.instructions import (
    EXPANDS,
    Add,
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Instruction,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    Stopsignal,
    User,
    Volume,
    Workdir,
    expand,
    parse_instruction,
    plan,
)
from dockyard.build.dockerfile.parser import DockerfileError, parse
from dockyard.build.dockerfile.shell import Lex
from dockyard.errors import InvalidArgument


def one(line: str, name: str = "Dockerfile") -> Instruction:
    """The typed instruction of ``line`` (second line of a file whose first is FROM)."""
    return parse_instruction(parse("FROM scratch\n" + line + "\n", name).nodes[1], name)


# -- each instruction -------------------------------------------------------------------------------
def test_from_forms() -> None:
    f = parse_instruction(parse("FROM --platform=linux/arm64 alpine:3 AS Build\n").nodes[0])
    assert f == From(1, "FROM --platform=linux/arm64 alpine:3 AS Build", image="alpine:3",
                     stage_name="build", platform="linux/arm64")
    g = parse_instruction(parse("FROM busybox\n").nodes[0])
    assert isinstance(g, From) and g.stage_name is None and g.platform is None
    with pytest.raises(DockerfileError, match=r"^Dockerfile:1: FROM requires either one or three arguments$"):
        parse_instruction(parse("FROM a b\n").nodes[0])
    with pytest.raises(DockerfileError, match="invalid name for build stage"):
        parse_instruction(parse("FROM a AS 1st\n").nodes[0])
    with pytest.raises(DockerfileError, match=r"^Dockerfile:1: unknown flag: --plat$"):
        parse_instruction(parse("FROM --plat=x a\n").nodes[0])


def test_run_shell_json_mounts_and_flags() -> None:
    r = one("RUN --mount=type=cache,target=/root/.cache,sharing=locked --mount=target=/src,ro "
            "--network=none --security=insecure make all")
    assert isinstance(r, Run) and r.shell_form and r.cmd == ["make all"]
    assert r.mounts == [{"type": "cache", "target": "/root/.cache", "sharing": "locked"},
                        {"type": "bind", "target": "/src", "ro": "true"}]
    assert r.network == "none" and r.security == "insecure" and r.line == 2
    j = one('RUN ["echo", "a b"]')
    assert isinstance(j, Run) and not j.shell_form and j.cmd == ["echo", "a b"] and j.mounts == []
    s = one("RUN --mount=type=secret,id=tok,dst=/run/secrets/tok cat /run/secrets/tok")
    assert isinstance(s, Run) and s.mounts == [{"type": "secret", "id": "tok", "target": "/run/secrets/tok"}]


@pytest.mark.parametrize(("line", "problem"), [
    ("RUN --mount=type=nfs,target=/x true", "unsupported mount type"),
    ("RUN --mount=type=cache true", "needs a target"),
    ("RUN --mount=target=/x,colour=red true", "unexpected key 'colour'"),
    ("RUN --network=bridge true", 'unsupported network mode "bridge"'),
    ("RUN --security=weird true", 'unsupported security mode "weird"'),
    ("RUN --netwrk=none true", "unknown flag: --netwrk"),
    ("RUN --network true", "missing a value on flag: --network"),
    ("RUN --network=none --network=host true", "duplicate flag specified: --network"),
    ("RUN", "RUN requires at least one argument"),
])
def test_run_errors(line: str, problem: str) -> None:
    with pytest.raises(DockerfileError, match=r"^Dockerfile:2: ") as err:
        one(line)
    assert problem in str(err.value)


def test_copy_and_add() -> None:
    c = one("COPY --from=build --chown=1:1 --chmod=0755 --link --parents --exclude=*.md --exclude=.git "
            "a b /dest/")
    assert c == Copy(2, c.original, sources=["a", "b"], dest="/dest/", from_="build", chown="1:1",
                     chmod="0755", link=True, parents=True, excludes=["*.md", ".git"])
    j = one('COPY ["test file", "/tmp/"]')
    assert isinstance(j, Copy) and j.sources == ["test file"] and j.dest == "/tmp/"
    a = one("ADD --checksum=sha256:00ff --keep-git-dir=true https://x/y.git /src")
    assert isinstance(a, Add) and a.checksum == "sha256:00ff" and a.keep_git_dir
    assert a.sources == ["https://x/y.git"] and a.dest == "/src"
    assert isinstance(one("COPY --link=false a /"), Copy)
    with pytest.raises(DockerfileError, match=r"^Dockerfile:2: COPY requires at least two arguments, but only "
                       "one was provided. Destination could not be determined.$"):
        one("COPY onlyone")
    with pytest.raises(DockerfileError, match=r"^Dockerfile:2: unknown flag: --from$"):
        one("ADD --from=x a /")
    with pytest.raises(DockerfileError, match=r"^Dockerfile:2: unknown flag: --frm$"):
        one("COPY --frm=x a /")
    with pytest.raises(DockerfileError, match="expecting boolean value for flag link"):
        one("COPY --link=maybe a /")


def test_copy_heredoc_sources() -> None:
    df = parse("FROM x\nCOPY <<EOF /etc/greeting\nhello $NAME\nEOF\n")
    c = parse_instruction(df.nodes[1])
    assert isinstance(c, Copy) and c.sources == [] and c.dest == "/etc/greeting"
    assert c.heredocs[0].content == "hello $NAME\n" and c.heredocs[0].expand


def test_env_label_arg() -> None:
    e = one('ENV a=1 b="two words" c=')
    assert isinstance(e, Env) and e.pairs == [("a", "1"), ("b", '"two words"'), ("c", "")]
    legacy = one("ENV KEY value with spaces")
    assert isinstance(legacy, Env) and legacy.pairs == [("KEY", "value with spaces")]
    lab = one('LABEL "com.example.vendor"="ACME" version=1.0')
    assert isinstance(lab, Label) and lab.pairs == [('"com.example.vendor"', '"ACME"'), ("version", "1.0")]
    a = one("ARG a b=2 c=")
    assert isinstance(a, Arg) and a.pairs == [("a", None), ("b", "2"), ("c", "")]
    with pytest.raises(DockerfileError, match=r"^Dockerfile:2: ENV names can not be blank$"):
        one("ENV =x")
    with pytest.raises(DockerfileError, match="ENV must have two arguments"):
        one("ENV ONLY")
    with pytest.raises(DockerfileError, match="can't find = in"):
        one("ENV a=1 b")
    with pytest.raises(DockerfileError, match="ARG requires at least one argument"):
        one("ARG")
    with pytest.raises(DockerfileError, match="invalid ARG name"):
        one("ARG 1x=2")


def test_single_argument_instructions() -> None:
    assert one("WORKDIR /app") == Workdir(2, "WORKDIR /app", path="/app")
    assert one("USER 1000:1000") == User(2, "USER 1000:1000", user="1000:1000")
    assert one("STOPSIGNAL SIGTERM") == Stopsignal(2, "STOPSIGNAL SIGTERM", signal="SIGTERM")
    assert one("MAINTAINER Jane Doe <j@x>") == Maintainer(2, "MAINTAINER Jane Doe <j@x>", name="Jane Doe <j@x>")
    with pytest.raises(DockerfileError, match="WORKDIR requires exactly one argument"):
        one("WORKDIR")


def test_expose_volume() -> None:
    ex = one("EXPOSE 80 443/tcp 53/udp")
    assert isinstance(ex, Expose) and ex.ports == ["80", "443/tcp", "53/udp"]
    v = one('VOLUME ["/data", "/logs"]')
    assert isinstance(v, Volume) and v.paths == ["/data", "/logs"]
    v2 = one("VOLUME /a /b")
    assert isinstance(v2, Volume) and v2.paths == ["/a", "/b"]
    with pytest.raises(DockerfileError, match="VOLUME specified can not be an empty string"):
        one('VOLUME [""]')
    with pytest.raises(DockerfileError, match="EXPOSE requires at least one argument"):
        one("EXPOSE")


def test_cmd_entrypoint_shell() -> None:
    c = one('CMD ["nginx", "-g", "daemon off;"]')
    assert isinstance(c, Cmd) and not c.shell_form and c.cmd == ["nginx", "-g", "daemon off;"]
    sc = one("CMD echo $HOME")
    assert isinstance(sc, Cmd) and sc.shell_form and sc.cmd == ["echo $HOME"]
    ep = one("ENTRYPOINT []")
    assert isinstance(ep, Entrypoint) and ep.cmd == [] and not ep.shell_form
    sh = one('SHELL ["/bin/bash", "-o", "pipefail", "-c"]')
    assert isinstance(sh, Shell) and sh.shell == ["/bin/bash", "-o", "pipefail", "-c"]
    with pytest.raises(DockerfileError, match="SHELL requires the arguments to be in JSON form"):
        one("SHELL /bin/bash -c")


def test_healthcheck() -> None:
    h = one("HEALTHCHECK --interval=30s --timeout=1m30s --start-period=500ms --start-interval=2s "
            "--retries=3 CMD curl -f http://localhost/ || exit 1")
    assert isinstance(h, Healthcheck)
    assert h.test == ["CMD-SHELL", "curl -f http://localhost/ || exit 1"]
    assert (h.interval, h.timeout, h.start_period, h.start_interval, h.retries) == (
        30 * 10**9, 90 * 10**9, 500 * 10**6, 2 * 10**9, 3)
    j = one('HEALTHCHECK CMD ["/bin/check", "--fast"]')
    assert isinstance(j, Healthcheck) and j.test == ["CMD", "/bin/check", "--fast"] and j.interval == 0
    n = one("HEALTHCHECK NONE")
    assert isinstance(n, Healthcheck) and n.test == ["NONE"]
    for bad, problem in [("HEALTHCHECK --interval=fast CMD x", "invalid duration"),
                         ("HEALTHCHECK --interval=10us CMD x", "cannot be less than 1ms"),
                         ("HEALTHCHECK --retries=-1 CMD x", "cannot be negative"),
                         ("HEALTHCHECK NONE extra", "takes no arguments"),
                         ("HEALTHCHECK RUN x", 'Unknown type "RUN"'),
                         ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
                         ("HEALTHCHECK --intervl=1s CMD x", "unknown flag: --intervl")]:
        with pytest.raises(DockerfileError, match=r"^Dockerfile:2: ") as err:
            one(bad)
        assert problem in str(err.value), bad


def test_onbuild() -> None:
    o = one("ONBUILD RUN echo hi")
    assert isinstance(o, Onbuild) and o.expression == "RUN echo hi"
    with pytest.raises(DockerfileError, match="Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"):
        one("ONBUILD ONBUILD RUN x")
    for inner in ("FROM", "MAINTAINER"):
        with pytest.raises(DockerfileError, match=rf"^Dockerfile:2: {inner} isn't allowed as an ONBUILD trigger$"):
            one(f"ONBUILD {inner} x")


def test_error_carries_file_name_and_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match=r"^build/Dockerfile.dev:2: unknown flag: --nope$"):
        one("COPY --nope a b", "build/Dockerfile.dev")


# -- plan -------------------------------------------------------------------------------------------
def test_plan_stages_and_meta_args() -> None:
    p = plan(parse("ARG BASE=alpine\nARG TAG\nFROM $BASE:$TAG AS build\nRUN make\n"
                   "FROM scratch\nCOPY --from=build /out /\nFROM build AS test\nRUN make test\n"))
    assert [a.pairs for a in p.meta_args] == [[("BASE", "alpine")], [("TAG", None)]]
    assert [(s.index, s.name, s.base.image) for s in p.stages] == [
        (0, "build", "$BASE:$TAG"), (1, None, "scratch"), (2, "test", "build")]
    assert [type(c).__name__ for s in p.stages for c in s.commands] == ["Run", "Copy", "Run"]


@pytest.mark.parametrize(("text", "problem"), [
    ("RUN echo\nFROM x\n", "Dockerfile:1: no build stage in current context"),
    ("ARG a\nENV b=1\nFROM x\n", "Dockerfile:2: no build stage in current context"),
    ("ARG a\n", "Dockerfile:1: no build stage in current context"),
    ("FROM x AS a\nFROM y AS A\n", "Dockerfile:2: duplicate stage name \"a\""),
    ("FROM x AS a/b\n", "Dockerfile:1: invalid name for build stage"),
])
def test_plan_errors(text: str, problem: str) -> None:
    with pytest.raises(DockerfileError) as err:
        plan(parse(text))
    assert str(err.value).startswith(problem)


# -- expansion --------------------------------------------------------------------------------------
ENV = {"HOME": "/root", "NAME": "app", "SPACED": "a b", "U": "1000"}


def test_expands_list() -> None:
    assert {"add", "arg", "copy", "env", "expose", "from", "label", "stopsignal", "user", "volume",
            "workdir"} <= EXPANDS
    assert not {"cmd", "entrypoint", "shell", "healthcheck", "maintainer", "onbuild"} & EXPANDS


def test_expand_copy_add() -> None:
    lex = Lex()
    c = expand(one("COPY --from=$NAME --chown=$U:$U --chmod=${MODE:-0644} --exclude=$NAME.tmp "
                   "$NAME/ ${HOME}/$NAME"), lex, ENV)
    assert isinstance(c, Copy) and c.from_ == "app" and c.chown == "1000:1000" and c.chmod == "0644"
    assert c.sources == ["app/"] and c.dest == "/root/app" and c.excludes == ["app.tmp"]
    spaced = expand(one("COPY $SPACED /d"), lex, ENV)
    assert isinstance(spaced, Copy) and spaced.sources == ["a b"]  # one word in, one word out
    a = expand(one("ADD --checksum=$SUM x /y"), lex, {"SUM": "sha256:aa"})
    assert isinstance(a, Add) and a.checksum == "sha256:aa"


def test_expand_env_sees_only_previous_lines() -> None:
    lex = Lex()
    e = expand(one('ENV abc=bye def=$abc "q"="$HOME x" legacy=\'$HOME\''), lex, {"abc": "hello", "HOME": "/h"})
    assert isinstance(e, Env) and e.pairs == [("abc", "bye"), ("def", "hello"), ("q", "/h x"),
                                              ("legacy", "$HOME")]
    lab = expand(one('LABEL "v"="$NAME"'), lex, ENV)
    assert isinstance(lab, Label) and lab.pairs == [("v", "app")]


def test_expand_simple_words() -> None:
    lex = Lex()
    assert expand(one("WORKDIR $HOME/$NAME"), lex, ENV) == Workdir(2, "WORKDIR $HOME/$NAME", path="/root/app")
    assert expand(one("USER ${U}"), lex, ENV) == User(2, "USER ${U}", user="1000")
    assert expand(one("STOPSIGNAL ${SIG:-SIGKILL}"), lex, ENV) == Stopsignal(
        2, "STOPSIGNAL ${SIG:-SIGKILL}", signal="SIGKILL")
    ex = expand(one("EXPOSE $PORTS 22"), lex, {"PORTS": "80 443"})
    assert isinstance(ex, Expose) and ex.ports == ["80", "443", "22"]
    v = expand(one("VOLUME $HOME/data"), lex, ENV)
    assert isinstance(v, Volume) and v.paths == ["/root/data"]
    arg = expand(one("ARG x=$HOME y"), lex, ENV)
    assert isinstance(arg, Arg) and arg.pairs == [("x", "/root"), ("y", None)]
    f = expand(parse_instruction(parse("FROM --platform=$P ${IMG}:1\n").nodes[0]), lex,
               {"P": "linux/amd64", "IMG": "alpine"})
    assert isinstance(f, From) and f.image == "alpine:1" and f.platform == "linux/amd64"


def test_expand_leaves_commands_alone() -> None:
    lex = Lex()
    for line in ("CMD echo $HOME", 'CMD ["echo", "$HOME"]', 'ENTRYPOINT ["$HOME"]', "ONBUILD RUN echo $HOME",
                 "HEALTHCHECK CMD echo $HOME"):
        ins = one(line)
        assert expand(ins, lex, ENV) == ins, line
    r = expand(one("RUN --mount=type=cache,target=$HOME/.cache echo $HOME"), lex, ENV)
    assert isinstance(r, Run) and r.cmd == ["echo $HOME"] and r.mounts[0]["target"] == "/root/.cache"
    j = expand(one('RUN ["echo", "$HOME"]'), lex, ENV)
    assert isinstance(j, Run) and j.cmd == ["echo", "$HOME"]


def test_expand_errors_are_invalid_argument() -> None:
    with pytest.raises(InvalidArgument):
        expand(one("WORKDIR ${MISSING:?is required}"), Lex(), ENV)


def test_expand_with_backtick_escape() -> None:
    df = parse("# escape=`\nFROM x\nWORKDIR C:\\app\\`$NAME\n")
    w = expand(parse_instruction(df.nodes[1]), Lex("`"), ENV)
    assert isinstance(w, Workdir) and w.path == "C:\\app\\$NAME"
