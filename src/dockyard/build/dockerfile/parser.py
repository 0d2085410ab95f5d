"""Dockerfile text → instruction nodes, with BuildKit's rules.

Parser directives (``# syntax=``, ``# escape=``) only at the very top; comments anywhere, also
inside continuations; a line ending in the escape character continues; flags (``--from=x``) before
the arguments; per-instruction argument forms (JSON arrays, ``name=value`` pairs, plain strings);
here-documents for RUN, COPY and ADD. ``dump`` renders BuildKit's test format, which the parser is
checked against.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from dockyard.errors import InvalidArgument

INSTRUCTIONS = frozenset({
    "add", "arg", "cmd", "copy", "entrypoint", "env", "expose", "from", "healthcheck", "label",
    "maintainer", "onbuild", "run", "shell", "stopsignal", "user", "volume", "workdir",
})
HEREDOC_INSTRUCTIONS = frozenset({"run", "copy", "add"})

_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_WS_SPLIT = re.compile(r"[\t\v\f\r ]+")
_HEREDOC = re.compile(r"^(\d*)<<(-?)\s*(.+)$")


class DockerfileError(InvalidArgument):
    """A Dockerfile that cannot be built; the message starts with ``<name>:<line>:``."""


@dataclass(frozen=True)
class Heredoc:
    name: str
    content: str
    expand: bool
    chomp: bool


@dataclass(frozen=True)
class Node:
    cmd: str
    flags: tuple[str, ...]
    args: tuple[str, ...]
    original: str
    start_line: int
    end_line: int
    json_form: bool
    heredocs: tuple[Heredoc, ...] = ()
    next_: Node | None = None           # ONBUILD's inner instruction


@dataclass(frozen=True)
class Dockerfile:
    nodes: tuple[Node, ...]
    escape: str = "\\"
    syntax: str | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)


def _is_space(ch: str) -> bool:
    return ch.isspace()


def extract_flags(line: str) -> tuple[str, list[str]]:
    """Leading ``--flag[=value]`` words (quotes removed, ``--`` ends them); returns (rest, flags)."""
    words: list[str] = []
    word = ""
    phase = "spaces"
    quote = ""
    blank_ok = False
    pos = 0
    n = len(line)
    while pos <= n:
        ch = line[pos] if pos < n else ""
        if phase == "spaces":
            if pos == n:
                break
            if _is_space(ch):
                pos += 1
                continue
            if ch != "-" or pos + 1 == n or line[pos + 1] != "-":
                return line[pos:], words
            phase = "word"
        if phase in ("word", "quote") and pos == n:
            if word != "--" and (blank_ok or word):
                words.append(word)
            break
        if phase == "word":
            if _is_space(ch):
                phase = "spaces"
                if word == "--":
                    return line[pos:].lstrip(), words
                if blank_ok or word:
                    words.append(word)
                word, blank_ok = "", False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote, blank_ok, phase = ch, True, "quote"
                pos += 1
                continue
            if ch == "\\":
                if pos + 1 == n:
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            word += ch
            pos += 1
            continue
        # in a quote
        if ch == quote:
            phase = "word"
            pos += 1
            continue
        if ch == "\\":
            if pos + 1 == n:
                phase = "word"
                pos += 1
                continue
            pos += 1
            ch = line[pos]
        word += ch
        pos += 1
    return "", words


def parse_words(rest: str, escape: str) -> list[str]:
    """Split on unquoted whitespace, keeping quotes and escapes in the words (BuildKit parseWords)."""
    words: list[str] = []
    word = ""
    phase = "spaces"
    quote = ""
    blank_ok = False
    pos = 0
    n = len(rest)
    while pos <= n:
        ch = rest[pos] if pos < n else ""
        if phase == "spaces":
            if pos == n:
                break
            if _is_space(ch):
                pos += 1
                continue
            phase = "word"
        if phase in ("word", "quote") and pos == n:
            if blank_ok or word:
                words.append(word)
            break
        if phase == "word":
            if _is_space(ch):
                phase = "spaces"
                if blank_ok or word:
                    words.append(word)
                word, blank_ok = "", False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote, blank_ok, phase = ch, True, "quote"
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue
                word += ch
                pos += 1
                ch = rest[pos]
            word += ch
            pos += 1
            continue
        if ch == quote:
            phase = "word"
        if ch == escape and quote != "'":
            if pos + 1 == n:
                phase = "word"
                pos += 1
                continue
            pos += 1
            word += ch
            ch = rest[pos]
        word += ch
        pos += 1
    return words


class _NotStringArray(Exception):
    pass


def _json_array(rest: str) -> list[str] | None:
    if not rest.startswith("["):
        return None
    try:
        value, end = json.JSONDecoder().raw_decode(rest)
    except (ValueError, RecursionError):  # nested too deeply: Go's json.Unmarshal fails too
        return None
    if rest[end:].strip():  # trailing text: not JSON at all, so the shell form (as json.Unmarshal)
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise _NotStringArray()
    return value


def _args_for(cmd: str, rest: str, escape: str, where: str) -> tuple[list[str], bool]:
    """The argument list of one instruction (BuildKit's per-instruction dispatch)."""
    try:
        if cmd in ("cmd", "entrypoint", "run", "shell"):
            if not rest:
                return [], False
            arr = _json_array(rest)
            return (arr, True) if arr is not None else ([rest], False)
        if cmd in ("add", "copy", "volume"):
            arr = _json_array(rest)
            if arr is not None:
                return arr, True
            return ([w for w in _WS_SPLIT.split(rest)] if rest else []), False
    except _NotStringArray as exc:
        raise DockerfileError(f"{where}: {cmd.upper()} arguments must be a JSON array of strings") from exc
    if cmd in ("expose", "from"):
        return ([w for w in _WS_SPLIT.split(rest)] if rest else []), False
    if cmd in ("maintainer", "stopsignal", "user", "workdir"):
        return ([rest] if rest else []), False
    if cmd in ("env", "label"):
        return _name_values(cmd, rest, escape, where), False
    if cmd == "arg":
        return parse_words(rest, escape), False
    if cmd == "healthcheck":
        parts = re.split(r"\s+", rest, maxsplit=1) if rest else []
        if not parts or not parts[0]:
            return [], False
        inner, is_json = _args_for("cmd", parts[1].strip() if len(parts) > 1 else "", escape, where)
        return [parts[0], *inner], is_json
    return ([rest] if rest else []), False


def _name_values(cmd: str, rest: str, escape: str, where: str) -> list[str]:
    words = parse_words(rest, escape)
    if not words:
        return []
    if "=" not in words[0]:  # the legacy form: KEY name value
        parts = re.split(r"\s+", rest, maxsplit=1)
        if len(parts) < 2:
            raise DockerfileError(f"{where}: {cmd.upper()} must have two arguments")
        return [parts[0], parts[1], ""]
    out: list[str] = []
    for word in words:
        if "=" not in word:
            raise DockerfileError(f'{where}: Syntax error - can\'t find = in "{word}". '
                                  "Must be of the form: name=value")
        key, _, value = word.partition("=")
        out += [key, value, "="]
    return out


def _heredoc_words(rest: str, escape: str) -> list[tuple[str, bool, bool]]:
    """(name, expand, chomp) of each ``<<WORD`` in a RUN/COPY/ADD line."""
    out = []
    for word in parse_words(rest, escape):
        m = _HEREDOC.match(word)
        if not m:
            continue
        name = m.group(3)
        quoted = len(name) >= 2 and name[0] == name[-1] and name[0] in "'\""
        if quoted:
            name = name[1:-1]
        if name and re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
            out.append((name, not quoted, m.group(2) == "-"))
    return out


class _Lines:
    def __init__(self, text: str) -> None:
        if text.startswith("\ufeff"):
            text = text[1:]
        self.lines = text.split("\n")
        if self.lines and self.lines[-1] == "":
            self.lines.pop()
        self.pos = 0

    def next(self) -> str | None:
        if self.pos >= len(self.lines):
            return None
        line = self.lines[self.pos].rstrip("\r")
        self.pos += 1
        return line

    @property
    def number(self) -> int:
        return self.pos


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def parse(text: str, name: str = "Dockerfile") -> Dockerfile:
    src = _Lines(text)
    escape = "\\"
    syntax: str | None = None
    seen_directives: set[str] = set()
    # parser directives: only a run of "# key=value" lines at the very top
    while src.pos < len(src.lines):
        m = _DIRECTIVE.match(src.lines[src.pos].strip())
        if not m:
            break
        key, value = m.group(1).lower(), m.group(2)
        if key in seen_directives and key in ("escape", "syntax"):
            raise DockerfileError(f"{name}:{src.pos + 1}: only one {key} parser directive can be used")
        seen_directives.add(key)
        if key == "escape":
            if value not in ("\\", "`"):
                raise DockerfileError(f"{name}:{src.pos + 1}: invalid escape token '{value}' "
                                      "does not match ` or \\")
            escape = value
        elif key == "syntax":
            syntax = value
        src.pos += 1
    # an escape at the end continues the line, unless it is itself escaped ("foo\\")
    e = re.escape(escape)
    continuation = re.compile(rf"(?:(?<=[^{e}])|^){e}[ \t]*$")
    nodes: list[Node] = []
    warnings: list[str] = []
    while (raw := src.next()) is not None:
        start = src.number
        if _is_comment(raw) or not raw.strip():
            continue
        line = raw.lstrip()
        ended = not continuation.search(line)
        line = continuation.sub("", line)
        empty_continuation = False
        while not ended:
            nxt = src.next()
            if nxt is None:
                break
            if _is_comment(nxt):
                continue
            if not nxt.strip():
                empty_continuation = True
                continue
            ended = not continuation.search(nxt)
            line += continuation.sub("", nxt)
        if empty_continuation:
            warnings.append(f"{name}:{start}: empty continuation line found in: {line.strip()[:60]}")
        if not line.strip():
            continue
        node = _node(line, escape, name, start, src.number, line.strip())
        if node.cmd in HEREDOC_INSTRUCTIONS:
            node = _read_heredocs(node, src, escape, name)
        nodes.append(node)
    if not nodes:
        raise DockerfileError(f"{name}:1: the Dockerfile ({name}) cannot be empty")
    return Dockerfile(tuple(nodes), escape, syntax, tuple(warnings))


def _node(line: str, escape: str, name: str, start: int, end: int, original: str) -> Node:
    parts = re.split(r"\s+", line.strip(), maxsplit=1)
    cmd = parts[0].lower()
    where = f"{name}:{start}"
    if cmd not in INSTRUCTIONS:
        raise DockerfileError(f"{where}: unknown instruction: {parts[0]}")
    rest, flags = extract_flags(parts[1]) if len(parts) > 1 else ("", [])
    rest = rest.strip()
    if cmd == "onbuild":
        inner = _node(rest, escape, name, start, end, rest) if rest else None
        if inner is not None and inner.cmd == "onbuild":
            raise DockerfileError(f"{where}: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if inner is not None and inner.cmd in ("from", "maintainer"):
            raise DockerfileError(f"{where}: {inner.cmd.upper()} isn't allowed as an ONBUILD trigger")
        return Node(cmd, tuple(flags), (rest,) if rest else (), original.strip(), start, end, False,
                    next_=inner)
    args, is_json = _args_for(cmd, rest, escape, where)
    return Node(cmd, tuple(flags), tuple(args), original.strip(), start, end, is_json)


def _read_heredocs(node: Node, src: _Lines, escape: str, name: str) -> Node:
    if node.json_form:
        return node
    docs: list[Heredoc] = []
    for doc_name, expand, chomp in _heredoc_words(" ".join(node.args), escape):
        body: list[str] = []
        while True:
            line = src.next()
            if line is None:
                raise DockerfileError(f"{name}:{node.start_line}: unterminated heredoc {doc_name}")
            if (line.lstrip("\t") if chomp else line) == doc_name:
                break
            body.append(line + "\n")
        docs.append(Heredoc(doc_name, "".join(body), expand, chomp))
    if not docs:
        return node
    return Node(node.cmd, node.flags, node.args, node.original, node.start_line, src.number,
                node.json_form, tuple(docs))


# -- BuildKit's dump format (tests) -----------------------------------------------------------------
def go_quote(text: str) -> str:
    """Go's strconv.Quote."""
    out = ['"']
    for ch in text:
        o = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                        "\v": "\\v"}[ch])
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif o > 0x7F and not ch.isprintable():
            out.append(f"\\u{o:04x}" if o <= 0xFFFF else f"\\U{o:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _dump_node(node: Node) -> str:
    s = node.cmd
    if node.flags:
        s += " [" + " ".join(go_quote(f) for f in node.flags) + "]"
    if node.cmd == "onbuild" and node.next_ is not None:
        return s + " (" + _dump_node(node.next_) + ")"
    for a in node.args:
        s += " " + go_quote(a)
    return s.strip()


def dump(df: Dockerfile) -> str:
    return "".join(f"({_dump_node(n)})\n" for n in df.nodes)
