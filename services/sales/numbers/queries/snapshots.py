"""Forecast snapshots (weekly, or on request), forecast accuracy against what was won, and
slippage: what a snapshot expected in a period that now closes later or was lost."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, func, insert, literal, or_, select
from sqlalchemy.orm import Session

from services.sales.models import Opportunity, Stage
from services.sales.numbers.domain import figures
from services.sales.numbers.models import (
    ForecastSnapshot,
    ForecastSnapshotItem,
    ForecastSnapshotRun,
)
from services.sales.numbers.queries.base import (
    bounded_periods,
    dec,
    decode_cursor,
    default_period,
    encode_cursor,
    owner_clause,
    owner_ids,
    pause,
    today,
    tz,
)
from services.sales.numbers.queries.forecast import forecast_rows, sum_figures
from shared.errors import ValidationFailed


def last_snapshot_at(session: Session) -> datetime | None:
    return session.scalar(select(func.max(ForecastSnapshotRun.taken_at)))


def take_snapshot(
    session: Session, now: datetime, trigger: str, actor: str | None = None
) -> dict[str, Any]:
    """Keep the forecast of this and the next quarter (per month and quarter, owner, team,
    pipeline) and the open opportunities behind it."""
    local = now.astimezone(tz()).date()
    first = figures.period_start("quarter", local)
    last = figures.period_end("quarter", figures.next_period_start("quarter", first))
    run = ForecastSnapshotRun(taken_at=now, week=figures.iso_week(local), trigger=trigger,
                              first_day=first, last_day=last, actor=actor)
    session.add(run)
    session.flush()
    entries = forecast_rows(session, {}, {"all": True}, first, last, by_pipeline=True)
    rows = []
    for kind in figures.PERIOD_KINDS:
        grouped: dict[tuple, list] = defaultdict(list)
        for entry in entries:
            key = (figures.period_start(kind, entry["month"]), entry["owner_id"],
                   entry["team_id"], entry["pipeline_id"])
            grouped[key].append(entry)
        for (start, owner, team, pipeline), items in grouped.items():
            totals = sum_figures(items)
            rows.append({
                "run_id": run.id, "period_kind": kind, "period_start": start,
                "owner_id": owner, "team_id": team, "pipeline_id": pipeline,
                "open_count": totals["open_count"], "weighted": Decimal(totals["weighted"]),
                "best_case": Decimal(totals["best_case"]), "commit": Decimal(totals["commit"]),
                "closed_won": Decimal(totals["closed_won"]),
            })
    if rows:
        session.execute(insert(ForecastSnapshot), rows)
    items = (
        select(literal(run.id), Opportunity.id, Opportunity.expected_close_date,
               Opportunity.amount, Stage.probability, Opportunity.stage_id,
               Opportunity.owner_id, Opportunity.team_id, Opportunity.pipeline_id)
        .join(Stage, Stage.id == Opportunity.stage_id)
        .where(Opportunity.status == "open", Opportunity.expected_close_date >= first,
               Opportunity.expected_close_date <= last)
    )
    session.execute(
        insert(ForecastSnapshotItem).from_select(
            ["run_id", "opportunity_id", "expected_close_date", "amount", "probability",
             "stage_id", "owner_id", "team_id", "pipeline_id"], items)
    )
    return {"id": run.id, "taken_at": now.isoformat(), "week": run.week, "trigger": trigger,
            "from": first.isoformat(), "to": last.isoformat(), "rows": len(rows),
            "opportunities": session.scalar(
                select(func.count()).where(ForecastSnapshotItem.run_id == run.id))}


def list_snapshots(
    session: Session, limit: int = 20, cursor: str | None = None
) -> dict[str, Any]:
    """One page of snapshots, newest first, in the shape of every list: items, next_cursor."""
    query = select(ForecastSnapshotRun).order_by(ForecastSnapshotRun.id.desc())
    if cursor:
        try:
            before = int(decode_cursor(cursor))
        except ValueError:
            raise ValidationFailed.for_fields(
                {"cursor": ["not a cursor this API returned"]}) from None
        query = query.where(ForecastSnapshotRun.id < before)
    runs = session.scalars(query.limit(limit + 1)).all()
    more = len(runs) > limit
    runs = runs[:limit]
    return {
        "items": [
            {"id": r.id, "taken_at": r.taken_at.isoformat(), "week": r.week,
             "trigger": r.trigger, "from": r.first_day.isoformat(),
             "to": r.last_day.isoformat()}
            for r in runs
        ],
        "next_cursor": encode_cursor(str(runs[-1].id)) if more else None,
    }


def _snapshot_clauses(model: Any, filters: dict[str, Any], scope: dict[str, Any]) -> list[Any]:
    clauses = [owner_clause(model.owner_id, owner_ids(filters, scope))]
    if filters.get("team_id"):
        clauses.append(model.team_id == filters["team_id"])
    if filters.get("pipeline_id"):
        clauses.append(model.pipeline_id == filters["pipeline_id"])
    return clauses


def forecast_accuracy(
    session: Session, filters: dict[str, Any], scope: dict[str, Any]
) -> dict[str, Any]:
    """For each period of `period_kind` in the range (default: this quarter and the two
    before): the forecast at every snapshot against what was actually won, and what slipped
    (opportunities the snapshot expected in the period that now close later or were lost)."""
    kind = filters.get("period_kind") or "quarter"
    if filters.get("date_from"):
        first, last = default_period(filters, kind)
    else:
        current = figures.period_start(kind, today())
        first = current
        for _ in range(2):
            first = figures.period_start(kind, first - timedelta(days=1))
        last = figures.period_end(kind, current)
    periods = []
    for start in bounded_periods("forecast_accuracy", kind, first, last):
        pause(session)  # several queries a period: the others' turn in between
        end = figures.period_end(kind, start)
        actual = sum_figures(forecast_rows(session, filters, scope, start, end))
        actual_won = Decimal(actual["closed_won"])
        snapshots = session.execute(
            select(ForecastSnapshotRun.id, ForecastSnapshotRun.taken_at, ForecastSnapshotRun.week,
                   func.sum(ForecastSnapshot.weighted).label("weighted"),
                   func.sum(ForecastSnapshot.commit).label("commit"),
                   func.sum(ForecastSnapshot.best_case).label("best_case"))
            .join(ForecastSnapshot, ForecastSnapshot.run_id == ForecastSnapshotRun.id)
            .where(ForecastSnapshot.period_kind == kind, ForecastSnapshot.period_start == start,
                   *_snapshot_clauses(ForecastSnapshot, filters, scope))
            .group_by(ForecastSnapshotRun.id, ForecastSnapshotRun.taken_at,
                      ForecastSnapshotRun.week)
            .order_by(ForecastSnapshotRun.taken_at)
        ).all()
        entries = []
        slips = slippage_by_run(session, [snap.id for snap in snapshots], start, end, filters,
                                scope)
        for snap in snapshots:
            slipped = slips.get(snap.id) or {"count": 0, "amount": dec(0), "lost": 0,
                                            "moved_out": 0}
            entries.append({
                "run_id": snap.id, "taken_at": snap.taken_at.isoformat(), "week": snap.week,
                "weighted": dec(snap.weighted), "commit": dec(snap.commit),
                "best_case": dec(snap.best_case),
                "accuracy": figures.accuracy(Decimal(snap.weighted or 0), actual_won),
                "commit_accuracy": figures.accuracy(Decimal(snap.commit or 0), actual_won),
                "slipped": slipped,
            })
        periods.append({
            "period": figures.period_label(kind, start), "start": start.isoformat(),
            "end": end.isoformat(), "closed": end < today(), "actual_won": dec(actual_won),
            "current_forecast": actual["weighted"], "snapshots": entries,
        })
    return {"period_kind": kind, "periods": periods}


def slipped_query(
    run_ids: int | list[int], start: date, end: date, filters: dict, scope: dict
) -> Any:
    runs = run_ids if isinstance(run_ids, list) else [run_ids]
    return (
        select(ForecastSnapshotItem, Opportunity.expected_close_date.label("now_close"),
               Opportunity.status.label("now_status"))
        .join(Opportunity, Opportunity.id == ForecastSnapshotItem.opportunity_id)
        .where(ForecastSnapshotItem.run_id.in_(runs),
               ForecastSnapshotItem.expected_close_date >= start,
               ForecastSnapshotItem.expected_close_date <= end,
               or_(Opportunity.status == "lost",
                   and_(Opportunity.status == "open",
                        or_(Opportunity.expected_close_date > end,
                            Opportunity.expected_close_date.is_(None)))),
               *_snapshot_clauses(ForecastSnapshotItem, filters, scope))
    )


def slippage_by_run(
    session: Session, run_ids: list[int], start: date, end: date, filters: dict, scope: dict
) -> dict[int, dict[str, Any]]:
    """What each snapshot expected to close in [start, end] that now closes later or was
    lost: one grouped query for every snapshot of the period."""
    if not run_ids:
        return {}
    sub = slipped_query(run_ids, start, end, filters, scope).subquery()
    rows = session.execute(
        select(sub.c.run_id, func.count().label("n"), func.sum(sub.c.amount).label("amount"),
               func.sum(case((sub.c.now_status == "lost", 1), else_=0)).label("lost"))
        .group_by(sub.c.run_id)
    ).all()
    return {
        row.run_id: {"count": int(row.n), "amount": dec(row.amount),
                     "lost": int(row.lost or 0), "moved_out": int(row.n) - int(row.lost or 0)}
        for row in rows
    }
