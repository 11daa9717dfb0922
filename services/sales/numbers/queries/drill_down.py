"""The records behind a figure."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from services.sales.models import Opportunity
from services.sales.numbers.contract import FIGURES
from services.sales.numbers.domain import figures
from services.sales.numbers.queries.base import (
    as_date,
    decode_cursor,
    default_period,
    encode_cursor,
    local_start,
    opportunity_clauses,
    opportunity_row,
)
from services.sales.numbers.queries.dormant import dormant_customers
from services.sales.numbers.queries.snapshots import slipped_query
from shared.errors import ValidationFailed


def drill_down(
    session: Session, figure: str, filters: dict[str, Any], scope: dict[str, Any],
    params: dict[str, Any], cursor: str | None = None, limit: int = 50,
) -> dict[str, Any]:
    """The records behind a figure. figure / params:
    funnel: stage_id (open now, created in the period); won / lost: reason (closed in the
    period); cycle: won in the period; forecast: month or period start (open expected in it
    and won in it); channel: source; quota: subject (owner) won in the period;
    slippage: run_id, period_start, period_kind; dormant: days (customers)."""
    if figure not in FIGURES:
        raise ValidationFailed.for_fields({"figure": [f"must be one of {', '.join(FIGURES)}"]})
    if figure == "dormant":
        return dormant_customers(session, int(params.get("days") or 30), filters, scope,
                                 cursor, limit)
    query = select(Opportunity)
    if figure == "funnel":
        if not params.get("stage_id"):
            raise ValidationFailed.for_fields({"stage_id": ["required for the funnel"]})
        query = query.where(Opportunity.stage_id == params["stage_id"],
                            *opportunity_clauses(filters, scope, dated=Opportunity.created_at))
    elif figure in ("won", "lost", "cycle", "quota"):
        status = "lost" if figure == "lost" else "won"
        query = query.where(Opportunity.status == status,
                            *opportunity_clauses(filters, scope, dated=Opportunity.closed_at))
        if figure == "lost" and "reason" in params:
            reason = params["reason"] or None
            query = query.where(Opportunity.won_lost_reason.is_(None) if reason is None
                                else Opportunity.won_lost_reason == reason)
    elif figure == "channel":
        query = query.where(*opportunity_clauses(filters, scope, dated=Opportunity.created_at))
        source = params.get("source") or None
        query = query.where(Opportunity.source.is_(None) if source is None
                            else Opportunity.source == source)
    elif figure == "forecast":
        first, last = default_period(filters)
        if params.get("period_start"):
            kind = params.get("period_kind") or "month"
            first = as_date(params["period_start"])
            last = figures.period_end(kind, first)
        clauses = opportunity_clauses(filters, scope)
        query = query.where(
            or_(and_(Opportunity.status == "open", Opportunity.expected_close_date >= first,
                     Opportunity.expected_close_date <= last),
                and_(Opportunity.status == "won",
                     Opportunity.closed_at >= local_start(first),
                     Opportunity.closed_at < local_start(last + timedelta(days=1)))),
            *clauses)
    elif figure == "slippage":
        try:
            run_id = int(params["run_id"])
            kind = params.get("period_kind") or "quarter"
            start = as_date(params["period_start"])
        except (KeyError, ValueError, TypeError):
            raise ValidationFailed.for_fields(
                {"run_id": ["run_id and period_start are required for slippage"]}
            ) from None
        sub = slipped_query(run_id, start, figures.period_end(kind, start), filters,
                             scope).subquery()
        query = query.where(Opportunity.id.in_(select(sub.c.opportunity_id)))
    if cursor:
        query = query.where(Opportunity.id > decode_cursor(cursor))
    rows = session.scalars(query.order_by(Opportunity.id).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return {"figure": figure, "items": [opportunity_row(o) for o in rows],
            "next_cursor": encode_cursor(rows[-1].id) if more else None}
