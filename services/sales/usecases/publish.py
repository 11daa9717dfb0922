"""Events that several use cases record alike (in the caller's transaction, via the outbox)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from services.sales.models import Customer, Opportunity, Stage
from services.sales.usecases.views import customer_to_dict, opportunity_to_dict


def customer_updated(events: Any, session: Session, customer: Customer, changed: list[str],
                     previous_owner_id: str | None = None) -> None:
    events.record(session, "customer_updated", {
        "customer": customer_to_dict(customer), "changed": changed,
        "previous_owner_id": previous_owner_id,
    })


def opportunity_updated(events: Any, session: Session, opportunity: Opportunity,
                        stage: Stage | None, changed: list[str]) -> None:
    events.record(session, "opportunity_updated", {
        "opportunity": opportunity_to_dict(opportunity, stage), "changed": changed,
    })
