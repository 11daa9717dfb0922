"""Pipelines, stages and their exit criteria; what a stage move needs. Pure Python.

A stage's exit criteria are what must hold before an opportunity leaves it forwards: fields that
must be filled and follow-ups that must exist. Entering a stage therefore needs the exit
criteria of every open stage being left or skipped. Moving backwards needs nothing; a lost
opportunity can leave from anywhere (with a reason); won needs every open stage from the
current one to the last satisfied (with a reason).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.sales.contract import FOLLOWUP_KINDS, STAGE_KINDS
from shared.errors import PreconditionFailed, ValidationFailed

# Opportunity fields a criterion may require (custom fields as "custom.<name>").
CRITERION_FIELDS = (
    "name",
    "amount",
    "expected_close_date",
    "contact_id",
    "products",
    "competitors",
    "source",
    "campaign",
)
MAX_STAGES = 30

DEFAULT_PIPELINE: dict[str, Any] = {
    "name": "默认销售流程 Default",
    "is_default": True,
    "stages": [
        {"name": "线索确认 Qualification", "probability": 10, "kind": "open",
         "exit_criteria": {"fields": ["contact_id"], "activities": []}},
        {"name": "需求分析 Needs analysis", "probability": 25, "kind": "open",
         "exit_criteria": {
             "fields": ["amount", "expected_close_date"],
             "activities": [{"kind": "meeting", "tag": "needs_analysis", "min_count": 1}],
         }},
        {"name": "方案报价 Proposal", "probability": 50, "kind": "open",
         "exit_criteria": {"fields": ["products"], "activities": []}},
        {"name": "商务谈判 Negotiation", "probability": 75, "kind": "open",
         "exit_criteria": {"fields": [], "activities": []}},
        {"name": "赢单 Won", "probability": 100, "kind": "won",
         "exit_criteria": {"fields": [], "activities": []}},
        {"name": "输单 Lost", "probability": 0, "kind": "lost",
         "exit_criteria": {"fields": [], "activities": []}},
    ],
}


@dataclass(frozen=True)
class StageInfo:
    id: str
    name: str
    position: int
    probability: int
    kind: str
    exit_criteria: Mapping[str, Any] = field(default_factory=dict)
    # A stage removed from its pipeline stays for history; it takes no opportunity.
    active: bool = True


@dataclass(frozen=True)
class Activity:
    """A follow-up as the criteria see it."""

    kind: str
    tags: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------
# Validation of a pipeline definition
# --------------------------------------------------------------------------------------------


def _criterion_field_ok(name: Any) -> bool:
    if not isinstance(name, str):
        return False
    if name.startswith("custom."):
        return len(name) > len("custom.") and len(name) <= 71
    return name in CRITERION_FIELDS


def validate_exit_criteria(raw: Any, path: str) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Cleaned criteria and errors keyed by path (e.g. `stages.2.exit_criteria.fields.0`)."""
    errors: dict[str, list[str]] = {}
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return {}, {path: ["must be an object with `fields` and `activities`"]}
    unknown = set(raw) - {"fields", "activities"}
    if unknown:
        errors[path] = [f"unknown keys: {', '.join(sorted(unknown))}"]
    fields_ = raw.get("fields") or []
    activities = raw.get("activities") or []
    clean_fields: list[str] = []
    if not isinstance(fields_, list):
        errors[f"{path}.fields"] = ["must be a list of field names"]
        fields_ = []
    for index, name in enumerate(fields_):
        if not _criterion_field_ok(name):
            allowed = ", ".join(CRITERION_FIELDS)
            errors[f"{path}.fields.{index}"] = [
                f"{name!r} is not a field a criterion can require ({allowed}, custom.<name>)"
            ]
        elif name not in clean_fields:
            clean_fields.append(name)
    clean_activities: list[dict[str, Any]] = []
    if not isinstance(activities, list):
        errors[f"{path}.activities"] = ["must be a list of {kind, tag, min_count}"]
        activities = []
    for index, item in enumerate(activities):
        where = f"{path}.activities.{index}"
        if not isinstance(item, dict):
            errors[where] = ["must be an object {kind, tag, min_count}"]
            continue
        extra = set(item) - {"kind", "tag", "min_count"}
        kind, tag, count = item.get("kind"), item.get("tag"), item.get("min_count", 1)
        problems = []
        if extra:
            problems.append(f"unknown keys: {', '.join(sorted(extra))}")
        if kind not in FOLLOWUP_KINDS:
            problems.append(f"kind must be one of {', '.join(FOLLOWUP_KINDS)}")
        if tag is not None and (not isinstance(tag, str) or not 1 <= len(tag) <= 64):
            problems.append("tag must be a string of 1 to 64 characters or null")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 100:
            problems.append("min_count must be an integer from 1 to 100")
        if problems:
            errors[where] = problems
            continue
        clean_activities.append({"kind": kind, "tag": tag, "min_count": count})
    return {"fields": clean_fields, "activities": clean_activities}, errors


