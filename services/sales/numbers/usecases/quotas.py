"""Quotas: the target of a user or team for one month or quarter."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select

from services.sales.numbers.domain import figures
from services.sales.numbers.models import Quota
from shared import config
from shared.db import DatabaseAccess


def quota_to_dict(quota: Quota) -> dict[str, Any]:
    return {
        "id": quota.id,
        "user_id": quota.subject_id if quota.subject_kind == "user" else None,
        "team_id": quota.subject_id if quota.subject_kind == "team" else None,
        "period_kind": quota.period_kind, "period_start": quota.period_start.isoformat(),
        "period": figures.period_label(quota.period_kind, quota.period_start),
        "amount": str(figures.money(quota.amount)), "currency": quota.currency,
        "updated_at": quota.updated_at.isoformat(),
    }


def set_quota(db: DatabaseAccess, values: dict[str, Any], actor: str | None) -> dict[str, Any]:
    """Create or replace the quota of a user or team for one month or quarter (`values` as
    the contract's QuotaSchema loads them)."""
    kind, subject = ("user", values["user_id"]) if values.get("user_id") else \
        ("team", values["team_id"])
    now = datetime.now(UTC)
    with db.begin() as session:
        quota = session.scalar(select(Quota).where(
            Quota.subject_kind == kind, Quota.subject_id == subject,
            Quota.period_kind == values["period_kind"],
            Quota.period_start == values["period_start"]))
        if quota is None:
            quota = Quota(id=str(uuid.uuid4()), subject_kind=kind, subject_id=subject,
                          period_kind=values["period_kind"],
                          period_start=values["period_start"], created_at=now)
            session.add(quota)
        quota.amount = values["amount"]
        quota.currency = values.get("currency") or config.default_currency()
        quota.updated_by = actor
        quota.updated_at = now
        session.flush()
        return quota_to_dict(quota)


def list_quotas(db: DatabaseAccess, filters: dict[str, Any]) -> list[dict[str, Any]]:
    """Quotas by the contract's QuotaFiltersSchema, in period order (at most 2,000)."""
    query = select(Quota)
    subjects = []
    if filters.get("user_ids") is not None:
        subjects.append((Quota.subject_kind == "user")
                        & Quota.subject_id.in_(filters["user_ids"]))
    if filters.get("team_id"):
        subjects.append((Quota.subject_kind == "team")
                        & (Quota.subject_id == filters["team_id"]))
    if subjects:
        query = query.where(or_(*subjects))
    if filters.get("period_kind"):
        query = query.where(Quota.period_kind == filters["period_kind"])
    if filters.get("date_from"):
        query = query.where(Quota.period_start >= figures.period_start(
            filters.get("period_kind") or "month", filters["date_from"]))
    if filters.get("date_to"):
        query = query.where(Quota.period_start <= filters["date_to"])
    with db.read() as session:
        rows = session.scalars(query.order_by(Quota.period_start, Quota.subject_kind,
                                              Quota.subject_id).limit(2000))
        return [quota_to_dict(q) for q in rows]
