"""The sales numbers in SQL: funnel, forecast, snapshots, accuracy and slippage, quota
performance, channel conversion, dormant customers, drill-down and customer insights.

Every function takes a Session and plain filters:
  owner_ids (list or None), team_id, pipeline_id, date_from / date_to (local dates,
  inclusive), period_kind (month / quarter), and the caller's scope
  ({"all": True} | {"owner_ids": [...]}) which always narrows owner_ids.
Dates are local to CRM_TIMEZONE; timestamps are stored in UTC.

Speed over a million opportunities: plain GROUP BYs over opportunities on indexed columns;
stage-to-stage conversion and time in stage come from `stage_flow`, a pre-aggregate folded in
from stage_history since a mark (only new moves are read), instead of scanning the history.
"""

from __future__ import annotations

import base64
import json
import os
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import eventlet
from sqlalchemy import (
    and_,
    case,
    cast,
    func,
    insert,
    literal,
    or_,
    select,
    text,
)
from sqlalchemy.orm import Session

from services.sales.domain import custom_fields as cf
from services.sales.domain import numbers
from services.sales.models import Customer, Followup, Opportunity, Pipeline, Stage, StageHistory
from services.sales.models_numbers import (
    ForecastSnapshot,
    ForecastSnapshotItem,
    ForecastSnapshotRun,
    OpportunityRollup,
    Quota,
    StageFlow,
    StageFlowMark,
    StageFlowMonth,
    custom_value_expr,
)
from shared import config
from shared.db import limit_statements
from shared.errors import NotFound, ValidationFailed

FIGURES = ("funnel", "won", "lost", "forecast", "channel", "slippage", "dormant", "quota",
           "cycle")


STATEMENT_LIMIT = "crm_statement_limit"  # session.info: the report's statement timeout


def pause(session: Session) -> None:
    """A cooperative yield between the queries of a long report (eventlet: a greenlet that
    never yields keeps every other RPC of the process waiting). The read transaction ends
    first, so its connection (on SQLite the process's only one) serves the others in between;
    the next statement takes one again, with the report's statement timeout."""
    session.rollback()  # a read: nothing to keep
    eventlet.sleep(0)
    limit = session.info.get(STATEMENT_LIMIT)
    if limit is not None:
        limit_statements(session, limit)


def tz() -> ZoneInfo:
    return ZoneInfo(config.timezone_name())


def today() -> date:
    return datetime.now(tz()).date()


def local_start(day: date) -> datetime:
    """The UTC instant a local day starts."""
    return datetime.combine(day, time.min, tz()).astimezone(UTC)


def dec(value: Any) -> str:
    return str(numbers.money(value))


# -- filters -------------------------------------------------------------------------------


def owner_ids(filters: dict[str, Any], scope: dict[str, Any]) -> list[str] | None:
    """The owners a figure may count: the filter's, narrowed by the scope (None: anyone)."""
    wanted = filters.get("owner_ids")
    if scope.get("all"):
        return list(wanted) if wanted is not None else None
    allowed = list(scope.get("owner_ids") or [])
    return [o for o in wanted if o in allowed] if wanted is not None else allowed


def _owner_clause(column: Any, owners: list[str] | None) -> Any:
    if owners is None:
        return literal(True)
    return column.in_(owners) if owners else literal(False)


def opportunity_clauses(
    filters: dict[str, Any], scope: dict[str, Any], *, dated: Any = None
) -> list[Any]:
    """WHERE clauses on opportunities; `dated` is the timestamp column the period bounds."""
    clauses = [_owner_clause(Opportunity.owner_id, owner_ids(filters, scope))]
    if filters.get("team_id"):
        clauses.append(Opportunity.team_id == filters["team_id"])
    if filters.get("pipeline_id"):
        clauses.append(Opportunity.pipeline_id == filters["pipeline_id"])
    if dated is not None:
        if filters.get("date_from"):
            clauses.append(dated >= local_start(filters["date_from"]))
        if filters.get("date_to"):
            clauses.append(dated < local_start(filters["date_to"] + timedelta(days=1)))
    custom = filters.get("custom")
    if custom:
        clauses.extend(custom)
    return clauses


