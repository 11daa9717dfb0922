"""The scoring model: its rules, caps and thresholds, the default one, and its validation.

A model is validated once, when it is saved; scoring (on the hot path of every capture) trusts
the validated form.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from services.leads.contract import QUALIFICATIONS
from shared.errors import ValidationFailed

ATTRIBUTE_OPERATORS = ("equals", "not_equals", "contains", "in", "gte", "lte", "exists")
_MAX_RULE_POINTS = 1000

DEFAULT_SCORING_MODEL: dict[str, Any] = {
    "version": 1,
    "attribute_rules": [
        {"id": "industry-manufacturing", "field": "industry", "operator": "equals",
         "value": "制造业", "points": 10, "group": "fit",
         "description": "Industry is manufacturing (制造业)"},
        {"id": "title-procurement-director", "field": "title", "operator": "contains",
         "value": "采购总监", "points": 15, "group": "role",
         "description": "Title contains procurement director (采购总监)"},
        {"id": "title-director", "field": "title", "operator": "contains", "value": "总监",
         "points": 8, "group": "role", "description": "Title contains director (总监)"},
        {"id": "title-manager", "field": "title", "operator": "contains", "value": "经理",
         "points": 5, "group": "role", "description": "Title contains manager (经理)"},
        {"id": "title-director-en", "field": "title", "operator": "contains",
         "value": "director", "points": 8, "group": "role",
         "description": "Title contains director"},
        {"id": "title-manager-en", "field": "title", "operator": "contains", "value": "manager",
         "points": 5, "group": "role", "description": "Title contains manager"},
        {"id": "source-website", "field": "source", "operator": "equals", "value": "website",
         "points": 5, "group": "source", "description": "Came in through the website"},
        {"id": "source-referral", "field": "source", "operator": "equals", "value": "referral",
         "points": 10, "group": "source", "description": "Referred by a customer or partner"},
        {"id": "has-phone", "field": "phone", "operator": "exists", "value": None, "points": 3,
         "group": None, "description": "Phone number known"},
    ],
    "behaviour_rules": [
        {"id": "pricing-page", "behaviour": "visited_pricing_page", "points": 10,
         "group": "web", "max_count": 2, "description": "Visited the pricing page"},
        {"id": "whitepaper", "behaviour": "downloaded_whitepaper", "points": 8, "group": None,
         "max_count": 3, "description": "Downloaded a whitepaper"},
        {"id": "webinar", "behaviour": "attended_webinar", "points": 12, "group": None,
         "max_count": 2, "description": "Attended a webinar"},
        {"id": "email-open", "behaviour": "opened_email", "points": 2, "group": "email",
         "max_count": 5, "description": "Opened a marketing email"},
        {"id": "demo-request", "behaviour": "requested_demo", "points": 25, "group": None,
         "max_count": 1, "description": "Requested a demo"},
    ],
    # A director who is also a procurement director must not collect every title rule.
    "caps": {"email": 10, "role": 15, "source": 10, "web": 15},
    "thresholds": {"mql": 40, "sql": 70},
}  # fmt: skip


_MODEL_KEYS = {"version", "attribute_rules", "behaviour_rules", "caps", "thresholds"}
_ATTRIBUTE_RULE_KEYS = {"id", "field", "operator", "value", "points", "group", "description"}
_BEHAVIOUR_RULE_KEYS = {"id", "behaviour", "points", "group", "max_count", "description"}


def _is_int(value: Any) -> bool:
    # bool is an int subclass, but `"points": true` in JSON is a mistake, not 1 point.
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """An int or a float, not a bool (JSON true is not 1)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


class _Errors:
    """Collects messages per path so that one response lists every problem in a model."""

    def __init__(self) -> None:
        self.by_path: dict[str, list[str]] = {}

    def add(self, path: str, message: str) -> None:
        self.by_path.setdefault(path, []).append(message)


def _check_keys(
    item: dict[str, Any], path: str, allowed: set[str], required: Sequence[str], errors: _Errors
) -> None:
    for key in sorted(set(item) - allowed, key=str):
        errors.add(f"{path}.{key}" if path else str(key), f"unknown key {key!r}")
    for key in required:
        if key not in item:
            errors.add(f"{path}.{key}" if path else key, "this key is required")


