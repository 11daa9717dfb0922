"""What every use case of the sales service needs: its ports, row-level visibility, custom
field values and the cleaning of contact details.

Visibility: a record the caller may not see answers exactly like one that does not exist.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import false, or_, select, true
from sqlalchemy.orm import Session

from services.sales.contract import NO_SUCH_USER
from services.sales.domain import accounts, credit_code
from services.sales.models import Contact, Customer, Opportunity
from services.sales.numbers.domain.custom_fields import merge_custom, validate_custom
from services.sales.numbers.usecases.custom_fields import check_unique, load_field_definitions
from shared import config
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.paging import escape_like


@dataclass(frozen=True)
class Ports:
    """What a use case works with: the database (`begin()` / `read()` sessions), the outbox
    recorder (`record(session, event_type, data)`), who acts, and a reader of the leads
    service's leads (`read_lead(lead_id, scope)`, the caller's scope)."""

    db: Any
    events: Any
    actor: str | None
    read_lead: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None


def new_id() -> str:
    return str(uuid.uuid4())


def missing(what: str, record_id: Any, field: str, reference: bool) -> Exception:
    """The one answer for a record that does not exist and one the caller may not see:
    NotFound for the record of the path, a ValidationFailed naming the body's field for a
    reference (the message never says which of the two it was)."""
    if reference:
        return ValidationFailed.for_fields({field: [f"no such {what}"]})
    return NotFound(f"{what} {record_id} not found", {"field": field})


def visible(owner_id: str | None, scope: dict[str, Any]) -> bool:
    return scope["all"] or (owner_id is not None and owner_id in scope["owner_ids"])


def check_owner(owner_id: str | None, scope: dict[str, Any], field: str = "owner_id") -> None:
    """A user a record is given to (or a follow-up attributed to) must be in the caller's
    scope; one outside it answers like a user that does not exist."""
    if not visible(owner_id, scope):
        raise ValidationFailed.for_fields({field: [NO_SUCH_USER]})


def owner_clause(column: Any, scope: dict[str, Any]) -> Any:
    if scope["all"]:
        return true()
    if not scope["owner_ids"]:
        return false()
    return column.in_(scope["owner_ids"])


def record_clause(model: Any, scope: dict[str, Any]) -> Any:
    """A contact, follow-up or opportunity is visible through its own owner or through its
    customer's."""
    if scope["all"]:
        return true()
    customers = select(Customer.id).where(owner_clause(Customer.owner_id, scope))
    return or_(owner_clause(model.owner_id, scope), model.customer_id.in_(customers))


def customer_owner(session: Session, customer_id: str | None) -> str | None:
    if not customer_id:
        return None
    return session.scalar(select(Customer.owner_id).where(Customer.id == customer_id))


def visible_customer(
    session: Session, customer_id: Any, scope: dict[str, Any], allow_merged: bool = False,
    field: str = "customer_id", reference: bool = False,
) -> Customer:
    """The customer when the caller sees it. Missing and hidden answer alike: NotFound for the
    record a request is about (its path id), ValidationFailed naming `field` for one a body
    refers to (`reference`)."""
    customer = session.get(Customer, customer_id) if isinstance(customer_id, str) else None
    if customer is None or not visible(customer.owner_id, scope):
        raise missing("customer", customer_id, field, reference)
    if customer.merged_into_id and not allow_merged:
        if visible(customer_owner(session, customer.merged_into_id), scope):
            raise Conflict(
                f"customer {customer_id} was merged into {customer.merged_into_id}",
                {"field": field, "existing_id": customer.merged_into_id})
        raise Conflict(f"customer {customer_id} was merged into a customer outside your view",
                       {"field": field})
    return customer


def visible_contact(
    session: Session, contact_id: Any, scope: dict[str, Any], field: str = "contact_id",
    reference: bool = False,
) -> Contact:
    contact = session.get(Contact, contact_id) if isinstance(contact_id, str) else None
    if contact is None or not (
        visible(contact.owner_id, scope)
        or visible(customer_owner(session, contact.customer_id), scope)
    ):
        raise missing("contact", contact_id, field, reference)
    return contact


def visible_opportunity(
    session: Session, opportunity_id: Any, scope: dict[str, Any],
    field: str = "opportunity_id", reference: bool = False,
) -> Opportunity:
    opportunity = (session.get(Opportunity, opportunity_id)
                   if isinstance(opportunity_id, str) else None)
    if opportunity is None or not (
        visible(opportunity.owner_id, scope)
        or visible(customer_owner(session, opportunity.customer_id), scope)
    ):
        raise missing("opportunity", opportunity_id, field, reference)
    return opportunity


def custom_values(
    session: Session, entity: str, values: dict[str, Any], stored: dict[str, Any] | None,
    record_id: str | None, partial: bool,
) -> dict[str, Any]:
    """Custom field values checked against the entity's definitions (numbers part)."""
    definitions = load_field_definitions(session, entity)
    cleaned = validate_custom(definitions, values, partial=partial)
    check_unique(session, entity, cleaned, record_id, definitions)
    return merge_custom(stored, cleaned)


def apply_fields(record: Any, values: dict[str, Any]) -> list[str]:
    """Set the values that differ; the sorted names of those that changed."""
    changed = []
    for name, value in values.items():
        if getattr(record, name) != value:
            setattr(record, name, value)
            changed.append(name)
    return sorted(changed)


def validated_credit_code(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    try:
        return credit_code.validate(raw)
    except credit_code.CreditCodeError as exc:
        raise ValidationFailed.for_fields({"credit_code": [str(exc)]}) from None


def clean_customer_fields(values: dict[str, Any]) -> None:
    if "credit_code" in values:
        values["credit_code"] = validated_credit_code(values["credit_code"])
    if values.get("tags") is not None:
        values["tags"] = accounts.normalise_tags(values["tags"])
    if values.get("phone"):
        values["phone"] = accounts.normalise_phone(values["phone"], config.default_region())
    if "name" in values:
        values["name"] = values["name"].strip()
        if not values["name"]:
            raise ValidationFailed.for_fields({"name": ["must not be blank"]})


def clean_contact_fields(values: dict[str, Any]) -> None:
    problems: dict[str, list[str]] = {}
    for field, normalise in (
        ("email", accounts.normalise_email),
        ("phone", lambda raw: accounts.normalise_phone(raw, config.default_region())),
    ):
        if values.get(field):
            try:
                values[field] = normalise(values[field])
            except ValidationFailed as err:
                problems.update(err.errors)
    if problems:
        raise ValidationFailed.for_fields(problems)


def json_text_patterns(text: str) -> list[str]:
    """LIKE patterns finding `text` inside a JSON document stored as text. JSON serialisation
    escapes non-ASCII ("客户" is stored as "\\u5ba2\\u6237"): the escaped form is searched too."""
    escaped = json.dumps(text)[1:-1]
    forms = [text] if escaped == text else [text, escaped]
    return [f"%{escape_like(form)}%" for form in forms]
