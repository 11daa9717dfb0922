"""The copies of the gateway's users and teams that the rules and contracts services keep hold
the newest state when events arrive out of order: events are taken concurrently, so a user's
creation (active) may be applied after their deactivation, which must not bring them back into
the rotation or among the approvers; likewise a team's older manager."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from services.contracts import models as contracts_models
from services.contracts.usecases.approvals import project_directory as contracts_projection
from services.rules import models as rules_models
from services.rules.usecases.projections import project_directory as rules_projection

EARLY, LATER, LATEST = ("2026-12-03T08:00:00.500000+00:00", "2026-12-03T08:00:01.000000+00:00",
                        "2026-12-03T08:00:02.000000+00:00")
PROJECTIONS = {
    "rules": (rules_models.metadata, rules_projection, rules_models.DirectoryUser,
              rules_models.DirectoryTeam),
    "contracts": (contracts_models.metadata, contracts_projection,
                  contracts_models.ApprovalDirectoryUser, contracts_models.ApprovalDirectoryTeam),
}


def _user(active: bool) -> dict[str, Any]:
    return {"user": {"id": "u-gone", "username": "gone", "display_name": "离职员工",
                     "role": "sales_rep", "team_id": "t-east", "active": active}}


def _team(manager_id: str) -> dict[str, Any]:
    return {"team": {"id": "t-east", "name": "华东销售部", "manager_id": manager_id}}


@pytest.mark.parametrize("service", sorted(PROJECTIONS))
def test_an_older_event_arriving_late_changes_nothing(service: str, tmp_path) -> None:
    metadata, project, user_table, team_table = PROJECTIONS[service]
    engine = create_engine(f"sqlite:///{tmp_path}/{service}.db")
    metadata.create_all(engine)

    def apply(event_type: str, data: dict[str, Any], occurred_at: str) -> None:
        with Session(engine) as session, session.begin():
            project(session, event_type, data, occurred_at)

    def read(table: type, key: str, attribute: str) -> Any:
        with Session(engine) as session:
            return getattr(session.get(table, key), attribute)

    apply("user_changed", _user(False), LATER)
    apply("user_changed", _user(True), EARLY)  # the creation, taken last
    assert read(user_table, "u-gone", "active") is False
    apply("user_changed", _user(True), LATEST)  # reactivated later: applies
    assert read(user_table, "u-gone", "active") is True

    apply("team_changed", _team("u-new"), LATER)
    apply("team_changed", _team("u-old"), EARLY)
    assert read(team_table, "t-east", "manager_id") == "u-new"
    engine.dispose()

