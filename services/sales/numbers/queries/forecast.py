"""The weighted forecast by period, owner and team: from the opportunity roll-up, or from
the rows when custom-field filters apply."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, case, func, select
from sqlalchemy.orm import Session

from services.sales.models import Opportunity, Stage
from services.sales.numbers.domain import figures
from services.sales.numbers.queries.base import (
    as_date,
    bounded_periods,
    dec,
    default_period,
    local_start,
    opportunity_clauses,
    rollup_sums,
    stage_kinds,
    tz,
)
from shared import config


def _month_of_date(column: Any, dialect: str) -> Any:
    if dialect == "postgresql":
        return func.date_trunc("month", column).cast(_date_type())
    return func.strftime("%Y-%m-01", column)


def _month_of_timestamp(column: Any, dialect: str) -> Any:
    if dialect == "postgresql":
        return func.date_trunc("month", func.timezone(config.timezone_name(), column)).cast(
            _date_type()
        )
    offset = datetime.now(tz()).utcoffset() or timedelta(0)
    return func.strftime("%Y-%m-01", column, f"{int(offset.total_seconds() // 60):+d} minutes")


def _date_type() -> Any:

    return Date()


def forecast_rows(
    session: Session, filters: dict[str, Any], scope: dict[str, Any], first: date, last: date,
    *, by_pipeline: bool = False,
) -> list[dict[str, Any]]:
    """Monthly forecast figures per owner and team (and pipeline): open opportunities expected
    to close in [first, last] weighted by stage probability, and those won in it."""
    if not filters.get("custom"):
        return _forecast_rollup(session, filters, scope, first, last, by_pipeline)
    dialect = session.get_bind().dialect.name
    owner_filter = opportunity_clauses(filters, scope)
    month = _month_of_date(Opportunity.expected_close_date, dialect).label("month")
    weighted = func.sum(Opportunity.amount * Stage.probability / 100)
    dims = [Opportunity.owner_id, Opportunity.team_id]
    if by_pipeline:
        dims.append(Opportunity.pipeline_id)
    open_query = (
        select(month, *dims, func.count().label("n"), weighted.label("weighted"),
               func.sum(Opportunity.amount).label("best"),
               func.sum(case((Stage.probability >= figures.COMMIT_PROBABILITY,
                              Opportunity.amount), else_=0)).label("commit"))
        .join(Stage, Stage.id == Opportunity.stage_id)
        .where(Opportunity.status == "open",
               Opportunity.expected_close_date >= first,
               Opportunity.expected_close_date <= last, *owner_filter)
        .group_by(month, *dims)
    )
    won_month = _month_of_timestamp(Opportunity.closed_at, dialect).label("month")
    won_query = (
        select(won_month, *dims, func.count().label("n"),
               func.sum(Opportunity.amount).label("won"))
        .where(Opportunity.status == "won",
               Opportunity.closed_at >= local_start(first),
               Opportunity.closed_at < local_start(last + timedelta(days=1)), *owner_filter)
        .group_by(won_month, *dims)
    )
    cells: dict[tuple, dict[str, Any]] = {}

    def cell(row: Any) -> dict[str, Any]:
        key = (as_date(row.month), row.owner_id, row.team_id,
               row.pipeline_id if by_pipeline else None)
        if key not in cells:
            cells[key] = {"month": key[0], "owner_id": key[1], "team_id": key[2],
                          "pipeline_id": key[3], "open_count": 0, "won_count": 0,
                          "weighted_open": Decimal(0), "best_open": Decimal(0),
                          "commit_open": Decimal(0), "closed_won": Decimal(0)}
        return cells[key]

    for row in session.execute(open_query):
        entry = cell(row)
        entry["open_count"] += row.n
        entry["weighted_open"] += Decimal(row.weighted or 0)
        entry["best_open"] += Decimal(row.best or 0)
        entry["commit_open"] += Decimal(row.commit or 0)
    for row in session.execute(won_query):
        entry = cell(row)
        entry["won_count"] += row.n
        entry["closed_won"] += Decimal(row.won or 0)
    return list(cells.values())


def _forecast_rollup(
    session: Session, filters: dict[str, Any], scope: dict[str, Any], first: date, last: date,
    by_pipeline: bool,
) -> list[dict[str, Any]]:
    stages = stage_kinds(session)
    won_stages = [s.id for s in stages.values() if s.kind == "won"]
    group = ["day", "stage_id", "owner_id", "team_id", "pipeline_id"]
    cells: dict[tuple, dict[str, Any]] = {}

    def cell(day: date, owner: str, team: str, pipeline: str) -> dict[str, Any]:
        key = (figures.period_start("month", day), owner or None, team or None,
               pipeline if by_pipeline else None)
        if key not in cells:
            cells[key] = {"month": key[0], "owner_id": key[1], "team_id": key[2],
                          "pipeline_id": key[3], "open_count": 0, "won_count": 0,
                          "weighted_open": Decimal(0), "best_open": Decimal(0),
                          "commit_open": Decimal(0), "closed_won": Decimal(0)}
        return cells[key]

    for (day, stage_id, owner, team, pipeline), sums in rollup_sums(
        session, "close", group, filters, scope, first, last
    ).items():
        if not sums["n"]:
            continue
        probability = stages[stage_id].probability if stage_id in stages else 0
        entry = cell(day, owner, team, pipeline)
        entry["open_count"] += int(sums["n"])
        entry["weighted_open"] += sums["amount"] * probability / 100
        entry["best_open"] += sums["amount"]
        if probability >= figures.COMMIT_PROBABILITY:
            entry["commit_open"] += sums["amount"]
    for (day, _stage, owner, team, pipeline), sums in rollup_sums(
        session, "closed", group, filters, scope, first, last, stage_ids=won_stages
    ).items():
        if not sums["n"]:
            continue
        entry = cell(day, owner, team, pipeline)
        entry["won_count"] += int(sums["n"])
        entry["closed_won"] += sums["amount"]
    return list(cells.values())


def sum_figures(entries: Iterable[dict[str, Any]]) -> dict[str, Any]:
    total = defaultdict(Decimal)
    counts = defaultdict(int)
    for entry in entries:
        for name in ("weighted_open", "best_open", "commit_open", "closed_won"):
            total[name] += entry[name]
        counts["open_count"] += entry["open_count"]
        counts["won_count"] += entry["won_count"]
    won = total["closed_won"]
    return {
        "weighted": dec(total["weighted_open"] + won),
        "weighted_open": dec(total["weighted_open"]),
        "commit": dec(total["commit_open"] + won),
        "best_case": dec(total["best_open"] + won),
        "closed_won": dec(won),
        "open_count": counts["open_count"],
        "won_count": counts["won_count"],
    }


def forecast(session: Session, filters: dict[str, Any], scope: dict[str, Any]) -> dict[str, Any]:
    """Weighted forecast by period, owner and team (default: the current quarter)."""
    kind = filters.get("period_kind") or "month"
    first, last = default_period(filters)
    starts = bounded_periods("forecast", kind, first, last)
    entries = forecast_rows(session, filters, scope, first, last)
    by_period: dict[date, list] = defaultdict(list)
    by_owner: dict[Any, list] = defaultdict(list)
    by_team: dict[Any, list] = defaultdict(list)
    for entry in entries:
        by_period[figures.period_start(kind, entry["month"])].append(entry)
        by_owner[entry["owner_id"]].append(entry)
        by_team[entry["team_id"]].append(entry)
    return {
        "period_kind": kind,
        "from": first.isoformat(), "to": last.isoformat(),
        "commit_probability": figures.COMMIT_PROBABILITY,
        "totals": sum_figures(entries),
        "by_period": [
            {"period": figures.period_label(kind, start), "start": start.isoformat(),
             **sum_figures(by_period[start])}
            for start in starts
        ],
        "by_owner": sorted(
            ({"owner_id": owner, **sum_figures(items)} for owner, items in by_owner.items()),
            key=lambda item: Decimal(item["weighted"]), reverse=True,
        ),
        "by_team": sorted(
            ({"team_id": team, **sum_figures(items)} for team, items in by_team.items()),
            key=lambda item: Decimal(item["weighted"]), reverse=True,
        ),
    }
