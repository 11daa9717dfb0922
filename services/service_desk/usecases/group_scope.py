"""Which groups' tickets a caller sees (issue 17, groups part): the groups they are a member
or the manager of. The ticket use cases add these to the gateway's owner scope: a group's
tickets are visible to its members and manager whoever they are assigned to, and an
unassigned ticket of a group is visible to them only (not to the whole pool)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, union
from sqlalchemy.orm import Session

from services.service_desk.models import TicketGroupMemberRow, TicketGroupRow


def viewer_group_ids(session: Session, scope: Mapping[str, Any]) -> frozenset[str]:
    user_id = scope.get("user_id")
    if scope.get("all") or not user_id:
        return frozenset()
    query = union(
        select(TicketGroupMemberRow.group_id).where(TicketGroupMemberRow.user_id == user_id),
        select(TicketGroupRow.id).where(TicketGroupRow.manager_id == user_id),
    )
    return frozenset(session.execute(query).scalars())


def group_member_ids(session: Session, group_id: str) -> frozenset[str]:
    return frozenset(session.scalars(select(TicketGroupMemberRow.user_id)
                                     .where(TicketGroupMemberRow.group_id == group_id)))
