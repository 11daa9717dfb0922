"""Who a requester is: the sales service's customers and contacts as its events tell them (a
projection in this service's own database), matched by e-mail address when a ticket is created,
so the ticket knows its customer and the customer's tier (which chooses the SLA policy).

Events arrive concurrently and may arrive late: each row keeps the snapshot's `updated_at`, and
an older snapshot changes nothing. A customer's new tier reaches its open tickets as a
`tier_changed` entry of their log (the SLA clocks read it: the policy follows the tier), and
each of them is rescheduled in the same transaction (the policy the new tier selects, its
warnings and breaches due, `ticket_sla_scheduled`). A merge moves the source customer's contacts
and tickets to the survivor.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.service_desk.clock import now as desk_now  # the clock tickets are stamped on
from services.service_desk.models import DeskContactRow, DeskCustomerRow, TicketRow
from services.service_desk.usecases import sla_schedule, tickets
from services.service_desk.usecases.entries import add_entry
from shared.envelope import utcnow
from shared.errors import PreconditionFailed, ValidationFailed

log = logging.getLogger(__name__)

CLOSED = ("solved", "closed")
# the `updated_at` of a merged customer known only from the merge: older than any snapshot
KNOWN_BY_MERGE_ONLY = datetime(1970, 1, 1, tzinfo=UTC)
EVENTS = ("customer_created", "customer_updated", "customer_merged", "contact_created",
          "contact_updated")


def _stamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else None


def _newer(row: Any, stamp: datetime | None) -> bool:
    return row is None or stamp is None or row.updated_at is None or stamp >= row.updated_at


def normalise_email(value: Any) -> str | None:
    return value.strip().lower() if isinstance(value, str) and "@" in value else None


def project(svc, session: Session, event_type: str, data: Mapping[str, Any]) -> None:
    """One sales event into the projection (in the caller's transaction, with its inbox row)."""
    if event_type.startswith("customer_") and isinstance(data.get("customer"), Mapping):
        _customer(svc, session, data["customer"])
        if event_type == "customer_merged" and isinstance(data.get("source_id"), str):
            _merged(svc, session, data["source_id"], data["customer"]["id"])
    elif event_type.startswith("contact_") and isinstance(data.get("contact"), Mapping):
        _contact(session, data["contact"])


def _customer(svc, session: Session, customer: Mapping[str, Any]) -> None:
    stamp = _stamp(customer.get("updated_at"))
    row = session.get(DeskCustomerRow, customer["id"], with_for_update=True)
    if not _newer(row, stamp):
        return
    old_tier = row.tier if row else None
    if row is None:
        row = DeskCustomerRow(id=customer["id"])
        session.add(row)
    row.name = customer.get("name") or row.name or customer["id"]
    row.tier = customer.get("tier")
    row.owner_id = customer.get("owner_id")
    # a merge is for good: a late snapshot from before it does not undo it
    row.merged_into_id = customer.get("merged_into_id") or row.merged_into_id
    row.updated_at = stamp or utcnow()
    session.flush()
    if row.tier != old_tier:
        _retier(svc, session, row.id, row.tier)


def _retier(svc, session: Session, customer_id: str, tier: str | None) -> None:
    """The customer's open tickets take the new tier, with a `tier_changed` log entry each, and
    their SLA is rescheduled: the policy the tier now selects, the notices due published, the
    next instants as `ticket_sla_scheduled` (the rules' timers follow). A ticket whose SLA
    cannot be computed (a calendar missing a year) keeps its schedule; the tier still changes."""
    now = desk_now()
    rows = session.scalars(select(TicketRow).where(
        TicketRow.customer_id == customer_id, TicketRow.status.not_in(CLOSED))
        .order_by(TicketRow.id).with_for_update()).all()
    changed = [ticket for ticket in rows if ticket.customer_tier != tier]
    if not changed:
        return
    rules = sla_schedule.load_rules(session)  # once for all of the customer's tickets
    for ticket in changed:
        add_entry(session, ticket, "tier_changed", now, from_value=ticket.customer_tier,
                  to_value=tier, author_kind="system")
        ticket.customer_tier = tier
        ticket.updated_at = now
        session.flush()
        try:
            sla_schedule.recheck(svc.events, session, ticket, tickets.ticket_dict(ticket),
                                 rules=rules)
        except (PreconditionFailed, ValidationFailed) as exc:
            log.warning("SLA of ticket %s not rescheduled after its tier changed: %s",
                        ticket.id, exc)


def _merged(svc, session: Session, source_id: str, survivor_id: str) -> None:
    """The source's contacts and tickets become the survivor's; its open tickets take the
    survivor's tier as a tier change (an entry, the SLA rescheduled), closed ones silently."""
    session.execute(update(DeskContactRow).where(DeskContactRow.customer_id == source_id)
                    .values(customer_id=survivor_id))
    survivor = session.get(DeskCustomerRow, survivor_id)
    tier = survivor.tier if survivor else None
    session.execute(update(TicketRow).where(TicketRow.customer_id == source_id,
                                            TicketRow.status.in_(CLOSED))
                    .values(customer_id=survivor_id, customer_tier=tier))
    session.execute(update(TicketRow).where(TicketRow.customer_id == source_id)
                    .values(customer_id=survivor_id))
    _retier(svc, session, survivor_id, tier)
    source = session.get(DeskCustomerRow, source_id)
    if source is None:  # its own events are late: any of them fills it in
        source = DeskCustomerRow(id=source_id, name=source_id, updated_at=KNOWN_BY_MERGE_ONLY)
        session.add(source)
    source.merged_into_id = survivor_id


def _contact(session: Session, contact: Mapping[str, Any]) -> None:
    stamp = _stamp(contact.get("updated_at"))
    row = session.get(DeskContactRow, contact["id"], with_for_update=True)
    if not _newer(row, stamp) or not isinstance(contact.get("customer_id"), str):
        return
    # Sales moves a merged customer's contacts without a contact event: a contact's snapshot
    # naming the merged customer (one from before the merge, taken late) means the survivor.
    customer_id = survivor(session, contact["customer_id"])
    if row is None:
        row = DeskContactRow(id=contact["id"])
        session.add(row)
    row.customer_id = customer_id
    row.name = contact.get("name") or row.name or contact["id"]
    row.email = normalise_email(contact.get("email"))
    row.updated_at = stamp or utcnow()


def survivor(session: Session, customer_id: str) -> str:
    """The customer a merged one now is (a chain of merges followed, bounded); else itself."""
    for _ in range(5):
        merged_into = session.scalar(select(DeskCustomerRow.merged_into_id)
                                     .where(DeskCustomerRow.id == customer_id))
        if not merged_into:
            break
        customer_id = merged_into
    return customer_id


def match(session: Session, email: str | None, customer_id: str | None = None
          ) -> dict[str, Any]:
    """What the projection knows of a requester: `{customer_id, contact_id, customer_tier}`.
    By `customer_id` when given (its tier; the contact of that customer with the address); else
    by the address: the contact changed last wins when several customers share one, a merged
    customer's survivor stands for it. Nothing known: all None."""
    address = normalise_email(email)
    query = select(DeskContactRow).where(DeskContactRow.email == address)
    if customer_id is not None:
        query = query.where(DeskContactRow.customer_id == customer_id)
    contact = session.scalars(query.order_by(DeskContactRow.updated_at.desc(),
                                             DeskContactRow.id)).first() if address else None
    found = customer_id or (contact.customer_id if contact else None)
    customer = session.get(DeskCustomerRow, found) if found else None
    for _ in range(5):  # a chain of merges, bounded
        if customer is None or not customer.merged_into_id:
            break
        customer = session.get(DeskCustomerRow, customer.merged_into_id) or customer
        found = customer.id
    return {"customer_id": found, "contact_id": contact.id if contact else None,
            "customer_tier": customer.tier if customer else None}
