"""Moving a ticket to another group by hand (a command, not a field): who may, and what
happens to the assignee. Pure Python: usecases/group_moves.py loads the rows.

Who may move a ticket (as in a mature help desk, where the people working a queue pass a ticket
on to the queue that can solve it, and a queue's lead pulls one in):
- an admin;
- the manager of the ticket's current group (sending it away) or of the target group (taking
  it in);
- a member of the ticket's current group, and the ticket's assignee (they work it).
Anybody else who sees the ticket (a manager of the assignee's team, say) is refused (403):
they may reassign it within their scope, but the queue it sits in is the groups' business.

The assignee stays when they are a member (or the manager) of the target group; otherwise the
ticket becomes unassigned in its new group, where the group's members pick it up or hand it
on (`assign_ticket`), so it never sits with someone who cannot see the group's queue.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

CLOSED_STATUSES = ("closed",)


@dataclass(frozen=True)
class GroupView:
    """What the rule reads of a group: its manager and members."""

    id: str
    manager_id: str | None
    member_ids: frozenset[str]


def may_move(scope: Mapping[str, Any], assignee_id: str | None, source: GroupView | None,
             target: GroupView) -> bool:
    if scope.get("all"):
        return True
    user_id = scope.get("user_id")
    if not user_id:
        return False
    if user_id == target.manager_id or user_id == assignee_id:
        return True
    return source is not None and (user_id == source.manager_id or user_id in source.member_ids)


def assignee_after(assignee_id: str | None, target: GroupView) -> str | None:
    """The assignee kept when the target group is theirs, else None (unassigned)."""
    if assignee_id is None:
        return None
    if assignee_id in target.member_ids or assignee_id == target.manager_id:
        return assignee_id
    return None


def movable(status: str, closed: Collection[str] = CLOSED_STATUSES) -> bool:
    return status not in closed
