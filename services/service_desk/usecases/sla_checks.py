"""The SLA commands the rules service calls and the sweep: `check_sla` by ticket id (its timer
at a scheduled instant), `escalate_ticket` (a breach raises the priority) and the recheck of every
open ticket after a policy or calendar change. `svc` is the nameko service (db, events, context).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select

from services.service_desk.clock import now as utcnow
from services.service_desk.domain import tickets as tickets_domain
from services.service_desk.models import SlaCommandRow, SlaSweepRow, TicketRow
from services.service_desk.usecases import sla, sla_schedule, sla_sweep, tickets
from services.service_desk.usecases.entries import add_entry
from shared.errors import PreconditionFailed, ValidationFailed

log = logging.getLogger(__name__)

OPEN_EXCLUDED = ("solved", "closed")
SWEEP_BATCH = 200


def check_sla(svc, ticket_id: str, now: datetime | None, scope: Mapping[str, Any]
              ) -> dict[str, Any]:
    """Recompute the ticket's clocks from its log at `now` and publish the warnings and
    breaches due and not yet published, then the next schedule if it moved. The ticket's row
    lock (PostgreSQL) or SQLite's one writer makes two concurrent calls publish once."""
    with svc.db.begin() as session:
        row = tickets.find(session, ticket_id, scope, for_update=True)
        return sla_schedule.recheck(svc.events, session, row, tickets.ticket_dict(row), now)


def ticket_sla(svc, ticket_id: str, scope: Mapping[str, Any]) -> dict[str, Any]:
    """The ticket's SLA now, read only: the policy that applies (the first matching its
    priority and customer tier) and each target's clock, from its log as `check_sla` computes
    them. A calendar without the data of a year it needs is a 412 naming the year."""
    with svc.db.read() as session:
        row = tickets.find(session, ticket_id, scope)
        events = sla_schedule.ticket_events(session, row)
    moment = max([utcnow(), *(e["at"] for e in events)])
    return {"ticket_id": ticket_id, **sla.compute_clocks(svc.sla_ports, events, None, moment)}


def escalate_ticket(svc, ticket_id: str, priority: str | None, reason: str | None,
                    scope: Mapping[str, Any], command_id: str | None) -> dict[str, Any]:
    """Raise the priority one step (or to `priority` when that is higher); never lowers it.
    A repeated `command_id` answers the ticket as it is and does nothing."""
    if priority is not None:
        tickets_domain.check_priority(priority)
    now = utcnow()
    with svc.db.begin() as session:
        row = tickets.find(session, ticket_id, scope, for_update=True)
        if command_id and session.get(SlaCommandRow, command_id) is not None:
            return {**tickets.ticket_dict(row), "escalated": False}
        order = tickets_domain.PRIORITIES
        current = order.index(row.priority)
        wanted = order.index(priority) if priority else min(current + 1, len(order) - 1)
        escalated = wanted > current
        if escalated:
            old, row.priority = row.priority, order[wanted]
            row.updated_at = now
            add_entry(session, row, "priority_changed", now, from_value=old,
                               to_value=row.priority, author_id=svc.context.actor,
                               body=reason)
            snapshot = tickets.ticket_dict(row)
            svc.events.record(session, "ticket_escalated",
                              {"ticket": snapshot, "from": old, "to": row.priority,
                               "reason": reason})
            sla_schedule.after_change(svc.events, session, row, snapshot)
        if command_id:
            session.add(SlaCommandRow(command_id=command_id, ticket_id=row.id,
                                      command="escalate_ticket", done_at=now))
        session.flush()
        return {**tickets.ticket_dict(row), "escalated": escalated}


def sweep_step(svc, batch: int = SWEEP_BATCH, budget_seconds: float = 0.5) -> int:
    """Recheck open tickets after a policy or calendar change, `batch` per transaction, for
    about `budget_seconds`; answers how many were rechecked. Several processes take turns
    (the sweep row is locked, skipped by the others on PostgreSQL)."""
    done = 0
    started = time.monotonic()
    while time.monotonic() - started < budget_seconds:
        with svc.db.begin() as session:
            sweep = session.scalars(
                select(SlaSweepRow).where(SlaSweepRow.name == sla_sweep.SWEEP,
                                          SlaSweepRow.cursor.is_not(None))
                .with_for_update(skip_locked=True)).first()
            if sweep is None:
                return done
            rows = session.scalars(
                select(TicketRow).where(TicketRow.status.not_in(OPEN_EXCLUDED),
                                        TicketRow.id > sweep.cursor)
                .order_by(TicketRow.id).limit(batch).with_for_update()).all()
            rules = sla_schedule.load_rules(session)
            for row in rows:
                try:
                    sla_schedule.recheck(svc.events, session, row, tickets.ticket_dict(row),
                                         rules=rules)
                except (PreconditionFailed, ValidationFailed) as exc:
                    log.warning("SLA of ticket %s not rechecked: %s", row.id, exc)
            sweep.cursor = rows[-1].id if len(rows) == batch else None
            sweep.updated_at = utcnow()
            done += len(rows)
            if sweep.cursor is None:
                return done
    return done
