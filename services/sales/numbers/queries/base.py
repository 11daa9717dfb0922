"""What the queries of the sales numbers share: local days, the owners a scope lets a
figure count, WHERE clauses of the filters, periods read from the two-grain aggregates, the
opportunity roll-up's sums, pipelines and stages, cursors and rows.

Every query takes a Session and plain filters:
  owner_ids (list or None), team_id, pipeline_id, date_from / date_to (local dates,
  inclusive), period_kind (month / quarter), custom (WHERE clauses of custom-field filters),
and the caller's scope ({"all": True} | {"owner_ids": [...]}) which always narrows owner_ids.
Dates are local to CRM_TIMEZONE; timestamps are stored in UTC.
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import eventlet
from sqlalchemy import func, literal, select
from sqlalchemy.orm import Session

from services.sales.models import Customer, Opportunity, Pipeline, Stage
from services.sales.numbers.domain import figures
from services.sales.numbers.models import OpportunityRollup
from shared import config
from shared.db import limit_statements
from shared.errors import NotFound, ValidationFailed

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
    return str(figures.money(value))


# -- filters -------------------------------------------------------------------------------


def owner_ids(filters: dict[str, Any], scope: dict[str, Any]) -> list[str] | None:
    """The owners a figure may count: the filter's, narrowed by the scope (None: anyone)."""
    wanted = filters.get("owner_ids")
    if scope.get("all"):
        return list(wanted) if wanted is not None else None
    allowed = list(scope.get("owner_ids") or [])
    return [o for o in wanted if o in allowed] if wanted is not None else allowed


def owner_clause(column: Any, owners: list[str] | None) -> Any:
    if owners is None:
        return literal(True)
    return column.in_(owners) if owners else literal(False)


def opportunity_clauses(
    filters: dict[str, Any], scope: dict[str, Any], *, dated: Any = None
) -> list[Any]:
    """WHERE clauses on opportunities; `dated` is the timestamp column the period bounds."""
    clauses = [owner_clause(Opportunity.owner_id, owner_ids(filters, scope))]
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


def period_parts(first: date | None, last: date | None) -> list[tuple[str, Any, Any]]:
    """How to read a period [first, last] from a two-grain aggregate: [(grain, from,
    to-exclusive)], whole months at grain 'm' and the partial edge months by day ('d');
    None is an open end."""
    month_from = month_to = None
    if first:
        month_from = figures.period_start("month", first)
        if month_from != first:
            month_from = figures.next_period_start("month", month_from)
    if last:
        month_to = figures.period_start("month", last)
        if figures.period_end("month", month_to) == last:
            month_to = figures.next_period_start("month", month_to)
    if first and last and month_from >= month_to:  # no whole month inside
        return [("d", first, last + timedelta(days=1))]
    parts: list[tuple[str, Any, Any]] = [("m", month_from, month_to)]
    if first and first < month_from:
        parts.append(("d", first, month_from))
    if last and last >= month_to:
        parts.append(("d", month_to, last + timedelta(days=1)))
    return parts


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
            key = tuple(as_date(v) if name == "day" else v
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


def seconds_between(later: Any, earlier: Any, dialect: str) -> Any:
    if dialect == "postgresql":
        return func.extract("epoch", later - earlier)
    return (func.julianday(later) - func.julianday(earlier)) * 86400


def period_of(filters: dict[str, Any]) -> dict[str, Any]:
    return {
        "from": filters["date_from"].isoformat() if filters.get("date_from") else None,
        "to": filters["date_to"].isoformat() if filters.get("date_to") else None,
    }


def as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def default_period(filters: dict[str, Any], kind: str = "quarter") -> tuple[date, date]:
    start = filters.get("date_from") or figures.period_start(kind, today())
    end = filters.get("date_to") or figures.period_end(kind, figures.period_start(kind, start))
    if end < start:
        raise ValidationFailed.for_fields({"date_to": ["must not be before date_from"]})
    return start, end


def bounded_periods(report: str, kind: str, first: date, last: date) -> list[date]:
    """The report's period starts, or a 422 naming the filter and the limit."""
    try:
        return figures.check_periods(report, kind, first, last)
    except figures.RangeError as exc:
        raise ValidationFailed.for_fields({exc.field: [str(exc)]}) from None


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
