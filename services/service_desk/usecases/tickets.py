"""Ticket use cases: create, read, list, update (status through the domain's transitions,
priority, assignee, tags) and replies. `svc` is the nameko service (db, events, context).

Row-level visibility comes as the gateway's scope (shared.kernel.schemas.ScopeSchema):
`{"all": true}` (admins), or the assignees whose tickets the caller sees (`owner_ids`: a
manager's teams' members, an agent's own) and, with `include_pool`, unassigned tickets. A
ticket the caller may not see is "not found", like a missing one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session

from services.service_desk.clock import now as utcnow  # the wall clock, or the tests' (clock.py)
from services.service_desk.domain import tickets as domain
from services.service_desk.models import TicketCounterRow, TicketEntryRow, TicketRow
from services.service_desk.usecases import csat, mail_outbox, requesters, sla_schedule
from services.service_desk.usecases.entries import add_entry, ticket_number
from services.service_desk.usecases.group_scope import group_member_ids, viewer_group_ids
from shared.errors import Forbidden, NotFound, ValidationFailed
from shared.paging import page_after, page_of


def ticket_dict(row: TicketRow) -> dict[str, Any]:
    return {"id": row.id, "number": ticket_number(row.number), "subject": row.subject,
            "requester_email": row.requester_email, "requester_name": row.requester_name,
            "status": row.status, "priority": row.priority, "type": row.type,
            "category": row.category, "tags": list(row.tags or []),
            "assignee_id": row.assignee_id, "group_id": row.group_id, "channel": row.channel,
            "customer_id": row.customer_id, "customer_tier": row.customer_tier,
            "product": row.product, "language": row.language,
            "merged_into_id": row.merged_into_id,
            "contact_id": row.contact_id,
            "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat()}


def entry_dict(row: TicketEntryRow) -> dict[str, Any]:
    return {"id": row.id, "seq": row.seq, "kind": row.kind, "public": row.public,
            "author_kind": row.author_kind, "author_id": row.author_id, "body": row.body,
            "from": row.from_value, "to": row.to_value, "at": row.at.isoformat()}


def visible(assignee_id: str | None, scope: Mapping[str, Any], group_id: str | None = None,
            group_ids: frozenset[str] = frozenset()) -> bool:
    """All (admins); the assignee's owners; a group's members and manager (`group_ids`, the
    groups part); an unassigned ticket of no group: the pool (`include_pool`)."""
    if scope.get("all"):
        return True
    if group_id is not None and group_id in group_ids:
        return True
    if assignee_id is None:
        return group_id is None and bool(scope.get("include_pool"))
    return assignee_id in scope.get("owner_ids", ())


def check_assignee(assignee_id: str | None, scope: Mapping[str, Any],
                    group_members: frozenset[str] = frozenset()) -> None:
    """Assigning within your scope, or (a group's members and manager) to a member of the
    ticket's group."""
    if assignee_id is not None and not scope.get("all") \
            and assignee_id not in scope.get("owner_ids", ()) \
            and assignee_id not in group_members:
        raise Forbidden("a ticket can be assigned only to someone within your scope",
                        {"assignee_id": assignee_id})


def _scope_clause(scope: Mapping[str, Any],
                  group_ids: frozenset[str] = frozenset()) -> ColumnElement[bool]:
    if scope.get("all"):
        return TicketRow.id.is_not(None)
    clauses = [TicketRow.assignee_id.in_(scope["owner_ids"])] if scope.get("owner_ids") else []
    if scope.get("include_pool"):
        clauses.append(and_(TicketRow.assignee_id.is_(None), TicketRow.group_id.is_(None)))
    if group_ids:
        clauses.append(TicketRow.group_id.in_(sorted(group_ids)))
    return or_(*clauses) if clauses else TicketRow.id.is_(None)


def find(session: Session, ticket_id: str, scope: Mapping[str, Any],
          for_update: bool = False) -> TicketRow:
    query = select(TicketRow).where(TicketRow.id == ticket_id)
    if for_update:
        query = query.with_for_update()
    row = session.scalars(query).first()
    if row is None or not visible(row.assignee_id, scope, row.group_id,
                                  viewer_group_ids(session, scope)):
        raise NotFound("ticket not found")
    return row


def group_members_for(session: Session, row: TicketRow, scope: Mapping[str, Any]
                       ) -> frozenset[str]:
    """The members of the ticket's group, when the caller sees it as one of the group."""
    if row.group_id is None or row.group_id not in viewer_group_ids(session, scope):
        return frozenset()
    return group_member_ids(session, row.group_id)


def _next_number(session: Session) -> int:
    """The counter row, incremented in this transaction (its row lock orders concurrent
    creations on PostgreSQL; SQLite has one writer): a rollback gives the number back."""
    session.execute(update(TicketCounterRow).where(TicketCounterRow.name == "ticket")
                    .values(value=TicketCounterRow.value + 1))
    return session.scalars(select(TicketCounterRow.value)
                           .where(TicketCounterRow.name == "ticket")).one()


def change_status(svc, session: Session, ticket: TicketRow, target: str, at) -> None:
    old = ticket.status
    domain.check_transition(old, target)
    if target == old:
        return
    event = domain.status_event(at, old, target)
    ticket.status = target
    add_entry(session, ticket, "status_changed", at, from_value=event["from"],
              to_value=event["to"], author_id=svc.context.actor)
    session.flush()
    if target == "solved":
        csat.on_solved(svc, session, ticket, at)
    svc.events.record(session, "ticket_status_changed",
                      {"ticket": ticket_dict(ticket), "from": old, "to": target})


def open_ticket(svc, session: Session, values: dict[str, Any], now: datetime,
                description: str | None, author_kind: str, author_id: str | None
                ) -> tuple[TicketRow, TicketEntryRow]:
    """A new ticket in `session` (every channel's way in): the next number, the requester
    linked to the sales customer and contact the projection knows by address (unless
    `customer_id` is given: then its tier and contact), the `created` entry, `ticket_created`."""
    known = requesters.match(session, values.get("requester_email"), values.get("customer_id"))
    values = {**values, "customer_id": known["customer_id"], "contact_id": known["contact_id"],
              "customer_tier": values.get("customer_tier") or known["customer_tier"]}
    row = TicketRow(id=str(uuid.uuid4()), number=_next_number(session), status="new",
                    created_at=now, updated_at=now, **values)
    session.add(row)
    session.flush()
    entry = add_entry(session, row, "created", now, body=description, public=True,
                      author_kind=author_kind, author_id=author_id, to_value="new")
    snapshot = ticket_dict(row)
    svc.events.record(session, "ticket_created", {"ticket": snapshot})
    sla_schedule.after_change(svc.events, session, row, snapshot)  # SLA scheduling
    return row, entry


def sales_scope(scope: Mapping[str, Any]) -> dict[str, Any]:
    """The tickets' scope as the sales service reads it: all, or the owners the caller sees
    (sales has no pool, and groups are the service desk's)."""
    if scope.get("all"):
        return {"all": True}
    return {"owner_ids": list(scope.get("owner_ids", ()))}


def check_customer(ask_sales: Callable[..., Any], customer_id: str,
                   scope: Mapping[str, Any]) -> None:
    """A ticket's `customer_id` must be a customer the caller sees in sales (asked over RPC
    with the caller's scope; a trusted caller: that it exists); hidden or missing: 422 naming
    `customer_id`. Asked before any transaction: a call never waits inside one."""
    try:
        ask_sales("get_customer", customer_id=customer_id, scope=sales_scope(scope),
                  include_contacts=False)
    except NotFound:
        raise ValidationFailed.for_fields(
            {"customer_id": ["no such customer among those you see"]}) from None


def create_ticket(svc, data: dict[str, Any], scope: Mapping[str, Any],
                  ask_sales: Callable[..., Any]) -> dict[str, Any]:
    check_assignee(data["assignee_id"], scope)
    domain.check_priority(data["priority"])
    if data.get("customer_id"):
        check_customer(ask_sales, data["customer_id"], scope)
    now = utcnow()
    description = data.pop("description", None)
    with svc.db.begin() as session:
        row, _ = open_ticket(svc, session, data, now, description,
                             "customer" if data["channel"] in ("email", "web") else "agent",
                             svc.context.actor)
        return ticket_dict(row)


def get_ticket(svc, ticket_id: str, scope: Mapping[str, Any]) -> dict[str, Any]:
    with svc.db.read() as session:
        row = find(session, ticket_id, scope)
        entries = session.scalars(select(TicketEntryRow).where(TicketEntryRow.ticket_id == row.id)
                                  .order_by(TicketEntryRow.seq)).all()
        return {**ticket_dict(row), "entries": [entry_dict(e) for e in entries]}


def list_tickets(svc, filters: dict[str, Any], scope: Mapping[str, Any],
                 page: dict[str, Any]) -> dict[str, Any]:
    """A page of the tickets the caller sees that match `filters`, newest first."""
    with svc.db.read() as session:
        query = select(TicketRow).where(_scope_clause(scope, viewer_group_ids(session, scope)))
        for name in ("status", "priority", "assignee_id", "group_id"):
            if name in filters:
                query = query.where(getattr(TicketRow, name) == filters[name])
        query = page_after(query, TicketRow.created_at, TicketRow.id, page["cursor"],
                           page["limit"])
        rows = session.scalars(query).all()
    return page_of(rows, page["limit"], "created_at", ticket_dict)


def update_ticket(svc, ticket_id: str, data: dict[str, Any],
                  scope: Mapping[str, Any]) -> dict[str, Any]:
    now = utcnow()
    with svc.db.begin() as session:
        row = find(session, ticket_id, scope, for_update=True)
        if "assignee_id" in data and data["assignee_id"] != row.assignee_id:
            check_assignee(data["assignee_id"], scope, group_members_for(session, row, scope))
            row.assignee_id = data["assignee_id"]
        if "tags" in data:
            row.tags = list(dict.fromkeys(data["tags"]))
        if "priority" in data and data["priority"] != row.priority:
            domain.check_priority(data["priority"])
            event = domain.priority_event(now, row.priority, data["priority"])
            row.priority = data["priority"]
            add_entry(session, row, "priority_changed", now, from_value=event["from"],
                       to_value=event["to"], author_id=svc.context.actor)
        row.updated_at = now
        if "status" in data:
            change_status(svc, session, row, data["status"], now)
        session.flush()
        result = ticket_dict(row)
        sla_schedule.after_change(svc.events, session, row, result)  # SLA scheduling
        return result


def add_reply(svc, ticket_id: str, data: dict[str, Any],
              scope: Mapping[str, Any]) -> dict[str, Any]:
    now = utcnow()
    with svc.db.begin() as session:
        row = find(session, ticket_id, scope, for_update=True)
        domain.reply_event(now, author=data["author_kind"], public=data["public"])
        target = domain.status_after_reply(row.status, author=data["author_kind"],
                                           public=data["public"])
        entry = add_entry(session, row, "reply", now, body=data["body"], public=data["public"],
                           author_kind=data["author_kind"], author_id=svc.context.actor)
        row.updated_at = now
        if target != row.status:
            change_status(svc, session, row, target, now)
        if data["public"] and data["author_kind"] == "agent":
            # e-mail (part s-mail): the reply goes out through the mail outbox, in this
            # transaction; internal notes never do.
            mail_outbox.queue_reply(session, row, entry.id, data["body"])
        session.flush()
        result = ticket_dict(row)
        svc.events.record(session, "ticket_replied", {"ticket": result, "entry": entry_dict(entry)})
        sla_schedule.after_change(svc.events, session, row, result)  # SLA scheduling
        return {**result, "entry": entry_dict(entry)}
