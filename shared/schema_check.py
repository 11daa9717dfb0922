"""A quick yes to "does this payload load with that marshmallow schema?".

Every event a service records is validated against its schema (the catalogue's promise to
integrators). marshmallow's `validate` builds the loaded result field by field; for the rules
service's events that was about a fifth of the CPU of a fired timer. `quick_check(schema)` turns
a schema made of plain fields (strings, integers, floats, booleans, raw values, dicts, lists,
ISO 8601 datetimes and nested schemas, with their validators) into a function that only
answers: certainly valid, or not sure. "Not sure" sends the payload to marshmallow, which
decides and says why, so the quick check may be stricter than marshmallow but never more
lenient. A schema with anything else (another field type, hooks, `many`) gets no quick check.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields

Check = Callable[[Any], bool]

# Exact types only: a subclass (Email, URL, Url, ...) deserialises differently.
_VALUE_CHECKS: dict[type, Check] = {
    fields.String: lambda value: type(value) is str,
    fields.Integer: lambda value: type(value) is int,
    fields.Boolean: lambda value: type(value) is bool,
    fields.Float: lambda value: type(value) in (int, float) and math.isfinite(value),
    fields.Raw: lambda value: True,
}


def quick_check(schema: Schema) -> Check | None:
    """True: `schema.validate(data)` finds no problem. False: it may (ask it). None: this schema
    is beyond the quick check."""
    if schema.many or any(schema._hooks.values()):  # validators or processors of the schema
        return None
    checks: dict[str, Check] = {}
    required: set[str] = set()
    for name, field in schema.load_fields.items():
        check = _field_check(field)
        if check is None:
            return None
        key = field.data_key or name
        checks[key] = check
        if field.required:
            required.add(key)
    known = frozenset(checks)
    closed = schema.unknown == RAISE

    def valid(data: Any) -> bool:
        if type(data) is not dict or not required.issubset(data):
            return False
        if closed and not known.issuperset(data):
            return False
        return all(check(data[key]) for key, check in checks.items() if key in data)

    return valid


def _field_check(field: fields.Field) -> Check | None:
    kind = type(field)
    validators = tuple(field.validators)
    check: Check | None
    if kind in _VALUE_CHECKS:
        check = _VALUE_CHECKS[kind]  # a valid value loads as itself: validators can see it
    elif validators:  # they would see the loaded value, which may differ from the input
        return None
    elif isinstance(field, fields.DateTime):
        check = _datetime_check(field)
    elif kind is fields.Dict:
        if field.key_field is not None or field.value_field is not None:
            return None
        check = _is_dict
    elif kind is fields.List:
        check = _list_check(field)
    elif kind is fields.Nested and not field.many and isinstance(field.schema, Schema):
        # `unknown` given on the field overrides the nested schema's own
        check = quick_check(field.schema) if field.unknown is None else None
    else:
        return None
    if check is None:
        return None
    return _with_null_and_validators(check, field.allow_none, validators)


def _datetime_check(field: fields.DateTime) -> Check | None:
    """DateTime and AwareDateTime in ISO 8601, and their subclasses that change only how they
    serialise (the services' `Timestamp`): marshmallow loads them with `fromisoformat`."""
    cls = type(field)
    if (field.format or cls.DEFAULT_FORMAT) not in ("iso", "iso8601") or (
        cls.DESERIALIZATION_FUNCS is not fields.DateTime.DESERIALIZATION_FUNCS
    ):
        return None
    if cls._deserialize is fields.DateTime._deserialize:
        return lambda value: _iso_datetime(value) is not None
    if cls._deserialize is fields.AwareDateTime._deserialize and field.default_timezone is None:
        return _is_aware_iso_datetime
    return None


def _iso_datetime(value: Any) -> dt.datetime | None:
    if type(value) is not str:
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return None


def _is_aware_iso_datetime(value: Any) -> bool:
    parsed = _iso_datetime(value)
    return parsed is not None and parsed.tzinfo is not None and (
        parsed.tzinfo.utcoffset(parsed) is not None)


def _is_dict(value: Any) -> bool:
    return type(value) is dict


def _list_check(field: fields.List) -> Check | None:
    inner = _field_check(field.inner)
    if inner is None:
        return None
    return lambda value: type(value) is list and all(inner(item) for item in value)


def _with_null_and_validators(check: Check, allow_none: bool, validators: tuple) -> Check:
    if not validators:
        return lambda value: allow_none if value is None else check(value)

    def checked(value: Any) -> bool:
        if value is None:
            return allow_none
        if not check(value):
            return False
        try:
            return all(validate(value) is not False for validate in validators)
        except ValidationError:
            return False

    return checked