def custom_filter_clause(
    model: Any, definitions: list[dict[str, Any]], filters: dict[str, Any], dialect: str
) -> list[Any]:
    """WHERE clauses for custom-field filters on `model` (Customer, Contact, Opportunity):
    `filters` is {"<key>": value} or {"<key>__<op>": value}, op in eq, ne, gte, lte, in,
    contains (multi-choice: holds the option), exists. Raises ValidationFailed naming
    `custom.<key>`."""
    clauses = []
    for definition, op, value in cf.parse_filters(definitions, filters):
        key, type_ = definition["key"], definition["type"]
        if op == "exists":
            expr = custom_value_expr(model, key, "text" if type_ == "multi_choice" else type_,
                                     dialect)
            clauses.append(expr.is_not(None) if value else expr.is_(None))
            continue
        if type_ == "multi_choice" or op == "contains":
            if type_ == "multi_choice":
                clauses.append(_json_array_contains(model, key, value, dialect))
            else:
                expr = custom_value_expr(model, key, "text", dialect)
                clauses.append(expr.contains(str(value)))
            continue
        expr = custom_value_expr(model, key, type_, dialect)
        typed = _typed(type_, value, dialect)
        if type_ == "boolean" and op in ("eq", "ne"):
            clause = _json_bool(model, key, dialect)
            clauses.append(clause if value == (op == "eq") else ~clause)
            continue
        if op == "eq":
            clauses.append(expr == typed)
        elif op == "ne":
            clauses.append(or_(expr != typed, expr.is_(None)))
        elif op == "gte":
            clauses.append(expr >= typed)
        elif op == "lte":
            clauses.append(expr <= typed)
        elif op == "in":
            clauses.append(expr.in_([_typed(type_, v, dialect) for v in value]))
    return clauses


def _typed(type_: str, value: Any, dialect: str) -> Any:
    if type_ == "decimal":
        return Decimal(value) if dialect == "postgresql" else float(value)
    return value


def _json_bool(model: Any, key: str, dialect: str) -> Any:
    if dialect == "postgresql":
        return model.custom.op("->>")(key) == "true"
    # SQLite's json_extract gives 1 / 0 for true / false
    return func.json_extract(model.custom, f'$."{key}"') == 1


def _json_array_contains(model: Any, key: str, option: str, dialect: str) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import JSONB

        # the column is json (not jsonb): containment needs the cast
        return cast(model.custom, JSONB).op("->")(key).op("@>")(func.jsonb_build_array(option))
    each = func.json_each(model.custom, f'$."{key}"').table_valued("value")
    return select(literal(1)).select_from(each).where(each.c.value == option).exists()


# -- stage flow pre-aggregate ----------------------------------------------------------------

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


# -- funnel --------------------------------------------------------------------------------


def period_parts(first: date | None, last: date | None) -> list[tuple[str, Any, Any]]:
    """How to read a period [first, last] from a two-grain aggregate: [(grain, from,
    to-exclusive)], whole months at grain 'm' and the partial edge months by day ('d');
    None is an open end."""
    month_from = month_to = None
    if first:
        month_from = numbers.period_start("month", first)
        if month_from != first:
            month_from = numbers.next_period_start("month", month_from)
    if last:
        month_to = numbers.period_start("month", last)
        if numbers.period_end("month", month_to) == last:
            month_to = numbers.next_period_start("month", month_to)
    if first and last and month_from >= month_to:  # no whole month inside
        return [("d", first, last + timedelta(days=1))]
    parts: list[tuple[str, Any, Any]] = [("m", month_from, month_to)]
    if first and first < month_from:
        parts.append(("d", first, month_from))
    if last and last >= month_to:
        parts.append(("d", month_to, last + timedelta(days=1)))
    return parts


