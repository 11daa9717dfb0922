"""The funnel: per stage, open now, reached, conversion and time in stage; wins, losses,
loss reasons and the sales cycle of a period."""

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
    owner_ids,
    period_of,
    pipeline_stages,
    rollup_sums,
    seconds_between,
)
from services.sales.numbers.queries.stage_flow import flow_by_stage


def funnel(session: Session, filters: dict[str, Any], scope: dict[str, Any]) -> dict[str, Any]:
    """Per stage: open count and amount now, how many ever reached it, conversion to the next
    stage, average days in it; plus win rate, loss reasons and sales cycle of the period.

    Period: opportunities created in it (the cohort) for stages; closed in it for wins."""
    dialect = session.get_bind().dialect.name
    pipeline_id, stages = pipeline_stages(session, filters.get("pipeline_id"))
    filters = {**filters, "pipeline_id": pipeline_id}
    by_stage = {stage.id: stage for stage in stages}
    if filters.get("custom"):  # custom-field filters need the rows themselves
        current, won, lost, reasons = _funnel_rows(session, filters, scope, dialect)
    else:
        current, won, lost, reasons = _funnel_rollup(session, filters, scope, by_stage)
    flow = flow_by_stage(session, pipeline_id, owner_ids(filters, scope), filters)

    rows = []
    for stage in stages:
        now_row, flow_row = current.get(stage.id, {}), flow.get(stage.id)
        stays = int(flow_row["stays"]) if flow_row else 0
        rows.append({
            "stage_id": stage.id, "name": stage.name, "position": stage.position,
            "kind": stage.kind, "probability": stage.probability,
            "count": int(now_row.get("n", 0)),
            "amount": dec(now_row.get("amount", 0)),
            "reached": int(flow_row["reached"]) if flow_row else 0,
            "reached_amount": dec(flow_row["reached_amount"] if flow_row else 0),
            "avg_days_in_stage": (
                round(float(flow_row["seconds"]) / stays / 86400, 2) if stays else None
            ),
        })
    rows = figures.stage_conversion(rows)

    won_n, lost_n = int(won["n"]), int(lost["n"])
    return {
        "pipeline_id": pipeline_id,
        "period": period_of(filters),
        "stages": rows,
        "won": {"count": won_n, "amount": dec(won["amount"])},
        "lost": {"count": lost_n, "amount": dec(lost["amount"])},
        "win_rate": figures.win_rate(won_n, lost_n),
        "loss_reasons": reasons[:20],
        "sales_cycle_days": (
            round(float(won["seconds"]) / won_n / 86400, 1) if won_n else None
        ),
    }


def _funnel_rollup(
    session: Session, filters: dict[str, Any], scope: dict[str, Any], by_stage: dict
) -> tuple[dict, dict, dict, list]:
    first, last = filters.get("date_from"), filters.get("date_to")
    current = {key[0]: sums for key, sums in rollup_sums(
        session, "created", ["stage_id"], filters, scope, first, last).items()}
    won: dict[str, Decimal] = defaultdict(Decimal)
    lost: dict[str, Decimal] = defaultdict(Decimal)
    reasons: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for (stage_id, reason), sums in rollup_sums(
        session, "closed", ["stage_id", "key"], filters, scope, first, last
    ).items():
        stage = by_stage.get(stage_id)
        target = won if stage is not None and stage.kind == "won" else lost
        for name in ("n", "amount", "seconds"):
            target[name] += sums[name]
        if target is lost:
            reasons[reason]["n"] += sums["n"]
            reasons[reason]["amount"] += sums["amount"]
    listed = sorted(
        ({"reason": reason or None, "count": int(v["n"]), "amount": dec(v["amount"])}
         for reason, v in reasons.items() if v["n"]),
        key=lambda item: -item["count"])
    return current, won, lost, listed


def _funnel_rows(
    session: Session, filters: dict[str, Any], scope: dict[str, Any], dialect: str
) -> tuple[dict, dict, dict, list]:
    """The funnel's counts from the opportunities themselves (custom-field filters)."""
    current = {
        row.stage_id: {"n": row.n, "amount": Decimal(row.amount or 0)}
        for row in session.execute(
            select(Opportunity.stage_id, func.count().label("n"),
                   func.sum(Opportunity.amount).label("amount"))
            .where(*opportunity_clauses(filters, scope, dated=Opportunity.created_at))
            .group_by(Opportunity.stage_id)
        )
    }
    closed = opportunity_clauses(filters, scope, dated=Opportunity.closed_at)
    outcome: dict[str, dict[str, Decimal]] = {
        "won": defaultdict(Decimal), "lost": defaultdict(Decimal)}
    for row in session.execute(
        select(Opportunity.status, func.count().label("n"),
               func.sum(Opportunity.amount).label("amount"),
               func.sum(seconds_between(Opportunity.closed_at, Opportunity.created_at,
                                         dialect)).label("seconds"))
        .where(Opportunity.status.in_(("won", "lost")), *closed)
        .group_by(Opportunity.status)
    ):
        outcome[row.status].update(n=Decimal(row.n), amount=Decimal(row.amount or 0),
                                   seconds=Decimal(row.seconds or 0))
    reasons = session.execute(
        select(Opportunity.won_lost_reason.label("reason"),
               func.count().label("n"), func.sum(Opportunity.amount).label("amount"))
        .where(Opportunity.status == "lost", *closed)
        .group_by(Opportunity.won_lost_reason)
        .order_by(func.count().desc())
        .limit(20)
    ).all()
    listed = [{"reason": r.reason or None, "count": int(r.n), "amount": dec(r.amount)}
              for r in reasons]
    return current, outcome["won"], outcome["lost"], listed
