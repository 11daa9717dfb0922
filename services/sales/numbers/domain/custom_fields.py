"""Custom fields an admin adds to customers, contacts and opportunities, without code.

A definition is a plain dict: `entity`, `key`, `label`, `type`, `required`, `options`, `regex`,
`min`, `max`, `unique`, `position`, `active`. Values live in the record's `custom` JSON object
under the definition's key, stored in a JSON-native form that sorts and filters in SQL:
text, choice: string; number: integer; decimal: string of the exact decimal (money is never a
float); date: "YYYY-MM-DD"; multi_choice: list of strings; boolean: true/false.

Errors name the field as `custom.<key>`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

import re2

from services.sales.numbers.contract import (  # noqa: F401 - RULES_DOC, rules_of: offered here
    ENTITIES,
    FIELD_TYPES,
    FILTER_OPERATORS,
    REGEX_MAX,
    RULES_DOC,
    rules_of,
)
from shared.errors import ValidationFailed

KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
TEXT_MAX = 2000
# RE2 matches in time linear in the value (no backtracking, so `(a+)+$` cannot blow up); its
# memory for one compiled pattern is capped too, which refuses patterns that expand hugely.
REGEX_MEMORY = 2 * 1024 * 1024
OPTION_MAX = 100
RANGE_TYPES = ("text", "number", "decimal", "date")  # text: min/max length
UNIQUE_TYPES = ("text", "number", "decimal", "date", "choice")
TRUE_WORDS = frozenset({"true", "yes", "y", "1", "是", "对", "真", "√"})
FALSE_WORDS = frozenset({"false", "no", "n", "0", "否", "不是", "假", "×"})

def field_path(key: str) -> str:
    return f"custom.{key}"


class PatternError(ValueError):
    """A regex that RE2 does not take (syntax, back-references, look-around, too large)."""


def _re2_options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # an admin's typo is a 422, not a line on stderr
    options.max_mem = REGEX_MEMORY
    return options


@functools.lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> Any:
    """A custom field's regex compiled with RE2 (linear-time matching); PatternError with
    RE2's reason when it is not accepted."""
    try:
        return re2.compile(pattern, _re2_options())
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(str(reason)) from None


def matches_pattern(pattern: str, value: str) -> bool:
    return compile_pattern(pattern).fullmatch(value) is not None


# -- definitions ---------------------------------------------------------------------------


