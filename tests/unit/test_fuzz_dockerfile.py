"""Property-based tests of the Dockerfile parser, the instruction layer and word expansion.

Issue 8, fuzzing: arbitrary text and arbitrary mixes of valid-looking instructions (flags, JSON and
shell forms, broken JSON, continuations, comments, parser directives, here-documents, ``${a:-b}``
substitutions) give either a parse result or ``DockerfileError`` whose message names a line of the
file (``Dockerfile:<n>: …``), never another exception, and in bounded time.

Deterministic (``derandomize``); ``DOCKYARD_FUZZ_EXAMPLES=<n>`` raises the example count locally.
"""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dockyard.build.dockerfile import parser
from dockyard.build.dockerfile.durations import parse_duration
from dockyard.build.dockerfile.instructions import (
    EXPANDS,
    Instruction,
    expand,
    parse_instruction,
    plan,
)
from dockyard.build.dockerfile.parser import DockerfileError
from dockyard.build.dockerfile.shell import Lex
from dockyard.errors import InvalidArgument

_EXAMPLES = int(os.environ.get("DOCKYARD_FUZZ_EXAMPLES", "0")) or None


def fuzz(default: int) -> settings:
    return settings(max_examples=_EXAMPLES or default, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


NAME = "Dockerfile.fuzz"
_WHERE = re.compile(rf"^{re.escape(NAME)}:(\d+): \S")
ENV = {"a": "A", "empty": "", "sp": "x y\tz", "path": "/usr/local/bin:/usr/bin", "star": "*?[]"}


def _check_error(exc: DockerfileError, text: str) -> None:
    m = _WHERE.match(str(exc))
    assert m, f"error does not name the line: {exc}"
    lines = max(1, text.count("\n") + 1)
    assert 1 <= int(m.group(1)) <= lines, f"line {m.group(1)} of {lines}: {exc}"


def run_pipeline(text: str) -> None:
    """Parse, type, plan and expand ``text`` as the builder does; only clear errors may come out."""
    try:
        df = parser.parse(text, NAME)
    except DockerfileError as exc:
        _check_error(exc, text)
        return
    lines = max(1, text.count("\n") + 1)
    assert df.nodes and df.escape in ("\\", "`")
    for node in df.nodes:
        assert 1 <= node.start_line <= node.end_line <= lines, node
    parser.dump(df)  # the test format renders whatever parsed
    lex = Lex(df.escape)
    typed: list[Instruction] = []
    for node in df.nodes:
        try:
            typed.append(parse_instruction(node, NAME))
        except DockerfileError as exc:
            _check_error(exc, text)
    try:
        plan(df, NAME)
    except DockerfileError as exc:
        _check_error(exc, text)
    for ins in typed:
        if type(ins).__name__.lower() not in EXPANDS:
            continue
        try:
            expand(ins, lex, ENV, NAME)
        except DockerfileError as exc:
            _check_error(exc, text)


# -- strategies ---------------------------------------------------------------------------------------
_KEYWORDS = ["FROM", "RUN", "CMD", "ENTRYPOINT", "COPY", "ADD", "ENV", "ARG", "LABEL", "EXPOSE", "VOLUME", "USER",
             "WORKDIR", "SHELL", "STOPSIGNAL", "HEALTHCHECK", "ONBUILD", "MAINTAINER", "from", "Run", "BOGUS"]
_FLAGS = ["--from=a", "--from", "--chown=1:1", "--chmod=755", "--link", "--link=maybe", "--parents", "--exclude=*.o",
          "--platform=linux/amd64", "--mount=type=cache,target=/c", "--mount=type=bogus", "--mount=,,",
          "--mount=target=", "--mount=sharing=odd,target=/x", "--network=none", "--network=x", "--security=insecure",
          "--interval=30s", "--interval=1ns", "--interval=9999999999999999999h", "--timeout=1e400s",
          "--timeout=x", "--retries=3", "--retries=-1", "--retries=99999999999999999999", "--start-period=.5s",
          "--checksum=sha256:00", "--keep-git-dir", "--", "--=", "--\"q\"", "-x", "--bogus"]
_WORDS = ["a", "b c", "/dest/", "x=1", "x=", "=y", "\"q w\"", "'s q'", "AS", "as", "stage1", "1st", "NONE", "CMD",
          "8080/tcp", "$a", "${a}", "${a:-def}", "${empty:+alt}", "${nope?msg}", "${nope:?}", "${a#A}", "${path##*:}",
          "${path%:*}", "${path/usr/opt}", "${path//\\//_}", "${a", "${}", "${a:x}", "${a!}", "${1}", "$$", "${a:-${b:-c}}",
          "\"${a:-x y}\"", "'${a}'", "\\$a", "`", "\\", "\"", "'", "<<EOF", "<<-EOT", "<<'Q'", "0<<X", "[", "]",
          "[\"a\"]", "[\"a\", 1]", "[\"a\",", "[]", "[{}]", "[\"\\u00e9\"]", "{\"a\": 1}", "é", "\t", "#"]
_JSON = ["[\"sh\", \"-c\", \"echo hi\"]", "[\"a\"", "[\"a\",]", "[1, 2]", "[\"a\", [\"b\"]]", "[\"a\"] trailing",
         "[]", "[\"\\ud800\"]", "[" * 50, "[\"a\\\"]", "null", "[\"a\"]\\"]


@st.composite
def instruction_lines(draw: st.DrawFn) -> str:
    kw = draw(st.sampled_from(_KEYWORDS))
    flags = draw(st.lists(st.sampled_from(_FLAGS), max_size=3))
    if draw(st.booleans()):
        args = [draw(st.sampled_from(_JSON))]
    else:
        args = draw(st.lists(st.sampled_from(_WORDS), max_size=5))
    sep = draw(st.sampled_from([" ", " ", " ", "  ", "\t", " \\\n  ", " `\n", " \\ \n# comment\n", " \\\n\n"]))
    line = kw + " " + sep.join([*flags, *args])
    for word in args:  # here-document bodies, usually terminated
        m = re.match(r"^\d*<<(-?)['\"]?([A-Za-z]+)", word)
        if m:
            body = draw(st.lists(st.sampled_from(["echo $a", "\tx", "", "${a:-b}", "EOFX", "\\"]), max_size=3))
            end = ("\t" if m.group(1) and draw(st.booleans()) else "") + m.group(2)
            line += "\n" + "\n".join([*body, *([end] if draw(st.integers(0, 5)) else [])])
    return line


_EXTRA_LINES = ["", "# comment", "   ", "\\", "EOF", "# escape=`", "# syntax=docker/dockerfile:1", "\r", "FROM scratch",
                "FROM a AS b", "ARG x=${a:-1}", "FROM ${a:-scratch} AS s2", "COPY --from=s2 / /"]


@st.composite
def dockerfiles(draw: st.DrawFn) -> str:
    head = draw(st.sampled_from([[], [], [], [], [], [], ["# escape=`"], ["# escape=`"], ["# escape=\\"], ["# syntax=a/b"],
                                 ["# escape=x"], ["#directive=v", "# ESCAPE = `"], ["# escape=`", "# escape=`"]]))
    body = draw(st.lists(st.one_of(instruction_lines(), instruction_lines(), instruction_lines(),
                                   st.sampled_from(_EXTRA_LINES)), min_size=0, max_size=10))
    if draw(st.booleans()):
        body.insert(0, "FROM scratch")
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    return eol.join(head + body) + draw(st.sampled_from(["", "\n", "\\", "\\\n"]))


# -- properties ------------------------------------------------------------------------------------------

@fuzz(300)
@given(st.text(max_size=300))
@example("RUN " + "[" * 5000)
@example("FROM a\nHEALTHCHECK --interval=" + "9" * 400 + "s CMD x")
@example("FROM a\nHEALTHCHECK --timeout=99999999999999999999h CMD x")
@example("FROM a\nENV x=" + "${a:-" * 400)
@example("FROM a\nWORKDIR " + '"${a:-' * 300)
@example("\ufeff# escape=`\nFROM a\nRUN x `\n  y")
def test_arbitrary_text(text: str) -> None:
    run_pipeline(text)


@fuzz(300)
@given(st.text(st.sampled_from(list("FROMRUNCOPYENVARG =\\`$:{}-+?#%/\"'[],<>\n\t ax1")), max_size=200))
def test_dockerfile_alphabet_soup(text: str) -> None:
    run_pipeline(text)


@fuzz(800)
@given(dockerfiles())
def test_valid_looking_dockerfiles(text: str) -> None:
    run_pipeline(text)


_SUBST = st.lists(st.sampled_from(["$", "{", "}", ":", "-", "+", "?", "#", "%", "/", "a", "empty", "nope", "sp", "1",
                                   "@", "\"", "'", "\\", "`", " ", "*", "[", "]", "x"]), max_size=30).map("".join)


@fuzz(400)
@given(_SUBST, st.sampled_from(["\\", "`"]))
@example("${a:-" * 2000, "\\")
@example('"${a:-' * 2000, "\\")
@example("${path//[/x}", "\\")
@example("${path/#/x}", "\\")
def test_word_expansion(word: str, escape: str) -> None:
    lex = Lex(escape)
    for call in (lex.process_word, lex.process_words, lex.process_word_with_matches):
        try:
            call(word, ENV)
        except DockerfileError:
            raise
        except InvalidArgument as exc:
            assert str(exc)


@fuzz(150)
@given(_SUBST)
def test_expansion_errors_name_the_line(word: str) -> None:
    text = f"FROM scratch\n\nENV v={word}\nWORKDIR /{word}\nLABEL l=\"{word}\"\n"
    run_pipeline(text)


@fuzz(200)
@given(st.lists(st.sampled_from([*"0123456789.+-e", "ns", "us", "µs", "ms", "s", "m", "h", "\u0661", " "]),
               max_size=30).map("".join))
@example("9" * 400 + "s")
@example("99999999999999999999h")
@example("\u0661s")
def test_durations(text: str) -> None:
    try:
        ns = parse_duration(text)
    except ValueError as exc:
        assert "invalid duration" in str(exc)
    else:
        assert -(1 << 63) <= ns < 1 << 63  # Go's time.Duration is an int64
        assert "\u0661" not in text  # Go's digits are ASCII


@pytest.mark.parametrize("text", [
    "RUN " + "[" * 100_000,
    "FROM a\nCMD " + "[" * 100_000 + "]" * 100_000,
    "FROM a\nENV x=" + "${a:-" * 5000,
    "FROM a\nHEALTHCHECK --interval=1e400s CMD x",
])
def test_pathological_inputs(text: str) -> None:
    run_pipeline(text)