def validate_stages(stages: Any) -> list[dict[str, Any]]:
    """Check an ordered list of stages; positions are the list order. Raises ValidationFailed
    naming `stages.<i>.<field>`."""
    if not isinstance(stages, list) or not stages:
        raise ValidationFailed.for_fields({"stages": ["at least one open, one won and one lost"]})
    if len(stages) > MAX_STAGES:
        raise ValidationFailed.for_fields({"stages": [f"at most {MAX_STAGES} stages"]})
    errors: dict[str, list[str]] = {}
    cleaned: list[dict[str, Any]] = []
    names: set[str] = set()
    for index, stage in enumerate(stages):
        where = f"stages.{index}"
        if not isinstance(stage, dict):
            errors[where] = ["must be an object"]
            continue
        extra = set(stage) - {"id", "name", "probability", "kind", "exit_criteria"}
        if extra:
            errors[where] = [f"unknown keys: {', '.join(sorted(extra))}"]
        name = stage.get("name")
        if not isinstance(name, str) or not 1 <= len(name.strip()) <= 100:
            errors[f"{where}.name"] = ["a name of 1 to 100 characters is required"]
        elif name.strip() in names:
            errors[f"{where}.name"] = [f"duplicate stage name {name.strip()!r}"]
        else:
            names.add(name.strip())
        probability = stage.get("probability")
        if isinstance(probability, bool) or not isinstance(probability, int) or not (
            0 <= probability <= 100
        ):
            errors[f"{where}.probability"] = ["an integer percentage from 0 to 100 is required"]
        kind = stage.get("kind", "open")
        if kind not in STAGE_KINDS:
            errors[f"{where}.kind"] = [f"must be one of {', '.join(STAGE_KINDS)}"]
        criteria, problems = validate_exit_criteria(
            stage.get("exit_criteria"), f"{where}.exit_criteria"
        )
        errors.update(problems)
        stage_id = stage.get("id")
        if stage_id is not None and not isinstance(stage_id, str):
            errors[f"{where}.id"] = ["must be a stage id string or absent"]
        cleaned.append({
            "id": stage_id,
            "name": name.strip() if isinstance(name, str) else name,
            "probability": probability,
            "kind": kind,
            "position": index,
            "exit_criteria": criteria,
        })
    if not errors:
        kinds = [s["kind"] for s in cleaned]
        for needed in STAGE_KINDS:
            if kinds.count(needed) == 0:
                errors.setdefault("stages", []).append(f"needs a stage of kind {needed!r}")
        for needed in ("won", "lost"):
            if kinds.count(needed) > 1:
                errors.setdefault("stages", []).append(f"only one stage of kind {needed!r}")
        last_open = max((i for i, k in enumerate(kinds) if k == "open"), default=-1)
        if any(k != "open" for k in kinds[: last_open + 1]):
            errors.setdefault("stages", []).append("won and lost stages come after open ones")
    if errors:
        raise ValidationFailed.for_fields(errors)
    return cleaned


