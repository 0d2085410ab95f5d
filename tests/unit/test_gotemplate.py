"""Go text/template subset used by --format."""

from __future__ import annotations

import pytest

from dockyard.cli.gotemplate import Template, expand_escapes
from dockyard.errors import InvalidArgument

DATA = {"State": {"Status": "running", "Pid": 42, "Running": True}, "Config": {"Hostname": "abc",
        "Env": ["A=1", "B=2"], "Labels": {"k": "v", "a": "<b>"}}, "Name": "/web", "Null": None}


@pytest.mark.parametrize(("src", "out"), [
    ("{{.State.Status}}", "running"),
    ("{{.Config.Hostname}}", "abc"),
    ("{{.State.Pid}}", "42"),
    ("{{.State.Running}}", "true"),
    ("{{.Missing}}", "<no value>"),
    ("{{.Null}}", "<nil>"),
    ("{{json .Config.Env}}", '["A=1","B=2"]'),
    ("{{.Config.Env | json}}", '["A=1","B=2"]'),
    ("{{json .Config.Labels.a}}", '"\\u003cb\\u003e"'),
    ("{{.Config.Env}}", "[A=1 B=2]"),
    ("{{.Config.Labels}}", "map[a:<b> k:v]"),
    ("{{range .Config.Env}}[{{.}}]{{end}}", "[A=1][B=2]"),
    ("{{range $i, $e := .Config.Env}}{{$i}}={{$e}};{{end}}", "0=A=1;1=B=2;"),
    ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
    ("{{if .Missing}}x{{else if .Name}}{{.Name}}{{end}}", "/web"),
    ('{{index .Config.Labels "k"}}', "v"),
    ("{{.Name | upper}}", "/WEB"),
    ("{{len .Config.Env}}", "2"),
    ('{{join .Config.Env ","}}', "A=1,B=2"),
    ("{{truncate .Name 2}}", "/w"),
    ("a{{println}}b", "a\nb"),
    ("{{- .Name -}}  ", "/web"),
    ('{{printf "%s-%d" .Name .State.Pid}}', "/web-42"),
    ('{{eq .State.Status "running"}}', "true"),
    ("{{with .Config}}{{.Hostname}}{{end}}", "abc"),
    ("{{$n := .Name}}{{$n}}", "/web"),
])
def test_render(src: str, out: str) -> None:
    assert Template(src).render(DATA) == out


def test_method_field_with_argument() -> None:
    class Row:
        def Label(self, k: str) -> str:
            return {"x": "y"}[k]
    assert Template('{{.Label "x"}}').render(Row()) == "y"


def test_escapes() -> None:
    assert expand_escapes("{{.A}}\\t{{.B}}\\n") == "{{.A}}\t{{.B}}\n"


@pytest.mark.parametrize("src", ["{{.A", "{{if .A}}x", "{{end}}", "{{nosuchfn .A}}"])
def test_errors(src: str) -> None:
    with pytest.raises(InvalidArgument):
        Template(src).render({"A": 1})
