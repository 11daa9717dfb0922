"""Reading leads: one with its behaviours and history, and filtered pages of them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, or_, select

from services.leads.domain.search import search_terms
from services.leads.models import Behaviour, HistoryEntry, Lead
from services.leads.usecases.common import Worker, lead_to_dict, visible_id, visible_lead
from shared.paging import escape_like, page_after, page_of

# Filters that compare a column with the value as given.
_EQUALITY_FILTERS = ("status", "owner_id", "source", "qualification")


def get_lead(worker: Worker, lead_id: str, scope: dict[str, Any]) -> dict[str, Any]:
    """The lead with its score breakdown, its latest 100 behaviours and 200 history entries."""
    with worker.db.read() as session:
        lead = visible_lead(session, lead_id, scope)
        behaviours = session.scalars(
            select(Behaviour)
            .where(Behaviour.lead_id == lead.id)
            .order_by(Behaviour.occurred_at.desc())
            .limit(100)
        ).all()
        history = session.scalars(
            select(HistoryEntry)
            .where(HistoryEntry.lead_id == lead.id)
            .order_by(HistoryEntry.id.desc())
            .limit(200)
        ).all()
        result = lead_to_dict(lead)
        if lead.merged_into_id:  # the lead it went into is named only to who may see it
            result["merged_into_id"] = visible_id(session, lead.merged_into_id, scope)
        result["score_breakdown"] = lead.score_breakdown
        result["behaviours"] = [
            {"type": b.type, "occurred_at": b.occurred_at.isoformat(),
             "attributes": b.attributes}
            for b in behaviours
        ]
        result["history"] = [
            {"kind": h.kind, "data": h.data, "actor": h.actor, "at": h.at.isoformat(),
             "correlation_id": h.correlation_id}
            for h in history
        ]
        return result


def list_leads(worker: Worker, filters: dict[str, Any], scope: dict[str, Any],
               page: dict[str, Any]) -> dict[str, Any]:
    """A page of the leads the caller may see that match `filters`, newest first."""
    query = select(Lead).where(Lead.merged_into_id.is_(None), _scope_clause(scope))
    for name in _EQUALITY_FILTERS:
        if name in filters:
            query = query.where(getattr(Lead, name) == filters[name])
    if "in_pool" in filters:
        query = query.where(
            Lead.owner_id.is_(None) if filters["in_pool"] else Lead.owner_id.is_not(None)
        )
    if "score_min" in filters:
        query = query.where(Lead.score >= filters["score_min"])
    if "score_max" in filters:
        query = query.where(Lead.score <= filters["score_max"])
    if "created_from" in filters:
        query = query.where(Lead.created_at >= filters["created_from"])
    if "created_to" in filters:
        query = query.where(Lead.created_at < filters["created_to"])
    for term in search_terms(filters.get("q", "")):
        pattern = f"%{escape_like(term)}%"
        query = query.where(
            or_(Lead.name.ilike(pattern, escape="\\"), Lead.company.ilike(pattern, escape="\\"))
        )
    query = page_after(query, Lead.created_at, Lead.id, page["cursor"], page["limit"])
    with worker.db.read() as session:
        leads = session.scalars(query).all()
    return page_of(leads, page["limit"], "created_at", lead_to_dict)


def _scope_clause(scope: dict[str, Any]) -> ColumnElement[bool]:
    """The leads `visibility.lead_visible` lets the caller see, as SQL."""
    if scope["all"]:
        return Lead.id.is_not(None)
    clauses = [Lead.owner_id.in_(scope["owner_ids"])] if scope["owner_ids"] else []
    if scope["include_pool"]:
        clauses.append(Lead.owner_id.is_(None))
    return or_(*clauses) if clauses else Lead.id.is_(None)
