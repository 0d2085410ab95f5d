""".dockerignore rules, as the docker CLI and BuildKit apply them (moby/patternmatcher).

Shared by the client (what goes into the context tar) and the daemon (a context from an API client
that did not filter). Patterns are cleaned like Go's ``filepath.Clean`` with a leading ``/`` dropped;
``*`` and ``?`` stay within one path component, ``**`` spans any number of them, ``[...]`` is a class
and ``\\`` escapes. A pattern that matches a directory excludes everything below it; ``!pattern``
re-includes, the last matching pattern wins.
"""

from __future__ import annotations

import posixpath
import re

from dockyard.errors import InvalidArgument


def read_patterns(text: str) -> list[str]:
    """The patterns of a .dockerignore file: comments and blank lines dropped, paths cleaned."""
    out: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        neg = line.startswith("!")
        if neg:
            line = line[1:].strip()
        if line:
            line = posixpath.normpath(line)
            if len(line) > 1 and line.startswith("/"):
                line = line.lstrip("/") or "/"
        out.append(("!" if neg else "") + line)
    return out


def _regex(pattern: str) -> re.Pattern[str]:
    out = ["^"]
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                out.append(".*" if i >= n else "(.*/)?")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif ch == "[":
            end = pattern.find("]", i + 2 if i + 1 < n and pattern[i + 1] in "^!" else i + 1)
            if end < 0:
                raise InvalidArgument(f"invalid .dockerignore pattern {pattern!r}: unterminated [")
            body = pattern[i + 1:end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    try:
        return re.compile("".join(out))
    except re.error as exc:
        raise InvalidArgument(f"invalid .dockerignore pattern {pattern!r}: {exc}") from exc


class _Pattern:
    """One pattern (a plain class: the CLI imports this module, and dataclasses costs ~5 ms)."""

    __slots__ = ("exclusion", "parts", "regex", "text")

    def __init__(self, text: str, exclusion: bool, regex: re.Pattern[str], parts: tuple[str, ...]) -> None:
        self.text, self.exclusion, self.regex, self.parts = text, exclusion, regex, parts


class Matcher:
    def __init__(self, patterns: list[str]) -> None:
        self.patterns: list[_Pattern] = []
        for p in patterns:
            neg = p.startswith("!")
            text = p[1:] if neg else p
            if not text:
                raise InvalidArgument("illegal exclusion pattern: \"!\"")
            self.patterns.append(_Pattern(text, neg, _regex(text), tuple(text.split("/"))))

    def excluded(self, rel_path: str) -> bool:
        """Whether ``rel_path`` ("a/b/c", relative to the context root) is left out."""
        path = rel_path.strip("/")
        parents = []
        parts = path.split("/")
        for k in range(1, len(parts)):
            parents.append("/".join(parts[:k]))
        matched = False
        for p in self.patterns:
            if p.exclusion != matched:
                continue  # cannot change the outcome
            if p.regex.match(path) or any(p.regex.match(parent) for parent in parents):
                matched = not p.exclusion
        return matched

    def may_have_exceptions_below(self, rel_dir: str) -> bool:
        """Whether some "!" pattern could re-include a path inside ``rel_dir`` (walk it then)."""
        parts = [x for x in rel_dir.strip("/").split("/") if x]
        for p in self.patterns:
            if not p.exclusion:
                continue
            if p.parts and p.parts[0].startswith("**"):
                return True
            if all(k >= len(p.parts) or "**" in p.parts[k] or _regex(p.parts[k]).match(part)
                   for k, part in enumerate(parts)):
                return True
        return False
