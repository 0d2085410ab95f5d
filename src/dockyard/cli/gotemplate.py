"""A small subset of Go's text/template, enough for Docker's ``--format`` strings.

Supported: ``{{.Field}}``, ``{{.A.B}}``, ``{{.}}``, ``$`` and ``$var``, string/number/bool literals,
pipelines ``{{.X | json}}``, function calls ``{{json .X}}`` / ``{{index .M "k"}}``, method-style
fields with arguments (``{{.Label "k"}}``), ``{{if}}/{{else if}}/{{else}}/{{end}}``,
``{{range}}`` (with ``$i, $e :=``), ``{{with}}``, variable declarations, and ``{{- -}}`` trimming.
Values print the way Go's ``fmt`` prints them (``<no value>`` for a missing map key, ``map[k:v]``,
``[a b]``) because scripts compare against Docker's output.
"""

from __future__ import annotations

import json as _json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dockyard.errors import InvalidArgument


class _Missing:
    """Go's "no value": a missing map key."""

    def __repr__(self) -> str:
        return "<no value>"


MISSING = _Missing()


# ---------------------------------------------------------------- lexing and parsing

_ACTION_RE = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN_RE = re.compile(
    r"""\s*(?:
        (?P<str>"(?:[^"\\]|\\.)*")
      | (?P<raw>`[^`]*`)
      | (?P<decl>:=|=)
      | (?P<pipe>\|)
      | (?P<lparen>\()
      | (?P<rparen>\))
      | (?P<comma>,)
      | (?P<var>\$[A-Za-z0-9_]*)
      | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
      | (?P<num>-?[0-9]+(?:\.[0-9]+)?)
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.X,
)


class Tok:
    __slots__ = ("kind", "text")

    def __init__(self, kind: str, text: str) -> None:
        self.kind, self.text = kind, text


def _tokenize(src: str) -> list[Tok]:
    toks: list[Tok] = []
    pos = 0
    src = src.rstrip()
    while pos < len(src):
        m = _TOKEN_RE.match(src, pos)
        if not m or m.end() == pos:
            raise InvalidArgument(f"template: unexpected {src[pos:].strip()!r} in action")
        kind = m.lastgroup or ""
        text = m.group(kind)
        pos = m.end()
        # a field chain directly after a variable or ')' belongs to it: $x.Name
        if kind == "field" and text != "." and toks and toks[-1].kind in ("var", "rparen") \
                and src[m.start()] != " ":
            toks.append(Tok("chain", text))
            continue
        toks.append(Tok(kind, text))
    return toks


# Plain classes rather than dataclasses: importing dataclasses costs ~8 ms of CLI start-up.
class Operand:
    def __init__(self, kind: str, value: Any, chain: tuple[str, ...] = ()) -> None:
        self.kind = kind  # field | var | str | num | bool | nil | ident | pipe
        self.value = value
        self.chain = chain


class Command:
    def __init__(self, args: list[Operand]) -> None:
        self.args = args


class Pipeline:
    def __init__(self, decl: list[str], cmds: list[Command]) -> None:
        self.decl = decl
        self.cmds = cmds


class Node:
    def __init__(self, kind: str, text: str = "", pipe: Pipeline | None = None) -> None:
        self.kind = kind  # text | action | if | range | with
        self.text = text
        self.pipe = pipe
        self.body: list[Node] = []
        self.else_body: list[Node] = []


class _Parser:
    def __init__(self, toks: list[Tok]) -> None:
        self.toks = toks
        self.i = 0

    def peek(self) -> Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def pipeline(self, stop: str | None = None) -> Pipeline:
        decl: list[str] = []
        # "$x :=" or "$i, $e :="
        j = self.i
        names: list[str] = []
        while j < len(self.toks) and self.toks[j].kind == "var":
            names.append(self.toks[j].text)
            j += 1
            if j < len(self.toks) and self.toks[j].kind == "comma":
                j += 1
                continue
            break
        if names and j < len(self.toks) and self.toks[j].kind == "decl":
            decl = names
            self.i = j + 1
        cmds: list[Command] = []
        args: list[Operand] = []
        while (tok := self.peek()) is not None and tok.kind != stop:
            if tok.kind == "pipe":
                self.take()
                if not args:
                    raise InvalidArgument("template: missing command before '|'")
                cmds.append(Command(args))
                args = []
                continue
            args.append(self.operand())
        if stop is not None:
            if self.peek() is None:
                raise InvalidArgument("template: unclosed left paren")
            self.take()
        if args:
            cmds.append(Command(args))
        if not cmds:
            raise InvalidArgument("template: missing value for command")
        return Pipeline(decl, cmds)

    def operand(self) -> Operand:
        tok = self.take()
        op: Operand
        if tok.kind == "field":
            op = Operand("field", tuple(p for p in tok.text.split(".") if p))
        elif tok.kind == "var":
            op = Operand("var", tok.text)
        elif tok.kind == "str":
            op = Operand("str", _json.loads(tok.text))
        elif tok.kind == "raw":
            op = Operand("str", tok.text[1:-1])
        elif tok.kind == "num":
            op = Operand("num", float(tok.text) if "." in tok.text else int(tok.text))
        elif tok.kind == "ident":
            if tok.text in ("true", "false"):
                op = Operand("bool", tok.text == "true")
            elif tok.text == "nil":
                op = Operand("nil", None)
            else:
                op = Operand("ident", tok.text)
        elif tok.kind == "lparen":
            op = Operand("pipe", self.pipeline(stop="rparen"))
        else:
            raise InvalidArgument(f"template: unexpected {tok.text!r} in operand")
        nxt = self.peek()
        if nxt is not None and nxt.kind == "chain":
            self.take()
            op.chain = tuple(p for p in nxt.text.split(".") if p)
        return op


def parse(src: str) -> list[Node]:
    """Parse a template into a node tree; InvalidArgument on syntax errors."""
    # Docker's formatter turns the two-character escapes into real tabs/newlines first.
    pieces: list[tuple[str, str]] = []
    pos = 0
    for m in _ACTION_RE.finditer(src):
        text = src[pos:m.start()]
        if m.group(1):
            text = text.rstrip()
        if pieces and pieces[-1][0] == "trimnext":
            text = text.lstrip()
            pieces.pop()
        pieces.append(("text", text))
        pieces.append(("action", m.group(2).strip()))
        if m.group(3):
            pieces.append(("trimnext", ""))
        pos = m.end()
    tail = src[pos:]
    if pieces and pieces[-1][0] == "trimnext":
        pieces.pop()
        tail = tail.lstrip()
    if "{{" in tail:
        raise InvalidArgument("template: unclosed action")
    pieces.append(("text", tail))

    root: list[Node] = []
    stack: list[tuple[Node, list[Node]]] = []  # (block node, list currently being filled)
    current = root
    for kind, text in pieces:
        if kind == "text":
            if text:
                current.append(Node("text", text=text))
            continue
        if text.startswith("/*") or not text:
            continue
        word = text.split(None, 1)[0]
        rest = text[len(word):].strip()
        if word in ("if", "range", "with"):
            node = Node(word, pipe=_Parser(_tokenize(rest)).pipeline())
            current.append(node)
            stack.append((node, current))
            current = node.body
        elif word == "else":
            if not stack:
                raise InvalidArgument("template: unexpected {{else}}")
            node = stack[-1][0]
            if rest.startswith("if ") or rest.startswith("with "):
                # "else if" nests a new block that ends at the same {{end}}
                sub_word, sub_rest = rest.split(None, 1)
                sub = Node(sub_word, pipe=_Parser(_tokenize(sub_rest)).pipeline())
                node.else_body.append(sub)
                stack[-1] = (sub, stack[-1][1])
                current = sub.body
            else:
                current = node.else_body
        elif word == "end":
            if not stack:
                raise InvalidArgument("template: unexpected {{end}}")
            _, current = stack.pop()
        else:
            current.append(Node("action", pipe=_Parser(_tokenize(text)).pipeline()))
    if stack:
        raise InvalidArgument(f"template: unexpected EOF, missing {{{{end}}}} for {stack[-1][0].kind}")
    return root


# ---------------------------------------------------------------- values as Go prints them


def go_str(value: Any) -> str:
    """Render a value like Go's fmt %v."""
    if value is MISSING:
        return "<no value>"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value)) if abs(value) < 1e6 else f"{value:g}".replace("e+0", "e+0")
        return repr(value)
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{go_str(k)}:{go_str(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_str(v) for v in value) + "]"
    return str(value)


def go_json(value: Any) -> str:
    """json.Marshal: compact, HTML characters escaped like Go does."""
    out = _json.dumps(_plain(value), separators=(",", ":"), ensure_ascii=False)
    return out.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _plain(value: Any) -> Any:
    if value is MISSING:
        return None
    to_json = getattr(value, "to_json", None)
    if callable(to_json):
        return to_json()
    return value


def truthy(value: Any) -> bool:
    if value is MISSING or value is None:
        return False
    if isinstance(value, (bool, int, float, str, list, tuple, dict)):
        return bool(value)
    return True


def _index(item: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(item, Mapping):
            item = item.get(key, MISSING)
        elif isinstance(item, (list, tuple, str)):
            if not isinstance(key, int) or not 0 <= key < len(item):
                raise InvalidArgument(f"template: index out of range: {key}")
            item = item[key]
        else:
            raise InvalidArgument(f"template: can't index item of type {type(item).__name__}")
    return item


def _printf(fmt: str, *args: Any) -> str:
    it = iter(args)

    def sub(m: re.Match[str]) -> str:
        verb = m.group(0)
        if verb == "%%":
            return "%"
        val = next(it, MISSING)
        if verb.endswith("q"):
            return _json.dumps(go_str(val))
        if verb.endswith("d") and isinstance(val, (int, float)):
            return (verb[:-1] + "d") % int(val)
        return (verb[:-1] + "s") % go_str(val)

    return re.sub(r"%[-+ 0#]*[0-9]*(?:\.[0-9]+)?[vsdqtf%]", sub, fmt)


def _truncate(s: Any, n: int) -> str:
    text = go_str(s)
    return text[:n] if len(text) > n else text


def _cmp(op: Callable[[Any, Any], bool]) -> Callable[..., bool]:
    def f(a: Any, *bs: Any) -> bool:
        return any(op(a, b) for b in bs) if op is _eq else all(op(a, b) for b in bs)
    return f


def _eq(a: Any, b: Any) -> bool:
    return bool(a == b)


FUNCS: dict[str, Callable[..., Any]] = {
    "json": go_json,
    "upper": lambda s: go_str(s).upper(),
    "lower": lambda s: go_str(s).lower(),
    "title": lambda s: go_str(s).title(),
    "len": lambda v: len(v) if v is not MISSING and v is not None else 0,
    "join": lambda v, sep: sep.join(go_str(x) for x in (v or [])),
    "split": lambda s, sep: go_str(s).split(sep),
    "truncate": _truncate,
    "pad": lambda s, left, right: " " * left + go_str(s) + " " * right,
    "println": lambda *a: " ".join(go_str(x) for x in a) + "\n",
    "print": lambda *a: "".join(go_str(x) for x in a),
    "printf": _printf,
    "index": _index,
    "not": lambda v: not truthy(v),
    "and": lambda *a: next((x for x in a if not truthy(x)), a[-1]),
    "or": lambda *a: next((x for x in a if truthy(x)), a[-1]),
    "eq": _cmp(_eq),
    "ne": _cmp(lambda a, b: a != b),
    "lt": _cmp(lambda a, b: a < b),
    "le": _cmp(lambda a, b: a <= b),
    "gt": _cmp(lambda a, b: a > b),
    "ge": _cmp(lambda a, b: a >= b),
}


# ---------------------------------------------------------------- execution


class Template:
    """A parsed template; ``render(data)`` executes it."""

    def __init__(self, src: str) -> None:
        self.src = src
        self.nodes = parse(src)

    def render(self, data: Any, *, header: bool = False) -> str:
        out: list[str] = []
        _Exec(data, header).run(self.nodes, data, {"$": data}, out)
        return "".join(out)


class _Exec:
    def __init__(self, root: Any, header: bool) -> None:
        self.root = root
        self.header = header

    def run(self, nodes: Sequence[Node], dot: Any, vars: dict[str, Any], out: list[str]) -> None:
        for node in nodes:
            if node.kind == "text":
                out.append(node.text)
                continue
            assert node.pipe is not None
            if node.kind == "action":
                val = self.pipeline(node.pipe, dot, vars)
                if not node.pipe.decl:
                    out.append(go_str(val))
            elif node.kind in ("if", "with"):
                scope = dict(vars)
                val = self.pipeline(node.pipe, dot, scope)
                if truthy(val):
                    self.run(node.body, val if node.kind == "with" else dot, scope, out)
                else:
                    self.run(node.else_body, dot, scope, out)
            elif node.kind == "range":
                self.range(node, dot, vars, out)

    def range(self, node: Node, dot: Any, vars: dict[str, Any], out: list[str]) -> None:
        assert node.pipe is not None
        decl = node.pipe.decl
        val = self.pipeline(Pipeline([], node.pipe.cmds), dot, vars)
        if self.header:
            return
        items: list[tuple[Any, Any]]
        if isinstance(val, Mapping):
            items = [(k, val[k]) for k in sorted(val)]
        elif isinstance(val, (list, tuple)):
            items = list(enumerate(val))
        elif val is None or val is MISSING:
            items = []
        elif isinstance(val, int):
            items = [(i, i) for i in range(val)]
        else:
            raise InvalidArgument(f"template: range can't iterate over {go_str(val)}")
        if not items:
            self.run(node.else_body, dot, vars, out)
            return
        for key, elem in items:
            scope = dict(vars)
            if len(decl) == 1:
                scope[decl[0]] = elem
            elif len(decl) >= 2:
                scope[decl[0]], scope[decl[1]] = key, elem
            self.run(node.body, elem, scope, out)

    def pipeline(self, pipe: Pipeline, dot: Any, vars: dict[str, Any]) -> Any:
        val: Any = MISSING
        for i, cmd in enumerate(pipe.cmds):
            val = self.command(cmd, dot, vars, piped=(val,) if i else ())
        for name in pipe.decl[-1:]:
            vars[name] = val
        return val

    def command(self, cmd: Command, dot: Any, vars: dict[str, Any], piped: tuple[Any, ...]) -> Any:
        first, rest = cmd.args[0], cmd.args[1:]
        if first.kind == "ident":
            fn = FUNCS.get(first.value)
            if fn is None:
                raise InvalidArgument(f'template: function "{first.value}" not defined')
            args = [self.operand(a, dot, vars) for a in rest] + list(piped)
            if self.header:
                # Docker's header functions pass the header text through unchanged.
                if first.value in ("println", "print", "printf"):
                    return fn(*args)
                return next((a for a in args if isinstance(a, str)), "")
            try:
                return fn(*args)
            except TypeError as exc:
                raise InvalidArgument(f"template: wrong arguments for {first.value}: {exc}") from exc
        if first.kind == "field" and (rest or piped):
            args = [self.operand(a, dot, vars) for a in rest] + list(piped)
            return self.field(dot, first.value, args)
        if rest:
            raise InvalidArgument(f"template: can't give argument to non-function {first.value}")
        return self.operand(first, dot, vars)

    def operand(self, op: Operand, dot: Any, vars: dict[str, Any]) -> Any:
        if op.kind == "field":
            val = self.field(dot, op.value, [])
        elif op.kind == "var":
            if op.value not in vars:
                raise InvalidArgument(f"template: undefined variable: {op.value}")
            val = vars[op.value]
        elif op.kind == "pipe":
            val = self.pipeline(op.value, dot, dict(vars))
        elif op.kind == "ident":
            fn = FUNCS.get(op.value)
            if fn is None:
                raise InvalidArgument(f'template: function "{op.value}" not defined')
            val = fn()
        else:
            val = op.value
        if op.chain:
            val = self.field(val, op.chain, [])
        return val

    def field(self, obj: Any, chain: tuple[str, ...], args: list[Any]) -> Any:
        for n, name in enumerate(chain):
            last = n == len(chain) - 1
            if obj is MISSING or obj is None:
                return MISSING
            if isinstance(obj, Mapping):
                obj = obj.get(name, MISSING)
                continue
            attr = getattr(obj, name, MISSING) if not name.startswith("_") else MISSING
            if attr is MISSING:
                raise InvalidArgument(
                    f"template: can't evaluate field {name} in type {type(obj).__name__}")
            if callable(attr):
                obj = attr(*args) if last else attr()
            elif last and args:
                raise InvalidArgument(f"template: {name} is not a method but has arguments")
            else:
                obj = attr
        return obj


def expand_escapes(fmt: str) -> str:
    """Docker's formatter replaces the two-character sequences ``\\t`` and ``\\n``."""
    return fmt.replace("\\t", "\t").replace("\\n", "\n")
