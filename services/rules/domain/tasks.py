"""A task's state transitions: each checks that the change is allowed, then makes it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from shared.errors import Conflict, ValidationFailed


class TaskState(Protocol):
    status: str
    assignee_id: str | None
    team_id: str | None
    snoozed_until: datetime | None
    completed_at: datetime | None
    completed_by: str | None
    updated_at: datetime


def complete(task: TaskState, by: str | None, now: datetime) -> bool:
    """Done (by whom, when); False when it was done already (nothing changes)."""
    if task.status == "done":
        return False
    task.status, task.completed_at = "done", now
    task.completed_by, task.updated_at = by, now
    return True


KEEP_TEAM: Any = object()  # the new assignee is not in the directory: the task keeps its team


def reassign(task: TaskState, assignee_id: str, team_id: Any, now: datetime) -> str | None:
    """To another assignee (an open task only); the previous assignee. `team_id`: the new
    assignee's team, or KEEP_TEAM."""
    if task.status != "open":
        raise Conflict("a completed task cannot be reassigned", {"field": "status"})
    previous = task.assignee_id
    task.assignee_id, task.updated_at = assignee_id, now
    if team_id is not KEEP_TEAM:
        task.team_id = team_id
    return previous


def check_snooze_until(until: datetime, now: datetime) -> None:
    if until <= now:
        raise ValidationFailed.for_fields({"until": ["must be in the future"]})


def snooze(task: TaskState, until: datetime, now: datetime) -> None:
    """Not overdue until `until` (an open task only)."""
    if task.status != "open":
        raise Conflict("a completed task cannot be snoozed", {"field": "status"})
    task.snoozed_until, task.updated_at = until, now
