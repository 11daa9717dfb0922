"""Teams and their managers: created and changed by admins, listed to every user."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.gateway.app import current_principal, gateway, require_role
from services.gateway.http_schemas import PageQuerySchema
from services.gateway.identity.models import Team, User
from services.gateway.identity.resources.blueprint import (
    blp,
    decode_cursor,
    not_found,
    page,
    team_dict,
)
from services.gateway.identity.schemas import (
    TeamCreateSchema,
    TeamPageSchema,
    TeamPatchSchema,
    TeamSchema,
)
from services.gateway.problems import PROBLEM_BASE, ApiProblem, validation_problem


@blp.route("/teams")
class Teams(MethodView):
    @blp.arguments(TeamCreateSchema())
    @blp.response(201, TeamSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Create a team, optionally with its manager (admin)."""
        principal = require_role("admin")
        gw = gateway()
        events = gw.directory.recorder(principal.user_id)
        try:
            with gw.store.begin() as session:
                manager_id = data.get("manager_id")
                _check_manager(session, manager_id)
                team = Team(name=data["name"], manager_id=manager_id)
                session.add(team)
                session.flush()
                gw.directory.record_team(events, session, team)
                body = team_dict(session, team)
        except IntegrityError:
            raise _team_name_taken() from None
        gw.directory.publish(events)
        gw.authenticator.invalidate()
        return body, 201, {"Location": f"/teams/{body['id']}"}

    @blp.arguments(PageQuerySchema(), location="query")
    @blp.response(200, TeamPageSchema)
    def get(self, query: dict[str, Any]) -> Any:
        """Teams by name with their managers and members, one page per cursor."""
        current_principal()
        after = decode_cursor(query.get("cursor"))
        limit = query["limit"]
        with gateway().store.read() as session:
            statement = select(Team).order_by(Team.name).limit(limit + 1)
            if after is not None:
                statement = statement.where(Team.name > after)
            rows, next_cursor = page(list(session.scalars(statement)), limit,
                                      lambda team: team.name)
            return {"items": [team_dict(session, team) for team in rows],
                    "next_cursor": next_cursor}


@blp.route("/teams/<string:team_id>", methods=["PATCH"])
@blp.arguments(TeamPatchSchema())
@blp.response(200, TeamSchema)
def patch_team(data: dict[str, Any], team_id: str) -> Any:
    """Rename a team or change its manager (admin)."""
    principal = require_role("admin")
    gw = gateway()
    events = gw.directory.recorder(principal.user_id)
    try:
        with gw.store.begin() as session:
            team = session.get(Team, team_id)
            if team is None:
                raise not_found("Team")
            if "manager_id" in data:
                _check_manager(session, data["manager_id"])
            for name, value in data.items():
                setattr(team, name, value)
            session.flush()
            gw.directory.record_team(events, session, team)
            body = team_dict(session, team)
    except IntegrityError:
        raise _team_name_taken() from None
    gw.directory.publish(events)
    gw.authenticator.invalidate()
    return body


def _check_manager(session: Session, manager_id: str | None) -> None:
    if manager_id is None:
        return
    manager = session.get(User, manager_id)
    if manager is None or not manager.active or manager.role not in ("manager", "admin"):
        raise validation_problem({"manager_id": ["Must be an active user with the manager role."]})


def _team_name_taken() -> ApiProblem:
    return ApiProblem(409, "A team with this name exists.", type_=PROBLEM_BASE + "conflict",
                      errors={"name": ["Already exists."]})
