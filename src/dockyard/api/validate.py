"""Typed field access over decoded JSON objects; wrong types become InvalidArgument naming the field."""

from __future__ import annotations

import json
from typing import Any

from dockyard.errors import InvalidArgument

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def loads(text: str | bytes, what: str) -> Any:
    """``json.loads`` whose every failure on bad input is an InvalidArgument naming ``what``: a
    syntax error, bytes that are not UTF-8, a number too long to convert, nesting too deep."""
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise InvalidArgument(f"invalid JSON in {what}: nested too deeply") from exc
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, int digit limit
        raise InvalidArgument(f"invalid JSON in {what}: {exc}") from exc


def decode_json_object(body: bytes, what: str) -> dict[str, Any]:
    """Decode a request body that must be a JSON object (empty body = {})."""
    if not body.strip():
        return {}
    data = loads(body, what)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidArgument(f"invalid JSON in {what}: expected an object, got {_kind(data)}")
    return data


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null"


class Fields:
    """Reads keys of one JSON object; ``prefix`` names it in errors (``HostConfig.Memory``)."""

    def __init__(self, data: Any, prefix: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise InvalidArgument(f"invalid {prefix}: expected an object, got {_kind(data)}")
        self.data: dict[str, Any] = data
        self.prefix = prefix

    def _bad(self, key: str, expected: str) -> InvalidArgument:
        got = _kind(self.data.get(key))
        return InvalidArgument(f"invalid {self.prefix}.{key}: expected {expected}, got {got}")

    def raw(self, key: str) -> Any:
        return self.data.get(key)

    def sub(self, key: str) -> Fields:
        return Fields(self.data.get(key), f"{self.prefix}.{key}")

    def text(self, key: str, default: str = "") -> str:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self._bad(key, "a string")
        return value

    def integer(self, key: str, default: int = 0) -> int:
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._bad(key, "an integer")
        if isinstance(value, float):
            if not value.is_integer():
                raise self._bad(key, "an integer")
            value = int(value)
        if not INT64_MIN <= value <= INT64_MAX:  # Go's int64: json.Unmarshal refuses the number
            raise InvalidArgument(f"invalid {self.prefix}.{key}: {value} is out of range for an int64")
        return value

    def opt_int(self, key: str) -> int | None:
        return None if self.data.get(key) is None else self.integer(key)

    def boolean(self, key: str, default: bool = False) -> bool:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._bad(key, "a boolean")
        return value

    def opt_bool(self, key: str) -> bool | None:
        return None if self.data.get(key) is None else self.boolean(key)

    def str_list(self, key: str) -> list[str]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._bad(key, "an array of strings")
        return list(value)

    def strslice(self, key: str) -> list[str] | None:
        """Docker's StrSlice: a string or an array of strings; null stays None."""
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            return [value]
        return self.str_list(key)

    def str_map(self, key: str) -> dict[str, str]:
        value = self.data.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise self._bad(key, "an object of strings")
        return dict(value)

    def obj_map(self, key: str) -> dict[str, dict[str, Any]]:
        """A set encoded as ``{"80/tcp": {}}``."""
        value = self.data.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self._bad(key, "an object")
        out: dict[str, dict[str, Any]] = {}
        for k, v in value.items():
            if v is not None and not isinstance(v, dict):
                raise InvalidArgument(f"invalid {self.prefix}.{key}[{k!r}]: expected an object")
            out[k] = dict(v or {})
        return out

    def dict_list(self, key: str) -> list[dict[str, Any]]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self._bad(key, "an array of objects")
        return [dict(v) for v in value]
