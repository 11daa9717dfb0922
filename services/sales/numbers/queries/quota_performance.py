"""Quotas of users and teams against what they won and the weighted forecast still open."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, literal, or_, select
from sqlalchemy.orm import Session

from services.sales.numbers.domain import figures
from services.sales.numbers.models import Quota
from services.sales.numbers.queries.base import bounded_periods, dec, default_period, owner_ids
from services.sales.numbers.queries.forecast import forecast_rows


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
                            starts[0], figures.period_end(kind, starts[-1])) if starts else []
    won: dict[tuple, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    team_of: dict[str, list[str]] = defaultdict(list)
    for team_id, members in (team_members or {}).items():
        for member in members:
            team_of[member].append(team_id)
    for entry in entries:
        start = figures.period_start(kind, entry["month"])
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
            "period": figures.period_label(kind, quota.period_start),
            "period_start": quota.period_start.isoformat(), "quota": dec(quota.amount),
            "currency": quota.currency, "won": dec(achieved),
            "attainment_percent": figures.attainment(achieved, quota.amount),
            "gap": dec(max(Decimal(quota.amount) - achieved, Decimal(0))),
            "weighted_open": dec(bucket.get("weighted_open", 0)),
        })
    return {"period_kind": kind, "from": first.isoformat(), "to": last.isoformat(),
            "items": rows}