def _check_common_rule_fields(
    rule: dict[str, Any], path: str, seen_ids: set[str], errors: _Errors
) -> None:
    rule_id = rule.get("id")
    if "id" in rule:
        if not isinstance(rule_id, str) or not rule_id.strip():
            errors.add(f"{path}.id", "must be a non-empty string")
        elif rule_id in seen_ids:
            errors.add(f"{path}.id", f"duplicate rule id {rule_id!r}")
        else:
            seen_ids.add(rule_id)
    if "points" in rule:
        points = rule["points"]
        if not _is_int(points):
            errors.add(f"{path}.points", f"must be an integer, got {points!r}")
        elif abs(points) > _MAX_RULE_POINTS:
            errors.add(
                f"{path}.points", f"must be between -{_MAX_RULE_POINTS} and {_MAX_RULE_POINTS}"
            )
    group = rule.get("group")
    if group is not None and (not isinstance(group, str) or not group.strip()):
        errors.add(f"{path}.group", "must be null or a non-empty string")
    description = rule.get("description")
    if description is not None and not isinstance(description, str):
        errors.add(f"{path}.description", "must be null or a string")


def _validate_attribute_rule(
    rule: Any, path: str, seen_ids: set[str], errors: _Errors
) -> dict[str, Any] | None:
    if not isinstance(rule, dict):
        errors.add(path, "must be an object")
        return None
    required = ["id", "field", "operator", "points"]
    if rule.get("operator") != "exists":
        required.append("value")
    _check_keys(rule, path, _ATTRIBUTE_RULE_KEYS, required, errors)
    _check_common_rule_fields(rule, path, seen_ids, errors)

    field_name = rule.get("field")
    if "field" in rule:
        if not isinstance(field_name, str) or not field_name.strip():
            errors.add(f"{path}.field", "must be a non-empty string")
        elif field_name.startswith("attributes.") and not field_name[len("attributes.") :]:
            errors.add(f"{path}.field", "'attributes.' must be followed by an attribute key")

    operator = rule.get("operator")
    value = rule.get("value")
    if "operator" in rule and operator not in ATTRIBUTE_OPERATORS:
        errors.add(
            f"{path}.operator",
            f"unknown operator {operator!r}; allowed: {', '.join(ATTRIBUTE_OPERATORS)}",
        )
    elif operator == "in":
        if not isinstance(value, list) or not value or not all(map(_is_scalar, value)):
            errors.add(f"{path}.value", "operator 'in' needs a non-empty list of values")
    elif operator in ("gte", "lte"):
        if not is_number(value):
            errors.add(f"{path}.value", f"operator {operator!r} needs a number, got {value!r}")
    elif operator == "contains":
        if not isinstance(value, str | int | float) or isinstance(value, bool) or value == "":
            errors.add(f"{path}.value", "operator 'contains' needs a non-empty text")
    elif operator in ("equals", "not_equals") and "value" in rule and not _is_scalar(value):
        errors.add(f"{path}.value", f"operator {operator!r} needs a single value")

    description = rule.get("description")
    if not isinstance(description, str) or not description.strip():
        description = f"{field_name} {operator}" + ("" if operator == "exists" else f" {value!r}")
    return {
        "id": rule.get("id"),
        "field": field_name,
        "operator": operator,
        # exists ignores the value; storing None keeps edited models from carrying junk.
        "value": None if operator == "exists" else copy.deepcopy(value),
        "points": rule.get("points"),
        "group": rule.get("group"),
        "description": description,
    }