def _flow_by_stage(
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


def rollup_sums(
    session: Session, kind: str, group: list[str], filters: dict[str, Any],
    scope: dict[str, Any], first: date | None, last: date | None,
    stage_ids: Iterable[str] | None = None,
) -> dict[tuple, dict[str, Decimal]]:
    """n, amount, seconds of the opportunity roll-up (rollups.py) of `kind` over the period,
    grouped by roll-up columns (`day` at month grain is the month's first day)."""
    model = OpportunityRollup
    owners = owner_ids(filters, scope)
    totals: dict[tuple, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for grain, low, high in period_parts(first, last):
        columns = [getattr(model, name) for name in group]
        query = select(*columns, func.sum(model.n).label("n"),
                       func.sum(model.amount).label("amount"),
                       func.sum(model.seconds).label("seconds")).where(
            model.kind == kind, model.grain == grain)
        if low is not None:
            query = query.where(model.day >= low)
        if high is not None:
            query = query.where(model.day < high)
        if filters.get("pipeline_id"):
            query = query.where(model.pipeline_id == filters["pipeline_id"])
        if owners is not None:
            query = query.where(model.owner_id.in_(owners) if owners else literal(False))
        if filters.get("team_id"):
            query = query.where(model.team_id == filters["team_id"])
        if stage_ids is not None:
            query = query.where(model.stage_id.in_(list(stage_ids)))
        for row in session.execute(query.group_by(*columns) if columns else query):
            key = tuple(_as_date(v) if name == "day" else v
                        for name, v in zip(group, row[:len(group)], strict=True))
            entry = totals[key]
            for name in ("n", "amount", "seconds"):
                entry[name] += Decimal(getattr(row, name) or 0)
    return totals


def stage_kinds(session: Session) -> dict[str, Stage]:
    return {stage.id: stage for stage in session.scalars(select(Stage))}


def pipeline_stages(session: Session, pipeline_id: str | None) -> tuple[str, list[Stage]]:
    if pipeline_id is None:
        pipeline_id = session.scalar(
            select(Pipeline.id).order_by(Pipeline.is_default.desc(), Pipeline.created_at)
            .limit(1)
        )
        if pipeline_id is None:
            raise NotFound("no pipeline exists yet", {"field": "pipeline_id"})
    stages = session.scalars(
        select(Stage).where(Stage.pipeline_id == pipeline_id).order_by(Stage.position)
    ).all()
    if not stages:
        raise NotFound(f"pipeline {pipeline_id} not found", {"field": "pipeline_id"})
    return pipeline_id, list(stages)


def _seconds_between(later: Any, earlier: Any, dialect: str) -> Any:
    if dialect == "postgresql":
        return func.extract("epoch", later - earlier)
    return (func.julianday(later) - func.julianday(earlier)) * 86400


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
    flow = _flow_by_stage(session, pipeline_id, owner_ids(filters, scope), filters)

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
    rows = numbers.stage_conversion(rows)

    won_n, lost_n = int(won["n"]), int(lost["n"])
    return {
        "pipeline_id": pipeline_id,
        "period": _period_of(filters),
        "stages": rows,
        "won": {"count": won_n, "amount": dec(won["amount"])},
        "lost": {"count": lost_n, "amount": dec(lost["amount"])},
        "win_rate": numbers.win_rate(won_n, lost_n),
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
               func.sum(_seconds_between(Opportunity.closed_at, Opportunity.created_at,
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


def _period_of(filters: dict[str, Any]) -> dict[str, Any]:
    return {
        "from": filters["date_from"].isoformat() if filters.get("date_from") else None,
        "to": filters["date_to"].isoformat() if filters.get("date_to") else None,
    }


# -- forecast ------------------------------------------------------------------------------


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
    from sqlalchemy import Date

    return Date()


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def default_period(filters: dict[str, Any], kind: str = "quarter") -> tuple[date, date]:
    start = filters.get("date_from") or numbers.period_start(kind, today())
    end = filters.get("date_to") or numbers.period_end(kind, numbers.period_start(kind, start))
    if end < start:
        raise ValidationFailed.for_fields({"date_to": ["must not be before date_from"]})
    return start, end


def bounded_periods(report: str, kind: str, first: date, last: date) -> list[date]:
    """The report's period starts, or a 422 naming the filter and the limit."""
    try:
        return numbers.check_periods(report, kind, first, last)
    except numbers.RangeError as exc:
        raise ValidationFailed.for_fields({exc.field: [str(exc)]}) from None


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
               func.sum(case((Stage.probability >= numbers.COMMIT_PROBABILITY,
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
        key = (_as_date(row.month), row.owner_id, row.team_id,
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
        key = (numbers.period_start("month", day), owner or None, team or None,
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
        if probability >= numbers.COMMIT_PROBABILITY:
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


def _figures(entries: Iterable[dict[str, Any]]) -> dict[str, Any]:
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
        by_period[numbers.period_start(kind, entry["month"])].append(entry)
        by_owner[entry["owner_id"]].append(entry)
        by_team[entry["team_id"]].append(entry)
    return {
        "period_kind": kind,
        "from": first.isoformat(), "to": last.isoformat(),
        "commit_probability": numbers.COMMIT_PROBABILITY,
        "totals": _figures(entries),
        "by_period": [
            {"period": numbers.period_label(kind, start), "start": start.isoformat(),
             **_figures(by_period[start])}
            for start in starts
        ],
        "by_owner": sorted(
            ({"owner_id": owner, **_figures(items)} for owner, items in by_owner.items()),
            key=lambda item: Decimal(item["weighted"]), reverse=True,
        ),
        "by_team": sorted(
            ({"team_id": team, **_figures(items)} for team, items in by_team.items()),
            key=lambda item: Decimal(item["weighted"]), reverse=True,
        ),
    }


# -- snapshots, accuracy, slippage -------------------------------------------------------------


def last_snapshot_at(session: Session) -> datetime | None:
    return session.scalar(select(func.max(ForecastSnapshotRun.taken_at)))


def take_snapshot(
    session: Session, now: datetime, trigger: str, actor: str | None = None
) -> dict[str, Any]:
    """Keep the forecast of this and the next quarter (per month and quarter, owner, team,
    pipeline) and the open opportunities behind it."""
    local = now.astimezone(tz()).date()
    first = numbers.period_start("quarter", local)
    last = numbers.period_end("quarter", numbers.next_period_start("quarter", first))
    run = ForecastSnapshotRun(taken_at=now, week=numbers.iso_week(local), trigger=trigger,
                              first_day=first, last_day=last, actor=actor)
    session.add(run)
    session.flush()
    entries = forecast_rows(session, {}, {"all": True}, first, last, by_pipeline=True)
    rows = []
    for kind in numbers.PERIOD_KINDS:
        grouped: dict[tuple, list] = defaultdict(list)
        for entry in entries:
            key = (numbers.period_start(kind, entry["month"]), entry["owner_id"],
                   entry["team_id"], entry["pipeline_id"])
            grouped[key].append(entry)
        for (start, owner, team, pipeline), items in grouped.items():
            figures = _figures(items)
            rows.append({
                "run_id": run.id, "period_kind": kind, "period_start": start,
                "owner_id": owner, "team_id": team, "pipeline_id": pipeline,
                "open_count": figures["open_count"], "weighted": Decimal(figures["weighted"]),
                "best_case": Decimal(figures["best_case"]), "commit": Decimal(figures["commit"]),
                "closed_won": Decimal(figures["closed_won"]),
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
    clauses = [_owner_clause(model.owner_id, owner_ids(filters, scope))]
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
        current = numbers.period_start(kind, today())
        first = current
        for _ in range(2):
            first = numbers.period_start(kind, first - timedelta(days=1))
        last = numbers.period_end(kind, current)
    periods = []
    for start in bounded_periods("forecast_accuracy", kind, first, last):
        pause(session)  # several queries a period: the others' turn in between
        end = numbers.period_end(kind, start)
        actual = _figures(forecast_rows(session, filters, scope, start, end))
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
                "accuracy": numbers.accuracy(Decimal(snap.weighted or 0), actual_won),
                "commit_accuracy": numbers.accuracy(Decimal(snap.commit or 0), actual_won),
                "slipped": slipped,
            })
        periods.append({
            "period": numbers.period_label(kind, start), "start": start.isoformat(),
            "end": end.isoformat(), "closed": end < today(), "actual_won": dec(actual_won),
            "current_forecast": actual["weighted"], "snapshots": entries,
        })
    return {"period_kind": kind, "periods": periods}


def _slipped_query(
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
    sub = _slipped_query(run_ids, start, end, filters, scope).subquery()
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


# -- quotas --------------------------------------------------------------------------------


def quota_performance(
    session: Session, filters: dict[str, Any], scope: dict[str, Any],
    team_members: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """Quotas of users and teams in the periods of the range against what they won (and the
    weighted forecast still open). A team's achievement is its opportunities' team_id."""
    kind = filters.get("period_kind") or "month"
    first, last = default_period(filters, "quarter" if kind == "quarter" else "month")
    starts = bounded_periods("quota_performance", kind, first, last)
    owners = owner_ids(filters, scope)
    query = select(Quota).where(Quota.period_kind == kind, Quota.period_start.in_(starts))
    user_clause = Quota.subject_kind == "user"
    if owners is not None:
        user_clause = and_(user_clause, Quota.subject_id.in_(owners) if owners else literal(False))
    team_clause = Quota.subject_kind == "team"
    if filters.get("team_id"):
        team_clause = and_(team_clause, Quota.subject_id == filters["team_id"])
    if not scope.get("all") and not filters.get("team_id"):
        team_clause = literal(False)  # a team's total is for managers of it and admins
    query = query.where(or_(user_clause, team_clause))
    quotas = session.scalars(query.order_by(Quota.period_start, Quota.subject_kind)).all()
    base = {k: v for k, v in filters.items() if k not in ("owner_ids", "team_id")}
    entries = forecast_rows(session, base, {"all": True},
                            starts[0], numbers.period_end(kind, starts[-1])) if starts else []
    won: dict[tuple, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    team_of: dict[str, list[str]] = defaultdict(list)
    for team_id, members in (team_members or {}).items():
        for member in members:
            team_of[member].append(team_id)
    for entry in entries:
        start = numbers.period_start(kind, entry["month"])
        teams = team_of.get(entry["owner_id"], []) if team_members is not None else (
            [entry["team_id"]] if entry["team_id"] else [])
        subjects = [("user", entry["owner_id"])] + [("team", team) for team in teams]
        for subject in subjects:
            bucket = won[(subject, start)]
            bucket["won"] += entry["closed_won"]
            bucket["weighted_open"] += entry["weighted_open"]
    rows = []
    for quota in quotas:
        bucket = won.get(((quota.subject_kind, quota.subject_id), quota.period_start), {})
        achieved = bucket.get("won", Decimal(0))
        rows.append({
            "quota_id": quota.id, "subject_kind": quota.subject_kind,
            "subject_id": quota.subject_id, "period_kind": kind,
            "period": numbers.period_label(kind, quota.period_start),
            "period_start": quota.period_start.isoformat(), "quota": dec(quota.amount),
            "currency": quota.currency, "won": dec(achieved),
            "attainment_percent": numbers.attainment(achieved, quota.amount),
            "gap": dec(max(Decimal(quota.amount) - achieved, Decimal(0))),
            "weighted_open": dec(bucket.get("weighted_open", 0)),
        })
    return {"period_kind": kind, "from": first.isoformat(), "to": last.isoformat(),
            "items": rows}


# -- channels ------------------------------------------------------------------------------


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
            "won_amount": dec(v["won_amount"]), "win_rate": numbers.win_rate(won, lost),
            "conversion": numbers.win_rate(won, n - won),
        })
    return {"period": _period_of(filters), "items": items}


# -- dormant customers -----------------------------------------------------------------------


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
               _owner_clause(Customer.owner_id, owner_ids(filters, scope)),
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


# -- drill-down ----------------------------------------------------------------------------


def encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def decode_cursor(cursor: str) -> str:
    try:
        return str(json.loads(base64.urlsafe_b64decode(cursor.encode())))
    except (ValueError, TypeError):
        raise ValidationFailed.for_fields({"cursor": ["not a cursor this API returned"]}) from None


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def opportunity_row(o: Opportunity) -> dict[str, Any]:
    return {c.key: _plain(getattr(o, c.key)) for c in Opportunity.__table__.columns}


def customer_row(c: Customer) -> dict[str, Any]:
    return {col.key: _plain(getattr(c, col.key)) for col in Customer.__table__.columns}


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
            first = _as_date(params["period_start"])
            last = numbers.period_end(kind, first)
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
            start = _as_date(params["period_start"])
        except (KeyError, ValueError, TypeError):
            raise ValidationFailed.for_fields(
                {"run_id": ["run_id and period_start are required for slippage"]}
            ) from None
        sub = _slipped_query(run_id, start, numbers.period_end(kind, start), filters,
                             scope).subquery()
        query = query.where(Opportunity.id.in_(select(sub.c.opportunity_id)))
    if cursor:
        query = query.where(Opportunity.id > decode_cursor(cursor))
    rows = session.scalars(query.order_by(Opportunity.id).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return {"figure": figure, "items": [opportunity_row(o) for o in rows],
            "next_cursor": encode_cursor(rows[-1].id) if more else None}


# -- customer insights ---------------------------------------------------------------------


def customer_insights(
    session: Session, customer_id: str, now: datetime | None = None
) -> dict[str, Any]:
    """Health score and RFM segment of one customer, each explained."""
    now = now or datetime.now(UTC)
    local_today = now.astimezone(tz()).date()
    window = now - timedelta(days=numbers.RFM_WINDOW_DAYS)
    won = session.execute(
        select(func.count(), func.sum(Opportunity.amount), func.max(Opportunity.closed_at))
        .where(Opportunity.customer_id == customer_id, Opportunity.status == "won",
               Opportunity.closed_at >= window)
    ).one()
    rfm = numbers.rfm(
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
    health = numbers.health(numbers.HealthInputs(
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
