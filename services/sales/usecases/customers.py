"""Customers (accounts): create with duplicate detection, change, tag, assign, merge, read and
list."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Text, cast, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.sales.contract import ON_DUPLICATE
from services.sales.domain import accounts, credit_code
from services.sales.models import Contact, Conversion, Customer, Followup, Opportunity, inbox
from services.sales.numbers.queries.insights import customer_insights
from services.sales.numbers.usecases.custom_fields import custom_clauses
from services.sales.usecases import publish
from services.sales.usecases.common import (
    Ports,
    apply_fields,
    check_owner,
    clean_customer_fields,
    custom_values,
    json_text_patterns,
    new_id,
    owner_clause,
    visible,
    visible_customer,
)
from services.sales.usecases.views import (
    contact_to_dict,
    customer_to_dict,
    stage_map,
)
from shared.envelope import utcnow
from shared.errors import Conflict, ValidationFailed
from shared.inbox import first_command
from shared.paging import escape_like, page_after, page_of

FUZZY_CANDIDATES = 500
CONVERTED_LEADS_SHOWN = 50
LIST_FILTERS = ("tier", "lifecycle_stage", "owner_id", "team_id", "region", "industry", "source")


def check_on_duplicate(on_duplicate: Any) -> None:
    if on_duplicate not in ON_DUPLICATE:
        raise ValidationFailed.for_fields(
            {"on_duplicate": [f"must be one of {', '.join(ON_DUPLICATE)}"]})


def create(ports: Ports, values: dict[str, Any], scope: dict[str, Any],
           on_duplicate: str) -> dict[str, Any]:
    """A new customer; `on_duplicate` reject (a similar name is a Conflict) or create. The same
    credit code is always a Conflict."""
    clean_customer_fields(values)
    owner_id = values.pop("owner_id") or ports.actor
    check_owner(owner_id, scope)
    try:
        with ports.db.begin() as session:
            matches = customer_matches(session, values["name"], values.get("credit_code"))
            exact = [m for m in matches if m.reason == "credit_code"]
            if exact or (matches and on_duplicate == "reject"):
                raise_duplicate(session, exact or matches, scope)
            customer = new_customer(session, values, owner_id)
            snapshot = customer_to_dict(customer)
            ports.events.record(session, "customer_created", {"customer": snapshot,
                                                             "lead_id": None})
            return snapshot
    except IntegrityError:
        # A concurrent create took the credit code between the check and the insert.
        raise Conflict("a customer with the same credit code exists",
                       {"field": "credit_code"}) from None


def change(ports: Ports, customer_id: str, values: dict[str, Any],
           scope: dict[str, Any]) -> dict[str, Any]:
    clean_customer_fields(values)
    with ports.db.begin() as session:
        customer = visible_customer(session, customer_id, scope)
        if "custom" in values:
            values["custom"] = custom_values(session, "customer", values["custom"],
                                             customer.custom, customer.id, True)
        if values.get("credit_code") and values["credit_code"] != customer.credit_code:
            other = session.execute(select(Customer.id, Customer.owner_id).where(
                Customer.credit_code == values["credit_code"])).first()
            if other:
                # The id only of a customer the caller may see (no existence detail leak).
                raise Conflict("a customer with the same credit code exists",
                               {"field": "credit_code",
                                **({"existing_id": other.id}
                                   if visible(other.owner_id, scope) else {})})
        changed = apply_fields(customer, values)
        if "name" in changed:
            key = accounts.name_key(customer.name)
            customer.name_key, customer.name_block = key, accounts.name_block(key)
        if changed:
            customer.updated_at = utcnow()
            publish.customer_updated(ports.events, session, customer, changed)
        return customer_to_dict(customer)


def read(ports: Ports, customer_id: str, scope: dict[str, Any],
         include_contacts: bool) -> dict[str, Any]:
    """The customer with its contacts, the leads it came from (newest first: their open tasks
    belong in the 360 view) and its insights (computed by the numbers part)."""
    with ports.db.read() as session:
        customer = visible_customer(session, customer_id, scope, allow_merged=True)
        result = customer_to_dict(customer)
        if include_contacts:
            contacts = session.scalars(
                select(Contact).where(Contact.customer_id == customer.id)
                .order_by(Contact.created_at, Contact.id)
            ).all()
            result["contacts"] = [contact_to_dict(c) for c in contacts]
        result["converted_lead_ids"] = list(session.scalars(
            select(Conversion.lead_id).where(Conversion.customer_id == customer.id)
            .order_by(Conversion.converted_at.desc(), Conversion.lead_id)
            .limit(CONVERTED_LEADS_SHOWN)
        ))
        result["insights"] = customer_insights(session, customer.id)
        return result


def list_page(ports: Ports, filters: dict[str, Any], scope: dict[str, Any],
              page: dict[str, Any]) -> dict[str, Any]:
    query = select(Customer).where(owner_clause(Customer.owner_id, scope))
    if not filters.pop("include_merged"):
        query = query.where(Customer.merged_into_id.is_(None))
    for field in LIST_FILTERS:
        if field in filters:
            query = query.where(getattr(Customer, field) == filters[field])
    if "credit_code" in filters:
        query = query.where(Customer.credit_code == credit_code.normalise(
            filters["credit_code"]))
    if "created_from" in filters:
        query = query.where(Customer.created_at >= filters["created_from"])
    if "created_to" in filters:
        query = query.where(Customer.created_at < filters["created_to"])
    tags_text = cast(Customer.tags, Text)
    if "tag" in filters:
        # A quoted form matches one whole element of the JSON array, not a part of one.
        quoted = {json.dumps(filters["tag"]), json.dumps(filters["tag"], ensure_ascii=False)}
        query = query.where(or_(*(tags_text.ilike(f"%{escape_like(q)}%", escape="\\")
                                  for q in sorted(quoted))))
    for term in accounts.search_terms(filters.get("q", "")):
        pattern = f"%{escape_like(term)}%"
        query = query.where(or_(
            Customer.name.ilike(pattern, escape="\\"),
            Customer.name_key.ilike(pattern, escape="\\"),
            *(tags_text.ilike(p, escape="\\") for p in json_text_patterns(term)),
        ))
    query = page_after(query, Customer.created_at, Customer.id, page["cursor"], page["limit"])
    with ports.db.read() as session:
        query = query.where(*custom_clauses(session, "customer", filters.get("custom")))
        rows = session.scalars(query).all()
    return page_of(rows, page["limit"], "created_at", customer_to_dict)


def tag(ports: Ports, customer_id: str, change_: dict[str, Any],
        scope: dict[str, Any]) -> dict[str, Any]:
    with ports.db.begin() as session:
        customer = visible_customer(session, customer_id, scope)
        if accounts.retag(customer, change_["add"], change_["remove"], utcnow()):
            publish.customer_updated(ports.events, session, customer, ["tags"])
        return customer_to_dict(customer)


def assign(ports: Ports, customer_id: str, owner_id: Any, scope: dict[str, Any],
           team_id: str | None, include_open_opportunities: bool,
           command_id: str | None = None) -> dict[str, Any]:
    """Give the customer (and optionally its open opportunities) to `owner_id`. A repeat with
    the same `command_id` does nothing and answers the customer as it is now."""
    if not isinstance(owner_id, str) or not owner_id:
        raise ValidationFailed.for_fields({"owner_id": ["a user id is required"]})
    check_owner(owner_id, scope)
    with ports.db.begin() as session:
        repeat = command_id is not None and not first_command(
            session, inbox, command_id, "assign_customer", customer_id)
        customer = visible_customer(session, customer_id, scope)
        if repeat:
            return customer_to_dict(customer)
        previous = customer.owner_id
        now = utcnow()
        if not accounts.assign(customer, owner_id, team_id, now):
            return customer_to_dict(customer)
        publish.customer_updated(ports.events, session, customer, ["owner_id"], previous)
        if include_open_opportunities:
            stages = stage_map(session)
            for opportunity in session.scalars(select(Opportunity).where(
                Opportunity.customer_id == customer.id, Opportunity.status == "open"
            )):
                accounts.hand_over(opportunity, owner_id, team_id, now)
                publish.opportunity_updated(ports.events, session, opportunity,
                                            stages.get(opportunity.stage_id), ["owner_id"])
        return customer_to_dict(customer)


def find_duplicates(ports: Ports, customer_id: str,
                    scope: dict[str, Any]) -> list[dict[str, Any]]:
    """Customers that look like this one: the same credit code or a name at least 90 %
    similar (visible ones only), best first: candidates for `merge`."""
    with ports.db.read() as session:
        customer = visible_customer(session, customer_id, scope)
        matches = customer_matches(session, customer.name, customer.credit_code)
        owners = dict(session.execute(select(Customer.id, Customer.owner_id).where(
            Customer.id.in_([m.customer_id for m in matches]))).all())
        return [m.to_dict() for m in matches if m.customer_id != customer.id
                and visible(owners.get(m.customer_id), scope)]


def merge(ports: Ports, target_id: str, source_id: str, scope: dict[str, Any]) -> dict[str, Any]:
    """Merge the duplicate `source_id` into `target_id`: its contacts, opportunities and
    follow-ups move, what the target lacks is filled in, the source is kept as merged."""
    if target_id == source_id:
        raise ValidationFailed.for_fields({"source_id": ["cannot merge a customer into "
                                                         "itself"]})
    with ports.db.begin() as session:
        target = visible_customer(session, target_id, scope)
        source = visible_customer(session, source_id, scope, field="source_id",
                                  reference=True)
        accounts.check_merge(target, source)
        moved = {}
        for model, name in ((Contact, "contacts"), (Opportunity, "opportunities"),
                            (Followup, "followups")):
            result = session.execute(update(model).where(model.customer_id == source.id)
                                     .values(customer_id=target.id))
            moved[name] = result.rowcount or 0
        session.execute(update(Conversion).where(Conversion.customer_id == source.id)
                        .values(customer_id=target.id))
        accounts.merge(target, source, utcnow(), release_code=session.flush)
        ports.events.record(session, "customer_merged", {
            "customer": customer_to_dict(target), "source_id": source.id, "moved": moved,
        })
        return customer_to_dict(target)


# -- shared with the other use cases ----------------------------------------------------------


def new_customer(session: Session, values: dict[str, Any], owner_id: str | None) -> Customer:
    now = utcnow()
    key = accounts.name_key(values["name"])
    custom = custom_values(session, "customer", values.get("custom") or {}, None, None, False)
    customer = Customer(
        id=new_id(), name=values["name"], name_key=key, name_block=accounts.name_block(key),
        credit_code=values.get("credit_code"), tier=values.get("tier"),
        lifecycle_stage=values.get("lifecycle_stage") or "prospect",
        tags=values.get("tags") or [], owner_id=owner_id, team_id=values.get("team_id"),
        region=values.get("region"), industry=values.get("industry"),
        source=values.get("source"), campaign=values.get("campaign"),
        phone=values.get("phone"), website=values.get("website"),
        address=values.get("address"), custom=custom, created_at=now, updated_at=now,
    )
    session.add(customer)
    session.flush()
    return customer


def customer_matches(session: Session, name: str | None,
                     code: str | None) -> list[accounts.CustomerMatch]:
    key = accounts.name_key(name) if name else ""
    conditions = []
    if code:
        conditions.append(Customer.credit_code == code)
    if key:
        conditions.append(Customer.name_block == accounts.name_block(key))
    if not conditions:
        return []
    rows = session.execute(
        select(Customer.id, Customer.name, Customer.credit_code)
        .where(or_(*conditions), Customer.merged_into_id.is_(None))
        .order_by(Customer.created_at.desc()).limit(FUZZY_CANDIDATES)
    ).all()
    return accounts.find_matches(name, code, rows)


def raise_duplicate(session: Session, matches: list[accounts.CustomerMatch],
                    scope: dict[str, Any]) -> None:
    """The Conflict for `matches` (exact credit codes first): ids, names and scores only of
    customers the caller sees; one they do not see is reported as existing, nothing more."""
    owners = dict(session.execute(select(Customer.id, Customer.owner_id).where(
        Customer.id.in_([m.customer_id for m in matches]))).all())
    seen = [m for m in matches if visible(owners.get(m.customer_id), scope)]
    exact = matches[0].reason == "credit_code"
    field = "credit_code" if exact else "name"
    what = "the same credit code" if exact else "a similar name"
    if exact and not any(m.reason == "credit_code" for m in seen):
        raise Conflict(f"a customer with {what} exists outside your view: ask your "
                       "manager to assign it to you", {"field": field, "matches": []})
    if not seen:
        raise Conflict(f"a customer with {what} exists outside your view: ask your "
                       "manager, or send on_duplicate=create to keep both",
                       {"field": field, "matches": []})
    raise Conflict(f"a customer with {what} exists",
                   {"existing_id": seen[0].customer_id, "field": field,
                    "matches": [m.to_dict() for m in seen]})


def promote_on_win(ports: Ports, session: Session, customer_id: str) -> None:
    """A won deal makes a prospect a customer."""
    customer = session.get(Customer, customer_id)
    if customer is not None and accounts.promote_on_win(customer, utcnow()):
        publish.customer_updated(ports.events, session, customer, ["lifecycle_stage"])