def undefined_custom_criteria(
    stages: Sequence[Mapping[str, Any]], defined_keys: Iterable[str]
) -> dict[str, list[str]]:
    """Errors for the `custom.<key>` field criteria of cleaned `stages` whose key is not an
    active opportunity custom field: such a criterion could never be met and would block the
    stage for ever. Keyed by the criterion's path (`stages.<i>.exit_criteria.fields.<j>`)."""
    defined = set(defined_keys)
    errors: dict[str, list[str]] = {}
    for index, stage in enumerate(stages):
        names = (stage.get("exit_criteria") or {}).get("fields") or []
        for position, name in enumerate(names):
            if name.startswith("custom.") and name[len("custom."):] not in defined:
                errors[f"stages.{index}.exit_criteria.fields.{position}"] = [
                    f"{name!r}: no active opportunity custom field has the key "
                    f"{name[len('custom.'):]!r} (define it first: POST /custom-fields)"
                ]
    return errors


# --------------------------------------------------------------------------------------------
# Moves
# --------------------------------------------------------------------------------------------


def stages_left(stages: Sequence[StageInfo], current: StageInfo, target: StageInfo) -> list[
    StageInfo
]:
    """The open stages whose exit criteria a move from `current` to `target` must satisfy."""
    open_stages = sorted((s for s in stages if s.kind == "open"), key=lambda s: s.position)
    if current.kind != "open" or target.kind == "lost":
        return []  # reopening a closed one, or losing: nothing to satisfy
    if target.kind == "won":
        return [s for s in open_stages if s.position >= current.position]
    if target.position <= current.position:
        return []
    return [s for s in open_stages if current.position <= s.position < target.position]


def is_filled(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str | list | dict | tuple | set):
        return bool(value.strip() if isinstance(value, str) else value)
    return True


def _field_value(opportunity: Mapping[str, Any], name: str) -> Any:
    if name.startswith("custom."):
        return (opportunity.get("custom") or {}).get(name[len("custom."):])
    return opportunity.get(name)


def _describe_activity(kind: str, tag: str | None, count: int) -> str:
    what = f"a {kind} follow-up" if count == 1 else f"{count} {kind} follow-ups"
    return f"{what} tagged {tag!r}" if tag else what


def missing_requirements(
    stages_to_leave: Iterable[StageInfo],
    opportunity: Mapping[str, Any],
    activities: Iterable[Activity],
) -> list[dict[str, Any]]:
    """What blocks the move, in stage order: each item names the stage whose exit criterion is
    unmet, the kind (`field` or `activity`) and a readable message."""
    activities = list(activities)
    missing: list[dict[str, Any]] = []
    for stage in stages_to_leave:
        criteria = stage.exit_criteria or {}
        for name in criteria.get("fields", []):
            if not is_filled(_field_value(opportunity, name)):
                missing.append({
                    "stage": stage.name, "stage_id": stage.id, "type": "field", "field": name,
                    "message": f"{name} must be filled to leave {stage.name}",
                })
        for rule in criteria.get("activities", []):
            kind, tag, need = rule["kind"], rule.get("tag"), rule.get("min_count", 1)
            have = sum(1 for a in activities if a.kind == kind and (tag is None or tag in a.tags))
            if have < need:
                missing.append({
                    "stage": stage.name, "stage_id": stage.id, "type": "activity",
                    "kind": kind, "tag": tag, "min_count": need, "found": have,
                    "message": f"{_describe_activity(kind, tag, need)} on this opportunity is "
                    f"needed to leave {stage.name} (found {have})",
                })
    return missing


