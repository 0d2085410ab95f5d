"""Engine records ⇄ JSON: dataclasses from ``types.py`` rebuilt from ``asdict`` output."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, TypeVar, Union

from dockyard.engine import types as etypes

T = TypeVar("T")
_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls, vars(etypes))
    return _HINTS[cls]


def _convert(tp: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            if arg is type(None):
                continue
            return _convert(arg, value)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return from_dict(tp, value)
    if origin is list:
        (arg,) = typing.get_args(tp) or (Any,)
        return [_convert(arg, v) for v in value]
    if origin is tuple:
        return tuple(value)
    if origin is dict:
        args = typing.get_args(tp)
        return {k: _convert(args[1], v) for k, v in value.items()} if args else dict(value)
    return value


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build ``cls`` from a dict, ignoring unknown keys (older/newer records stay readable)."""
    hints = _hints(cls)
    kwargs = {f.name: _convert(hints[f.name], data[f.name])
              for f in dataclasses.fields(cls) if f.name in data}  # type: ignore[arg-type]
    return cls(**kwargs)


def dumps(obj: Any) -> str:
    return json.dumps(dataclasses.asdict(obj), separators=(",", ":"))


def loads(cls: type[T], text: str | bytes) -> T:
    return from_dict(cls, json.loads(text))
