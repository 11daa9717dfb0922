"""The report use cases: each runs its query in a read session whose statements are bounded
(REPORT_STATEMENT_SECONDS, under the gateway's RPC timeout), with the filters' custom-field
filters turned into WHERE clauses. `filters` and `scope` come loaded by the contract's
schemas."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from services.sales.models import Customer, Opportunity
from services.sales.numbers.queries import (
    channels,
    dormant,
    drill_down,
    forecast,
    funnel,
    insights,
    quota_performance,
    snapshots,
    stage_flow,
)
from services.sales.numbers.queries.base import STATEMENT_LIMIT
from services.sales.numbers.usecases.custom_fields import custom_clauses
from shared import config
from shared.db import DatabaseAccess, is_statement_timeout, limit_statements
from shared.errors import NotFound, ValidationFailed

log = logging.getLogger(__name__)

# A report's statements must end well within the gateway's RPC timeout (CRM_RPC_TIMEOUT, 10).
REPORT_STATEMENT_SECONDS = float(config.env("SALES_REPORT_STATEMENT_SECONDS", "5"))
ENTITY_OF = {Customer: "customer", Opportunity: "opportunity"}

Filters = dict[str, Any]
Scope = dict[str, Any]


@contextmanager
def report_session(db: DatabaseAccess) -> Iterator[Session]:
    """A read session whose every statement must finish within REPORT_STATEMENT_SECONDS
    (under the RPC timeout); one that does not is a 422 asking for narrower filters."""
    with db.read() as session:
        session.info[STATEMENT_LIMIT] = REPORT_STATEMENT_SECONDS
        limit_statements(session, REPORT_STATEMENT_SECONDS)
        try:
            yield session
        except OperationalError as exc:
            if not is_statement_timeout(exc):
                raise
            log.info("a report was cancelled after %s s", REPORT_STATEMENT_SECONDS)
            raise ValidationFailed.for_fields({"filters": [
                f"the report took longer than {REPORT_STATEMENT_SECONDS:g} s: narrow the "
                "date range, owners or pipeline"]}) from None


def with_custom_clauses(session: Session, filters: Filters, model: Any = Opportunity) -> Filters:
    """The loaded filters with `custom` ({"<key>[__op]": value}) as WHERE clauses on `model`."""
    filters = dict(filters)
    custom = filters.pop("custom", None)
    if custom:
        filters["custom"] = custom_clauses(session, ENTITY_OF[model], custom)
    return filters


def positive(value: Any, field: str, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise ValidationFailed.for_fields({field: [f"must be an integer 1..{maximum}"]})
    return value


def fold_stage_flow(db: DatabaseAccess) -> int:
    """Bring the stage-flow pre-aggregate up to date with the stage history."""
    with db.begin() as session:
        return stage_flow.fold_stage_flow(session)


def run_funnel(db: DatabaseAccess, filters: Filters, scope: Scope) -> dict[str, Any]:
    fold_stage_flow(db)  # only the moves since the last fold are read
    with report_session(db) as session:
        return funnel.funnel(session, with_custom_clauses(session, filters), scope)


def run_forecast(db: DatabaseAccess, filters: Filters, scope: Scope) -> dict[str, Any]:
    with report_session(db) as session:
        return forecast.forecast(session, with_custom_clauses(session, filters), scope)


def run_forecast_accuracy(db: DatabaseAccess, filters: Filters, scope: Scope) -> dict[str, Any]:
    with report_session(db) as session:
        return snapshots.forecast_accuracy(session, with_custom_clauses(session, filters), scope)


def run_quota_performance(
    db: DatabaseAccess, filters: Filters, scope: Scope,
    team_members: dict[str, list[str]] | None,
) -> dict[str, Any]:
    with report_session(db) as session:
        return quota_performance.quota_performance(
            session, with_custom_clauses(session, filters), scope, team_members)


def run_channel_conversion(db: DatabaseAccess, filters: Filters, scope: Scope) -> dict[str, Any]:
    with report_session(db) as session:
        return channels.channel_conversion(session, with_custom_clauses(session, filters), scope)


def run_dormant_customers(
    db: DatabaseAccess, days: Any, filters: Filters, scope: Scope, cursor: str | None,
    limit: Any,
) -> dict[str, Any]:
    days, limit = positive(days, "days", 3650), positive(limit, "limit", 200)
    with report_session(db) as session:
        return dormant.dormant_customers(
            session, days, with_custom_clauses(session, filters, Customer), scope, cursor, limit)


def run_drill_down(
    db: DatabaseAccess, figure: str, filters: Filters, scope: Scope, params: dict | None,
    cursor: str | None, limit: Any,
) -> dict[str, Any]:
    limit = positive(limit, "limit", 200)
    model = Customer if figure == "dormant" else Opportunity
    with report_session(db) as session:
        return drill_down.drill_down(session, figure, with_custom_clauses(session, filters, model),
                                     scope, params or {}, cursor, limit)


def run_customer_insights(db: DatabaseAccess, customer_id: str) -> dict[str, Any]:
    with db.read() as session:
        if session.get(Customer, customer_id) is None:
            raise NotFound(f"customer {customer_id} not found", {"field": "customer_id"})
        return insights.customer_insights(session, customer_id)
