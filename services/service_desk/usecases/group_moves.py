"""`move_ticket_to_group`: an agent's command moving a ticket to another group (rules in
domain/group_moves.py). In one transaction: the checks, the new group (and the assignee
cleared when the new group is not theirs), a `group_changed` entry in the ticket's history
(`from`/`to` the group ids, `body` the reason given), the `ticket_group_changed` event through
the outbox, and the SLA rechecked (`sla_schedule.after_change`: the instants do not move, so
normally nothing is republished). Later warnings and breaches name the new group's manager:
`group_manager_id` is read from the ticket's group when they are published."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from services.service_desk.clock import now as utcnow
from services.service_desk.domain import group_moves as domain
from services.service_desk.models import TicketGroupRow
from services.service_desk.usecases import sla_schedule, tickets
from services.service_desk.usecases.entries import add_entry
from services.service_desk.usecases.group_scope import group_member_ids
from shared.errors import Forbidden, PreconditionFailed, ValidationFailed


def _view(session: Session, group_id: str | None) -> domain.GroupView | None:
    row = session.get(TicketGroupRow, group_id) if group_id else None
    if row is None:
        return None
    return domain.GroupView(row.id, row.manager_id, group_member_ids(session, row.id))


def move_ticket_to_group(svc, ticket_id: str, data: dict[str, Any],
                         scope: Mapping[str, Any]) -> dict[str, Any]:
    """The ticket, in `data.group_id` now. 404: a ticket out of sight; 422 on `group_id`: no
    such group (groups have no inactive state: a deleted group is gone); 412: a closed ticket;
    403: the caller may not move it (domain/group_moves.py). The same group: nothing changes."""
    now = utcnow()
    with svc.db.begin() as session:
        row = tickets.find(session, ticket_id, scope, for_update=True)
        target = _view(session, data["group_id"])
        if target is None:
            raise ValidationFailed.for_fields({"group_id": ["no such ticket group"]})
        if not domain.movable(row.status):
            raise PreconditionFailed(f"a {row.status} ticket stays in its group",
                                     {"status": row.status})
        if row.group_id == target.id:
            return tickets.ticket_dict(row)
        source = _view(session, row.group_id)
        if not domain.may_move(scope, row.assignee_id, source, target):
            raise Forbidden("a ticket is moved by an admin, the manager of its group or of the "
                            "target group, a member of its group or its assignee",
                            {"group_id": target.id})
        previous_group, previous_assignee = row.group_id, row.assignee_id
        row.group_id = target.id
        row.assignee_id = domain.assignee_after(row.assignee_id, target)
        row.updated_at = now
        add_entry(session, row, "group_changed", now, from_value=previous_group,
                  to_value=target.id, body=data.get("reason"), public=False,
                  author_kind="agent", author_id=svc.context.actor)
        session.flush()
        result = tickets.ticket_dict(row)
        svc.events.record(session, "ticket_group_changed", {
            "ticket": result, "from": previous_group, "to": target.id,
            "unassigned_id": previous_assignee if row.assignee_id is None else None,
            "reason": data.get("reason")})
        sla_schedule.after_change(svc.events, session, row, result)
        return result
