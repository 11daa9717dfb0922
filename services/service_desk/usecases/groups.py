"""Groups, routing rules, routing and assignment (issue 17, groups part). `svc` is the nameko
service (db, events, context).

Why the service desk chooses the member, not the rules service: the choice depends on the
group's members, their skills, availability and capacity and their open tickets right now,
all of which this service owns; choosing here reads them, moves the group's rotation pointer
and assigns in one transaction (recorded with the rules' `command_id`), so two tickets routed
at once never both go to the member who was least loaded a moment ago, and a redelivered
event or a retried call changes nothing. The rules service triggers it (its shipped rule on
`ticket_created` calls `route_ticket`), retries it and keeps its audit.

`principal` is the caller (`{user_id, role}`, from the gateway; None: a trusted internal
call). Admins write everything; a manager creates groups (they manage them) and edits the
groups they manage and the routing rules that send tickets to those; everybody reads.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from services.service_desk.clock import now as utcnow  # tickets are stamped on the desk clock
from services.service_desk.domain import routing
from services.service_desk.models import (
    TicketFormRow,
    TicketGroupMemberRow,
    TicketGroupRow,
    TicketRoutingRuleRow,
    TicketRow,
    inbox,
)
from services.service_desk.usecases import tickets
from shared.errors import Conflict, Forbidden, NotFound, ValidationFailed
from shared.inbox import first_command

WRITERS = ("admin", "manager")


def _is_admin(principal: Mapping[str, Any] | None) -> bool:
    return principal is None or principal.get("role") == "admin"


def _require_writer(principal: Mapping[str, Any] | None) -> None:
    if principal is not None and principal.get("role") not in WRITERS:
        raise Forbidden("groups and routing rules are managed by admins and managers")


def _require_group_manager(principal: Mapping[str, Any] | None, group: TicketGroupRow) -> None:
    _require_writer(principal)
    if not _is_admin(principal) and group.manager_id != principal.get("user_id"):
        raise Forbidden("a manager changes the groups they manage only",
                        {"group_id": group.id})


# -- groups ----


def _open_loads(session: Session, user_ids: list[str]) -> dict[str, int]:
    if not user_ids:
        return {}
    rows = session.execute(
        select(TicketRow.assignee_id, func.count())
        .where(TicketRow.assignee_id.in_(user_ids),
               TicketRow.status.in_(routing.OPEN_STATUSES))
        .group_by(TicketRow.assignee_id))
    return dict(rows.all())


def _members(session: Session, group_id: str) -> list[TicketGroupMemberRow]:
    return list(session.scalars(select(TicketGroupMemberRow)
                                .where(TicketGroupMemberRow.group_id == group_id)
                                .order_by(TicketGroupMemberRow.user_id)))


def group_dict(session: Session, row: TicketGroupRow) -> dict[str, Any]:
    members = _members(session, row.id)
    loads = _open_loads(session, [m.user_id for m in members])
    return {"id": row.id, "name": row.name, "description": row.description,
            "manager_id": row.manager_id, "strategy": row.strategy,
            "skills_matching": row.skills_matching, "is_default": row.is_default,
            "members": [{"user_id": m.user_id, "skills": dict(m.skills or {}),
                         "capacity": m.capacity, "available": m.available,
                         "open_tickets": loads.get(m.user_id, 0)} for m in members],
            "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat()}


def _get_group(session: Session, group_id: str, for_update: bool = False) -> TicketGroupRow:
    query = select(TicketGroupRow).where(TicketGroupRow.id == group_id)
    if for_update:
        query = query.with_for_update()
    row = session.scalars(query).first()
    if row is None:
        raise NotFound("ticket group not found")
    return row


def _check_name(session: Session, name: str, own_id: str | None) -> None:
    existing = session.scalar(select(TicketGroupRow.id).where(TicketGroupRow.name == name))
    if existing is not None and existing != own_id:
        raise Conflict("a ticket group of that name exists", {"existing_id": existing})


def _set_members(session: Session, group_id: str, members: list[dict[str, Any]]) -> None:
    seen: set[str] = set()
    for index, member in enumerate(members):
        if member["user_id"] in seen:
            raise ValidationFailed.for_fields(
                {"members": {str(index): {"user_id": ["listed twice"]}}})
        seen.add(member["user_id"])
    session.execute(delete(TicketGroupMemberRow).where(TicketGroupMemberRow.group_id == group_id))
    for member in members:
        # an update loads partially: a member's fields left out take their defaults here
        skills = member.get("skills") or {}
        session.add(TicketGroupMemberRow(
            group_id=group_id, user_id=member["user_id"], capacity=member.get("capacity"),
            available=member.get("available", True),
            skills={kind: list(dict.fromkeys(skills.get(kind) or []))
                    for kind in routing.SKILL_KINDS}))


def _make_default(session: Session, group_id: str) -> None:
    session.execute(update(TicketGroupRow).where(TicketGroupRow.id != group_id,
                                                 TicketGroupRow.is_default.is_(True))
                    .values(is_default=False))


def create_group(svc, data: dict[str, Any], principal: Mapping[str, Any] | None
                 ) -> dict[str, Any]:
    _require_writer(principal)
    if not _is_admin(principal):
        if data["manager_id"] not in (None, principal.get("user_id")):
            raise Forbidden("a manager creates groups they manage",
                            {"manager_id": data["manager_id"]})
        data["manager_id"] = principal.get("user_id")
        if data["is_default"]:
            raise Forbidden("only an admin sets the default group", {"field": "is_default"})
    now = utcnow()
    members = data.pop("members")
    with svc.db.begin() as session:
        _check_name(session, data["name"], None)
        row = TicketGroupRow(id=str(uuid.uuid4()), created_at=now, updated_at=now, **data)
        session.add(row)
        session.flush()
        _set_members(session, row.id, members)
        if row.is_default:
            _make_default(session, row.id)
        session.flush()
        return group_dict(session, row)


def update_group(svc, group_id: str, data: dict[str, Any],
                 principal: Mapping[str, Any] | None) -> dict[str, Any]:
    with svc.db.begin() as session:
        row = _get_group(session, group_id, for_update=True)
        _require_group_manager(principal, row)
        if not _is_admin(principal) and ("is_default" in data or (
                "manager_id" in data and data["manager_id"] != row.manager_id)):
            raise Forbidden("only an admin moves a group to another manager or sets the "
                            "default group", {"group_id": group_id})
        if "name" in data:
            _check_name(session, data["name"], row.id)
        for name in ("name", "description", "manager_id", "strategy", "skills_matching",
                     "is_default"):
            if name in data:
                setattr(row, name, data[name])
        if "members" in data:
            _set_members(session, row.id, data["members"])
        if data.get("is_default"):
            _make_default(session, row.id)
        row.updated_at = utcnow()
        session.flush()
        return group_dict(session, row)


def delete_group(svc, group_id: str, principal: Mapping[str, Any] | None) -> None:
    with svc.db.begin() as session:
        row = _get_group(session, group_id, for_update=True)
        _require_group_manager(principal, row)
        for table, column, what in (
                (TicketRoutingRuleRow, TicketRoutingRuleRow.group_id, "routing rules"),
                (TicketFormRow, TicketFormRow.default_group_id, "web forms"),
                (TicketRow, TicketRow.group_id, "tickets")):
            if session.scalar(select(func.count()).select_from(table).where(column == row.id)):
                raise Conflict(f"the group still has {what}", {"group_id": group_id})
        session.execute(delete(TicketGroupMemberRow)
                        .where(TicketGroupMemberRow.group_id == row.id))
        session.delete(row)


def get_group(svc, group_id: str) -> dict[str, Any]:
    with svc.db.read() as session:
        return group_dict(session, _get_group(session, group_id))


def list_groups(svc) -> list[dict[str, Any]]:
    with svc.db.read() as session:
        rows = session.scalars(select(TicketGroupRow).order_by(TicketGroupRow.name)).all()
        return [group_dict(session, row) for row in rows]


# -- routing rules ----


def rule_dict(row: TicketRoutingRuleRow) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "position": row.position, "group_id": row.group_id,
            "conditions": {k: list(v) for k, v in (row.conditions or {}).items() if v},
            "enabled": row.enabled, "created_at": row.created_at.isoformat(),
            "updated_at": row.updated_at.isoformat()}


def _get_rule(session: Session, rule_id: str) -> TicketRoutingRuleRow:
    row = session.get(TicketRoutingRuleRow, rule_id)
    if row is None:
        raise NotFound("routing rule not found")
    return row


def _group_for_rule(session: Session, group_id: str,
                    principal: Mapping[str, Any] | None) -> TicketGroupRow:
    group = session.get(TicketGroupRow, group_id)
    if group is None:
        raise ValidationFailed.for_fields({"group_id": ["no such ticket group"]})
    _require_group_manager(principal, group)
    return group


def _check_rule_name(session: Session, name: str, own_id: str | None) -> None:
    existing = session.scalar(select(TicketRoutingRuleRow.id)
                              .where(TicketRoutingRuleRow.name == name))
    if existing is not None and existing != own_id:
        raise Conflict("a routing rule of that name exists", {"existing_id": existing})


def create_rule(svc, data: dict[str, Any], principal: Mapping[str, Any] | None
                ) -> dict[str, Any]:
    _require_writer(principal)
    now = utcnow()
    with svc.db.begin() as session:
        _group_for_rule(session, data["group_id"], principal)
        _check_rule_name(session, data["name"], None)
        last = session.scalar(select(func.max(TicketRoutingRuleRow.position)))
        row = TicketRoutingRuleRow(id=str(uuid.uuid4()), position=(last or 0) + 1,
                                   created_at=now, updated_at=now, **data)
        session.add(row)
        session.flush()
        return rule_dict(row)


def update_rule(svc, rule_id: str, data: dict[str, Any],
                principal: Mapping[str, Any] | None) -> dict[str, Any]:
    _require_writer(principal)
    with svc.db.begin() as session:
        row = _get_rule(session, rule_id)
        _group_for_rule(session, row.group_id, principal)
        if "group_id" in data:
            _group_for_rule(session, data["group_id"], principal)
        if "name" in data:
            _check_rule_name(session, data["name"], row.id)
        for name in ("name", "group_id", "conditions", "enabled"):
            if name in data:
                setattr(row, name, data[name])
        row.updated_at = utcnow()
        session.flush()
        return rule_dict(row)


def delete_rule(svc, rule_id: str, principal: Mapping[str, Any] | None) -> None:
    _require_writer(principal)
    with svc.db.begin() as session:
        row = _get_rule(session, rule_id)
        _group_for_rule(session, row.group_id, principal)
        session.delete(row)


def list_rules(svc) -> list[dict[str, Any]]:
    with svc.db.read() as session:
        rows = session.scalars(select(TicketRoutingRuleRow)
                               .order_by(TicketRoutingRuleRow.position)).all()
        return [rule_dict(row) for row in rows]


def get_rule(svc, rule_id: str) -> dict[str, Any]:
    with svc.db.read() as session:
        return rule_dict(_get_rule(session, rule_id))


def reorder_rules(svc, rule_ids: list[str], principal: Mapping[str, Any] | None
                  ) -> list[dict[str, Any]]:
    """The whole order at once (admins: it decides every group's share)."""
    if not _is_admin(principal):
        raise Forbidden("only an admin reorders the routing rules")
    with svc.db.begin() as session:
        rows = {row.id: row for row in session.scalars(select(TicketRoutingRuleRow))}
        if sorted(rule_ids) != sorted(rows) or len(set(rule_ids)) != len(rule_ids):
            raise ValidationFailed.for_fields(
                {"rule_ids": ["every routing rule's id exactly once"]})
        for position, rule_id in enumerate(rule_ids, start=1):
            rows[rule_id].position = position
        session.flush()
        return [rule_dict(rows[rule_id]) for rule_id in rule_ids]


# -- routing and assignment (rule commands) ----


def _choose_group(session: Session, ticket: dict[str, Any]) -> routing.GroupChoice:
    rules = [routing.RoutingRule(r.id, r.group_id, r.conditions or {}, r.enabled)
             for r in session.scalars(select(TicketRoutingRuleRow)
                                      .order_by(TicketRoutingRuleRow.position))]
    default = session.scalar(select(TicketGroupRow.id).where(TicketGroupRow.is_default.is_(True)))
    return routing.choose_group(rules, ticket, default)


def _choose_member(session: Session, group: TicketGroupRow, ticket: dict[str, Any],
                   scope: Mapping[str, Any]) -> routing.MemberChoice:
    members = _members(session, group.id)
    if not scope.get("all"):  # a team rule assigns within the manager's teams only
        members = [m for m in members if m.user_id in scope.get("owner_ids", ())]
    loads = _open_loads(session, [m.user_id for m in members])
    candidates = [routing.Candidate(m.user_id, m.available, m.capacity,
                                    loads.get(m.user_id, 0), m.skills or {})
                  for m in members]
    return routing.choose_member(candidates, group.strategy, group.last_assignee_id, ticket,
                                 group.skills_matching)


def route_ticket(svc, ticket_id: str, scope: Mapping[str, Any],
                 command_id: str | None) -> dict[str, Any]:
    """Give the ticket a group (if it has none: the first matching routing rule's, else the
    default group) and, if it is unassigned and open, a member of the group (the group's
    strategy). With a `command_id` already used, nothing happens: the ticket as it is now."""
    with svc.db.begin() as session:
        if command_id is not None and not first_command(session, inbox, command_id,
                                                        "route_ticket", ticket_id):
            return {**tickets.ticket_dict(tickets.find(session, ticket_id, scope)),
                    "routing": None}
        row = tickets.find(session, ticket_id, scope, for_update=True)
        snapshot = tickets.ticket_dict(row)
        outcome: dict[str, Any] = {"group_id": row.group_id, "group_reason": "already set",
                                   "rule_id": None, "assignee_id": row.assignee_id,
                                   "assignee_reason": "already assigned", "skipped": {}}
        changed = False
        if row.group_id is None:
            choice = _choose_group(session, snapshot)
            outcome.update(group_id=choice.group_id, group_reason=choice.reason,
                           rule_id=choice.rule_id)
            if choice.group_id is not None:
                row.group_id = choice.group_id
                changed = True
        if row.assignee_id is None and row.group_id is not None \
                and row.status in routing.OPEN_STATUSES:
            group = _get_group(session, row.group_id, for_update=True)  # the rotation's lock
            member = _choose_member(session, group, snapshot, scope)
            outcome.update(assignee_id=member.user_id, assignee_reason=member.reason,
                           skipped=member.skipped)
            if member.user_id is not None:
                row.assignee_id = member.user_id
                group.last_assignee_id = member.user_id
                changed = True
        if changed:
            row.updated_at = utcnow()
            session.flush()
            svc.events.record(session, "ticket_routed", {
                "ticket": tickets.ticket_dict(row), "group_id": row.group_id,
                "rule_id": outcome["rule_id"], "assignee_id": row.assignee_id,
                "reason": f"{outcome['group_reason']}; {outcome['assignee_reason']}"})
        return {**tickets.ticket_dict(row), "routing": outcome}


def assign_ticket(svc, ticket_id: str, assignee_id: str, scope: Mapping[str, Any],
                  command_id: str | None) -> dict[str, Any]:
    """Assign the ticket (within the caller's scope, or to a member of its group for the
    group's members). With a `command_id` already used, nothing happens."""
    with svc.db.begin() as session:
        if command_id is not None and not first_command(session, inbox, command_id,
                                                        "assign_ticket", ticket_id):
            return tickets.ticket_dict(tickets.find(session, ticket_id, scope))
        row = tickets.find(session, ticket_id, scope, for_update=True)
        if assignee_id == row.assignee_id:
            return tickets.ticket_dict(row)
        tickets.check_assignee(assignee_id, scope,
                                tickets.group_members_for(session, row, scope))
        previous = row.assignee_id
        row.assignee_id = assignee_id
        row.updated_at = utcnow()
        session.flush()
        result = tickets.ticket_dict(row)
        svc.events.record(session, "ticket_assigned",
                          {"ticket": result, "from": previous, "to": assignee_id})
        return result
