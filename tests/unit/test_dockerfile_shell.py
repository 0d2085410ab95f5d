"""Docker's word expansion, case by case: BuildKit's envVarTest/wordsTest vectors (when
../shared/testdata is there) and the documented rules written out here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dockyard.build.dockerfile.shell import Lex
from dockyard.errors import InvalidArgument

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "buildkit-dockerfile-vectors.json"
ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}


def _vectors(kind: str) -> list[dict[str, Any]]:
    if not VECTORS.exists():
        return []
    return [v for v in json.loads(VECTORS.read_text())[kind] if v.get("platform", "A") in ("A", "U")]


@pytest.mark.parametrize("case", _vectors("env_words"), ids=lambda c: f"line{c['line']}")
def test_env_word_vectors(case: dict[str, Any]) -> None:
    if case["expected"] == "error":
        with pytest.raises(InvalidArgument):
            Lex().process_word(case["input"], ENV)
    else:
        assert Lex().process_word(case["input"], ENV) == case["expected"]


@pytest.mark.parametrize("case", _vectors("words"), ids=lambda c: f"line{c['line']}")
def test_words_vectors(case: dict[str, Any]) -> None:
    env = dict(e.split("=", 1) for e in case["env"])
    if case["expected"] == ["error"]:
        with pytest.raises(InvalidArgument):
            Lex().process_words(case["input"], env)
    else:
        assert Lex().process_words(case["input"], env) == case["expected"]


@pytest.mark.parametrize(("word", "expected"), [
    ("$PWD", "/home"), ("${PWD}x", "/homex"), ("a$NOPE.b", "a.b"),
    ("${NOPE:-default}", "default"), ("${NULL:-default}", "default"), ("${NULL-default}", ""),
    ("${PWD:+set}", "set"), ("${NULL:+set}", ""), ("${NULL+set}", "set"), ("${NOPE+set}", ""),
    ("'$PWD'", "$PWD"), ('"$PWD"', "/home"), ("\\$PWD", "$PWD"), ('"a\\"b"', 'a"b'),
    ('"tab\\there"', "tab\\there"), ("${NOPE:-${PWD}}", "/home"),
    ("${PWD#/ho}", "me"), ("${PWD##*/}", "home"), ("${SHELL%sh}", "ba"), ("${SHELL/a/A}", "bAsh"),
    ("$1$@$?", ""),
])
def test_documented_rules(word: str, expected: str) -> None:
    assert Lex().process_word(word, ENV) == expected


@pytest.mark.parametrize("word", ["${NOPE:?must be set}", "${}", "${PWD", "'open", '"open', "${PWD:x}"])
def test_errors(word: str) -> None:
    with pytest.raises(InvalidArgument):
        Lex().process_word(word, ENV)


def test_backtick_escape_and_matches() -> None:
    lex = Lex("`")
    assert lex.process_word("c:\\dir `$PWD", ENV) == "c:\\dir $PWD"
    value, names = Lex().process_word_with_matches("$PWD-${NOPE:-x}", ENV)
    assert value == "/home-x" and names == {"PWD", "NOPE"}
    assert Lex().process_words('a "b c" $SPACED', {"SPACED": "d  e"}) == ["a", "b c", "d", "e"]
