"""Docker's word expansion for Dockerfile arguments (BuildKit's shell lexer, not a real shell).

Quotes group and are removed, the escape character (``\\`` or `` ` ``) escapes, ``$VAR`` and
``${VAR}`` expand, with ``${VAR:-w}``, ``${VAR-w}``, ``${VAR:+w}``, ``${VAR+w}``, ``${VAR:?msg}``,
``${VAR?msg}`` and the pattern forms ``${VAR#p}``, ``##``, ``%``, ``%%``, ``${VAR/p/r}``, ``//``.
Positional and special parameters (``$1``, ``$@``, ``$?``, ...) expand to nothing. In
``process_words`` unquoted whitespace, also inside expanded values, separates words.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping

from dockyard.errors import InvalidArgument

_SPECIAL = frozenset("@*#?-$!0")


class _Words:
    def __init__(self) -> None:
        self.words: list[str] = []
        self.word: list[str] = []
        self.in_word = False

    def blank(self) -> None:
        if self.in_word:
            self.words.append("".join(self.word))
            self.word = []
            self.in_word = False

    def char(self, ch: str) -> None:  # unquoted: whitespace separates words
        if ch.isspace():
            self.blank()
        else:
            self.raw(ch)

    def raw(self, text: str) -> None:
        self.word.append(text)
        self.in_word = True

    def string(self, text: str) -> None:
        for ch in text:
            self.char(ch)

    def result(self) -> list[str]:
        self.blank()
        return self.words


class _Scan:
    def __init__(self, text: str, escape: str, env: Mapping[str, str]) -> None:
        self.s = text
        self.i = 0
        self.escape = escape
        self.env = env
        self.matches: set[str] = set()

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def next(self) -> str:
        ch = self.peek()
        self.i += 1 if ch else 0
        return ch

    def process(self, stop: str = "") -> tuple[str, list[str]]:
        out: list[str] = []
        words = _Words()
        while self.i < len(self.s):
            ch = self.peek()
            if stop and ch == stop:
                break
            if ch == "'":
                text = self.single_quoted()
                out.append(text)
                words.raw(text)
            elif ch == '"':
                text = self.double_quoted()
                out.append(text)
                words.raw(text)
            elif ch == "$":
                value = self.dollar()
                out.append(value)
                words.string(value)
            elif ch == self.escape:
                self.next()
                nxt = self.next()
                if not nxt:
                    break  # an escape at the very end is dropped
                out.append(nxt)
                words.raw(nxt)
            else:
                self.next()
                out.append(ch)
                words.char(ch)
        return "".join(out), words.result()

    def single_quoted(self) -> str:
        self.next()
        start = self.i
        end = self.s.find("'", start)
        if end < 0:
            raise InvalidArgument("unexpected end of statement while looking for matching single-quote")
        self.i = end + 1
        return self.s[start:end]

    def double_quoted(self) -> str:
        self.next()
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                raise InvalidArgument("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.next()
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
            elif ch == self.escape:
                self.next()
                nxt = self.next()
                if not nxt:
                    raise InvalidArgument("unexpected end of statement while looking for matching "
                                          "double-quote")
                out.append(nxt if nxt in ('"', "$", self.escape) else ch + nxt)
            else:
                out.append(self.next())

    def name(self) -> str:
        ch = self.peek()
        if ch.isdigit():
            start = self.i
            while self.peek().isdigit():
                self.next()
            return self.s[start:self.i]
        if ch and ch in _SPECIAL:
            return self.next()
        start = self.i
        while (c := self.peek()) and (c.isalnum() or c == "_"):
            self.next()
        return self.s[start:self.i]

    def lookup(self, name: str) -> tuple[str, bool]:
        self.matches.add(name)
        if name in self.env:
            return self.env[name], True
        return "", False

    def dollar(self) -> str:
        self.next()  # "$"
        if self.peek() != "{":
            name = self.name()
            return self.lookup(name)[0] if name else "$"
        self.next()  # "{"
        name = self.name()
        if not name:
            raise InvalidArgument("bad substitution: missing or invalid variable name")
        ch = self.peek()
        if ch == "}":
            self.next()
            return self.lookup(name)[0]
        colon = ch == ":"
        if colon:
            self.next()
            ch = self.peek()
            if ch not in ("-", "+", "?"):
                raise InvalidArgument(f"unsupported modifier ({ch or 'EOF'}) in substitution")
        if ch in ("-", "+", "?"):
            self.next()
            word, _ = self.process(stop="}")
            self.close()
            value, is_set = self.lookup(name)
            present = is_set and (value != "" or not colon)
            if ch == "-":
                return value if present else word
            if ch == "+":
                return word if present else ""
            if not present:
                raise InvalidArgument(f"{name}: {word or 'is not allowed to be unset'}")
            return value
        if ch in ("#", "%"):
            self.next()
            longest = self.peek() == ch
            if longest:
                self.next()
            pattern, _ = self.process(stop="}")
            self.close()
            return _trim(self.lookup(name)[0], pattern, prefix=ch == "#", longest=longest)
        if ch == "/":
            self.next()
            every = self.peek() == "/"
            if every:
                self.next()
            pattern, _ = self.process(stop="/")
            repl = ""
            if self.peek() == "/":
                self.next()
                repl, _ = self.process(stop="}")
            self.close()
            return _replace(self.lookup(name)[0], pattern, repl, every)
        raise InvalidArgument(f"missing ':' in substitution of {name}" if ch else "syntax error: missing '}'")

    def close(self) -> None:
        if self.next() != "}":
            raise InvalidArgument("syntax error: missing '}'")


def _glob(pattern: str) -> str:
    rx = fnmatch.translate(pattern)  # "(?s:<body>)\Z"
    return rx[4:-3] if rx.startswith("(?s:") and rx.endswith(")\\Z") else rx


def _trim(value: str, pattern: str, *, prefix: bool, longest: bool) -> str:
    rx = re.compile(_glob(pattern), re.S)
    cuts = range(len(value) + 1)
    order = reversed(cuts) if longest else cuts
    for k in order:
        part = value[:k] if prefix else value[len(value) - k:]
        if rx.fullmatch(part):
            return value[k:] if prefix else value[:len(value) - k]
    return value


def _replace(value: str, pattern: str, repl: str, every: bool) -> str:
    if not pattern:
        return value
    rx = re.compile(_glob(pattern), re.S)
    out: list[str] = []
    i = 0
    while i <= len(value):
        for j in range(len(value), i - 1, -1):  # longest match at i
            if j > i and rx.fullmatch(value[i:j]):
                out.append(repl)
                i = j
                if not every:
                    return "".join(out) + value[i:]
                break
        else:
            if i < len(value):
                out.append(value[i])
            i += 1
    return "".join(out)


def _process(scan: _Scan) -> tuple[str, list[str]]:
    try:
        return scan.process()
    except RecursionError:
        raise InvalidArgument("bad substitution: nested too deeply") from None


class Lex:
    def __init__(self, escape: str = "\\") -> None:
        self.escape = escape

    def process_word(self, word: str, env: Mapping[str, str]) -> str:
        return _process(_Scan(word, self.escape, env))[0]

    def process_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        return _process(_Scan(word, self.escape, env))[1]

    def process_word_with_matches(self, word: str, env: Mapping[str, str]) -> tuple[str, set[str]]:
        scan = _Scan(word, self.escape, env)
        result = _process(scan)[0]
        return result, scan.matches
