"""Escalation deadlines of approval steps (issue 16: "a step not decided within N business
hours is escalated through the rules service's timers").

When a step that names `escalate_after_hours` opens, its deadline `escalate_at` is computed
in business hours (`domain/business_hours.py`, CRM_TIMEZONE), kept in the step and published
in `approval_step_started`. The shipped rule `approval-step-escalation` (services/rules/seed.py)
starts an exact timer on it and, when it passes, calls `escalate_approval_step` (the use case
is `usecases.contract_approval.escalate_step`), which does nothing for a step decided by then.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from services.contracts.domain.business_hours import add_business_hours
from shared import config


def approval_record(state: dict[str, Any], entry: dict[str, Any], approver_ids: list[str],
                    escalated: bool = False, delegated: bool = False) -> dict[str, Any]:
    """The approval as the rules service keeps it (record type `approval`): who was asked
    (`approver_ids`, for its notification rules), at which step, until when. One record per
    request, `<approval id>:<step>:<trail length>` (`approval_id` is the approval's own id):
    a rule acts once per record within its dedupe window, and the next step's approvers,
    a delegate or an escalation approver are asked seconds later."""
    return {"id": f"{state['id']}:{entry['index']}:{len(state['trail'])}",
            "approval_id": state["id"], "record_type": state["record_type"],
            "record_id": state["record_id"], "submitter": state["submitter"],
            "step": entry["index"], "step_name": entry["name"],
            "approver_ids": list(approver_ids), "escalated": escalated,
            "delegated": delegated, "escalate_at": entry.get("escalate_at")}


def with_deadlines(state: dict[str, Any], events: list[tuple[str, dict[str, Any]]],
                   now: datetime) -> list[tuple[str, dict[str, Any]]]:
    """The events, each `approval_requested` with its `approval` record, and
    `approval_step_started` after each step opening (an `approval_requested` that is neither
    a delegation nor an escalation) of a step that escalates; its `escalate_at` is written
    into the step of `state`."""
    out: list[tuple[str, dict[str, Any]]] = []
    for event_type, data in events:
        if event_type != "approval_requested":
            out.append((event_type, data))
            continue
        entry = state["steps"][data["step"]]
        opening = not (data.get("delegated_by") or data.get("escalated"))
        hours = entry.get("escalate_after_hours")
        if opening and hours:
            due = add_business_hours(now, hours, ZoneInfo(config.timezone_name()))
            entry["escalate_at"] = due.isoformat()
        data = {**data, "approval": approval_record(
            state, entry, data["approver_ids"], escalated=bool(data.get("escalated")),
            delegated=bool(data.get("delegated_by")))}
        out.append((event_type, data))
        if not (opening and hours):
            continue
        out.append(("approval_step_started", {
            "instance_id": state["id"], "record_type": state["record_type"],
            "record_id": state["record_id"], "submitter": state["submitter"],
            "terms_hash": state["terms_hash"], "terms_version": state["terms_version"],
            "step": entry["index"], "step_name": entry["name"],
            "approver_ids": list(entry["approvers"]), "escalate_at": entry["escalate_at"],
            "escalate_after_hours": str(hours),
            "approval": approval_record(state, entry, entry["approvers"])}))
    return out
