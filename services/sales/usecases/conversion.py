"""Lead conversion: sales asks the leads service for the lead (in the caller's scope, so a lead
they may not see answers like a missing one) and turns a qualified one into a customer (found
by credit code or a close name, or created), a contact and an opportunity, in one transaction.

Converting a lead again answers the first result (`replayed`): the `conversions` row, keyed by
the lead, is written in the same transaction, so a retry after a lost reply, or two concurrent
conversions, never make a second customer. The `lead_converted` event tells the leads service
to mark the lead converted.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.sales.domain import conversion as rules
from services.sales.models import Contact, Conversion, Customer, Followup, Opportunity, Stage
from services.sales.usecases import contacts, customers, opportunities
from services.sales.usecases.common import (
    Ports,
    check_owner,
    clean_customer_fields,
    custom_values,
    customer_owner,
    validated_credit_code,
    visible,
    visible_customer,
)
from services.sales.usecases.views import contact_to_dict, customer_to_dict, opportunity_to_dict
from shared.envelope import utcnow
from shared.errors import Conflict, ValidationFailed


def convert(ports: Ports, lead_id: Any, options: dict[str, Any], scope: dict[str, Any],
            owner_teams: dict[str, str | None] | None = None) -> dict[str, Any]:
    """Convert the lead `lead_id`. `owner_teams` (from the gateway: the team of each user who
    may own the result) files the records under their owner's team; without it
    `options["team_id"]` is taken as given."""
    if not isinstance(lead_id, str) or not lead_id:
        raise ValidationFailed.for_fields({"lead_id": ["the lead's id is required"]})
    if owner_teams is not None and not isinstance(owner_teams, dict):
        raise ValidationFailed.for_fields({"owner_teams": ["a map of user ids to team ids"]})
    # Asked before any transaction is open: a write transaction must not wait on a call.
    lead = {name: value for name, value in ports.read_lead(lead_id, scope).items()
            if name in rules.LEAD_FIELDS}
    owner_id = rules.owner_of(options, lead, ports.actor)
    options = {**options, "team_id": rules.team_of(owner_id, options["team_id"], owner_teams,
                                                   scope["all"])}
    try:
        with ports.db.begin() as session:
            existing = session.get(Conversion, lead_id)
            if existing is not None:
                return replayed(session, existing, scope)
            return first_conversion(ports, session, lead, owner_id, options, scope)
    except IntegrityError:
        # A concurrent conversion of the same lead won the race: answer its result.
        with ports.db.read() as session:
            existing = session.get(Conversion, lead_id)
            if existing is None:
                raise Conflict("a concurrent change took the customer's credit code; retry",
                               {"field": "credit_code"}) from None
            return replayed(session, existing, scope)


def first_conversion(ports: Ports, session: Session, lead: dict[str, Any], owner_id: str | None,
                     options: dict[str, Any], scope: dict[str, Any]) -> dict[str, Any]:
    rules.check_convertible(lead)
    check_owner(owner_id, scope)
    overrides = dict(options["customer"])
    clean_customer_fields(overrides)
    name = rules.customer_name(lead, overrides)
    code = overrides.get("credit_code") or validated_credit_code(
        (lead.get("attributes") or {}).get("credit_code"))
    customer = (visible_customer(session, options["customer_id"], scope, reference=True)
                if options["customer_id"] else matching_customer(session, name, code, scope))
    created = customer is None
    if customer is None:
        customer = customers.new_customer(session, rules.new_customer_values(
            lead, overrides, name, code, options["team_id"]), owner_id)
        ports.events.record(session, "customer_created", {
            "customer": customer_to_dict(customer), "lead_id": lead["id"]})
    contact = contacts.new_contact(session, {
        **rules.contact_values(lead, customer.id, name),
        "custom": custom_values(session, "contact", {}, None, None, False),
    }, owner_id)
    ports.events.record(session, "contact_created", {"contact": contact_to_dict(contact)})
    opportunity = None
    if options["create_opportunity"]:
        opportunity = opportunities.new_opportunity(ports, session, customer, {
            **rules.opportunity_values(lead, options["opportunity"], customer.name, contact.id,
                                       options["team_id"]),
            "custom": custom_values(session, "opportunity", {}, None, None, False),
        }, owner_id)
        ports.events.record(session, "opportunity_created", {
            "opportunity": opportunity_to_dict(opportunity,
                                               session.get(Stage, opportunity.stage_id))})
    # Follow-ups logged on the lead belong to the customer from now on.
    session.execute(update(Followup).where(
        Followup.lead_id == lead["id"], Followup.customer_id.is_(None)
    ).values(customer_id=customer.id))
    conversion = Conversion(
        lead_id=lead["id"], customer_id=customer.id, contact_id=contact.id,
        opportunity_id=opportunity.id if opportunity else None, customer_created=created,
        converted_by=ports.actor, converted_at=utcnow(),
    )
    session.add(conversion)
    session.flush()
    ports.events.record(session, "lead_converted", {
        "lead_id": lead["id"], "customer_id": customer.id, "contact_id": contact.id,
        "opportunity_id": conversion.opportunity_id, "converted_by": ports.actor,
        "customer_created": created, "source": lead.get("source"),
        "campaign": lead.get("campaign"),
    })
    return result_of(session, conversion, replayed=False)


def matching_customer(session: Session, name: str, code: str | None,
                      scope: dict[str, Any]) -> Customer | None:
    """The customer the lead already is: the same credit code or a close name, among those
    the caller sees."""
    for match in customers.customer_matches(session, name, code):
        candidate = session.get(Customer, match.customer_id)
        if visible(candidate.owner_id, scope):
            return candidate
        if match.reason == "credit_code":
            # The same credit code is the same company: a second customer cannot be made, and
            # linking one the converter cannot see would hand them its data.
            raise Conflict(
                "a customer with the lead's credit code exists outside your view: ask your "
                "manager to assign it to you, or convert into a customer_id you can see",
                {"field": "credit_code"})
    return None


def replayed(session: Session, conversion: Conversion, scope: dict[str, Any]) -> dict[str, Any]:
    """The first result of a repeated conversion, to a caller who sees its customer."""
    if not visible(customer_owner(session, conversion.customer_id), scope):
        raise Conflict("this lead was converted into a customer outside your view",
                       {"field": "lead_id"})
    return result_of(session, conversion, replayed=True)


def result_of(session: Session, conversion: Conversion, replayed: bool) -> dict[str, Any]:
    customer = session.get(Customer, conversion.customer_id)
    contact = session.get(Contact, conversion.contact_id) if conversion.contact_id else None
    opportunity = (session.get(Opportunity, conversion.opportunity_id)
                   if conversion.opportunity_id else None)
    return {
        "lead_id": conversion.lead_id, "customer_id": conversion.customer_id,
        "contact_id": conversion.contact_id, "opportunity_id": conversion.opportunity_id,
        "customer_created": conversion.customer_created, "replayed": replayed,
        "converted_by": conversion.converted_by,
        "converted_at": conversion.converted_at.isoformat(),
        "customer": customer_to_dict(customer),
        "contact": contact_to_dict(contact) if contact else None,
        "opportunity": opportunity_to_dict(opportunity, session.get(
            Stage, opportunity.stage_id)) if opportunity else None,
    }
