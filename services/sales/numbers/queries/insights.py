"""Customer insights: health score and RFM segment of one customer, each explained."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.sales.models import Followup, Opportunity
from services.sales.numbers.domain import figures
from services.sales.numbers.queries.base import tz


def customer_insights(
    session: Session, customer_id: str, now: datetime | None = None
) -> dict[str, Any]:
    """Health score and RFM segment of one customer, each explained."""
    now = now or datetime.now(UTC)
    local_today = now.astimezone(tz()).date()
    window = now - timedelta(days=figures.RFM_WINDOW_DAYS)
    won = session.execute(
        select(func.count(), func.sum(Opportunity.amount), func.max(Opportunity.closed_at))
        .where(Opportunity.customer_id == customer_id, Opportunity.status == "won",
               Opportunity.closed_at >= window)
    ).one()
    rfm = figures.rfm(
        won[2].astimezone(tz()).date() if won[2] else None, int(won[0] or 0),
        Decimal(won[1] or 0), local_today,
    )
    year_ago = now - timedelta(days=365)
    decided = dict(session.execute(
        select(Opportunity.status, func.count())
        .where(Opportunity.customer_id == customer_id, Opportunity.status.in_(("won", "lost")),
               Opportunity.closed_at >= year_ago)
        .group_by(Opportunity.status)
    ).all())
    open_row = session.execute(
        select(func.count(), func.sum(Opportunity.amount))
        .where(Opportunity.customer_id == customer_id, Opportunity.status == "open")
    ).one()
    last_followup = session.scalar(
        select(func.max(Followup.occurred_at)).where(Followup.customer_id == customer_id)
    )
    recent = session.scalar(
        select(func.count()).select_from(Followup)
        .where(Followup.customer_id == customer_id,
               Followup.occurred_at >= now - timedelta(days=90))
    )
    # a planned next follow-up that is past and not followed by any later follow-up
    overdue = 0
    if last_followup is not None:
        planned = session.scalar(
            select(Followup.next_followup_at)
            .where(Followup.customer_id == customer_id)
            .order_by(Followup.occurred_at.desc()).limit(1)
        )
        overdue = 1 if planned is not None and planned < now else 0
    health = figures.health(figures.HealthInputs(
        days_since_followup=(now - last_followup).days if last_followup else None,
        followups_90d=int(recent or 0),
        open_opportunities=int(open_row[0] or 0),
        open_pipeline=Decimal(open_row[1] or 0),
        won_365d=int(decided.get("won", 0)),
        lost_365d=int(decided.get("lost", 0)),
        overdue_followups=overdue,
    ))
    return {"customer_id": customer_id, "health": health, "rfm": rfm,
            "computed_at": now.isoformat()}
