"""JSON through the ``_json`` C accelerator directly.

``import json`` pulls in ``re`` and ``enum`` (~7 ms); the runtime starts an interpreter per call and
reads/writes JSON on every one, so it talks to the same C scanner/encoder ``json`` uses, minus the
Python wrappers. Output is compact; input is strict JSON (NaN/Infinity accepted like ``json``).
"""

from __future__ import annotations

import _json

from dockyard.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_WS = " \t\n\r"


class _Ctx:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, str] = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


_scan = _json.make_scanner(_Ctx())  # type: ignore[arg-type]  # duck-typed context, as json does


def _default(obj: object) -> object:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


_encode = _json.make_encoder(None, _default, _json.encode_basestring_ascii, None, ":", ",", False, False, True)


def loads(data: str | bytes) -> Any:
    text = data.decode() if isinstance(data, bytes) else data
    idx = len(text) - len(text.lstrip(_WS))
    try:
        obj, end = _scan(text, idx)
    except StopIteration as exc:
        raise InvalidArgument(f"invalid JSON at offset {exc.value}") from None
    except ValueError as exc:
        raise InvalidArgument(f"invalid JSON: {exc}") from None
    if text[end:].strip(_WS):
        raise InvalidArgument(f"invalid JSON: extra data at offset {end}")
    return obj


def dumps(obj: object) -> str:
    return "".join(_encode(obj, 0))
