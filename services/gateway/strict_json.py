"""Strict JSON in and out of the gateway, for every route at once.

In: a JSON request body is parsed here before any view runs (`check_request_input`, called by
the request hook in app.py), and the app's JSON provider (`request.get_json()`) parses the same
way. Refused:
- 400 `malformed-body`: not JSON, not UTF-8, `NaN` / `Infinity` (not JSON), duplicate keys,
  nesting deeper than MAX_DEPTH;
- 422 `validation-failed`, naming each field: numbers that do not fit (`1e999`, an integer
  outside 64 bits, a 5,000-digit integer), strings with a lone surrogate (`"a\\ud800b"`) or a
  NUL character, and NUL characters in query parameters.

Out: `StrictJSONProvider.dumps` never writes `NaN` or `Infinity` (a stored non-finite number is
answered as null and logged), never a lone surrogate (replaced by U+FFFD), and writes every
timestamp in UTC ISO 8601: datetimes and ISO date-time strings with an offset (`+08:00` as a
service echoed a client's value) become `+00:00`.
"""

from __future__ import annotations

import json
import logging
import math
import re
from datetime import datetime
from typing import Any

from flask import Request
from flask.json.provider import DefaultJSONProvider
from webargs.core import is_json

from shared.payloads import ISO_WITH_OFFSET, utc_iso

log = logging.getLogger("services.gateway.json")

MAX_DEPTH = 32
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
# A 5,000-digit integer makes int() itself raise (CPython's 4,300-digit limit): the length is
# checked first, the range after.
_MAX_INT_CHARS = 20
_MAX_ERRORS = 20
_SURROGATE = re.compile("[\ud800-\udfff]")


class MalformedJson(ValueError):
    """The body is not strict JSON (a 400)."""


class InvalidJsonValues(ValueError):
    """The body is JSON, but some values cannot be accepted (a 422); `errors` maps each field's
    path (`attributes.size`, `items[2].name`) to its messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


class _Refused:
    """Stands in for a number that cannot be accepted, so the walk can name its field."""

    __slots__ = ("message",)

    def __init__(self, message: str):
        self.message = message


def _parse_int(text: str) -> int | _Refused:
    if len(text) > _MAX_INT_CHARS or not INT_MIN <= (value := int(text)) <= INT_MAX:
        return _Refused(f"Integer out of range (64-bit signed): {text[:24]}"
                        f"{'...' if len(text) > 24 else ''}.")
    return value


def _parse_float(text: str) -> float | _Refused:
    value = float(text)
    if not math.isfinite(value):
        return _Refused(f"Number out of range: {text[:24]}{'...' if len(text) > 24 else ''}.")
    return value


def _parse_constant(name: str) -> Any:
    raise MalformedJson(f"{name} is not JSON; send a number or null.")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise MalformedJson(f"Duplicate key {key[:64]!r} in an object.")
            seen.add(key)
    return result


def _string_problem(text: str) -> str | None:
    if "\x00" in text:
        return "NUL characters are not allowed."
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "Lone surrogate: not valid Unicode."
    return None


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]" if path else f"[{key}]"
    return f"{path}.{key}" if path else key


def _check_values(root: Any) -> None:
    """Walks the parsed body iteratively (no input can exhaust the stack): depth, refused
    numbers, and strings and keys that cannot be stored."""
    errors: dict[str, list[str]] = {}
    stack: list[tuple[Any, str, int]] = [(root, "", 0)]
    while stack and len(errors) < _MAX_ERRORS:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            problem = _string_problem(value)
            if problem:
                errors.setdefault(path or "body", []).append(problem)
        elif isinstance(value, _Refused):
            errors.setdefault(path or "body", []).append(value.message)
        elif isinstance(value, dict | list):
            if depth >= MAX_DEPTH:
                raise MalformedJson(f"Nested deeper than {MAX_DEPTH} levels (at {path}).")
            if isinstance(value, dict):
                for key, item in value.items():
                    problem = _string_problem(key)
                    key_path = _child(path, _SURROGATE.sub("\ufffd", key.replace("\x00", "")))
                    if problem:
                        errors.setdefault(key_path, []).append(f"In the key: {problem}")
                    stack.append((item, key_path, depth + 1))
            else:
                stack.extend((item, _child(path, i), depth + 1) for i, item in enumerate(value))
    if errors:
        raise InvalidJsonValues(dict(sorted(errors.items())))


def strict_loads(data: str | bytes) -> Any:
    """Parses `data` as strict JSON (RFC 8259, I-JSON numbers and strings) or raises
    MalformedJson / InvalidJsonValues."""
    if isinstance(data, bytes | bytearray):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedJson(f"The body is not UTF-8 (byte {exc.start}).") from None
    if data.startswith("\ufeff"):
        raise MalformedJson("The body starts with a byte order mark.")
    try:
        value = json.loads(
            data,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
            object_pairs_hook=_object,
        )
    except RecursionError:
        raise MalformedJson(f"Nested deeper than {MAX_DEPTH} levels.") from None
    except json.JSONDecodeError as exc:
        raise MalformedJson(f"Not valid JSON: {exc.msg} (line {exc.lineno}, column "
                            f"{exc.colno}).") from None
    _check_values(value)
    return value


def check_request_input(request: Request) -> None:
    """Refuses a request whose query parameters or JSON body cannot be accepted, before any view
    or schema sees it. Multipart and form bodies are left to their views (uploads have their
    own size limit, set after this hook runs)."""
    for name, value in request.args.items(multi=True):
        if "\x00" in name or "\x00" in value:
            raise InvalidJsonValues({name.replace("\x00", ""): [
                "NUL characters are not allowed."]})
    if not is_json(request.mimetype):
        return
    body = request.get_data(cache=True)
    if body:
        strict_loads(body)


# -- out -------------------------------------------------------------------------------------


def _wire(value: Any) -> Any:
    """Timestamps to UTC; everything else unchanged (containers copied only when needed)."""
    if isinstance(value, str):
        if len(value) >= 20 and value[10:11] == "T" and ISO_WITH_OFFSET.fullmatch(value):
            return utc_iso(value)
        return value
    if isinstance(value, dict):
        return {key: _wire(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_wire(item) for item in value]
    if isinstance(value, datetime):
        return utc_iso(value)
    return value


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def strict_dumps(obj: Any, **kwargs: Any) -> str:
    """json.dumps that never writes NaN, Infinity or a lone surrogate, with timestamps in UTC."""
    kwargs["allow_nan"] = False
    obj = _wire(obj)
    try:
        text = json.dumps(obj, **kwargs)
    except ValueError:
        # NaN or Infinity from a service (stored before the input was strict): null beats a
        # document that is not JSON, and beats a 500 for a whole list.
        log.warning("non-finite number in a response replaced by null")
        text = json.dumps(_finite(obj), **kwargs)
    if not text.isascii() and _SURROGATE.search(text):
        text = _SURROGATE.sub("\ufffd", text)
    return text


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, strict both ways (see the module docstring)."""

    ensure_ascii = False
    sort_keys = False

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        kwargs.setdefault("default", self.default)
        kwargs.setdefault("ensure_ascii", self.ensure_ascii)
        kwargs.setdefault("sort_keys", self.sort_keys)
        return strict_dumps(obj, **kwargs)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return strict_loads(s)
