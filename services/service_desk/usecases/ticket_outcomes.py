"""Each ticket's SLA outcomes as the numbers count them (`ticket_sla_outcomes`): per target of
the policy that applies, the clock's state, whether it breached, its measured (business)
seconds and the instant it was met. Kept by the SLA scheduling in every change's transaction
(usecases/sla_schedule.recheck), so the figures are sums in SQL, never a replay of every
ticket's log; a target the policy no longer has is removed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from services.service_desk.clock import now as utcnow
from services.service_desk.models import TicketSlaOutcomeRow


def keep(session: Session, ticket_id: str, policy_id: str | None,
         clocks: Mapping[str, Mapping[str, Any]],
         present: Sequence[TicketSlaOutcomeRow] | None = None) -> None:
    """The ticket's rows as `clocks` (the domain's, instants as datetimes) say; `present`:
    its rows as they are, when the caller has read them (a batch)."""
    if present is None:
        present = session.scalars(select(TicketSlaOutcomeRow)
                                  .where(TicketSlaOutcomeRow.ticket_id == ticket_id)).all()
    rows = {row.target: row for row in present}
    gone = [target for target in rows if target not in clocks]
    if gone:
        session.execute(delete(TicketSlaOutcomeRow).where(
            TicketSlaOutcomeRow.ticket_id == ticket_id, TicketSlaOutcomeRow.target.in_(gone)))
    now = utcnow()
    for target, clock in clocks.items():
        values = {"policy_id": policy_id, "business": bool(clock.get("business")),
                  "state": clock["state"], "breached": bool(clock["breached"]),
                  "elapsed_seconds": int(clock["elapsed_seconds"]),
                  "due_at": clock.get("due_at"), "achieved_at": clock.get("achieved_at")}
        row = rows.get(target)
        if row is None:
            session.add(TicketSlaOutcomeRow(ticket_id=ticket_id, target=target, updated_at=now,
                                            **values))
        elif any(getattr(row, name) != value for name, value in values.items()):
            for name, value in values.items():
                setattr(row, name, value)
            row.updated_at = now
