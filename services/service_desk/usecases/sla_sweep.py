"""The request to recheck every open ticket's SLA after a policy or calendar change, made in
that change's transaction; the sweep itself is sla_checks.sweep_step."""

from __future__ import annotations

from sqlalchemy.orm import Session

from services.service_desk.models import SlaSweepRow
from shared.envelope import utcnow

SWEEP = "open_tickets"


def request_sweep(session: Session) -> None:
    """Every open ticket is rechecked by the sweep (from the start, also when one was under
    way: the tickets done so far were computed under the old policies)."""
    now = utcnow()
    sweep = session.get(SlaSweepRow, SWEEP, with_for_update=True)
    if sweep is None:
        session.add(SlaSweepRow(name=SWEEP, cursor="", requested_at=now, updated_at=now))
    else:
        sweep.cursor, sweep.requested_at, sweep.updated_at = "", now, now
    session.flush()
