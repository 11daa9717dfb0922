"""Merging a duplicate ticket into another (issue 17, groups part): the source closes with a
link to the target (`merged_into_id`); the target keeps an internal note with the source's
requester and public conversation; both histories get a `merged` entry; `ticket_merged`.
Both tickets must be visible to the caller (else "not found", like a missing one). A repeat
of a merge already done answers the target unchanged."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from services.service_desk.clock import now as utcnow  # tickets are stamped on the desk clock
from services.service_desk.domain import merging as domain
from services.service_desk.models import TicketEntryRow
from services.service_desk.usecases import tickets
from services.service_desk.usecases.entries import add_entry, ticket_number


def merge_tickets(svc, ticket_id: str, into: str, scope: Mapping[str, Any]) -> dict[str, Any]:
    now = utcnow()
    with svc.db.begin() as session:
        # locked in id order, so two opposite merges cannot deadlock
        first, second = sorted((ticket_id, into))
        rows = {first: tickets.find(session, first, scope, for_update=True)}
        if second != first:
            rows[second] = tickets.find(session, second, scope, for_update=True)
        source, target = rows[ticket_id], rows[into]
        if not domain.check_merge(source.id, target.id, source.status, target.status,
                                  source.merged_into_id):
            return tickets.ticket_dict(target)
        messages = session.scalars(
            select(TicketEntryRow.body)
            .where(TicketEntryRow.ticket_id == source.id, TicketEntryRow.public.is_(True),
                   TicketEntryRow.kind.in_(("created", "reply")))
            .order_by(TicketEntryRow.seq)).all()
        source_number = ticket_number(source.number)
        target_number = ticket_number(target.number)
        add_entry(session, target, "merged", now, public=False, author_kind="agent",
                           author_id=svc.context.actor, from_value=source_number,
                           body=domain.target_note(source_number, source.subject,
                                                   source.requester_email, messages))
        add_entry(session, source, "merged", now, public=False, author_kind="agent",
                           author_id=svc.context.actor, to_value=target_number,
                           body=domain.source_note(target_number))
        source.merged_into_id = target.id
        target.tags = list(dict.fromkeys([*(target.tags or []), *(source.tags or [])]))[:30]
        source.updated_at = target.updated_at = now
        tickets.change_status(svc, session, source, "closed", now)
        session.flush()
        result = tickets.ticket_dict(target)
        svc.events.record(session, "ticket_merged",
                          {"source": tickets.ticket_dict(source), "target": result})
        return result
