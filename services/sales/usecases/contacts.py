"""Contacts of customers and their decision-chain roles."""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from services.sales.domain import accounts
from services.sales.models import Contact
from services.sales.numbers.usecases.custom_fields import custom_clauses
from services.sales.usecases.common import (
    Ports,
    apply_fields,
    check_owner,
    clean_contact_fields,
    custom_values,
    new_id,
    record_clause,
    visible_contact,
    visible_customer,
)
from services.sales.usecases.views import contact_to_dict
from shared.envelope import utcnow
from shared.paging import escape_like, page_after, page_of

LIST_FILTERS = ("customer_id", "role", "owner_id", "consent")
SEARCHED = ("name", "email", "phone", "title")


def create(ports: Ports, values: dict[str, Any], scope: dict[str, Any]) -> dict[str, Any]:
    clean_contact_fields(values)
    with ports.db.begin() as session:
        customer = visible_customer(session, values["customer_id"], scope, reference=True)
        values["custom"] = custom_values(session, "contact", values.get("custom") or {}, None,
                                         None, False)
        owner_id = values.pop("owner_id")
        if owner_id:
            check_owner(owner_id, scope)
        contact = new_contact(session, values, owner_id or customer.owner_id or ports.actor)
        snapshot = contact_to_dict(contact)
        ports.events.record(session, "contact_created", {"contact": snapshot})
        return snapshot


def change(ports: Ports, contact_id: str, values: dict[str, Any],
           scope: dict[str, Any]) -> dict[str, Any]:
    clean_contact_fields(values)
    with ports.db.begin() as session:
        contact = visible_contact(session, contact_id, scope)
        if "custom" in values:
            values["custom"] = custom_values(session, "contact", values["custom"],
                                             contact.custom, contact.id, True)
        changed = apply_fields(contact, values)
        if changed:
            contact.updated_at = utcnow()
            ports.events.record(session, "contact_updated",
                                {"contact": contact_to_dict(contact), "changed": changed})
        return contact_to_dict(contact)


def read(ports: Ports, contact_id: str, scope: dict[str, Any]) -> dict[str, Any]:
    with ports.db.read() as session:
        return contact_to_dict(visible_contact(session, contact_id, scope))


def list_page(ports: Ports, filters: dict[str, Any], scope: dict[str, Any],
              page: dict[str, Any]) -> dict[str, Any]:
    query = select(Contact).where(record_clause(Contact, scope))
    for field in LIST_FILTERS:
        if field in filters:
            query = query.where(getattr(Contact, field) == filters[field])
    for term in accounts.search_terms(filters.get("q", "")):
        pattern = f"%{escape_like(term)}%"
        query = query.where(or_(*(getattr(Contact, field).ilike(pattern, escape="\\")
                                  for field in SEARCHED)))
    query = page_after(query, Contact.created_at, Contact.id, page["cursor"], page["limit"])
    with ports.db.read() as session:
        query = query.where(*custom_clauses(session, "contact", filters.get("custom")))
        rows = session.scalars(query).all()
    return page_of(rows, page["limit"], "created_at", contact_to_dict)


def new_contact(session: Session, values: dict[str, Any], owner_id: str | None) -> Contact:
    now = utcnow()
    contact = Contact(
        id=new_id(), customer_id=values["customer_id"], name=values["name"],
        title=values.get("title"), role=values.get("role"), phone=values.get("phone"),
        email=values.get("email"), wechat=values.get("wechat"),
        preferred_channel=values.get("preferred_channel"), birthday=values.get("birthday"),
        consent=bool(values.get("consent")), custom=values.get("custom") or {},
        owner_id=owner_id, lead_id=values.get("lead_id"), created_at=now, updated_at=now,
    )
    session.add(contact)
    session.flush()
    return contact
