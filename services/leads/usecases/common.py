"""What the leads use cases share: the worker's dependencies, the lead as it leaves the
service, its history, and finding a lead the caller may see."""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy.orm import Session

from services.leads.contract import LeadSchema
from services.leads.domain.visibility import lead_visible
from services.leads.models import HistoryEntry, Lead
from shared.context import Context
from shared.db import DatabaseAccess, insert_object
from shared.envelope import utcnow
from shared.errors import NotFound
from shared.outbox import EventRecorder


class Worker(Protocol):
    """What a use case needs of the service worker that runs it (its nameko dependencies)."""

    db: DatabaseAccess
    events: EventRecorder
    context: Context


# Built once: constructing a schema costs more than dumping a lead with it.
lead_schema = LeadSchema()


def lead_to_dict(lead: Lead) -> dict[str, Any]:
    """The lead as the contract's `LeadSchema` describes it (events carry the same)."""
    data = lead_schema.dump(lead)
    data["in_pool"] = lead.owner_id is None
    return data


def record_history(worker: Worker, session: Session, lead: Lead, kind: str,
                   data: dict[str, Any]) -> None:
    # The lead's row exists (create_lead inserts it first); history is only ever added, so it
    # is inserted without the ORM's unit of work.
    insert_object(session, HistoryEntry(
        lead_id=lead.id, kind=kind, data=data, actor=worker.context.actor,
        correlation_id=worker.context.correlation_id, at=utcnow()))


def visible_lead(
    session: Session, lead_id: str, scope: dict, field: str = "lead_id", lock: bool = False,
) -> Lead:
    """The lead if the caller may see it; otherwise the same NotFound as for a missing
    one (same detail, same field), so nothing tells that it exists.

    `lock` for a change: the row is locked (PostgreSQL; SQLite has one writer anyway) so
    that two claims of one pool lead cannot both succeed, the second overwriting the
    first; the second waits and then sees the lead owned."""
    lead = (session.get(Lead, lead_id, with_for_update=lock)
            if isinstance(lead_id, str) else None)
    if lead is None or not lead_visible(lead.owner_id, scope):
        raise NotFound(f"lead {lead_id} not found", {"field": field})
    return lead


def visible_id(session: Session, lead_id: str | None, scope: dict) -> str | None:
    """`lead_id` when that lead exists and the caller may see it, else None (a lead it was
    merged into is named only to who may see it)."""
    other = session.get(Lead, lead_id) if lead_id else None
    return other.id if other is not None and lead_visible(other.owner_id, scope) else None
