"""Approval flows and instances, generic over the record they approve (record_type, record_id,
`terms`): pure Python, no database.

A flow definition is data (checked by `check_flow`): for one record type, flows are tried in
`position` order and the first whose `condition` holds on the terms applies. Its `steps` run in
sequence; a step whose own `condition` is false is skipped. Approvers of a step:
`{"kind": "user", "id"}`, `{"kind": "role", "role"}`, `{"kind": "manager"}` (the submitter's
team manager), `{"kind": "manager_chain", "levels": N}`, `{"kind": "team", "id"}`. Mode `all`
(会签: every approver), `any` (或签: the first answer decides) or `quorum` (`quorum` approvals of
the approvers; the step is rejected once the quorum can no longer be reached). `cc` (抄送) are
resolved like approvers. When nobody can be resolved the flow's `fallback_approver` takes the
step and the trail says so; without one the submission is refused (ValidationFailed).

Conditions use the same expression language as the rules service (simpleeval, never `eval`).

Terms hash: sha256 over the canonical JSON of the terms: keys sorted, no whitespace, UTF-8,
Decimals as their normalised string (Decimal("1.0") and Decimal("1.00") both hash as "1": a
value that is numerically equal is the same term; "1E+1" is written "10"). Floats are refused
(they have no exact decimal form); dates and datetimes are ISO strings. Strings are kept as
they are: terms arriving over RPC carry their decimals as strings already, so the submitting
service sends them in one form of its choosing (e.g. quantised to the currency's 2 places).

The instance state is one JSON-serialisable dict; every function here takes it, changes it and
returns the events to publish as (event_type, data) pairs.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from simpleeval import EvalWithCompoundTypes, InvalidExpression

from shared.errors import Conflict, Forbidden, NotFound, PreconditionFailed, ValidationFailed

MODES = ("all", "any", "quorum")
APPROVER_KINDS = ("user", "role", "manager", "manager_chain", "team")
ON_REJECT = ("submitter", "previous")
PENDING, APPROVED, REJECTED, RECALLED, VOIDED = (
    "pending", "approved", "rejected", "recalled", "voided")
OPEN_STATUSES = (PENDING,)

_ALLOWED_NODES: tuple[type[ast.AST], ...] = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd,
    ast.Compare, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn,
    ast.Is, ast.IsNot, ast.BinOp, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Mod,
    ast.Name, ast.Load, ast.Constant, ast.List, ast.Tuple, ast.Set, ast.Call,
)
_NUMBER = re.compile(r"-?\d+(\.\d+)?")
_FUNCTIONS: dict[str, Any] = {"len": len, "float": float, "int": int, "str": str}


# -- terms hash ---------------------------------------------------------------------------

def _canonical(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("terms may not hold NaN or infinite decimals")
        text = format(value.normalize(), "f")
        return text
    if isinstance(value, float):
        raise ValueError("terms may not hold floats: use Decimal or a string")
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(item) for item in value]
    raise ValueError(f"terms may not hold {type(value).__name__}")


def canonical_json(terms: dict[str, Any]) -> str:
    return json.dumps(_canonical(terms), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)


def terms_hash(terms: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(terms).encode("utf-8")).hexdigest()


# -- conditions ---------------------------------------------------------------------------

def check_condition(expression: str | None) -> str | None:
    """None when acceptable, else the problem."""
    if not expression or not expression.strip():
        return None
    try:
        tree = ast.parse("(" + expression + "\n)", mode="eval")
    except SyntaxError as exc:
        return f"syntax error: {exc.msg}"
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            return f"{type(node).__name__} is not allowed in a condition"
        if isinstance(node, ast.Call) and (
                not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS):
            return f"unknown function; available: {', '.join(sorted(_FUNCTIONS))}"
        if isinstance(node, ast.Name) and node.id.startswith("_"):
            return "names starting with '_' are not allowed"
    return None


def _numbers(value: Any) -> Any:
    """Decimal strings in terms compare as numbers in conditions."""
    if isinstance(value, dict):
        return {key: _numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_numbers(item) for item in value]
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        return Decimal(value)
    return value


def holds(expression: str | None, terms: dict[str, Any]) -> bool:
    """True when the condition holds on the terms; a missing name or a type error is false."""
    if not expression or not expression.strip():
        return True
    names = {"true": True, "false": False, "null": None, **_numbers(terms)}
    evaluator = EvalWithCompoundTypes(names=names, functions=_FUNCTIONS)
    try:
        return bool(evaluator.eval("(" + expression + "\n)"))
    except (InvalidExpression, TypeError, ValueError, KeyError, IndexError, AttributeError,
            ZeroDivisionError):
        return False


# -- flow definitions ---------------------------------------------------------------------

def check_flow(flow: dict[str, Any]) -> None:
    """Raise ValidationFailed naming the field (`steps.0.mode`, ...) when the flow is unusable."""
    errors: dict[str, list[str]] = {}

    def bad(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    if problem := check_condition(flow.get("condition")):
        bad("condition", problem)
    steps = flow.get("steps") or []
    if not steps:
        bad("steps", "a flow needs at least one step")
    for index, step in enumerate(steps):
        where = f"steps.{index}"
        if problem := check_condition(step.get("condition")):
            bad(f"{where}.condition", problem)
        mode = step.get("mode", "all")
        if mode not in MODES:
            bad(f"{where}.mode", f"must be one of {', '.join(MODES)}")
        if mode == "quorum" and not (isinstance(step.get("quorum"), int)
                                     and step["quorum"] >= 1):
            bad(f"{where}.quorum", "a quorum step needs quorum >= 1")
        if step.get("on_reject", "submitter") not in ON_REJECT:
            bad(f"{where}.on_reject", f"must be one of {', '.join(ON_REJECT)}")
        if step.get("on_reject") == "previous" and index == 0:
            bad(f"{where}.on_reject", "the first step has no previous step")
        if not step.get("approvers"):
            bad(f"{where}.approvers", "a step needs approvers")
        for number, spec in enumerate(step.get("approvers") or []):
            _check_spec(spec, f"{where}.approvers.{number}", bad)
        _check_escalation(step, where, bad)
    for number, spec in enumerate(flow.get("cc") or []):
        _check_spec(spec, f"cc.{number}", bad)
    if errors:
        raise ValidationFailed.for_fields(errors)


def _check_spec(spec: Any, where: str, bad: Any) -> None:
    if not isinstance(spec, dict) or spec.get("kind") not in APPROVER_KINDS:
        bad(f"{where}.kind", f"must be one of {', '.join(APPROVER_KINDS)}")
        return
    kind = spec["kind"]
    if kind in ("user", "team") and not spec.get("id"):
        bad(f"{where}.id", f"a {kind} approver needs an id")
    if kind == "role" and not spec.get("role"):
        bad(f"{where}.role", "a role approver needs a role")
    if kind == "manager_chain" and not (isinstance(spec.get("levels"), int)
                                        and 1 <= spec["levels"] <= 10):
        bad(f"{where}.levels", "levels must be 1 to 10")


def choose_flow(flows: list[dict[str, Any]], terms: dict[str, Any]) -> dict[str, Any] | None:
    """The first active flow (by position) whose condition holds on the terms."""
    for flow in sorted(flows, key=lambda item: (item.get("position", 0), item.get("id", ""))):
        if flow.get("active", True) and holds(flow.get("condition"), terms):
            return flow
    return None


# -- the directory ------------------------------------------------------------------------

@dataclass
class Directory:
    """What approvals need to know about people. users: id -> {role, team_id, active,
    out_of_office_until (aware datetime or None), delegate_id}; teams: id -> {manager_id}."""

    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    teams: dict[str, dict[str, Any]] = field(default_factory=dict)

    def active(self, user_id: str) -> bool:
        """A user the directory knows as active, or one it does not know at all (named in a
        flow or by an approver, the directory's projection may not have them yet: it is told
        by events); a user known as inactive is not."""
        user = self.users.get(user_id)
        return bool(user.get("active", True)) if user is not None else bool(user_id)

    def manager_of(self, user_id: str) -> str | None:
        """The manager of the user's team; a team's own manager reports to nobody here."""
        user = self.users.get(user_id) or {}
        team = self.teams.get(user.get("team_id") or "") or {}
        manager = team.get("manager_id")
        return manager if manager and manager != user_id else None

    def substitute(self, user_id: str, now: datetime) -> tuple[str, str | None]:
        """(who answers, why): an out-of-office user with a delegate is replaced by them."""
        seen = {user_id}
        current = user_id
        while True:
            user = self.users.get(current) or {}
            until = user.get("out_of_office_until")
            if isinstance(until, str):
                until = datetime.fromisoformat(until)
            delegate = user.get("delegate_id")
            if until and until > now and delegate and delegate not in seen \
                    and self.active(delegate):
                seen.add(delegate)
                current = delegate
                continue
            return current, (None if current == user_id else f"out of office: {user_id}")


def resolve(specs: list[dict[str, Any]], submitter: str, directory: Directory) -> list[str]:
    """The active users the specs name, in order, without repeats."""
    found: list[str] = []

    def add(user_id: str | None) -> None:
        if user_id and directory.active(user_id) and user_id not in found:
            found.append(user_id)

    for spec in specs:
        kind = spec.get("kind")
        if kind == "user":
            add(spec.get("id"))
        elif kind == "role":
            for user_id in sorted(directory.users):
                if directory.users[user_id].get("role") == spec.get("role"):
                    add(user_id)
        elif kind == "team":
            for user_id in sorted(directory.users):
                if directory.users[user_id].get("team_id") == spec.get("id"):
                    add(user_id)
        elif kind == "manager":
            add(directory.manager_of(submitter))
        elif kind == "manager_chain":
            current = submitter
            for _ in range(int(spec.get("levels") or 1)):
                current = directory.manager_of(current)
                if current is None:
                    break
                add(current)
    return found


# -- instances ----------------------------------------------------------------------------

def _trail(state: dict[str, Any], now: datetime, actor: str | None, action: str,
           comment: str | None = None, step: int | None = None, **extra: Any) -> None:
    state["trail"].append({
        "at": now.isoformat(), "actor": actor, "action": action, "comment": comment,
        "step": step, "terms_hash": state["terms_hash"],
        "terms_version": state["terms_version"], **extra})


def start(flow: dict[str, Any], record_type: str, record_id: str, terms: dict[str, Any],
          terms_version: int, submitter: str, directory: Directory, now: datetime,
          instance_id: str, comment: str | None = None
          ) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """A new pending instance at its first applicable step, or ValidationFailed when a step
    has nobody to answer it (and no fallback) or the flow has no applicable step."""
    state: dict[str, Any] = {
        "id": instance_id, "record_type": record_type, "record_id": record_id,
        "flow_id": flow.get("id"), "flow_name": flow.get("name"),
        "allow_self_approval": bool(flow.get("allow_self_approval")),
        "submitter": submitter, "terms": json.loads(canonical_json(terms)),
        "terms_hash": terms_hash(terms), "terms_version": terms_version,
        "status": PENDING, "step_index": None, "steps": [], "cc": [], "trail": [],
        "submitted_at": now.isoformat(), "finished_at": None,
    }
    fallback = flow.get("fallback_approver")
    for index, step in enumerate(flow["steps"]):
        entry: dict[str, Any] = {
            "index": index, "name": step.get("name") or f"step {index + 1}",
            "mode": step.get("mode", "all"), "quorum": step.get("quorum"),
            "on_reject": step.get("on_reject", "submitter"),
            "status": "waiting", "approvers": [], "answers": {}, "notes": []}
        if step.get("escalate_after_hours") is not None:
            entry["escalate_after_hours"] = step["escalate_after_hours"]
            entry["escalate_to"] = dict(step.get("escalate_to") or {"kind": "manager"})
        if not holds(step.get("condition"), terms):
            entry["status"] = "skipped"
            state["steps"].append(entry)
            continue
        people = resolve(step.get("approvers") or [], submitter, directory)
        if not state["allow_self_approval"]:
            if submitter in people:
                entry["notes"].append(f"submitter {submitter} may not approve: left out")
            people = [person for person in people if person != submitter]
        approvers: list[str] = []
        for person in people:
            answering, why = directory.substitute(person, now)
            if why:
                entry["notes"].append(f"{why} -> {answering}")
            if answering not in approvers and (answering != submitter
                                               or state["allow_self_approval"]):
                approvers.append(answering)
        if not approvers:
            if fallback and directory.active(fallback) and (
                    fallback != submitter or state["allow_self_approval"]):
                approvers = [fallback]
                entry["fallback"] = fallback
                entry["notes"].append(f"no approver could be resolved: fallback {fallback}")
            else:
                raise ValidationFailed.for_fields(
                    {f"steps.{index}.approvers": [
                        "no approver can be resolved for this step and the flow has no "
                        "usable fallback approver"]},
                    detail=f"Step {entry['name']!r} has nobody to approve it")
        if entry["mode"] == "quorum" and entry["quorum"] > len(approvers):
            entry["notes"].append(
                f"quorum {entry['quorum']} > {len(approvers)} approvers: needs all")
            entry["quorum"] = len(approvers)
        entry["approvers"] = approvers
        state["steps"].append(entry)
    state["cc"] = resolve(flow.get("cc") or [], submitter, directory)
    _trail(state, now, submitter, "submitted", comment, flow_id=flow.get("id"))
    events: list[tuple[str, dict[str, Any]]] = []
    first = _next_step(state, -1)
    if first is None:
        raise ValidationFailed.for_fields(
            {"steps": ["every step's condition is false: nothing to approve"]})
    events += _open_step(state, first, now)
    return state, events


def _next_step(state: dict[str, Any], after: int) -> int | None:
    for entry in state["steps"][after + 1:]:
        if entry["status"] != "skipped":
            return entry["index"]
    return None


def _previous_step(state: dict[str, Any], before: int) -> int | None:
    for entry in reversed(state["steps"][:before]):
        if entry["status"] != "skipped":
            return entry["index"]
    return None


def summary(state: dict[str, Any]) -> dict[str, Any]:
    return {"instance_id": state["id"], "record_type": state["record_type"],
            "record_id": state["record_id"], "submitter": state["submitter"],
            "terms_hash": state["terms_hash"], "terms_version": state["terms_version"]}


def _open_step(state: dict[str, Any], index: int, now: datetime
               ) -> list[tuple[str, dict[str, Any]]]:
    entry = state["steps"][index]
    entry["status"] = PENDING
    entry["answers"] = {}
    entry["started_at"] = now.isoformat()
    if entry.get("escalated_to"):  # a step opened again escalates anew
        entry["approvers"] = [p for p in entry["approvers"] if p not in entry["escalated_to"]]
    entry["escalated_to"] = []
    state["step_index"] = index
    return [("approval_requested", {**summary(state), "step": index, "step_name": entry["name"],
                                    "mode": entry["mode"], "approver_ids": entry["approvers"],
                                    "cc_ids": state["cc"]})]


def pending_approvers(state: dict[str, Any]) -> list[str]:
    if state["status"] != PENDING or state["step_index"] is None:
        return []
    entry = state["steps"][state["step_index"]]
    return [person for person in entry["approvers"] if person not in entry["answers"]]


def involved(state: dict[str, Any]) -> set[str]:
    """Everybody who may see the instance: submitter, CC, approvers (past and present) and
    whoever acted on it."""
    people = {state["submitter"], *state["cc"]}
    for entry in state["steps"]:
        if entry["status"] != "waiting":
            people.update(entry["approvers"])
    people.update(item["actor"] for item in state["trail"] if item.get("actor"))
    return people


def _require_open(state: dict[str, Any]) -> None:
    if state["status"] != PENDING:
        raise PreconditionFailed(f"The approval is {state['status']}",
                                 {"status": state["status"]})


def decide(state: dict[str, Any], actor: str, decision: str, comment: str | None,
           now: datetime, seen_hash: str | None = None
           ) -> list[tuple[str, dict[str, Any]]]:
    """An approver's answer on the current step; `seen_hash` (when given) must be the hash of
    the terms the approver saw, else Conflict: they decided on other terms."""
    if decision not in ("approve", "reject"):
        raise ValidationFailed.for_fields({"decision": ["must be approve or reject"]})
    _require_open(state)
    entry = state["steps"][state["step_index"]]
    if actor == state["submitter"] and not state["allow_self_approval"]:
        raise Forbidden("Nobody approves their own submission")
    if actor not in entry["approvers"]:
        raise NotFound("No pending approval for you here")
    if actor in entry["answers"]:
        raise Conflict("You have already answered this step")
    if seen_hash is not None and seen_hash != state["terms_hash"]:
        raise Conflict("The terms changed since you saw them",
                       {"terms_hash": state["terms_hash"]})
    entry["answers"][actor] = decision
    _trail(state, now, actor, decision, comment, step=entry["index"])
    escalated = entry.get("escalated_to") or []
    regular = {person: value for person, value in entry["answers"].items()
               if person not in escalated}
    approvals = sum(1 for value in regular.values() if value == "approve")
    rejections = sum(1 for value in regular.values() if value == "reject")
    total = len([person for person in entry["approvers"] if person not in escalated])
    mode = entry["mode"]
    if mode == "any" or actor in escalated:  # an escalation approver decides the step
        outcome = "approved" if decision == "approve" else "rejected"
    elif mode == "all":
        outcome = ("rejected" if rejections else
                   "approved" if approvals == total else None)
    else:
        need = entry["quorum"]
        outcome = ("approved" if approvals >= need else
                   "rejected" if total - rejections < need else None)
    if outcome is None:
        return []
    return _finish_step(state, entry, outcome, actor, comment, now)


def _finish_step(state: dict[str, Any], entry: dict[str, Any], outcome: str, actor: str,
                 comment: str | None, now: datetime) -> list[tuple[str, dict[str, Any]]]:
    entry["status"] = outcome
    events: list[tuple[str, dict[str, Any]]] = [("approval_step_completed", {
        **summary(state), "step": entry["index"], "step_name": entry["name"],
        "outcome": outcome, "answers": dict(entry["answers"])})]
    if outcome == "approved":
        following = _next_step(state, entry["index"])
        if following is None:
            state["status"] = APPROVED
            state["step_index"] = None
            state["finished_at"] = now.isoformat()
            _trail(state, now, None, "approved")
            events.append(("approval_approved", {**summary(state), "cc_ids": state["cc"]}))
        else:
            events += _open_step(state, following, now)
        return events
    previous = _previous_step(state, entry["index"])
    if entry["on_reject"] == "previous" and previous is not None:
        entry["status"] = "waiting"
        _trail(state, now, actor, "returned", comment, step=entry["index"], to_step=previous)
        events += _open_step(state, previous, now)
        return events
    state["status"] = REJECTED
    state["step_index"] = None
    state["finished_at"] = now.isoformat()
    _trail(state, now, actor, "rejected_instance", comment, step=entry["index"])
    events.append(("approval_rejected", {**summary(state), "step": entry["index"],
                                         "by": actor, "comment": comment}))
    return events


def recall(state: dict[str, Any], actor: str, comment: str | None, now: datetime
           ) -> list[tuple[str, dict[str, Any]]]:
    if actor != state["submitter"]:
        raise Forbidden("Only the submitter can recall")
    _require_open(state)
    state["status"] = RECALLED
    state["step_index"] = None
    state["finished_at"] = now.isoformat()
    _trail(state, now, actor, "recalled", comment)
    return [("approval_recalled", {**summary(state), "comment": comment})]


def delegate(state: dict[str, Any], actor: str, to_user: str, comment: str | None,
             directory: Directory, now: datetime) -> list[tuple[str, dict[str, Any]]]:
    _require_open(state)
    entry = state["steps"][state["step_index"]]
    if actor not in pending_approvers(state):
        raise NotFound("No pending approval for you here")
    if to_user not in directory.users or not directory.active(to_user):
        raise ValidationFailed.for_fields({"to_user": ["not an active user"]})
    if to_user == state["submitter"] and not state["allow_self_approval"]:
        raise ValidationFailed.for_fields({"to_user": ["the submitter cannot approve"]})
    if to_user in entry["approvers"]:
        raise ValidationFailed.for_fields({"to_user": ["already an approver of this step"]})
    entry["approvers"] = [to_user if person == actor else person
                          for person in entry["approvers"]]
    _trail(state, now, actor, "delegated", comment, step=entry["index"], to_user=to_user)
    return [("approval_requested", {**summary(state), "step": entry["index"],
                                    "step_name": entry["name"], "mode": entry["mode"],
                                    "approver_ids": [to_user], "cc_ids": [],
                                    "delegated_by": actor})]


def verify(state: dict[str, Any], current_terms: dict[str, Any], now: datetime
           ) -> list[tuple[str, dict[str, Any]]]:
    """Void a pending or approved instance whose terms hash differs from the current terms."""
    if state["status"] not in (PENDING, APPROVED):
        return []
    current = terms_hash(current_terms)
    if current == state["terms_hash"]:
        return []
    moment = "approval" if state["status"] == APPROVED else "submission"
    reason = (f"the terms changed after {moment}"
              f": approved hash {state['terms_hash'][:12]}, current {current[:12]}")
    state["status"] = VOIDED
    state["step_index"] = None
    state["finished_at"] = now.isoformat()
    _trail(state, now, None, "voided", reason, current_hash=current)
    return [("approval_voided", {**summary(state), "current_hash": current, "reason": reason})]


# -- escalation (contract approval) ----
# A step may name `escalate_after_hours` (whole business hours, 1 to 2000) and `escalate_to`
# (`{"kind": "manager"}`: the managers of the step's approvers who have not answered, the
# default; or `{"kind": "user", "id"}`). The service computes the deadline when the step
# opens (`escalate_at`, business hours) and the rules service's timer calls back when it
# passes; `escalate` then adds the escalation approvers to the step. Their answer decides the
# step whatever its mode (the others may still answer: 会签 still counts only them).
ESCALATE_KINDS = ("manager", "user")


def _check_escalation(step: dict[str, Any], where: str, bad: Any) -> None:
    hours, target = step.get("escalate_after_hours"), step.get("escalate_to")
    if hours is None:
        if target:
            bad(f"{where}.escalate_after_hours", "escalate_to needs escalate_after_hours")
        return
    if isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= 2000:
        bad(f"{where}.escalate_after_hours", "whole business hours, 1 to 2000")
    if target is None:
        return
    if not isinstance(target, dict) or target.get("kind") not in ESCALATE_KINDS:
        bad(f"{where}.escalate_to.kind", f"must be one of {', '.join(ESCALATE_KINDS)}")
    elif target["kind"] == "user" and not target.get("id"):
        bad(f"{where}.escalate_to.id", "a user to escalate to needs an id")


def escalate(state: dict[str, Any], step: int, directory: Directory, now: datetime,
             command_id: str | None = None
             ) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """Escalate the pending step `step`: (answer, events). Nothing changes (and the answer
    says why) when the command was seen, the instance or step is no longer waiting, the step
    has no escalation, it was escalated already, or nobody can be found to escalate to (that
    last one is written in the trail once)."""
    seen = state.setdefault("escalation_commands", [])
    answer: dict[str, Any] = {"approval_id": state["id"], "step": step, "escalated": False,
                              "escalated_to": [], "owner_id": None, "reason": None}
    if command_id and command_id in seen:
        return {**answer, "reason": "this escalation was done already"}, []
    if state["status"] != PENDING or state["step_index"] != step:
        return {**answer, "reason": f"step {step} is no longer waiting "
                                    f"(approval {state['status']})"}, []
    entry = state["steps"][step]
    if not entry.get("escalate_after_hours"):
        return {**answer, "reason": "the step has no escalation"}, []
    if entry.get("escalated_to"):
        return {**answer, "escalated_to": list(entry["escalated_to"]),
                "reason": "the step was escalated already"}, []
    target = entry.get("escalate_to") or {"kind": "manager"}
    waiting = [p for p in entry["approvers"] if p not in entry["answers"]]
    if target.get("kind") == "user":
        candidates = [target.get("id")]
    else:
        candidates = [directory.manager_of(person) for person in waiting]
    found: list[str] = []
    for person in candidates:
        if not person or not directory.active(person):
            continue
        person, _ = directory.substitute(person, now)
        if person in entry["approvers"] or person in found:
            continue
        if person == state["submitter"] and not state["allow_self_approval"]:
            continue
        found.append(person)
    if command_id:
        seen.append(command_id)
    if not found:
        reason = "nobody to escalate to (" + (
            f"user {target.get('id')}" if target.get("kind") == "user"
            else "the waiting approvers have no manager") + ")"
        _trail(state, now, None, "escalation_failed", reason, step=step,
               command_id=command_id)
        return {**answer, "reason": reason}, []
    entry["approvers"] = entry["approvers"] + found
    entry["escalated_to"] = found
    _trail(state, now, None, "escalated",
           f"not decided within {entry['escalate_after_hours']} business hours",
           step=step, to_users=found, waiting=waiting, command_id=command_id)
    events: list[tuple[str, dict[str, Any]]] = [
        ("approval_step_escalated", {**summary(state), "step": step,
                                     "step_name": entry["name"], "escalated_to": found,
                                     "waiting": waiting,
                                     "escalate_at": entry.get("escalate_at")}),
        ("approval_requested", {**summary(state), "step": step, "step_name": entry["name"],
                                "mode": entry["mode"], "approver_ids": found, "cc_ids": [],
                                "escalated": True}),
    ]
    return {**answer, "escalated": True, "escalated_to": found, "owner_id": found[0]}, events
