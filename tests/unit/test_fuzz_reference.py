"""Property-based tests of the image reference parser (``dockyard.oci.reference``).

Issue 8, fuzzing: any text gives either a normalised ``Reference`` or ``InvalidArgument`` with
Docker's "invalid reference format" wording, never another exception; references generated from the
distribution/reference grammar round-trip to Docker's normalised form; what Docker refuses (long
tags, uppercase repositories, bad digests, stray whitespace or non-ASCII) is refused.

Deterministic (``derandomize``); ``DOCKYARD_FUZZ_EXAMPLES=<n>`` raises the example count locally.
"""

from __future__ import annotations

import os
import re

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from dockyard.errors import InvalidArgument
from dockyard.oci import reference
from dockyard.oci.digest import Digest

_EXAMPLES = int(os.environ.get("DOCKYARD_FUZZ_EXAMPLES", "0")) or None


def fuzz(default: int) -> settings:
    return settings(max_examples=_EXAMPLES or default, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


# -- Docker's grammar (distribution/reference regexp.go), ASCII only and anchored at both ends ----------
_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
GRAMMAR = {
    "path": re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*", re.ASCII),
    "domain": re.compile(rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?",
                         re.ASCII),
    "tag": re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", re.ASCII),
    "digest": re.compile(r"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}", re.ASCII),
}
_ERROR_PREFIXES = ("invalid reference format", "invalid repository name")

alnum = st.text(_ALNUM, min_size=1, max_size=6)
separator = st.sampled_from([".", "_", "__", "-", "--", "---"])


@st.composite
def components(draw: st.DrawFn) -> str:
    out = draw(alnum)
    for _ in range(draw(st.integers(0, 2))):
        out += draw(separator) + draw(alnum)
    return out


paths = st.lists(components(), min_size=1, max_size=4).map("/".join)
_dom_label = st.from_regex(re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?", re.ASCII), fullmatch=True)
ports = st.integers(1, 65535).map(lambda p: f":{p}")


@st.composite
def domains(draw: st.DrawFn) -> str:
    """Only domains Docker recognises as such: with a dot, a port, ``localhost`` or an IPv6 literal."""
    kind = draw(st.sampled_from(["dotted", "port", "localhost", "ipv6", "docker"]))
    if kind == "dotted":
        return ".".join(draw(st.lists(_dom_label, min_size=2, max_size=3))) + draw(st.one_of(st.just(""), ports))
    if kind == "port":
        return draw(_dom_label) + draw(ports)
    if kind == "localhost":
        return "localhost" + draw(st.one_of(st.just(""), ports))
    if kind == "ipv6":
        return draw(st.sampled_from(["[::1]", "[fe80::1]", "[2001:DB8::5]"])) + draw(st.one_of(st.just(""), ports))
    return draw(st.sampled_from(["docker.io", "index.docker.io"]))


tags = st.from_regex(re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,40}", re.ASCII), fullmatch=True) | st.from_regex(
    re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{127}", re.ASCII), fullmatch=True)
digests = st.one_of(st.text("0123456789abcdef", min_size=64, max_size=64).map(lambda h: f"sha256:{h}"),
                    st.text("0123456789abcdef", min_size=128, max_size=128).map(lambda h: f"sha512:{h}"))


@st.composite
def references(draw: st.DrawFn) -> tuple[str, str | None]:
    """(text, Docker's normalised form, None if Docker refuses it) of a reference from the grammar."""
    domain = draw(st.one_of(st.none(), domains()))
    path = draw(paths)
    tag = draw(st.one_of(st.none(), tags))
    digest = draw(st.one_of(st.none(), digests))
    text = (f"{domain}/" if domain else "") + path + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    first, slash, rest = path.partition("/")
    if domain is None and slash and ("." in first or first == "localhost"):
        # Docker's splitDockerDomain: such a first component is a domain, whatever was meant
        if not GRAMMAR["domain"].fullmatch(first):
            return text, None
        domain, path = first, rest
    norm_domain = "docker.io" if domain in (None, "docker.io", "index.docker.io") else domain
    norm_path = f"library/{path}" if norm_domain == "docker.io" and "/" not in path else path
    assume(len(norm_domain) + 1 + len(norm_path) <= 255)
    assume(not (domain is None and re.fullmatch("[a-f0-9]{64}", path) and tag is None and digest is None))
    if tag is None and digest is None:
        tag = "latest"
    expected = f"{norm_domain}/{norm_path}" + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    return text, expected


def check_well_formed(ref: reference.Reference) -> None:
    """What the parser returns obeys Docker's grammar, checked independently of its own regexes."""
    assert GRAMMAR["domain"].fullmatch(ref.domain), ref
    assert GRAMMAR["path"].fullmatch(ref.path), ref
    assert len(ref.name) <= 255
    if ref.tag is not None:
        assert GRAMMAR["tag"].fullmatch(ref.tag), ref
    if ref.digest is not None:
        assert GRAMMAR["digest"].fullmatch(str(ref.digest)), ref
    assert ref.tag is not None or ref.digest is not None  # default_tag=True
    assert reference.parse(str(ref)) == ref  # the canonical string is a fixed point
    familiar = ref.familiar()
    first, slash, _ = familiar.partition("/")
    # As in Docker, "docker.io/a.b/c" familiarises to "a.b/c", which names the domain "a.b".
    if ref.domain != "docker.io" or not (slash and ("." in first or first == "localhost")):
        assert reference.parse(familiar) == ref


def parse_or_error(text: str) -> reference.Reference | None:
    try:
        ref = reference.parse(text)
    except InvalidArgument as exc:
        assert str(exc).startswith(_ERROR_PREFIXES), str(exc)
        return None
    check_well_formed(ref)
    return ref


# -- properties ----------------------------------------------------------------------------------------

@fuzz(400)
@given(st.text(max_size=80))
@example("busybox\n")
@example("busybox:latest\n")
@example("busybox:\u00e9t\u00e9")
@example("x@sha256:" + "a" * 64 + "\n")
@example("\u0131mage")
def test_arbitrary_text_parses_or_is_invalid_reference(text: str) -> None:
    ref = parse_or_error(text)
    if ref is not None:  # nothing outside printable ASCII survives parsing
        assert all("!" <= c <= "~" for c in text), text


_NEAR = st.sampled_from([*"abc019/:@._-AZ[]", "sha256:", "sha512:", "localhost", "docker.io/", "\n", " ", "\t", "\x00",
                         "\u00e9", "\u0661", "\uff21"])


@fuzz(400)
@given(st.lists(_NEAR, max_size=20).map("".join))
def test_reference_like_text_parses_or_is_invalid_reference(text: str) -> None:
    parse_or_error(text)


@fuzz(300)
@given(references())
@example(("busybox", "docker.io/library/busybox:latest"))
@example(("index.docker.io/user/app:1", "docker.io/user/app:1"))
@example(("localhost:5000/a/b@sha512:" + "c" * 128, "localhost:5000/a/b@sha512:" + "c" * 128))
@example(("a" * 200 + ":" + "t" * 128 + "@sha512:" + "d" * 128,
          "docker.io/library/" + "a" * 200 + ":" + "t" * 128 + "@sha512:" + "d" * 128))
def test_grammar_references_round_trip_to_dockers_normal_form(case: tuple[str, str | None]) -> None:
    text, expected = case
    if expected is None:  # e.g. "a_b.c/d": Docker takes "a_b.c" for a domain, an invalid one
        assert parse_or_error(text) is None
        return
    ref = reference.parse(text)
    assert str(ref) == expected
    check_well_formed(ref)
    # default_tag=False keeps an absent tag absent
    bare = reference.parse(text, default_tag=False)
    assert bare.domain == ref.domain and bare.path == ref.path and bare.digest == ref.digest
    if ":" not in text.rpartition("/")[2].partition("@")[0] and "@" not in text:
        assert bare.tag is None and str(bare) == ref.name


@fuzz(150)
@given(references(), st.data())
def test_garbage_injected_into_a_reference_is_refused(case: tuple[str, str | None], data: st.DataObject) -> None:
    text, _ = case
    bad = data.draw(st.sampled_from([" ", "\t", "\n", "\r", "\x00", "\x7f", "\u00e9", "\u0661", "\u212a", "\uff41",
                                     "\u0130"]))
    pos = data.draw(st.integers(0, len(text)))
    mutated = text[:pos] + bad + text[pos:]
    try:
        reference.parse(mutated)
    except InvalidArgument as exc:
        assert str(exc).startswith(_ERROR_PREFIXES)
    else:
        raise AssertionError(f"accepted {mutated!r}")


@fuzz(100)
@given(st.one_of(st.none(), domains()), paths,
       st.from_regex(re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{128,200}", re.ASCII), fullmatch=True))
def test_tags_longer_than_128_are_refused(domain: str | None, path: str, tag: str) -> None:
    text = (f"{domain}/" if domain else "") + f"{path}:{tag}"
    assert parse_or_error(text) is None


@fuzz(100)
@given(st.one_of(st.none(), domains()), paths, st.data())
def test_uppercase_repository_names_are_refused(domain: str | None, path: str, data: st.DataObject) -> None:
    # Uppercase in the last component: an uppercase *first* component is a domain to Docker.
    last = path.rsplit("/", 1)[-1]
    i = data.draw(st.integers(0, len(last) - 1))
    assume(last[i].isalpha())
    upper = path[: len(path) - len(last)] + last[:i] + last[i].upper() + last[i + 1:]
    text = (f"{domain}/" if domain else "") + upper
    try:
        reference.parse(text)
    except InvalidArgument as exc:
        assert str(exc).startswith("invalid reference format")
    else:
        raise AssertionError(f"accepted {text!r}")


_BAD_DIGESTS = st.one_of(
    st.text("0123456789abcdef", max_size=130).filter(lambda h: len(h) not in (64, 128)).map(lambda h: f"sha256:{h}"),
    st.text("0123456789abcdef", min_size=64, max_size=64).filter(lambda h: h != h.upper())
    .map(lambda h: f"sha256:{h.upper()}"),
    st.text("0123456789abcdef", min_size=64, max_size=64).map(lambda h: f"md5:{h}"),
    st.text("0123456789abcdef", min_size=64, max_size=64).map(lambda h: f"sha256{h}"),
    st.text("0123456789abcdefg", min_size=64, max_size=64).filter(lambda h: "g" in h).map(lambda h: f"sha256:{h}"),
    st.just("sha256:"), st.just(""), st.just("sha256:" + "a" * 64 + "@sha256:" + "a" * 64),
)


@fuzz(100)
@given(paths, _BAD_DIGESTS)
def test_bad_digests_are_refused(path: str, digest: str) -> None:
    assert parse_or_error(f"{path}@{digest}") is None
    try:
        Digest.parse(digest)
    except InvalidArgument:
        pass
    else:
        raise AssertionError(f"Digest.parse accepted {digest!r}")


@fuzz(100)
@given(digests, st.sampled_from(["\n", " ", "\t", "\r\n"]))
def test_digest_parse_refuses_trailing_whitespace(digest: str, tail: str) -> None:
    assert str(Digest.parse(digest)) == digest
    try:
        Digest.parse(digest + tail)
    except InvalidArgument:
        pass
    else:
        raise AssertionError(f"Digest.parse accepted {digest + tail!r}")


def test_docker_normalisation_examples() -> None:
    cases = {
        "busybox": "docker.io/library/busybox:latest",
        "busybox:1.36": "docker.io/library/busybox:1.36",
        "user/app": "docker.io/user/app:latest",
        "docker.io/busybox": "docker.io/library/busybox:latest",
        "index.docker.io/library/busybox:x": "docker.io/library/busybox:x",
        "localhost/app": "localhost/app:latest",
        "localhost:5000/a/b:c": "localhost:5000/a/b:c",
        "Registry.Example.com/a": "Registry.Example.com/a:latest",
        "UPPER/a": "UPPER/a:latest",  # an uppercase first component is a domain
        "[::1]:5000/a": "[::1]:5000/a:latest",
        "localhost:5000": "docker.io/library/localhost:5000",  # no slash: a tag, not a port
    }
    for text, want in cases.items():
        assert str(reference.parse(text)) == want, text
    assert reference.parse("busybox").familiar() == "busybox:latest"
    assert reference.parse("docker.io/library/a/b").familiar() == "library/a/b:latest"
    for bad in ["", "Busybox", "a/B", "a:", "a@", ":a", "/a", "a/", "a//b", "a:b:c", "-a", "a-", "a..b",
                "a" * 64, "foo:bar/baz", "x:" + "t" * 129, "a b", "a\n"]:
        assert parse_or_error(bad) is None, bad
