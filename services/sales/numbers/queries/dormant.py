"""Dormant customers: no follow-up in the last days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, literal, select
from sqlalchemy.orm import Session

from services.sales.models import Customer, Followup
from services.sales.numbers.queries.base import (
    customer_row,
    decode_cursor,
    encode_cursor,
    owner_clause,
    owner_ids,
)


def dormant_query(days: int, filters: dict[str, Any], scope: dict[str, Any], now: datetime):
    """Customers (not merged, older than the window) with no follow-up in the last `days`
    days: an anti-join on the (customer_id, occurred_at) index, with the last follow-up's
    time looked up for the rows of the page only."""
    cutoff = now - timedelta(days=days)
    recent = select(literal(1)).where(Followup.customer_id == Customer.id,
                                      Followup.occurred_at >= cutoff).exists()
    last_at = (select(func.max(Followup.occurred_at))
               .where(Followup.customer_id == Customer.id)
               .scalar_subquery().label("last_at"))
    clauses = [Customer.merged_into_id.is_(None),
               owner_clause(Customer.owner_id, owner_ids(filters, scope)),
               ~recent, Customer.created_at < cutoff]
    if filters.get("team_id"):
        clauses.append(Customer.team_id == filters["team_id"])
    if filters.get("custom"):
        clauses.extend(filters["custom"])
    return select(Customer, last_at).where(*clauses)


def dormant_customers(
    session: Session, days: int, filters: dict[str, Any], scope: dict[str, Any],
    cursor: str | None = None, limit: int = 50, now: datetime | None = None,
) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    query = dormant_query(days, filters, scope, now)
    total = session.scalar(
        select(func.count()).select_from(query.with_only_columns(Customer.id).subquery()))
    page = query.order_by(Customer.id)
    if cursor:
        page = page.where(Customer.id > decode_cursor(cursor))
    rows = session.execute(page.limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "days": days, "total": total,
        "items": [
            {**customer_row(c), "last_followup_at": last.isoformat() if last else None,
             "days_since_followup": (now - last).days if last else None}
            for c, last in rows
        ],
        "next_cursor": encode_cursor(rows[-1][0].id) if more else None,
    }
