"""A ticket's history: its number as people read it and the entries of its log, in order."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.service_desk.models import TicketEntryRow, TicketRow


def ticket_number(number: int) -> str:
    return f"T-{number:06d}"


def add_entry(session: Session, ticket: TicketRow, kind: str, at, **values: Any
              ) -> TicketEntryRow:
    """The ticket's next entry (`seq` one more than the last)."""
    seq = session.scalar(select(func.coalesce(func.max(TicketEntryRow.seq), 0))
                         .where(TicketEntryRow.ticket_id == ticket.id)) + 1
    row = TicketEntryRow(id=str(uuid.uuid4()), ticket_id=ticket.id, seq=seq, kind=kind, at=at,
                         **values)
    session.add(row)
    session.flush()
    return row
