"""Tasks (to-dos) as people work them: list, read, create, complete, reassign, snooze. Rules
create theirs through actions (local_actions.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from services.rules import clock as clock_module
from services.rules.domain import authority as authority_domain
from services.rules.domain import tasks as task_domain
from services.rules.models import DirectoryUser, Task
from services.rules.usecases.cached import directory
from services.rules.usecases.dumps import task_to_dict
from services.rules.usecases.support import Worker, new_id
from shared.errors import Forbidden, NotFound, ValidationFailed
from shared.paging import page_after, page_of


def _now() -> datetime:
    return clock_module.CLOCK.now()


def _scope_clause(scope: dict[str, Any]):
    if scope["all"]:
        return Task.id.is_not(None)
    return Task.assignee_id.in_(scope["owner_ids"] or ["-"])


def _visible_task(session: Session, task_id: str, scope: dict[str, Any]) -> Task:
    task = session.get(Task, task_id, with_for_update=True) if isinstance(
        task_id, str) else None
    if task is None or not (scope["all"] or task.assignee_id in scope["owner_ids"]):
        raise NotFound(f"task {task_id} not found", {"field": "task_id"})
    return task


def list_tasks(worker: Worker, filters: dict[str, Any], scope: dict[str, Any],
               page: dict[str, Any]) -> dict[str, Any]:
    now = _now()
    query = select(Task).where(_scope_clause(scope))
    for name in ("record_type", "record_id", "assignee_id", "status"):
        if name in filters:
            query = query.where(getattr(Task, name) == filters[name])
    if filters.get("records"):
        query = query.where(or_(*(
            and_(Task.record_type == r["record_type"], Task.record_id == r["record_id"])
            for r in filters["records"])))
    if filters.get("overdue") is True:
        query = query.where(
            Task.status == "open", Task.due_at <= now,
            or_(Task.snoozed_until.is_(None), Task.snoozed_until <= now))
    elif filters.get("overdue") is False:
        query = query.where(or_(Task.status != "open", Task.due_at.is_(None),
                                Task.due_at > now, Task.snoozed_until > now))
    query = page_after(query, Task.created_at, Task.id, page["cursor"], page["limit"])
    with worker.db.read() as session:
        rows = session.scalars(query).all()
    return page_of(rows, page["limit"], "created_at", lambda t: task_to_dict(t, now))


def get_task(worker: Worker, task_id: str, scope: dict[str, Any]) -> dict[str, Any]:
    with worker.db.read() as session:
        return task_to_dict(_visible_task(session, task_id, scope), _now())


def check_assignable(worker: Worker, assignee_id: str, scope: dict[str, Any],
                     principal: dict | None) -> None:
    """A rep gives tasks to themselves and their team's members, a manager within their
    teams, an admin to anyone (`principal`: user_id, role, team_id from the gateway; the
    teams come from the directory projection). Without a principal, the scope decides."""
    if principal is None:
        if not scope["all"] and assignee_id not in scope["owner_ids"]:
            raise Forbidden("you can give tasks to yourself or your team only",
                            {"field": "assignee_id"})
        return
    if not isinstance(principal, dict):
        raise ValidationFailed.for_fields({"principal": ["an object"]})
    if scope["all"] and principal.get("role") == "admin":
        return
    with worker.db.read() as session:
        allowed = authority_domain.assignable(
            principal, scope["owner_ids"], directory(session).users)
    if allowed is not None and assignee_id not in allowed:
        raise Forbidden("you can give tasks to yourself and the members of your team only",
                        {"field": "assignee_id"})


def create_task(worker: Worker, fields_: dict[str, Any], scope: dict[str, Any],
                principal: dict | None) -> dict[str, Any]:
    """A to-do created by a person."""
    check_assignable(worker, fields_["assignee_id"], scope, principal)
    now = _now()
    with worker.db.begin() as session:
        user = session.get(DirectoryUser, fields_["assignee_id"])
        task = Task(id=new_id(), status="open", created_at=now, updated_at=now,
                    team_id=user.team_id if user else None, **fields_)
        session.add(task)
        worker.events.record(session, "task_created", {"task": task_to_dict(task, now)})
        return task_to_dict(task, now)


def complete_task(worker: Worker, task_id: str, scope: dict[str, Any]) -> dict[str, Any]:
    now = _now()
    with worker.db.begin() as session:
        task = _visible_task(session, task_id, scope)
        if not task_domain.complete(task, worker.actor, now):
            return task_to_dict(task, now)
        worker.events.record(session, "task_completed", {"task": task_to_dict(task, now)})
        return task_to_dict(task, now)


def reassign_task(worker: Worker, task_id: str, assignee_id: str, scope: dict[str, Any],
                  principal: dict | None) -> dict[str, Any]:
    if not isinstance(assignee_id, str) or not assignee_id:
        raise ValidationFailed.for_fields({"assignee_id": ["a user id is required"]})
    check_assignable(worker, assignee_id, scope, principal)
    now = _now()
    with worker.db.begin() as session:
        task = _visible_task(session, task_id, scope)
        user = session.get(DirectoryUser, assignee_id) if task.status == "open" else None
        previous = task_domain.reassign(task, assignee_id, user.team_id if user else (
            task_domain.KEEP_TEAM), now)
        worker.events.record(session, "task_reassigned", {
            "task": task_to_dict(task, now), "previous_assignee_id": previous})
        return task_to_dict(task, now)


def snooze_task(worker: Worker, task_id: str, moment: datetime, scope: dict[str, Any]
                ) -> dict[str, Any]:
    now = _now()
    task_domain.check_snooze_until(moment, now)
    with worker.db.begin() as session:
        task = _visible_task(session, task_id, scope)
        task_domain.snooze(task, moment, now)
        worker.events.record(session, "task_snoozed", {"task": task_to_dict(task, now)})
        return task_to_dict(task, now)
