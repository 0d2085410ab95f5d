"""stdcopy framing, detach-key parsing and matching."""

from __future__ import annotations

import pytest

from dockyard.api.streams import DetachMatcher, frame, parse_detach_keys, unframe
from dockyard.errors import InvalidArgument


def test_frame_header_layout() -> None:
    assert frame(1, b"hi") == b"\x01\x00\x00\x00\x00\x00\x00\x02hi"
    assert frame(2, b"") == b"\x02\x00\x00\x00\x00\x00\x00\x00"
    big = b"x" * 70000
    assert frame(2, big)[:8] == b"\x02\x00\x00\x00\x00\x01\x11\x70"


def test_unframe_round_trip_and_partial() -> None:
    data = frame(1, b"out") + frame(2, b"err") + frame(1, b"tail")
    frames, rest = unframe(data[:-2])
    assert frames == [(1, b"out"), (2, b"err")] and rest == data[22:-2]
    frames, rest = unframe(data)
    assert frames == [(1, b"out"), (2, b"err"), (1, b"tail")] and rest == b""


@pytest.mark.parametrize(("spec", "keys"), [
    ("", b"\x10\x11"), ("ctrl-p,ctrl-q", b"\x10\x11"), ("ctrl-a", b"\x01"), ("a,b", b"ab"),
    ("ctrl-@,ctrl-[", b"\x00\x1b"), ("ctrl-Z", b"\x1a"),
])
def test_parse_detach_keys(spec: str, keys: bytes) -> None:
    assert parse_detach_keys(spec) == keys


@pytest.mark.parametrize("spec", ["ctrl-", "ctrl-1", "foo", "ctrl-p,,"])
def test_bad_detach_keys(spec: str) -> None:
    with pytest.raises(InvalidArgument, match=r"Invalid detach keys"):
        parse_detach_keys(spec)


def test_detach_matcher() -> None:
    m = DetachMatcher(b"\x10\x11")
    assert m.feed(b"abc") == (b"abc", False)
    assert m.feed(b"x\x10") == (b"x", False)          # held: may be the start of the sequence
    assert m.feed(b"y") == (b"\x10y", False)          # not the sequence: released in order
    assert m.feed(b"z\x10") == (b"z", False)
    assert m.feed(b"\x11after") == (b"", True)        # split across reads, still detaches
    m2 = DetachMatcher(b"\x10\x11")
    assert m2.feed(b"\x10\x10\x11") == (b"\x10", True)


def _reference_feed(keys: bytes, held: bytes, data: bytes) -> tuple[bytes, bool, bytes]:
    """Byte at a time: the obvious matcher the fast one must agree with."""
    out = bytearray()
    for b in data:
        candidate = held + bytes([b])
        if keys.startswith(candidate):
            if candidate == keys:
                return bytes(out), True, b""
            held = candidate
            continue
        out += held
        held = b""
        if keys.startswith(bytes([b])):
            if len(keys) == 1:
                return bytes(out), True, b""
            held = bytes([b])
        else:
            out.append(b)
    return bytes(out), False, held


@pytest.mark.parametrize("seed", range(20))
def test_detach_matcher_agrees_with_bytewise_reference(seed: int) -> None:
    import random
    rnd = random.Random(seed)
    keys = bytes(rnd.choice([b"\x10\x11", b"\x10\x10\x11", b"\x01", b"ab"]))
    data = bytes(rnd.choice(b"\x10\x11\x01ab-xyz") for _ in range(400))
    m, held = DetachMatcher(keys), b""
    pos = 0
    while pos < len(data):
        chunk = data[pos:pos + rnd.randint(1, 50)]
        pos += len(chunk)
        got = m.feed(chunk)
        want, detached, held = _reference_feed(keys, held, chunk)
        assert got == (want, detached)
        if detached:
            break
