"""Content digests (``sha256:<64 hex>``), the identity of every blob."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from dockyard.errors import InvalidArgument

_HEX = {"sha256": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-fA-F0-9=_-]+)$")


@dataclass(frozen=True, order=True)
class Digest:
    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        m = _DIGEST_RE.fullmatch(text)  # not match: $ also matches before a final newline
        if not m:
            raise InvalidArgument(f"invalid digest {text!r}: expected <algorithm>:<hex>")
        algo, hexpart = m.group(1), m.group(2)
        want = _HEX.get(algo)
        if want is None:
            raise InvalidArgument(f"invalid digest {text!r}: unsupported algorithm {algo!r}")
        if len(hexpart) != want or not all(c in "0123456789abcdef" for c in hexpart):
            raise InvalidArgument(f"invalid digest {text!r}: expected {want} lowercase hex characters")
        return cls(algo, hexpart)

    @classmethod
    def from_bytes(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    @classmethod
    def from_hasher(cls, hasher: hashlib._Hash) -> Digest:
        return cls(hasher.name, hasher.hexdigest())

    def hasher(self) -> hashlib._Hash:
        return hashlib.new(self.algorithm)

    @property
    def encoded(self) -> str:
        return self.hex

    def short(self, n: int = 12) -> str:
        return self.hex[:n]

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def is_hex_id(text: str, *, min_len: int = 1) -> bool:
    """True when ``text`` could be a (prefix of a) 64-hex object ID."""
    return min_len <= len(text) <= 64 and all(c in "0123456789abcdef" for c in text)
