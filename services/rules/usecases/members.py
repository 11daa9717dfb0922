"""Assignment settings of the directory's members: capacity and out of office."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from services.rules import clock as clock_module
from services.rules.models import DirectoryUser, MemberSetting, RecordSnapshot
from services.rules.usecases.support import Worker, iso
from shared.errors import NotFound


def set_member_settings(worker: Worker, user_id: str, fields_: dict[str, Any]
                        ) -> dict[str, Any]:
    with worker.db.begin() as session:
        if session.get(DirectoryUser, user_id) is None:
            raise NotFound(f"user {user_id} is not in the directory", {"field": "user_id"})
        row = session.get(MemberSetting, user_id) or MemberSetting(user_id=user_id)
        for name, value in fields_.items():
            setattr(row, name, value)
        row.updated_at = clock_module.CLOCK.now()
        session.merge(row)
    return get_member_settings(worker, user_id)


def get_member_settings(worker: Worker, user_id: str) -> dict[str, Any]:
    with worker.db.read() as session:
        user = session.get(DirectoryUser, user_id) if isinstance(user_id, str) else None
        if user is None:
            raise NotFound(f"user {user_id} is not in the directory", {"field": "user_id"})
        row = session.get(MemberSetting, user_id)
        open_leads = session.scalar(select(func.count()).select_from(RecordSnapshot).where(
            RecordSnapshot.record_type == "lead", RecordSnapshot.is_open.is_(True),
            RecordSnapshot.owner_id == user_id))
        return {"user_id": user_id, "username": user.username, "team_id": user.team_id,
                "active": user.active, "capacity": row.capacity if row else None,
                "out_of_office_until": iso(row.out_of_office_until) if row else None,
                "open_leads": open_leads}
