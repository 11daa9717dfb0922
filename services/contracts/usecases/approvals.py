"""Approval use cases: flows (admin), submissions, decisions, recall, delegation, the inbox,
the trail, terms verification and the record lock every write path of an approved record
calls (`require_unlocked`)."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.contracts.domain import approvals as domain
from services.contracts.models import (
    ApprovalAbsence,
    ApprovalDirectoryTeam,
    ApprovalDirectoryUser,
    ApprovalFlow,
    ApprovalInstance,
    ApprovalTask,
    ApprovalViewer,
)
from services.contracts.usecases import approval_escalation
from shared.context import Context
from shared.db import DatabaseAccess
from shared.envelope import utcnow
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.outbox import EventRecorder
from shared.paging import page_after, page_of


class Worker(Protocol):
    db: DatabaseAccess
    events: EventRecorder
    context: Context


# -- the records' callbacks (quote approval) ----
# record_type -> function(worker, session, instance row, new status) called inside the
# transaction that finishes an instance (approved, rejected, recalled, voided): the record
# moves with its approval or neither does (the function raises to refuse both).
RecordCallback = Callable[[Any, Session, "ApprovalInstance", str], None]
RECORD_CALLBACKS: dict[str, RecordCallback] = {}
FINISHED = (domain.APPROVED, domain.REJECTED, domain.RECALLED, domain.VOIDED)


def register_record_callback(record_type: str, callback: RecordCallback) -> None:
    RECORD_CALLBACKS[record_type] = callback


# -- contract approval: records submitted through their own commands only ----
# Their terms are what the owning command computes from the stored record: made-up terms
# submitted (or verified) through the generic RPC could lock the record or void its approval.
OWN_SUBMIT_COMMANDS = {"quote": "submit_quote", "contract": "submit_contract"}


def refuse_own_record_types(record_type: str) -> None:
    command = OWN_SUBMIT_COMMANDS.get(record_type)
    if command is not None:
        raise ValidationFailed.for_fields({"record_type": [
            f"a {record_type} is submitted for approval through {command} (its terms are "
            f"computed from the stored {record_type}), not through the generic RPC"]})


def escalation_deadlines(state: dict[str, Any], events: list[tuple[str, dict[str, Any]]],
                         now: Any) -> list[tuple[str, dict[str, Any]]]:
    """The escalation deadlines of the steps these events open (approval_step_started)."""
    return approval_escalation.with_deadlines(state, events, now)


def _open_key(record_type: str, record_id: str) -> str:
    return f"{record_type}:{record_id}"


# -- the lock ---------------------------------------------------------------------------

def require_unlocked(session: Session, record_type: str, record_id: str) -> None:
    """Conflict (409) while the record has a pending approval: every write path of the record
    (API, rules, imports, other services' commands) calls this in its own transaction."""
    found = session.execute(
        select(ApprovalInstance.id).where(
            ApprovalInstance.open_key == _open_key(record_type, record_id))
    ).scalar_one_or_none()
    if found is not None:
        raise Conflict(f"The {record_type} is locked while in approval",
                       {"reason": "in_approval", "approval_id": found,
                        "record_type": record_type, "record_id": record_id})


# -- flows ------------------------------------------------------------------------------

def flow_to_dict(flow: ApprovalFlow) -> dict[str, Any]:
    return {"id": flow.id, "record_type": flow.record_type, "name": flow.name,
            "position": flow.position, "condition": flow.condition, "steps": flow.steps,
            "cc": flow.cc or [], "fallback_approver": flow.fallback_approver,
            "allow_self_approval": flow.allow_self_approval, "active": flow.active,
            "version": flow.version, "created_at": flow.created_at.isoformat(),
            "updated_at": flow.updated_at.isoformat()}


def _clean(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: value for key, value in spec.items() if value is not None} for spec in specs]


def _fill(flow: ApprovalFlow, data: dict[str, Any]) -> None:
    steps = [{**{k: v for k, v in step.items() if v is not None},
              "approvers": _clean(step["approvers"])} for step in data["steps"]]
    definition = {**data, "steps": steps, "cc": _clean(data.get("cc") or [])}
    domain.check_flow(definition)
    for key in ("record_type", "name", "position", "condition", "fallback_approver",
                "allow_self_approval", "active"):
        setattr(flow, key, definition[key])
    flow.steps = steps
    flow.cc = definition["cc"]


def define_flow(worker: Worker, data: dict[str, Any]) -> dict[str, Any]:
    now = utcnow()
    flow = ApprovalFlow(id=str(uuid.uuid4()), version=1, created_at=now, updated_at=now)
    _fill(flow, data)
    with worker.db.begin() as session:
        session.add(flow)
    return flow_to_dict(flow)


