"""Users: created and changed by admins, listed to admins and to managers (their teams)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask.views import MethodView
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.gateway.app import current_principal, gateway, require_role
from services.gateway.http_schemas import PageQuerySchema
from services.gateway.identity.models import Team, User
from services.gateway.identity.resources.auth import hash_new_password, revoke_tokens
from services.gateway.identity.resources.blueprint import (
    blp,
    decode_cursor,
    not_found,
    page,
    user_dict,
)
from services.gateway.identity.schemas import (
    UserCreateSchema,
    UserPageSchema,
    UserPatchSchema,
    UserSchema,
)
from services.gateway.problems import PROBLEM_BASE, ApiProblem, validation_problem


def with_locks(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The users' sign-in lockouts (`locked`, `locked_until`), read in one query."""
    locked = gateway().throttle.locked_accounts([body["username"] for body in bodies])
    for body in bodies:
        until = locked.get(body["username"])
        body["locked"] = until is not None
        body["locked_until"] = datetime.fromtimestamp(until, UTC) if until is not None else None
    return bodies


def _check_team(session: Session, team_id: str | None) -> None:
    if team_id is not None and session.get(Team, team_id) is None:
        raise validation_problem({"team_id": ["No such team."]})


@blp.route("/users")
class Users(MethodView):
    @blp.arguments(UserCreateSchema())
    @blp.response(201, UserSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Create a user (admin)."""
        principal = require_role("admin")
        password = data.pop("password", None)
        gw = gateway()
        password_hash = hash_new_password(password) if password else None
        events = gw.directory.recorder(principal.user_id)
        with gw.store.begin() as session:
            _check_team(session, data.get("team_id"))
            if session.scalar(select(User.id).where(User.username == data["username"])):
                raise ApiProblem(409, "This username is taken.", type_=PROBLEM_BASE + "conflict",
                                 errors={"username": ["Already exists."]})
            user = User(
                **data,
                active=True,
                password_hash=password_hash,
            )
            session.add(user)
            session.flush()
            gw.directory.record_user(events, session, user)
            body = user_dict(user)
        gw.directory.publish(events)
        return body, 201, {"Location": f"/users/{body['id']}"}

    @blp.arguments(PageQuerySchema(), location="query")
    @blp.response(200, UserPageSchema)
    def get(self, query: dict[str, Any]) -> Any:
        """Users by username, one page per cursor: every user for admins, their teams and
        themselves for managers."""
        principal = require_role("admin", "manager")
        after = decode_cursor(query.get("cursor"))
        limit = query["limit"]
        with gateway().store.read() as session:
            statement = select(User).order_by(User.username).limit(limit + 1)
            if after is not None:
                statement = statement.where(User.username > after)
            if principal.role == "manager":
                managed = select(Team.id).where(Team.manager_id == principal.user_id)
                statement = statement.where(
                    (User.team_id.in_(managed)) | (User.id == principal.user_id)
                )
            rows, next_cursor = page(list(session.scalars(statement)), limit,
                                      lambda user: user.username)
            items = [user_dict(user) for user in rows]
        return {"items": with_locks(items), "next_cursor": next_cursor}


@blp.route("/users/<string:user_id>")
class UserById(MethodView):
    @blp.response(200, UserSchema)
    def get(self, user_id: str) -> Any:
        """One user (admin, their manager, or themselves)."""
        principal = current_principal()
        with gateway().store.read() as session:
            user = session.get(User, user_id)
            visible = user is not None and (
                principal.role == "admin"
                or user.id == principal.user_id
                or (principal.role == "manager" and user.id in principal.managed_member_ids)
            )
            if not visible or user is None:
                raise not_found("User")
            body = user_dict(user)
        return with_locks([body])[0]

    @blp.arguments(UserPatchSchema())
    @blp.response(200, UserSchema)
    def patch(self, data: dict[str, Any], user_id: str) -> Any:
        """Change role, team, active flag, name, email or password (admin). A new password or
        a deactivation revokes the user's tokens (API keys stop with the deactivation)."""
        principal = require_role("admin")
        gw = gateway()
        password = data.pop("password", None)
        password_hash = hash_new_password(password) if password else None
        events = gw.directory.recorder(principal.user_id)
        with gw.store.begin() as session:
            user = session.get(User, user_id)
            if user is None:
                raise not_found("User")
            if "team_id" in data:
                _check_team(session, data["team_id"])
            if user.id == principal.user_id and (
                data.get("active") is False or data.get("role", "admin") != "admin"
            ):
                raise validation_problem(
                    {"role": ["Admins cannot demote or deactivate themselves."]}
                )
            if password_hash is not None:
                user.password_hash = password_hash
                user.password_changed_at = datetime.now(UTC)
                revoke_tokens(user)
            if data.get("active") is False and user.active:
                revoke_tokens(user)  # reactivating later must not revive old tokens
            for name, value in data.items():
                setattr(user, name, value)
            session.flush()
            gw.directory.record_user(events, session, user)
            body = user_dict(user)
        gw.directory.publish(events)
        # Role, team, active flag and token generation feed authentication and authorisation:
        # forget cached principals now (other workers within CRM_AUTH_CACHE_SECONDS).
        gw.authenticator.invalidate()
        return body
