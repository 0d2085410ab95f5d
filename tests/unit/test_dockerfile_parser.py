"""The Dockerfile parser: BuildKit's own parse vectors (when ../shared/testdata is there) and cases
of our own for continuations, directives, JSON/shell forms, flags, heredocs and bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dockyard.build.dockerfile.instructions import (
    Add,
    Copy,
    Env,
    Healthcheck,
    Run,
    parse_instruction,
    plan,
)
from dockyard.build.dockerfile.parser import DockerfileError, Heredoc, dump, go_quote, parse

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "buildkit-dockerfile-vectors.json"


def _vectors(kind: str) -> list[dict[str, Any]]:
    if not VECTORS.exists():
        return []
    return list(json.loads(VECTORS.read_text())[kind])


@pytest.mark.parametrize("case", _vectors("parse"), ids=lambda c: c["name"])
def test_buildkit_parse_vectors(case: dict[str, Any]) -> None:
    assert dump(parse(case["dockerfile"])).strip() == case["expected"].strip()


@pytest.mark.parametrize("case", _vectors("parse_fail"), ids=lambda c: c["name"])
def test_buildkit_parse_fail_vectors(case: dict[str, Any]) -> None:
    with pytest.raises(DockerfileError):
        plan(parse(case["dockerfile"]))


def test_vectors_present_or_skipped() -> None:
    if not VECTORS.exists():
        pytest.skip("../shared/testdata is not beside this checkout")
    assert len(_vectors("parse")) >= 30


def test_continuations_comments_and_empty_lines() -> None:
    df = parse("FROM busybox\nRUN echo a \\\n    # a comment inside\n\n  b\\\n c\n")
    assert dump(df) == '(from "busybox")\n(run "echo a   b c")\n'
    assert df.nodes[1].start_line == 2 and df.nodes[1].end_line == 6
    assert df.warnings and "empty continuation line" in df.warnings[0]


def test_escaped_escape_does_not_continue() -> None:
    df = parse("FROM x\nENV A a\\\\\nENV B b\n")
    assert [n.args for n in df.nodes[1:]] == [("A", "a\\\\", ""), ("B", "b", "")]


def test_escape_directive_backtick_and_syntax() -> None:
    df = parse("# syntax=docker/dockerfile:1\n# escape=`\nFROM x\nRUN dir c:\\ `\n  && echo\n")
    assert df.escape == "`" and df.syntax == "docker/dockerfile:1"
    assert df.nodes[1].args == ("dir c:\\   && echo",)
    with pytest.raises(DockerfileError, match="invalid escape token"):
        parse("# escape=x\nFROM x\n")


def test_directive_only_at_the_top() -> None:
    df = parse("FROM x\n# escape=`\nRUN a \\\n b\n")
    assert df.escape == "\\" and df.nodes[1].args == ("a  b",)


def test_json_and_shell_forms() -> None:
    df = parse('FROM x\nCMD ["a", "b c"]\nCMD a "b c"\nENTRYPOINT []\nSHELL ["/bin/bash", "-c"]\n')
    cmd_json, cmd_shell, ep, shell = df.nodes[1:]
    assert cmd_json.json_form and cmd_json.args == ("a", "b c")
    assert not cmd_shell.json_form and cmd_shell.args == ('a "b c"',)
    assert ep.json_form and ep.args == ()
    assert shell.args == ("/bin/bash", "-c")
    with pytest.raises(DockerfileError, match="JSON array of strings"):
        parse('FROM x\nCMD ["a", 1]\n')


def test_flags_parsed_and_checked() -> None:
    df = parse("FROM x\nCOPY --from=build --chown='1:1' a b /d/\n")
    node = df.nodes[1]
    assert node.flags == ("--from=build", "--chown=1:1") and node.args == ("a", "b", "/d/")
    ins = parse_instruction(node)
    assert isinstance(ins, Copy) and ins.from_ == "build" and ins.chown == "1:1"
    with pytest.raises(DockerfileError, match=r"^Dockerfile:2: unknown flag: --frm$"):
        parse_instruction(parse("FROM x\nCOPY --frm=y a b\n").nodes[1])


def test_heredocs() -> None:
    text = ("FROM x\nRUN <<EOF\necho one\necho $HOME\nEOF\n"
            "COPY <<-'EOT' <<OTHER /dest/\n\tliteral $X\n\tEOT\nplain\nOTHER\nRUN echo after\n")
    df = parse(text)
    run, copy, after = df.nodes[1:]
    assert run.heredocs[0].content == "echo one\necho $HOME\n" and run.heredocs[0].expand
    assert [h.name for h in copy.heredocs] == ["EOT", "OTHER"]
    assert copy.heredocs[0].chomp and not copy.heredocs[0].expand
    assert copy.heredocs[0].content == "\tliteral $X\n" and copy.heredocs[1].content == "plain\n"
    assert after.args == ("echo after",) and after.start_line == 11
    ins = parse_instruction(copy)
    assert isinstance(ins, Copy) and ins.sources == [] and ins.dest == "/dest/"
    with pytest.raises(DockerfileError, match="unterminated heredoc"):
        parse("FROM x\nRUN <<EOF\necho\n")


def test_errors_name_the_line() -> None:
    with pytest.raises(DockerfileError, match=r"^Dockerfile:7: unknown instruction: RUNN$"):
        parse("FROM busybox\n\n# comment\nRUN a \\\n b\n\nRUNN echo\n")
    with pytest.raises(DockerfileError, match=r"^other.Dockerfile:1: the Dockerfile \(other.Dockerfile\)"):
        parse("# only a comment\n", "other.Dockerfile")
    with pytest.raises(DockerfileError, match="Dockerfile:2: COPY requires at least two arguments"):
        plan(parse("FROM x\nCOPY onlyone\n"))
    with pytest.raises(DockerfileError, match="Dockerfile:1: no build stage in current context"):
        plan(parse("RUN echo\nFROM x\n"))
    with pytest.raises(DockerfileError, match="duplicate stage name"):
        plan(parse("FROM x AS a\nFROM y AS a\n"))
    with pytest.raises(DockerfileError, match="Dockerfile:2: ENV must have two arguments"):
        parse("FROM x\nENV ONLYKEY\n")
    with pytest.raises(DockerfileError, match="ONBUILD trigger"):
        parse("FROM x\nONBUILD FROM y\n")


def test_instructions_and_plan() -> None:
    p = plan(parse("ARG V=1\nFROM busybox AS Base\nENV a=1 b=\"2 3\"\nENV legacy value with spaces\n"
                   "RUN --mount=type=cache,target=/c --network=none make\n"
                   "HEALTHCHECK --interval=1m30s --retries=3 CMD curl x\nADD --checksum=sha256:ab a.tgz /\n"
                   "FROM base\nHEALTHCHECK NONE\n"))
    assert [a.pairs for a in p.meta_args] == [[("V", "1")]]
    base, second = p.stages
    assert base.name == "base" and second.base.image == "base"
    env, legacy, run, hc, add = base.commands
    assert isinstance(env, Env) and env.pairs == [("a", "1"), ("b", '"2 3"')]
    assert isinstance(legacy, Env) and legacy.pairs == [("legacy", "value with spaces")]
    assert isinstance(run, Run) and run.mounts == [{"type": "cache", "target": "/c"}] and run.network == "none"
    assert isinstance(hc, Healthcheck) and hc.test == ["CMD-SHELL", "curl x"]
    assert hc.interval == 90 * 10**9 and hc.retries == 3
    assert isinstance(add, Add) and add.checksum == "sha256:ab"
    assert isinstance(second.commands[0], Healthcheck) and second.commands[0].test == ["NONE"]


def test_go_quote() -> None:
    assert go_quote('a"b\\c\n\t\x00é☃') == '"a\\"b\\\\c\\n\\t\\x00é☃"'


def test_heredoc_variants() -> None:
    df = parse('FROM x\nRUN <<-EOF bash\n\techo a\n\t\techo b\n\tEOF\nRUN <<"A" cat - && cat <<B\n$x\nA\ny\nB\n'
               "RUN 3<<EOF cat /dev/fd/3\nz\nEOF\nADD <<EOF /f\nq\nEOF\nRUN [\"echo\", \"<<EOF\"]\nRUN echo done\n")
    chomped, two, fd, add, json_run, done = df.nodes[1:]
    # <<-: the terminator may be tab-indented; the body is kept raw, chomp tells the builder to strip tabs
    assert chomped.heredocs == (Heredoc("EOF", "\techo a\n\t\techo b\n", True, True),)
    assert (chomped.start_line, chomped.end_line) == (2, 5)
    assert two.heredocs == (Heredoc("A", "$x\n", False, False), Heredoc("B", "y\n", True, False))
    assert two.args == ('<<"A" cat - && cat <<B',)
    assert fd.heredocs[0].content == "z\n"
    assert add.args == ("<<EOF", "/f") and add.heredocs[0].content == "q\n"
    assert json_run.json_form and json_run.heredocs == ()  # no heredocs in the exec form
    assert done.args == ("echo done",) and done.start_line == 18


def test_heredocs_only_for_run_copy_add() -> None:
    df = parse("FROM x\nCMD cat <<EOF\nRUN echo\n")
    assert [n.cmd for n in df.nodes] == ["from", "cmd", "run"] and df.nodes[1].heredocs == ()


def test_json_with_trailing_text_is_shell_form() -> None:
    node = parse('FROM x\nCMD ["a"] b\n').nodes[1]
    assert not node.json_form and node.args == ('["a"] b',)
    node = parse("FROM x\nCMD ['a']\n").nodes[1]
    assert not node.json_form and node.args == ("['a']",)


def test_continuation_with_backtick_and_comment() -> None:
    df = parse("# escape=`\nFROM x\nRUN echo a `\n# inside\n  b `\n\n  c\nRUN echo \\\n")
    assert df.nodes[1].args == ("echo a   b   c",) and df.nodes[1].end_line == 7
    assert df.nodes[2].args == ("echo \\",)  # backslash is ordinary with escape=`
    assert df.warnings


def test_bad_input() -> None:
    for text, problem in [("FROM x\nRUNN echo\n", "Dockerfile:2: unknown instruction: RUNN"),
                          ("\n\n", "Dockerfile:1: the Dockerfile (Dockerfile) cannot be empty"),
                          ('FROM x\nCMD ["a", ["b"]]\n', "Dockerfile:2: CMD arguments must be a JSON array"),
                          ("FROM x\nLABEL\n", ""), ("FROM x\nRUN <<EOF\nno end\n", "Dockerfile:2: unterminated")]:
        if not problem:
            parse(text)  # LABEL without arguments parses; parse_instruction rejects it
            continue
        with pytest.raises(DockerfileError) as err:
            parse(text)
        assert str(err.value).startswith(problem), text


def test_duplicate_directive() -> None:
    with pytest.raises(DockerfileError, match=r"^Dockerfile:2: only one escape parser directive can be used$"):
        parse("# escape=`\n# escape=\\\nFROM x\n")
