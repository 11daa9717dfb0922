"""In-app notifications as their recipients read them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from services.rules import clock as clock_module
from services.rules.models import Notification
from services.rules.usecases.dumps import notification_to_dict
from services.rules.usecases.support import Worker
from shared.errors import NotFound
from shared.paging import page_after, page_of


def list_notifications(worker: Worker, user_id: str, unread: bool | None,
                       page: dict[str, Any]) -> dict[str, Any]:
    query = select(Notification).where(Notification.user_id == user_id)
    if unread is True:
        query = query.where(Notification.read_at.is_(None))
    query = page_after(query, Notification.created_at, Notification.id, page["cursor"],
                       page["limit"])
    with worker.db.read() as session:
        rows = session.scalars(query).all()
    return page_of(rows, page["limit"], "created_at", notification_to_dict)


def mark_notification_read(worker: Worker, notification_id: str, user_id: str
                           ) -> dict[str, Any]:
    with worker.db.begin() as session:
        item = session.get(Notification, notification_id) if isinstance(
            notification_id, str) else None
        if item is None or item.user_id != user_id:
            raise NotFound(f"notification {notification_id} not found",
                           {"field": "notification_id"})
        if item.read_at is None:
            item.read_at = clock_module.CLOCK.now()
        return notification_to_dict(item)
