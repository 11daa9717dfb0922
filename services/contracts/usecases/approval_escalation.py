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


def with_deadlines(state: dict[str, Any], events: list[tuple[str, dict[str, Any]]],
                   now: datetime) -> list[tuple[str, dict[str, Any]]]:
    """The events, with `approval_step_started` after each step opening (an
    `approval_requested` that is neither a delegation nor an escalation) of a step that
    escalates; its `escalate_at` is written into the step of `state`."""
    out = list(events)
    for event_type, data in events:
        if event_type != "approval_requested" or data.get("delegated_by") \
                or data.get("escalated"):
            continue
        entry = state["steps"][data["step"]]
        hours = entry.get("escalate_after_hours")
        if not hours:
            continue
        due = add_business_hours(now, hours, ZoneInfo(config.timezone_name()))
        entry["escalate_at"] = due.isoformat()
        approval = {"id": state["id"], "record_type": state["record_type"],
                    "record_id": state["record_id"], "step": entry["index"],
                    "step_name": entry["name"], "approver_ids": list(entry["approvers"]),
                    "escalate_at": entry["escalate_at"]}
        out.append(("approval_step_started", {
            "instance_id": state["id"], "record_type": state["record_type"],
            "record_id": state["record_id"], "submitter": state["submitter"],
            "terms_hash": state["terms_hash"], "terms_version": state["terms_version"],
            "step": entry["index"], "step_name": entry["name"],
            "approver_ids": list(entry["approvers"]), "escalate_at": entry["escalate_at"],
            "escalate_after_hours": str(hours), "approval": approval}))
    return out
