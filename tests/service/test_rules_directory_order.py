"""The rules service's copy of the gateway's users keeps the newest state when events arrive
out of order: they are taken concurrently, so a user's creation (active) may be applied after
their deactivation, which then must not bring them back into the rotation."""

from __future__ import annotations

from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from services.rules.models import DirectoryUser, metadata
from services.rules.usecases.projections import project_directory


def _user(active: bool) -> dict:
    return {"user": {"id": "u-gone", "username": "gone", "display_name": "离职员工",
                     "role": "sales_rep", "team_id": "t-east", "active": active}}


def test_an_older_user_event_arriving_late_changes_nothing(tmp_path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/rules.db")
    metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        project_directory(session, "user_changed", _user(False), "2026-12-03T08:00:01.000000+00:00")
        project_directory(session, "user_changed", _user(True), "2026-12-03T08:00:00.500000+00:00")
    with Session(engine) as session:
        row = session.get(DirectoryUser, "u-gone")
        assert (row.active, row.changed_at) == (False, "2026-12-03T08:00:01.000000+00:00")
    with Session(engine) as session, session.begin():  # a newer one applies
        project_directory(session, "user_changed", _user(True), "2026-12-03T08:00:02.000000+00:00")
    with Session(engine) as session:
        assert session.get(DirectoryUser, "u-gone").active is True
    engine.dispose()