def check_move(
    stages: Sequence[StageInfo],
    current: StageInfo,
    target: StageInfo,
    opportunity: Mapping[str, Any],
    activities: Iterable[Activity],
    reason: str | None,
) -> list[StageInfo]:
    """Raise when the move is not allowed; return the stages being left (for the record)."""
    if target.kind in ("won", "lost") and not (reason and reason.strip()):
        raise ValidationFailed.for_fields(
            {"reason": [f"a reason is required to mark the opportunity {target.kind}"]}
        )
    left = stages_left(stages, current, target)
    missing = missing_requirements(left, opportunity, activities)
    if missing:
        listed = "; ".join(item["message"] for item in missing)
        raise PreconditionFailed(
            f"cannot move to {target.name}: {listed}",
            {"missing": missing, "stage_id": target.id, "from_stage_id": current.id},
        )
    return left


def status_for(stage: StageInfo) -> str:
    return stage.kind


def criteria_view(opportunity: Any) -> dict[str, Any]:
    """The opportunity's fields as exit criteria read them."""
    return {name: getattr(opportunity, name) for name in (*CRITERION_FIELDS, "custom")}


def starting_stage(
    stages: Sequence[StageInfo], stage_id: str | None, opportunity: Mapping[str, Any]
) -> StageInfo:
    """Where a new opportunity starts: the pipeline's first open stage, or the open stage
    `stage_id` when the exit criteria of the stages before it hold (`opportunity` as
    `criteria_view` gives it; a new one has no follow-ups yet)."""
    ordered = sorted((s for s in stages if s.active), key=lambda s: s.position)
    first = next(s for s in ordered if s.kind == "open")
    if not stage_id:
        return first
    target = next((s for s in ordered if s.id == stage_id), None)
    if target is None or target.kind != "open":
        raise ValidationFailed.for_fields({"stage_id": [
            "must be an open stage of the pipeline (win or lose it with a move)"]})
    if target.id != first.id:
        check_move(ordered, first, target, opportunity, [], None)
    return target


@dataclass(frozen=True)
class StageMove:
    """What a move changed: the stage left, the stage entered and, for won or lost, the
    reason recorded."""

    left: StageInfo
    entered: StageInfo
    reason: str | None

    @property
    def closed(self) -> str | None:
        """"won" or "lost" when the move closed the opportunity."""
        return self.entered.kind if self.entered.kind in ("won", "lost") else None


def move(
    opportunity: Any,
    stages: Sequence[StageInfo],
    stage_id: str,
    activities: Iterable[Activity],
    reason: str | None,
    now: datetime,
) -> StageMove | None:
    """Move `opportunity` (its `stage_id`, `status`, `closed_at`, `won_lost_reason`,
    `stage_entered_at`, `updated_at`) to the active stage `stage_id` of its pipeline
    (`stages`, retired ones included) when the move is allowed; None when it is there already.
    Won and lost need a reason and close it; any other stage reopens it."""
    by_id = {s.id: s for s in stages}
    target = by_id.get(stage_id)
    if target is None or not target.active:
        raise ValidationFailed.for_fields(
            {"stage_id": ["not a stage of this opportunity's pipeline"]})
    current = by_id[opportunity.stage_id]
    if target.id == current.id:
        return None
    check_move([s for s in stages if s.active], current, target, criteria_view(opportunity),
               activities, reason)
    change = StageMove(current, target, reason)
    opportunity.stage_id = target.id
    opportunity.stage_entered_at = opportunity.updated_at = now
    opportunity.status = status_for(target)
    opportunity.closed_at = now if change.closed else None
    opportunity.won_lost_reason = reason.strip() if change.closed and reason else None
    return change


def weighted_amount(amount: Any, probability: int) -> Any:
    """Amount weighted by the stage probability (Decimal in, Decimal out)."""
    if amount is None:
        return None
    return amount * probability / 100


def stage_durations(
    history: Iterable[tuple[str, datetime, datetime | None]], now: datetime
) -> dict[str, float]:
    """Seconds spent per stage from (stage_id, entered_at, left_at) rows; an open row counts
    until `now`. A stage entered twice adds up."""
    totals: dict[str, float] = {}
    for stage_id, entered_at, left_at in history:
        end = left_at or now
        totals[stage_id] = totals.get(stage_id, 0.0) + max(0.0, (end - entered_at).total_seconds())
    return totals
