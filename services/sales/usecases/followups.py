"""Follow-ups: calls, emails, meetings, visits (with a check-in) and notes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from services.sales.domain import accounts
from services.sales.models import Conversion, Followup
from services.sales.usecases.common import (
    Ports,
    check_owner,
    customer_owner,
    new_id,
    record_clause,
    visible,
    visible_contact,
    visible_customer,
    visible_opportunity,
)
from services.sales.usecases.views import followup_to_dict
from shared.envelope import utcnow
from shared.errors import ValidationFailed
from shared.paging import page_after, page_of

LIST_FILTERS = ("customer_id", "contact_id", "opportunity_id", "lead_id", "kind", "owner_id")


def same_customer(given: str | None, actual: str, field: str) -> str:
    if given and given != actual:
        raise ValidationFailed.for_fields({field: ["belongs to another customer than "
                                                   "customer_id"]})
    return actual


def record(ports: Ports, values: dict[str, Any], scope: dict[str, Any]) -> dict[str, Any]:
    """Record a follow-up; the customer is taken from the opportunity or contact when not
    given, or from the customer a given lead became."""
    owner_id = values["owner_id"] or ports.actor
    if values["owner_id"]:
        check_owner(owner_id, scope)
    with ports.db.begin() as session:
        customer_id = values["customer_id"]
        if values["opportunity_id"]:
            opportunity = visible_opportunity(session, values["opportunity_id"], scope,
                                              reference=True)
            customer_id = same_customer(customer_id, opportunity.customer_id, "opportunity_id")
        if values["contact_id"]:
            contact = visible_contact(session, values["contact_id"], scope, reference=True)
            customer_id = same_customer(customer_id, contact.customer_id, "contact_id")
        if values["lead_id"] and not customer_id:
            # A follow-up on a converted lead belongs to the customer it became, when the
            # caller sees that customer (the gateway checked the lead itself with leads).
            conversion = session.get(Conversion, values["lead_id"])
            if conversion is not None and visible(
                customer_owner(session, conversion.customer_id), scope
            ):
                customer_id = conversion.customer_id
        customer = None
        if customer_id:
            customer = visible_customer(session, customer_id, scope, reference=True)
        now = utcnow()
        occurred_at = values["occurred_at"] or now
        if values["next_followup_at"] and values["next_followup_at"] < occurred_at:
            raise ValidationFailed.for_fields(
                {"next_followup_at": ["must not be before occurred_at"]})
        followup = Followup(
            id=new_id(), kind=values["kind"], customer_id=customer_id,
            contact_id=values["contact_id"], opportunity_id=values["opportunity_id"],
            lead_id=values["lead_id"], owner_id=owner_id, occurred_at=occurred_at,
            subject=values["subject"], notes=values["notes"],
            tags=accounts.normalise_tags(values["tags"]), key_points=values["key_points"],
            check_in=values["check_in"], next_followup_at=values["next_followup_at"],
            created_at=now,
        )
        session.add(followup)
        if customer is not None:
            accounts.record_activity(customer, occurred_at)
        snapshot = followup_to_dict(followup)
        ports.events.record(session, "followup_recorded", {"followup": snapshot})
        return snapshot


def list_page(ports: Ports, filters: dict[str, Any], scope: dict[str, Any],
              page: dict[str, Any]) -> dict[str, Any]:
    query = select(Followup).where(record_clause(Followup, scope))
    for field in LIST_FILTERS:
        if field in filters:
            query = query.where(getattr(Followup, field) == filters[field])
    if "occurred_from" in filters:
        query = query.where(Followup.occurred_at >= filters["occurred_from"])
    if "occurred_to" in filters:
        query = query.where(Followup.occurred_at < filters["occurred_to"])
    query = page_after(query, Followup.occurred_at, Followup.id, page["cursor"], page["limit"])
    with ports.db.read() as session:
        rows = session.scalars(query).all()
    return page_of(rows, page["limit"], "occurred_at", followup_to_dict)
