"""The stage-flow pre-aggregate: stage-to-stage conversion and time in stage come from
`stage_flow` / `stage_flow_month`, folded in from stage_history since a mark (only new moves
are read), instead of scanning the history of a million opportunities.
"""

from __future__ import annotations

import os
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, literal, select, text
from sqlalchemy.orm import Session

from services.sales.models import StageHistory
from services.sales.numbers.models import StageFlow, StageFlowMark, StageFlowMonth
from services.sales.numbers.queries.base import period_parts, tz
from shared import config

FLOW_MARK = "stage_flow"


def _flow_lag_seconds(dialect: str) -> float:
    """PostgreSQL may commit history ids out of order (concurrent moves); folding only rows a
    few seconds old keeps a late-committed smaller id from being skipped. SQLite has one
    writer, so no lag."""
    default = "5" if dialect == "postgresql" else "0"
    return float(os.environ.get("SALES_STAGE_FLOW_LAG_SECONDS", default))


def fold_stage_flow(session: Session, now: datetime | None = None) -> int:
    """Fold stage_history rows past the mark into stage_flow; returns how many were folded.
    Run in a write transaction; concurrent folds serialise on the mark row."""
    dialect = session.get_bind().dialect.name
    now = now or datetime.now(UTC)
    mark = session.get(StageFlowMark, FLOW_MARK, with_for_update=dialect == "postgresql")
    if mark is None:
        session.add(StageFlowMark(name=FLOW_MARK, last_id=0))
        session.flush()
        mark = session.get(StageFlowMark, FLOW_MARK, with_for_update=dialect == "postgresql")
    lag = _flow_lag_seconds(dialect)
    upto_query = select(func.max(StageHistory.id))
    if lag:
        upto_query = upto_query.where(StageHistory.entered_at <= now - timedelta(seconds=lag))
    upto = session.scalar(upto_query) or 0
    if upto <= mark.last_id:
        return 0
    if dialect == "postgresql":
        seconds = "EXTRACT(EPOCH FROM (d.entered_at - d.prev_entered))"
        cohort = "(o.created_at AT TIME ZONE :tz)::date"
        month = "date_trunc('month', o.created_at AT TIME ZONE :tz)::date"
        params: dict[str, Any] = {"tz": config.timezone_name()}
    else:
        seconds = "CAST(ROUND((julianday(d.entered_at) - julianday(d.prev_entered)) * 86400) " \
                  "AS INTEGER)"
        offset = datetime.now(tz()).utcoffset() or timedelta(0)
        cohort = "date(o.created_at, :offset)"
        month = "date(o.created_at, :offset, 'start of month')"
        params = {"offset": f"{int(offset.total_seconds() // 60):+d} minutes"}
    for table, grain in (("stage_flow", cohort), ("stage_flow_month", month)):
        session.execute(text(_fold_sql(table, grain, seconds)),
                        {"low": mark.last_id, "high": upto, **params})
    folded = upto - mark.last_id
    mark.last_id = upto
    return folded


def _fold_sql(table: str, cohort: str, seconds: str) -> str:
    return f"""
        WITH touched AS (
            SELECT DISTINCT opportunity_id FROM stage_history WHERE id > :low AND id <= :high
        ),
        seq AS (
            SELECT h.id, h.opportunity_id, h.stage_id, h.entered_at,
                   LAG(h.stage_id) OVER w AS prev_stage,
                   LAG(h.entered_at) OVER w AS prev_entered,
                   ROW_NUMBER() OVER (PARTITION BY h.opportunity_id, h.stage_id ORDER BY h.id)
                       AS nth
            FROM stage_history h JOIN touched t ON t.opportunity_id = h.opportunity_id
            WHERE h.id <= :high
            WINDOW w AS (PARTITION BY h.opportunity_id ORDER BY h.id)
        ),
        d AS (SELECT * FROM seq WHERE id > :low),
        moves AS (
            SELECT d.opportunity_id, d.stage_id, 1 AS reached, 0 AS stays, 0 AS secs
            FROM d WHERE d.nth = 1
            UNION ALL
            SELECT d.opportunity_id, d.prev_stage, 0, 1, {seconds}
            FROM d WHERE d.prev_stage IS NOT NULL
        )
        INSERT INTO {table} (pipeline_id, stage_id, owner_id, team_id, cohort_day,
                                reached, reached_amount, stays, stay_seconds)
        SELECT o.pipeline_id, m.stage_id, COALESCE(o.owner_id, ''), COALESCE(o.team_id, ''),
               {cohort}, SUM(m.reached),
               SUM(CASE WHEN m.reached = 1 THEN COALESCE(o.amount, 0) ELSE 0 END),
               SUM(m.stays), SUM(m.secs)
        FROM moves m JOIN opportunities o ON o.id = m.opportunity_id
        WHERE 1 = 1
        GROUP BY o.pipeline_id, m.stage_id, COALESCE(o.owner_id, ''), COALESCE(o.team_id, ''),
                 {cohort}
        ON CONFLICT (pipeline_id, stage_id, owner_id, team_id, cohort_day) DO UPDATE SET
            reached = {table}.reached + excluded.reached,
            reached_amount = {table}.reached_amount + excluded.reached_amount,
            stays = {table}.stays + excluded.stays,
            stay_seconds = {table}.stay_seconds + excluded.stay_seconds
    """


def flow_by_stage(
    session: Session, pipeline_id: str, owners: list[str] | None, filters: dict[str, Any]
) -> dict[str, dict[str, Decimal]]:
    """Stage-flow sums per stage for cohorts in the period: whole months from the monthly
    table, the partial months at the edges from the daily one."""
    totals: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for grain, low, high in period_parts(filters.get("date_from"), filters.get("date_to")):
        model = StageFlowMonth if grain == "m" else StageFlow
        query = select(
            model.stage_id, func.sum(model.reached).label("reached"),
            func.sum(model.reached_amount).label("reached_amount"),
            func.sum(model.stays).label("stays"), func.sum(model.stay_seconds).label("seconds"),
        ).where(model.pipeline_id == pipeline_id)
        if low is not None:
            query = query.where(model.cohort_day >= low)
        if high is not None:
            query = query.where(model.cohort_day < high)
        if owners is not None:
            query = query.where(model.owner_id.in_(owners) if owners else literal(False))
        if filters.get("team_id"):
            query = query.where(model.team_id == filters["team_id"])
        for row in session.execute(query.group_by(model.stage_id)):
            entry = totals[row.stage_id]
            for name in ("reached", "reached_amount", "stays", "seconds"):
                entry[name] += Decimal(getattr(row, name) or 0)
    return totals
