"""Scoring a lead with a validated model, and the qualification (MQL, SQL) it earns.

Text comparisons ignore case and full-width/half-width differences (NFKC + casefold), so
"Website" equals "ｗｅｂｓｉｔｅ".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from services.leads.contract import QUALIFICATIONS
from services.leads.domain.lead import LeadRecord
from services.leads.domain.scoring_model import is_number
from shared.errors import ValidationFailed
from shared.kernel.normalise import nfkc


@dataclass
class ScoreLine:
    """One rule that fired. `points` is the line's total (per-event points times `count`)."""

    rule_id: str
    kind: Literal["attribute", "behaviour"]
    description: str
    points: int
    group: str | None
    count: int = 1

    def to_dict(self) -> dict[str, Any]:
        # Spelled out: dataclasses.asdict deep-copies and cost 4 % of a capture.
        return {"rule_id": self.rule_id, "kind": self.kind, "description": self.description,
                "points": self.points, "group": self.group, "count": self.count}


@dataclass
class ScoreResult:
    """`total` = sum of lines minus `capped` (group -> points removed by its cap), floored at 0."""

    total: int
    lines: list[ScoreLine] = field(default_factory=list)
    capped: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "lines": [line.to_dict() for line in self.lines],
            "capped": dict(self.capped),
        }


_MISSING = object()


def _lead_value(lead: dict[str, Any], field_name: str) -> Any:
    if field_name.startswith("attributes."):
        attributes = lead.get("attributes")
        if not isinstance(attributes, dict):
            return _MISSING
        return attributes.get(field_name[len("attributes.") :], _MISSING)
    return lead.get(field_name, _MISSING)


def _is_blank(value: Any) -> bool:
    if value is _MISSING or value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | tuple | set | dict):
        return not value
    return False


def _fold(value: Any) -> Any:
    """Comparable form: text is NFKC + casefold + stripped, so "Website" equals "ｗｅｂｓｉｔｅ"."""
    if isinstance(value, str):
        return nfkc(value).casefold().strip()
    return value


def _as_number(value: Any) -> float | None:
    if is_number(value):
        return float(value)
    if isinstance(value, str):
        try:
            return float(nfkc(value).replace(",", "").strip())
        except ValueError:
            return None
    return None


def _scalar_matches(operator: str, actual: Any, expected: Any) -> bool:
    if operator in ("equals", "not_equals"):
        return _fold(actual) == _fold(expected)
    if operator == "contains":
        if isinstance(actual, bool) or not isinstance(actual, str | int | float):
            return False
        return str(_fold(expected)) in str(_fold(actual))
    if operator == "in":
        return _fold(actual) in {_fold(item) for item in expected}
    number = _as_number(actual)
    if number is None:
        return False
    return number >= expected if operator == "gte" else number <= expected


def _attribute_matches(rule: dict[str, Any], lead: dict[str, Any]) -> bool:
    actual = _lead_value(lead, rule["field"])
    operator = rule["operator"]
    if operator == "exists":
        return not _is_blank(actual)
    # A rule about a field the lead does not have never fires, so not_equals does not reward
    # missing data.
    if _is_blank(actual):
        return False
    items = list(actual) if isinstance(actual, list | tuple | set) else [actual]
    if operator == "not_equals":
        return not any(_scalar_matches("equals", item, rule["value"]) for item in items)
    return any(_scalar_matches(operator, item, rule["value"]) for item in items)


def score_lead(
    lead: dict[str, Any], behaviours: Sequence[str], model: dict[str, Any]
) -> ScoreResult:
    """Score `lead` and explain the score line by line.

    Attribute rules read top-level lead fields or "attributes.<key>" from the free-form
    attributes dict. Text comparisons ignore case and full-width/half-width differences;
    "contains" is a substring test. When the field holds a list, a rule matches if any element
    matches (not_equals: if no element is equal). A rule on a missing or blank field never
    fires, except that "exists" then is simply false.

    `behaviours` lists one entry per recorded event; repeats count, up to the rule's
    `max_count`. Each group's sum is limited by `caps[group]`; the excess is reported in
    `capped`, lines keep their uncapped points. The total is never below 0. The model must be
    one `validate_scoring_model` returned: scoring is on the hot path of every capture, so it is
    validated once when saved, not at every use.
    """
    checked = model
    lines: list[ScoreLine] = []
    for rule in checked["attribute_rules"]:
        if _attribute_matches(rule, lead):
            lines.append(
                ScoreLine(
                    rule["id"], "attribute", rule["description"], rule["points"], rule["group"]
                )
            )

    counts = Counter(name.strip() for name in behaviours if isinstance(name, str))
    for rule in checked["behaviour_rules"]:
        seen = counts.get(rule["behaviour"].strip(), 0)
        if not seen:
            continue
        count = seen if rule["max_count"] is None else min(seen, rule["max_count"])
        lines.append(
            ScoreLine(
                rule["id"],
                "behaviour",
                rule["description"],
                rule["points"] * count,
                rule["group"],
                count,
            )
        )

    group_sums: Counter[str] = Counter()
    for line in lines:
        if line.group is not None:
            group_sums[line.group] += line.points
    capped = {
        group: group_sums[group] - cap
        for group, cap in checked["caps"].items()
        if group_sums.get(group, 0) > cap
    }
    total = sum(line.points for line in lines) - sum(capped.values())
    return ScoreResult(total=max(0, total), lines=lines, capped=capped)


def qualification_for(score: int, thresholds: dict[str, int]) -> str | None:
    """ "sql" if score >= thresholds["sql"], "mql" if >= thresholds["mql"], else None."""
    if score >= thresholds["sql"]:
        return "sql"
    if score >= thresholds["mql"]:
        return "mql"
    return None


def qualification_rank(q: str | None) -> int:
    """None 0, "mql" 1, "sql" 2: lets callers see whether a lead crossed UP a threshold."""
    if q is None:
        return 0
    if q not in QUALIFICATIONS:
        raise ValidationFailed.for_fields(
            {"qualification": [f"{q!r} is not a qualification; allowed: null, mql, sql"]}
        )
    return QUALIFICATIONS.index(q) + 1


def upgraded_qualification(
    current: str | None, score: int, thresholds: dict[str, int]
) -> str | None:
    """The qualification to store after a re-score: `current` or higher, never lower.

    Qualification is only raised automatically. A score that drops (a capped group, a changed
    model, an edited title) does not demote an MQL or SQL: sales may already be working it,
    and silently taking it away would be worse than a stale label. Lowering is a human
    decision made through the API.
    """
    computed = qualification_for(score, thresholds)
    return computed if qualification_rank(computed) > qualification_rank(current) else current


def rescore(
    lead: LeadRecord,
    values: dict[str, Any],
    behaviours: Sequence[str],
    model: dict[str, Any],
    now: datetime | None = None,
) -> int:
    """Score `lead` (its field `values`, its recorded `behaviours`) with `model` and store the
    score, its breakdown and the qualification it earns (never lower than the current one, see
    `upgraded_qualification`). Returns the previous score.

    When the score moved and `now` is given, the lead counts as updated at `now`; the first
    scoring of a new lead passes None (it is created, not updated).
    """
    result = score_lead(values, behaviours, model)
    previous = lead.score
    lead.score = result.total
    lead.score_breakdown = {**result.to_dict(), "model_version": model.get("version", 0)}
    lead.qualification = upgraded_qualification(
        lead.qualification, result.total, model["thresholds"]
    )
    if now is not None and previous != result.total:
        lead.updated_at = now
    return previous
