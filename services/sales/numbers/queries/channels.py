"""Conversion by channel: opportunities created in a period by source, won and lost."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.sales.models import Opportunity
from services.sales.numbers.domain import figures
from services.sales.numbers.queries.base import (
    dec,
    opportunity_clauses,
    period_of,
    rollup_sums,
    stage_kinds,
)


def channel_conversion(
    session: Session, filters: dict[str, Any], scope: dict[str, Any]
) -> dict[str, Any]:
    """Opportunities created in the period by source (lead channel): how many, how many won
    and lost, amounts, win rate (won / decided) and conversion (won / all)."""
    per_source: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    if filters.get("custom"):
        rows = session.execute(
            select(Opportunity.source, Opportunity.status, func.count().label("n"),
                   func.sum(Opportunity.amount).label("amount"))
            .where(*opportunity_clauses(filters, scope, dated=Opportunity.created_at))
            .group_by(Opportunity.source, Opportunity.status)
        ).all()
        sums = [(r.source or "", r.status, Decimal(r.n), Decimal(r.amount or 0)) for r in rows]
    else:
        stages = stage_kinds(session)
        sums = [
            (source, stages[stage_id].kind if stage_id in stages else "open", v["n"],
             v["amount"])
            for (source, stage_id), v in rollup_sums(
                session, "source", ["key", "stage_id"], filters, scope,
                filters.get("date_from"), filters.get("date_to")).items()
        ]
    for source, status, n, amount in sums:
        entry = per_source[source]
        entry["n"] += n
        entry[status] += n
        entry["amount"] += amount
        if status == "won":
            entry["won_amount"] += amount
    items = []
    for source, v in sorted(per_source.items(), key=lambda item: (-item[1]["n"], item[0])):
        n, won, lost = int(v["n"]), int(v["won"]), int(v["lost"])
        if not n:
            continue
        items.append({
            "source": source or None, "opportunities": n, "won": won, "lost": lost,
            "open": n - won - lost, "amount": dec(v["amount"]),
            "won_amount": dec(v["won_amount"]), "win_rate": figures.win_rate(won, lost),
            "conversion": figures.win_rate(won, n - won),
        })
    return {"period": period_of(filters), "items": items}