def _validate_behaviour_rule(
    rule: Any, path: str, seen_ids: set[str], errors: _Errors
) -> dict[str, Any] | None:
    if not isinstance(rule, dict):
        errors.add(path, "must be an object")
        return None
    _check_keys(rule, path, _BEHAVIOUR_RULE_KEYS, ["id", "behaviour", "points"], errors)
    _check_common_rule_fields(rule, path, seen_ids, errors)
    behaviour = rule.get("behaviour")
    if "behaviour" in rule and (not isinstance(behaviour, str) or not behaviour.strip()):
        errors.add(f"{path}.behaviour", "must be a non-empty string")
    max_count = rule.get("max_count")
    if max_count is not None and (not _is_int(max_count) or max_count < 1):
        errors.add(f"{path}.max_count", f"must be null or an integer >= 1, got {max_count!r}")
    description = rule.get("description")
    if not isinstance(description, str) or not description.strip():
        description = f"behaviour {behaviour}"
    return {
        "id": rule.get("id"),
        "behaviour": behaviour,
        "points": rule.get("points"),
        "group": rule.get("group"),
        "max_count": max_count,
        "description": description,
    }


def _validate_rules(
    model: dict[str, Any], key: str, seen_ids: set[str], errors: _Errors
) -> list[dict[str, Any]]:
    rules = model.get(key)
    if key not in model:
        return []  # already reported as missing
    if not isinstance(rules, list):
        errors.add(key, "must be a list")
        return []
    validate = _validate_attribute_rule if key == "attribute_rules" else _validate_behaviour_rule
    checked = (
        validate(rule, f"{key}.{index}", seen_ids, errors) for index, rule in enumerate(rules)
    )
    return [rule for rule in checked if rule is not None]


def validate_scoring_model(model: dict[str, Any]) -> dict[str, Any]:
    """Return a normalised deep copy of `model` or raise ValidationFailed.

    Error field names are paths into the model ("attribute_rules.2.operator", "thresholds.sql")
    and every problem is reported at once. Defaults: `caps` {}, rule `group` None, behaviour
    `max_count` None (unlimited), and a generated `description` where none is given. Rule ids
    must be unique across both rule lists because score lines are keyed by them. Points may be
    negative (e.g. a competitor's domain); the total score is floored at 0 anyway.
    """
    errors = _Errors()
    if not isinstance(model, dict):
        raise ValidationFailed.for_fields({"model": ["a scoring model must be a JSON object"]})
    _check_keys(
        model,
        "",
        _MODEL_KEYS,
        ["version", "attribute_rules", "behaviour_rules", "thresholds"],
        errors,
    )

    version = model.get("version")
    if "version" in model and (not _is_int(version) or version < 1):
        errors.add("version", f"must be an integer >= 1, got {version!r}")

    seen_ids: set[str] = set()
    attribute_rules = _validate_rules(model, "attribute_rules", seen_ids, errors)
    behaviour_rules = _validate_rules(model, "behaviour_rules", seen_ids, errors)

    caps = model.get("caps") if model.get("caps") is not None else {}
    if not isinstance(caps, dict):
        errors.add("caps", "must be an object mapping group name to maximum points")
        caps = {}
    for group, cap in caps.items():
        if not _is_int(cap):
            errors.add(f"caps.{group}", f"must be an integer, got {cap!r}")
        elif cap < 0:
            errors.add(f"caps.{group}", f"must not be negative, got {cap}")

    thresholds = model.get("thresholds")
    if "thresholds" in model:
        if not isinstance(thresholds, dict):
            errors.add("thresholds", "must be an object with 'mql' and 'sql'")
        else:
            _check_keys(thresholds, "thresholds", set(QUALIFICATIONS), QUALIFICATIONS, errors)
            valid = True
            for name in QUALIFICATIONS:
                value = thresholds.get(name)
                if name in thresholds and (not _is_int(value) or value < 0):
                    errors.add(f"thresholds.{name}", f"must be an integer >= 0, got {value!r}")
                    valid = False
            if valid and all(name in thresholds for name in QUALIFICATIONS):
                if thresholds["mql"] > thresholds["sql"]:
                    errors.add(
                        "thresholds.sql",
                        f"sql threshold ({thresholds['sql']}) must not be lower than the mql "
                        f"threshold ({thresholds['mql']})",
                    )

    if errors.by_path:
        raise ValidationFailed.for_fields(errors.by_path, detail="Invalid scoring model")
    return {
        "version": version,
        "attribute_rules": attribute_rules,
        "behaviour_rules": behaviour_rules,
        "caps": dict(caps),
        "thresholds": {name: thresholds[name] for name in QUALIFICATIONS},
    }