def validate_definition(
    data: dict[str, Any], existing: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A clean definition from admin input, or `ValidationFailed` naming each bad attribute.

    With `existing` (an update) the entity, key and type stay; the rest may change."""
    if not isinstance(data, dict):
        raise ValidationFailed.for_fields({"_schema": ["expected a JSON object"]})
    errors: dict[str, list[str]] = {}
    allowed = {"entity", "key", "label", "type", "required", "options", "regex", "min", "max",
               "unique", "position", "active", "description"}
    for name in sorted(set(data) - allowed):
        errors[name] = ["Unknown field."]
    merged = {**(existing or {}), **data}
    if existing:
        for name in ("entity", "key", "type"):
            if name in data and data[name] != existing[name]:
                errors[name] = [f"cannot be changed (it is {existing[name]!r}); add a new field"]
            merged[name] = existing[name]

    entity = merged.get("entity")
    if entity not in ENTITIES:
        errors.setdefault("entity", []).append(f"must be one of {', '.join(ENTITIES)}")
    key = merged.get("key")
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        errors.setdefault("key", []).append(
            "must start with a lower-case letter and hold only a-z, 0-9 and _ (at most 40)"
        )
    label = merged.get("label")
    if not isinstance(label, str) or not label.strip() or len(label) > 100:
        errors["label"] = ["must be text of 1 to 100 characters"]
    type_ = merged.get("type")
    if type_ not in FIELD_TYPES:
        errors.setdefault("type", []).append(f"must be one of {', '.join(FIELD_TYPES)}")
    for flag in ("required", "unique", "active"):
        if flag in merged and merged[flag] is not None and not isinstance(merged[flag], bool):
            errors[flag] = ["must be true or false"]
    position = merged.get("position", 0)
    if position is None:
        position = 0
    if isinstance(position, bool) or not isinstance(position, int):
        errors["position"] = ["must be an integer"]
    description = merged.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > 500):
        errors["description"] = ["must be text of at most 500 characters"]

    options = merged.get("options") or []
    if type_ in ("choice", "multi_choice"):
        if (
            not isinstance(options, list)
            or not options
            or not all(isinstance(o, str) and o.strip() for o in options)
        ):
            errors["options"] = ["must be a non-empty list of non-empty strings"]
        elif len(options) > OPTION_MAX:
            errors["options"] = [f"at most {OPTION_MAX} options"]
        elif len({o.strip() for o in options}) != len(options):
            errors["options"] = ["options must be distinct"]
        else:
            options = [o.strip() for o in options]
    elif options and type_ in FIELD_TYPES:
        errors["options"] = [f"only choice and multi_choice fields have options, not {type_}"]

    regex = merged.get("regex")
    if regex not in (None, ""):
        if type_ != "text":
            errors["regex"] = ["only text fields take a regex"]
        elif not isinstance(regex, str) or len(regex) > REGEX_MAX:
            errors["regex"] = [f"must be a regular expression of at most {REGEX_MAX} characters"]
        else:
            try:
                compile_pattern(regex)
            except PatternError as exc:
                errors["regex"] = [
                    f"not a regular expression in RE2 syntax ({exc}): back-references and "
                    "look-around are not supported, so that checking a value takes time "
                    "linear in its length"
                ]
    else:
        regex = None

    bounds: dict[str, Any] = {}
    for bound in ("min", "max"):
        raw = merged.get(bound)
        if raw is None:
            bounds[bound] = None
            continue
        if type_ not in RANGE_TYPES:
            errors[bound] = [f"{type_} fields take no {bound}"]
            continue
        try:
            bounds[bound] = _bound(type_, raw)
        except ValueError as exc:
            errors[bound] = [str(exc)]
    if bounds.get("min") is not None and bounds.get("max") is not None and not errors.get("min"):
        if _comparable(type_, bounds["min"]) > _comparable(type_, bounds["max"]):
            errors["max"] = ["must not be below min"]

    unique = bool(merged.get("unique", False))
    if unique and type_ in FIELD_TYPES and type_ not in UNIQUE_TYPES:
        errors["unique"] = [f"{type_} fields cannot be unique"]

    if errors:
        raise ValidationFailed.for_fields(errors)
    return {
        "entity": entity,
        "key": key,
        "label": label.strip(),
        "type": type_,
        "required": bool(merged.get("required", False)),
        "options": options if type_ in ("choice", "multi_choice") else [],
        "regex": regex,
        "min": bounds["min"],
        "max": bounds["max"],
        "unique": unique,
        "position": position,
        "active": merged.get("active", True) is not False,
        "description": description,
    }


def _bound(type_: str, raw: Any) -> Any:
    """A min/max as stored in the definition (JSON-native, like values)."""
    if type_ == "text" or type_ == "number":
        if isinstance(raw, bool) or not isinstance(raw, int):
            what = "a length (integer)" if type_ == "text" else "an integer"
            raise ValueError(f"must be {what}")
        if type_ == "text" and raw < 0:
            raise ValueError("a length cannot be negative")
        return raw
    if type_ == "decimal":
        value = _decimal(raw)
        if value is None:
            raise ValueError("must be a decimal number")
        return str(value)
    if type_ == "date":
        try:
            return date.fromisoformat(str(raw)).isoformat()
        except ValueError:
            raise ValueError("must be a date YYYY-MM-DD") from None
    raise ValueError(f"{type_} fields take no range")


def _comparable(type_: str, stored: Any) -> Any:
    return Decimal(stored) if type_ == "decimal" else stored


def _decimal(raw: Any) -> Decimal | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, float):
        raw = repr(raw)  # 0.1 -> "0.1", not the binary expansion
    try:
        value = Decimal(str(raw).strip().replace(",", ""))
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None


# -- values --------------------------------------------------------------------------------


def clean_value(definition: dict[str, Any], raw: Any, *, from_text: bool = False) -> Any:
    """The stored form of one value; `ValueError` with a message for the field.

    `from_text` accepts what a spreadsheet cell holds ("12", "是", "a;b") besides JSON."""
    type_ = definition["type"]
    if raw is None or (isinstance(raw, str) and not raw.strip() and type_ != "text"):
        return None
    if type_ == "text":
        if not isinstance(raw, str):
            if not from_text:
                raise ValueError("must be text")
            raw = str(raw)
        value = raw.strip()
        if not value:
            return None
        if len(value) > TEXT_MAX:
            raise ValueError(f"at most {TEXT_MAX} characters")
        if definition.get("min") is not None and len(value) < definition["min"]:
            raise ValueError(f"at least {definition['min']} characters")
        if definition.get("max") is not None and len(value) > definition["max"]:
            raise ValueError(f"at most {definition['max']} characters")
        if definition.get("regex"):
            try:
                matched = matches_pattern(definition["regex"], value)
            except PatternError:  # stored before patterns were checked with RE2
                raise ValueError("the field's pattern cannot be checked: an admin must change "
                                 "it to RE2 syntax") from None
            if not matched:
                raise ValueError(f"does not match the pattern {definition['regex']}")
        return value
    if type_ == "number":
        if isinstance(raw, bool):
            raise ValueError("must be an integer")
        if isinstance(raw, float) and raw.is_integer():
            raw = int(raw)
        if isinstance(raw, str) and from_text:
            try:
                raw = int(raw.strip().replace(",", ""))
            except ValueError:
                raise ValueError("must be an integer") from None
        if not isinstance(raw, int):
            raise ValueError("must be an integer")
        _check_range(definition, raw, raw)
        return raw
    if type_ == "decimal":
        value = _decimal(raw) if isinstance(raw, int | float | str) else None
        if value is None:
            raise ValueError("must be a decimal number")
        _check_range(definition, value, str(value))
        return str(value)
    if type_ == "date":
        text = raw.isoformat() if isinstance(raw, date) else raw
        if not isinstance(text, str):
            raise ValueError("must be a date YYYY-MM-DD")
        text = text.strip()[:10] if from_text else text.strip()
        try:
            value = date.fromisoformat(text.replace("/", "-") if from_text else text).isoformat()
        except ValueError:
            raise ValueError("must be a date YYYY-MM-DD") from None
        _check_range(definition, value, value)
        return value
    if type_ == "choice":
        value = raw.strip() if isinstance(raw, str) else raw
        if value not in definition["options"]:
            raise ValueError("must be one of: " + ", ".join(definition["options"]))
        return value
    if type_ == "multi_choice":
        if isinstance(raw, str) and from_text:
            raw = [part for part in re.split(r"[;；,，|、]", raw) if part.strip()]
        if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
            raise ValueError("must be a list of options")
        values = [item.strip() for item in raw]
        wrong = [item for item in values if item not in definition["options"]]
        if wrong:
            raise ValueError(
                f"not an option: {', '.join(wrong)} (options: {', '.join(definition['options'])})"
            )
        return sorted(set(values), key=definition["options"].index)
    if type_ == "boolean":
        if isinstance(raw, bool):
            return raw
        if from_text and isinstance(raw, str | int):
            word = str(raw).strip().lower()
            if word in TRUE_WORDS:
                return True
            if word in FALSE_WORDS:
                return False
        raise ValueError("must be true or false")
    raise ValueError(f"unknown field type {type_}")


def _check_range(definition: dict[str, Any], value: Any, shown: Any) -> None:
    type_ = definition["type"]
    lo, hi = definition.get("min"), definition.get("max")
    if lo is not None and value < _comparable(type_, lo):
        raise ValueError(f"must be at least {lo}")
    if hi is not None and value > _comparable(type_, hi):
        raise ValueError(f"must be at most {hi}")


def validate_custom(
    definitions: Iterable[dict[str, Any]],
    values: Any,
    *,
    partial: bool = False,
    from_text: bool = False,
) -> dict[str, Any]:
    """Clean `custom` values of one record against the entity's active definitions.

    `partial` (an update): only the given keys are checked and returned; a required field may
    not be cleared. Otherwise (a create) every required field must have a value. Keys set to
    null are kept as None in the result so an update can remove them. Raises
    `ValidationFailed` with `custom.<key>` messages (unknown keys included)."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ValidationFailed.for_fields({"custom": ["must be an object of custom field values"]})
    active = {d["key"]: d for d in definitions if d.get("active", True)}
    errors: dict[str, list[str]] = {}
    cleaned: dict[str, Any] = {}
    for key, raw in values.items():
        definition = active.get(key)
        if definition is None:
            errors[field_path(str(key))] = ["Unknown custom field."]
            continue
        try:
            value = clean_value(definition, raw, from_text=from_text)
        except ValueError as exc:
            errors[field_path(key)] = [str(exc)]
            continue
        if value is None and definition.get("required"):
            errors[field_path(key)] = ["is required"]
            continue
        cleaned[key] = value
    if not partial:
        for key, definition in active.items():
            if definition.get("required") and key not in values:
                errors[field_path(key)] = ["is required"]
    if errors:
        raise ValidationFailed.for_fields(errors)
    return cleaned


def merge_custom(stored: dict[str, Any] | None, cleaned: dict[str, Any]) -> dict[str, Any]:
    """Stored values updated with cleaned ones; None removes a key."""
    result = dict(stored or {})
    for key, value in cleaned.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


# -- filters -------------------------------------------------------------------------------

def parse_filters(
    definitions: Iterable[dict[str, Any]], raw: dict[str, Any]
) -> list[tuple[dict[str, Any], str, Any]]:
    """Custom-field filters from `{"<key>": value}` or `{"<key>__<op>": value}` (op in
    FILTER_OPERATORS), typed like values: [(definition, op, cleaned value)].

    Multi-choice `eq` / `contains` mean "holds this option"."""
    by_key = {d["key"]: d for d in definitions}
    errors: dict[str, list[str]] = {}
    parsed: list[tuple[dict[str, Any], str, Any]] = []
    for name, raw_value in (raw or {}).items():
        key, _, op = str(name).partition("__")
        op = op or "eq"
        definition = by_key.get(key)
        if definition is None:
            errors[field_path(key)] = ["Unknown custom field."]
            continue
        if op not in FILTER_OPERATORS:
            errors[field_path(name)] = [f"operator must be one of {', '.join(FILTER_OPERATORS)}"]
            continue
        if op in ("gte", "lte") and definition["type"] not in ("number", "decimal", "date"):
            errors[field_path(name)] = [f"{op} needs a number, decimal or date field"]
            continue
        try:
            if op == "exists":
                value: Any = clean_value({"type": "boolean"}, raw_value, from_text=True)
            elif op == "in":
                items = raw_value if isinstance(raw_value, list) else str(raw_value).split(",")
                value = [_filter_value(definition, item) for item in items]
            else:
                value = _filter_value(definition, raw_value)
        except ValueError as exc:
            errors[field_path(name)] = [str(exc)]
            continue
        parsed.append((definition, op, value))
    if errors:
        raise ValidationFailed.for_fields(errors)
    return parsed


def _filter_value(definition: dict[str, Any], raw: Any) -> Any:
    # A filter value is not a stored value: no required/regex/range rules apply to it.
    loose = {**definition, "regex": None, "min": None, "max": None, "required": False}
    if definition["type"] == "multi_choice":
        loose["type"] = "choice"
    return clean_value(loose, raw, from_text=True)
