"""Changing a lead: behaviours, status, conversion by sales, the public pool (claim, release,
assign) and merges. The domain's transitions check and change the lead; these record it.

`change_status`, `release_lead` and `assign_lead` take a `command_id` (the rules service's
`call` actions): a repeat with it performs nothing and answers the lead as it is now."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from services.leads.domain import lifecycle
from services.leads.models import Behaviour, Lead, inbox
from services.leads.usecases.common import (
    Worker,
    lead_to_dict,
    record_history,
    visible_id,
    visible_lead,
)
from services.leads.usecases.scoring import record_qualification, rescore
from shared.envelope import utcnow
from shared.inbox import first_command, first_delivery

log = logging.getLogger(__name__)


def record_behaviour(worker: Worker, lead_id: str, behaviour: dict[str, Any],
                     scope: dict[str, Any]) -> dict[str, Any]:
    """Record a behaviour of the lead (`occurred_at` now unless given) and rescore it."""
    occurred_at = behaviour["occurred_at"] or utcnow()
    with worker.db.begin() as session:
        lead = visible_lead(session, lead_id, scope, lock=True)
        session.add(
            Behaviour(lead_id=lead.id, type=behaviour["type"], occurred_at=occurred_at,
                      attributes=behaviour["attributes"])
        )
        lead.last_activity_at = max(lead.last_activity_at or occurred_at, occurred_at)
        session.flush()
        worker.events.record(
            session,
            "lead_behaviour_recorded",
            {"lead": lead_to_dict(lead), "behaviour_type": behaviour["type"],
             "occurred_at": occurred_at.isoformat()},
        )
        previous = lead.qualification
        rescore(worker, session, lead, f"behaviour:{behaviour['type']}")
        record_qualification(worker, session, lead, previous)
        return lead_to_dict(lead)


def _done_before(session: Session, command_id: str | None, command: str, lead_id: str,
                 scope: dict[str, Any]) -> dict[str, Any] | None:
    """The lead as it is now when `command` with this `command_id` was done already; None
    when there is no key or this is its first time (then recorded with the effect)."""
    if command_id is None or first_command(session, inbox, command_id, command, lead_id):
        return None
    return lead_to_dict(visible_lead(session, lead_id, scope))


def change_status(worker: Worker, lead_id: str, status: str, reason: str | None,
                  scope: dict[str, Any], command_id: str | None = None) -> dict[str, Any]:
    with worker.db.begin() as session:
        done = _done_before(session, command_id, "change_status", lead_id, scope)
        if done is not None:
            return done
        lead = visible_lead(session, lead_id, scope, lock=True)
        previous = lifecycle.change_status(lead, status, reason, utcnow())
        record_history(worker, session, lead, "status_changed",
                       {"from": previous, "to": status, "reason": reason})
        worker.events.record(
            session,
            "lead_status_changed",
            {"lead": lead_to_dict(lead), "status": status, "previous_status": previous,
             "reason": reason},
        )
        return lead_to_dict(lead)


def convert_lead(worker: Worker, envelope: dict[str, Any], handler: str) -> None:
    """The sales service's `lead_converted` (once per event: the inbox remembers `handler`)."""
    data = envelope["data"]
    with worker.db.begin() as session:
        if not first_delivery(session, inbox, envelope["event_id"], handler):
            return
        lead = session.get(Lead, data["lead_id"])
        previous = (lifecycle.convert(lead, data, envelope["occurred_at"], utcnow())
                    if lead is not None else None)
        if previous is None:
            log.warning("lead_converted for %s: no such lead or already converted",
                        data["lead_id"])
            return
        record_history(worker, session, lead, "converted", {"from": previous, **lead.conversion})
        worker.events.record(
            session,
            "lead_status_changed",
            {"lead": lead_to_dict(lead), "status": "converted", "previous_status": previous,
             "reason": "converted by sales"},
        )


def claim_lead(worker: Worker, lead_id: str, user_id: str,
               scope: dict[str, Any]) -> dict[str, Any]:
    with worker.db.begin() as session:
        # A lead owned by someone the caller cannot see is hidden: 404 as a missing one,
        # so a claim does not tell that it exists (or who holds it).
        lead = visible_lead(session, lead_id, scope, lock=True)
        lifecycle.claim(lead, user_id, scope, utcnow())
        record_history(worker, session, lead, "claimed", {"owner_id": user_id})
        worker.events.record(
            session, "lead_claimed", {"lead": lead_to_dict(lead), "owner_id": user_id}
        )
        return lead_to_dict(lead)


def release_lead(worker: Worker, lead_id: str, reason: str | None,
                 scope: dict[str, Any], command_id: str | None = None) -> dict[str, Any]:
    with worker.db.begin() as session:
        done = _done_before(session, command_id, "release_lead", lead_id, scope)
        if done is not None:
            return done
        lead = visible_lead(session, lead_id, scope, lock=True)
        previous = lifecycle.release(lead, worker.context.actor or "", scope, utcnow())
        record_history(worker, session, lead, "released",
                       {"previous_owner_id": previous, "reason": reason})
        worker.events.record(
            session,
            "lead_released",
            {"lead": lead_to_dict(lead), "previous_owner_id": previous, "reason": reason},
        )
        return lead_to_dict(lead)


def assign_lead(worker: Worker, lead_id: str, owner_id: str,
                scope: dict[str, Any], command_id: str | None = None) -> dict[str, Any]:
    with worker.db.begin() as session:
        done = _done_before(session, command_id, "assign_lead", lead_id, scope)
        if done is not None:
            return done
        lead = visible_lead(session, lead_id, scope, lock=True)
        change = lifecycle.assign(lead, owner_id, scope, utcnow())
        if change is None:
            return lead_to_dict(lead)
        previous = change.previous_owner_id
        record_history(worker, session, lead, "assigned",
                       {"owner_id": owner_id, "previous_owner_id": previous})
        worker.events.record(
            session,
            "lead_assigned",
            {"lead": lead_to_dict(lead), "owner_id": owner_id, "previous_owner_id": previous},
        )
        return lead_to_dict(lead)


def merge_leads(worker: Worker, target_id: str, source_id: str,
                scope: dict[str, Any]) -> dict[str, Any]:
    """Merge the source lead into the target; the target survives and is rescored."""
    with worker.db.begin() as session:
        # Both are looked up before any other answer: a hidden one is a 404 like a missing
        # one, whichever of the two it is.
        # Locked in id order, so that two merges of the same pair cannot deadlock.
        for lead_id in sorted(i for i in {target_id, source_id} if isinstance(i, str)):
            session.get(Lead, lead_id, with_for_update=True)
        target = visible_lead(session, target_id, scope, "id")
        source = visible_lead(session, source_id, scope, "source_id")
        lifecycle.check_merge(target, source, scope)
        for lead, field in ((target, "id"), (source, "source_id")):
            if lead.merged_into_id:
                into = visible_id(session, lead.merged_into_id, scope)
                raise lifecycle.already_merged(lead, field, into)
        lifecycle.merge(target, source, lead_to_dict(source), utcnow())
        session.execute(
            update(Behaviour).where(Behaviour.lead_id == source.id).values(lead_id=target.id)
        )
        record_history(worker, session, target, "merged", {"source_id": source.id})
        record_history(worker, session, source, "merged_into", {"target_id": target.id})
        previous = target.qualification
        rescore(worker, session, target, "merged")
        record_qualification(worker, session, target, previous)
        worker.events.record(
            session, "lead_merged", {"lead": lead_to_dict(target), "source_id": source.id}
        )
        return lead_to_dict(target)
