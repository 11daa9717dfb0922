"""Who an action reaches: a notification's recipients, a task's assignee, the owner's manager
chain, as the directory stands now."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.rules.models import Task
from services.rules.usecases.cached import directory, effective_authority


def manager_chain(session: Session, user_id: str | None, levels: int) -> list[str]:
    """The owner's manager, that manager's manager, ... (`levels` at most, no cycles)."""
    chain: list[str] = []
    seen = {user_id}
    people = directory(session)
    current = people.users.get(user_id or "")
    while current is not None and len(chain) < levels:
        team = people.teams.get(current.team_id or "")
        manager_id = team.manager_id if team else None
        if not manager_id or manager_id in seen:
            break
        chain.append(manager_id)
        seen.add(manager_id)
        current = people.users.get(manager_id)
    return chain


def recipients(session: Session, spec: list[str], context: dict[str, Any]) -> list[str]:
    record = context.get("record") or {}
    owner_id = record.get("owner_id")
    found: list[str] = []
    for item in spec:
        if item == "owner" and owner_id:
            found.append(owner_id)
        elif item == "owner_manager":
            found.extend(manager_chain(session, owner_id, 1))
        elif item == "manager_chain":
            found.extend(manager_chain(session, owner_id, 5))
        elif item == "actor" and (context.get("event") or {}).get("actor"):
            found.append(context["event"]["actor"])
        elif item.startswith("user:"):
            found.append(item[5:])
        elif item.startswith("field:"):  # the user id(s) a field of the record holds
            value = record.get(item[6:])
            found.extend(v for v in (value if isinstance(value, list) else [value])
                         if isinstance(v, str) and v)
        elif item.startswith("role:"):
            found.extend(sorted(u.id for u in directory(session).users.values()
                                if u.role == item[5:] and u.active))
        elif item.startswith(("team:", "team_manager:")):
            name = item.split(":", 1)[1]
            team = directory(session).team(name)
            if team is None:
                continue
            if item.startswith("team_manager:"):
                if team.manager_id:
                    found.append(team.manager_id)
            else:
                found.extend(sorted(u.id for u in directory(session).users.values()
                                    if u.team_id == team.id and u.active))
    return list(dict.fromkeys(found))


def task_assignee(session: Session, spec: str, context: dict[str, Any]) -> str | None:
    """`owner`, `owner_manager`, `user:<id>`; among a role's or a team's members (within the
    rule's authority), the one with the fewest open tasks."""
    record = context.get("record") or {}
    if spec == "owner":
        return record.get("owner_id")
    if spec == "owner_manager":
        chain = manager_chain(session, record.get("owner_id"), 1)
        return chain[0] if chain else None
    if spec.startswith("user:"):
        return spec[5:]
    candidates, _ = effective_authority(session, context.get("authority")).within(
        recipients(session, [spec], context), directory(session).users)
    if not candidates:
        return None
    open_tasks = dict(session.execute(
        select(Task.assignee_id, func.count()).where(
            Task.assignee_id.in_(candidates), Task.status == "open")
        .group_by(Task.assignee_id)).all())
    return min(sorted(candidates), key=lambda uid: open_tasks.get(uid, 0))