def update_flow(worker: Worker, flow_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """Replace the definition; instances already submitted keep the steps they started with."""
    with worker.db.begin() as session:
        flow = session.get(ApprovalFlow, flow_id)
        if flow is None:
            raise NotFound("No such approval flow")
        _fill(flow, data)
        flow.version += 1
        flow.updated_at = utcnow()
        return flow_to_dict(flow)


def get_flow(worker: Worker, flow_id: str) -> dict[str, Any]:
    with worker.db.begin() as session:
        flow = session.get(ApprovalFlow, flow_id)
        if flow is None:
            raise NotFound("No such approval flow")
        return flow_to_dict(flow)


def list_flows(worker: Worker, record_type: str | None = None) -> list[dict[str, Any]]:
    query = select(ApprovalFlow).order_by(ApprovalFlow.record_type, ApprovalFlow.position,
                                          ApprovalFlow.id)
    if record_type:
        query = query.where(ApprovalFlow.record_type == record_type)
    with worker.db.begin() as session:
        return [flow_to_dict(flow) for flow in session.scalars(query)]


# -- the directory ----------------------------------------------------------------------

def project_directory(session: Session, event_type: str, data: dict[str, Any],
                      occurred_at: str | None = None) -> None:
    """`gateway.user_changed` / `gateway.team_changed` into the approvals' directory. Events are
    taken concurrently: one older than the row's (`occurred_at`) arrived late and changes
    nothing (a user's creation must not undo their deactivation)."""
    if event_type == "user_changed" and isinstance(data.get("user"), dict):
        user = data["user"]
        row = session.get(ApprovalDirectoryUser, user["id"]) or ApprovalDirectoryUser(
            id=user["id"])
        if occurred_at and row.changed_at and occurred_at < row.changed_at:
            return
        row.role = user.get("role") or "sales_rep"
        row.team_id = user.get("team_id")
        row.active = bool(user.get("active", True))
        row.changed_at = occurred_at or row.changed_at
        session.merge(row)
    elif event_type == "team_changed" and isinstance(data.get("team"), dict):
        team = data["team"]
        row = session.get(ApprovalDirectoryTeam, team["id"]) or ApprovalDirectoryTeam(
            id=team["id"])
        if occurred_at and row.changed_at and occurred_at < row.changed_at:
            return
        row.manager_id = team.get("manager_id")
        row.changed_at = occurred_at or row.changed_at
        session.merge(row)


def load_directory(session: Session) -> domain.Directory:
    users = {row.id: {"role": row.role, "team_id": row.team_id, "active": row.active}
             for row in session.scalars(select(ApprovalDirectoryUser))}
    for absence in session.scalars(select(ApprovalAbsence)):
        if absence.user_id in users:
            users[absence.user_id].update(out_of_office_until=absence.until,
                                          delegate_id=absence.delegate_id)
    teams = {row.id: {"manager_id": row.manager_id}
             for row in session.scalars(select(ApprovalDirectoryTeam))}
    return domain.Directory(users=users, teams=teams)


def set_absence(worker: Worker, user_id: str, data: dict[str, Any] | None) -> dict[str, Any]:
    """Out of office until `until`: `delegate_id` answers for the user in new steps
    (None clears it)."""
    with worker.db.begin() as session:
        row = session.get(ApprovalAbsence, user_id)
        if data is None:
            if row is not None:
                session.delete(row)
            return {"user_id": user_id, "absence": None}
        if data["delegate_id"] == user_id:
            raise ValidationFailed.for_fields({"delegate_id": ["cannot delegate to oneself"]})
        row = row or ApprovalAbsence(user_id=user_id)
        row.delegate_id = data["delegate_id"]
        row.until = data["until"]
        session.merge(row)
        return {"user_id": user_id, "absence": {"delegate_id": data["delegate_id"],
                                                 "until": data["until"].isoformat()}}


# -- instances --------------------------------------------------------------------------

def instance_to_dict(row: ApprovalInstance) -> dict[str, Any]:
    state = row.state
    return {"id": row.id, "record_type": row.record_type, "record_id": row.record_id,
            "status": row.status, "flow_id": state.get("flow_id"),
            "flow_name": state.get("flow_name"), "submitter": row.submitter_id,
            "terms": state.get("terms"), "terms_hash": row.terms_hash,
            "terms_version": row.terms_version, "current_step": state.get("step_index"),
            "pending_approvers": domain.pending_approvers(state), "cc": state.get("cc", []),
            "steps": state.get("steps", []), "trail": state.get("trail", []),
            "submitted_at": state.get("submitted_at"), "finished_at": state.get("finished_at")}


def _save(worker: Worker, session: Session, row: ApprovalInstance, state: dict[str, Any],
          events: list[tuple[str, dict[str, Any]]]) -> None:
    now = utcnow()
    events = escalation_deadlines(state, events, now)  # contract approval: escalation
    before = row.status
    row.state = state
    row.status = state["status"]
    row.open_key = (_open_key(row.record_type, row.record_id)
                    if state["status"] == domain.PENDING else None)
    row.updated_at = now
    session.flush()
    session.execute(delete(ApprovalTask).where(ApprovalTask.instance_id == row.id))
    for user_id in domain.pending_approvers(state):
        session.add(ApprovalTask(instance_id=row.id, user_id=user_id,
                                 step=state["step_index"], since=now))
    known = set(session.scalars(select(ApprovalViewer.user_id).where(
        ApprovalViewer.instance_id == row.id)))
    for user_id in sorted(domain.involved(state) - known):
        session.add(ApprovalViewer(instance_id=row.id, user_id=user_id))
    for event_type, data in events:
        worker.events.record(session, event_type, data)
    callback = RECORD_CALLBACKS.get(row.record_type)
    if callback is not None and row.status != before and row.status in FINISHED:
        callback(worker, session, row, row.status)


def _terms(terms: dict[str, Any]) -> dict[str, Any]:
    try:
        domain.canonical_json(terms)
    except ValueError as exc:
        raise ValidationFailed.for_fields(
            {"terms": [f"{exc}; send decimals as strings"]}) from None
    return terms


def submit_for_approval(worker: Worker, data: dict[str, Any], submitter: str
                        ) -> dict[str, Any]:
    """Start the first matching flow of the record type on these terms. Conflict when the
    record already has a pending approval; ValidationFailed when no flow applies or a step
    has nobody to answer it."""
    refuse_own_record_types(data["record_type"])
    try:
        with worker.db.begin() as session:
            return start_in_session(worker, session, data, submitter)
    except IntegrityError:  # a concurrent submission of the same record won
        raise Conflict(f"The {data['record_type']} is already in approval",
                       {"reason": "in_approval"}) from None


def matching_flow(session: Session, record_type: str, terms: dict[str, Any]
                  ) -> dict[str, Any] | None:
    """The flow that applies to these terms of the record type, or None."""
    flows = [flow_to_dict(flow) for flow in session.scalars(
        select(ApprovalFlow).where(ApprovalFlow.record_type == record_type))]
    return domain.choose_flow(flows, _terms(terms))


def void_other_terms(worker: Any, session: Session, record_type: str, record_id: str,
                     terms: dict[str, Any]) -> None:
    """Earlier approvals of other terms of the record no longer stand (voided)."""
    now = utcnow()
    for earlier in list(session.scalars(select(ApprovalInstance).where(
            ApprovalInstance.record_type == record_type,
            ApprovalInstance.record_id == record_id,
            ApprovalInstance.status == domain.APPROVED))):
        state = copy.deepcopy(earlier.state)
        voided = domain.verify(state, terms, now)
        if voided:
            _save(worker, session, earlier, state, voided)


def start_in_session(worker: Any, session: Session, data: dict[str, Any], submitter: str
                     ) -> dict[str, Any]:
    """submit_for_approval inside the caller's transaction (the record's own use case submits
    its record and changes its status in one transaction)."""
    terms = _terms(data["terms"])
    record_type, record_id = data["record_type"], data["record_id"]
    now = utcnow()
    require_unlocked(session, record_type, record_id)
    flow = matching_flow(session, record_type, terms)
    if flow is None:
        raise ValidationFailed.for_fields(
            {"record_type": [f"no active approval flow of {record_type} matches "
                             "these terms"]})
    void_other_terms(worker, session, record_type, record_id, terms)
    state, events = domain.start(
        flow, record_type, record_id, terms, data.get("terms_version", 1), submitter,
        load_directory(session), now, str(uuid.uuid4()), data.get("comment"))
    row = ApprovalInstance(
        id=state["id"], record_type=record_type, record_id=record_id,
        flow_id=flow["id"], submitter_id=submitter, terms_hash=state["terms_hash"],
        terms_version=state["terms_version"], submitted_at=now, status=state["status"],
        state=state, updated_at=now)
    session.add(row)
    _save(worker, session, row, state, events)
    return instance_to_dict(row)


def verify_in_session(worker: Any, session: Session, record_type: str, record_id: str,
                      current_terms: dict[str, Any]) -> dict[str, Any]:
    """verify inside the caller's transaction."""
    terms = _terms(current_terms)
    rows = list(session.scalars(select(ApprovalInstance).where(
        ApprovalInstance.record_type == record_type,
        ApprovalInstance.record_id == record_id,
        ApprovalInstance.status.in_((domain.PENDING, domain.APPROVED))).with_for_update()))
    if not rows:
        return {"valid": False, "status": None, "approval_id": None,
                "reason": "no pending or approved approval of this record"}
    answer: dict[str, Any] = {}
    for row in rows:
        state = copy.deepcopy(row.state)
        events = domain.verify(state, terms, utcnow())
        if events:
            _save(worker, session, row, state, events)
            answer = {"valid": False, "status": domain.VOIDED, "approval_id": row.id,
                      "reason": events[0][1]["reason"]}
        elif not answer:
            answer = {"valid": row.status == domain.APPROVED, "status": row.status,
                      "approval_id": row.id,
                      "reason": None if row.status == domain.APPROVED else "still pending"}
    return answer


def _locked_instance(session: Session, instance_id: str) -> ApprovalInstance:
    row = session.execute(select(ApprovalInstance).where(
        ApprovalInstance.id == instance_id).with_for_update()).scalar_one_or_none()
    if row is None:
        raise NotFound("No such approval")
    return row


def _visible(session: Session, row: ApprovalInstance, user_id: str) -> bool:
    return session.get(ApprovalViewer, (row.id, user_id)) is not None


def decide(worker: Worker, instance_id: str, user_id: str, data: dict[str, Any]
           ) -> dict[str, Any]:
    with worker.db.begin() as session:
        row = _locked_instance(session, instance_id)
        if not _visible(session, row, user_id):
            raise NotFound("No such approval")
        state = copy.deepcopy(row.state)
        events = domain.decide(state, user_id, data["decision"], data.get("comment"),
                               utcnow(), data.get("terms_hash"))
        _save(worker, session, row, state, events)
        return instance_to_dict(row)


def recall(worker: Worker, instance_id: str, user_id: str, comment: str | None
           ) -> dict[str, Any]:
    with worker.db.begin() as session:
        row = _locked_instance(session, instance_id)
        if not _visible(session, row, user_id):
            raise NotFound("No such approval")
        state = copy.deepcopy(row.state)
        events = domain.recall(state, user_id, comment, utcnow())
        _save(worker, session, row, state, events)
        return instance_to_dict(row)


def delegate(worker: Worker, instance_id: str, user_id: str, data: dict[str, Any]
             ) -> dict[str, Any]:
    with worker.db.begin() as session:
        row = _locked_instance(session, instance_id)
        if not _visible(session, row, user_id):
            raise NotFound("No such approval")
        state = copy.deepcopy(row.state)
        events = domain.delegate(state, user_id, data["to_user"], data.get("comment"),
                                 load_directory(session), utcnow())
        _save(worker, session, row, state, events)
        return instance_to_dict(row)


def get_instance(worker: Worker, instance_id: str, user_id: str | None,
                 see_all: bool = False) -> dict[str, Any]:
    """The instance with its whole trail, for those involved in it (or an admin: `see_all`);
    NotFound for anybody else."""
    with worker.db.begin() as session:
        row = session.get(ApprovalInstance, instance_id)
        if row is None or not (see_all or (user_id and _visible(session, row, user_id))):
            raise NotFound("No such approval")
        return instance_to_dict(row)


def inbox(worker: Worker, user_id: str, page: dict[str, Any]) -> dict[str, Any]:
    """Box `inbox` (default): the pending approvals waiting for the user's answer; box
    `submitted`: the user's own submissions, whatever their status. Newest submission first."""
    if page.get("box") == "submitted":
        query = select(ApprovalInstance).where(ApprovalInstance.submitter_id == user_id)
    else:
        query = select(ApprovalInstance).join(
            ApprovalTask, ApprovalTask.instance_id == ApprovalInstance.id).where(
            ApprovalTask.user_id == user_id)
    query = page_after(query, ApprovalInstance.submitted_at, ApprovalInstance.id,
                       page.get("cursor"), page["limit"])
    with worker.db.begin() as session:
        rows = list(session.scalars(query))
        return page_of(rows, page["limit"], "submitted_at", instance_to_dict)


def current_approval(worker: Worker, record_type: str, record_id: str) -> dict[str, Any] | None:
    """The newest instance of the record (for the record's own service)."""
    with worker.db.begin() as session:
        row = session.scalars(select(ApprovalInstance).where(
            ApprovalInstance.record_type == record_type,
            ApprovalInstance.record_id == record_id).order_by(
            ApprovalInstance.submitted_at.desc(), ApprovalInstance.id.desc()).limit(1)).first()
        return instance_to_dict(row) if row is not None else None


def verify(worker: Worker, record_type: str, record_id: str, current_terms: dict[str, Any]
           ) -> dict[str, Any]:
    """`{"valid": bool, "status", "approval_id", "reason"}`: a pending or approved instance
    whose hash differs from the current terms is voided (event `approval_voided`)."""
    refuse_own_record_types(record_type)
    with worker.db.begin() as session:
        return verify_in_session(worker, session, record_type, record_id, current_terms)
