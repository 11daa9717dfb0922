"""Login tokens, the caller, users, teams and API keys."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import RAISE
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from services.gateway.app import current_principal, gateway, require_role
from services.gateway.auth import Principal, generate_api_key
from services.gateway.directory import user_fields
from services.gateway.models import ApiKey, Team, User
from services.gateway.problems import PROBLEM_BASE, ApiProblem, validation_problem
from services.gateway.schemas import (
    ApiKeyCreatedSchema,
    ApiKeyCreateSchema,
    ApiKeyQuerySchema,
    ApiKeySchema,
    MeSchema,
    TeamCreateSchema,
    TeamPatchSchema,
    TeamSchema,
    TokenRequestSchema,
    TokenSchema,
    UserCreateSchema,
    UserPatchSchema,
    UserSchema,
)

blp = Blueprint("identity", __name__, description="Authentication, users, teams and API keys.")

# Checked against when the username is unknown, so both paths cost one hash verification.
_DUMMY_HASH = generate_password_hash("not-a-real-password")


def user_dict(user: User) -> dict[str, Any]:
    return {**user_fields(user), "created_at": user.created_at}


def key_dict(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "user_id": key.user_id,
        "name": key.name,
        "prefix": key.prefix,
        "created_at": key.created_at,
        "last_used_at": key.last_used_at,
        "revoked_at": key.revoked_at,
    }


def team_dict(session: Session, team: Team) -> dict[str, Any]:
    members = session.scalars(select(User.id).where(User.team_id == team.id).order_by(User.id))
    return {
        "id": team.id,
        "name": team.name,
        "manager_id": team.manager_id,
        "member_ids": list(members),
        "created_at": team.created_at,
    }


def not_found(what: str) -> ApiProblem:
    return ApiProblem(404, f"{what} not found.", type_=PROBLEM_BASE + "not-found")


def forbidden(detail: str) -> ApiProblem:
    return ApiProblem(403, detail, type_=PROBLEM_BASE + "forbidden")


def _check_team(session: Session, team_id: str | None) -> None:
    if team_id is not None and session.get(Team, team_id) is None:
        raise validation_problem({"team_id": ["No such team."]})


# -- tokens and the caller ---------------------------------------------------------------


@blp.route("/auth/tokens", methods=["POST"], endpoint="create_token")
@blp.doc(security=[])
@blp.arguments(TokenRequestSchema())
@blp.response(201, TokenSchema)
def create_token(credentials: dict[str, Any]) -> Any:
    """Exchange a username and password for a signed user token."""
    gw = gateway()
    wait = gw.login_limiter.acquire(f"login:{request.remote_addr}")
    if wait:
        raise ApiProblem(429, "Too many login attempts.", headers={"Retry-After": str(wait)},
                         type_=PROBLEM_BASE + "rate-limited")
    with gw.store.read() as session:
        user = session.scalar(select(User).where(User.username == credentials["username"]))
        password_hash = user.password_hash if user is not None else None
        valid = check_password_hash(password_hash or _DUMMY_HASH, credentials["password"])
        if user is None or not user.active or not password_hash or not valid:
            raise ApiProblem(
                401, "Unknown user or wrong password.", type_=PROBLEM_BASE + "unauthenticated",
                headers={"WWW-Authenticate": 'Bearer realm="crm"'},
            )
        token, expires_at = gw.authenticator.signer.issue(user.id)
    return {"token": token, "token_type": "Bearer", "expires_at": expires_at}


@blp.route("/me", methods=["GET"])
@blp.response(200, MeSchema)
def me() -> Any:
    """The authenticated user, how they authenticated, and their lead visibility."""
    principal = current_principal()
    with gateway().store.read() as session:
        user = session.get(User, principal.user_id)
        if user is None:
            raise not_found("User")
        body = user_dict(user)
    body["auth"] = "api_key" if principal.api_key_id else "token"
    body["scope"] = principal.leads_scope()
    return body


# -- users ---------------------------------------------------------------------------------


@blp.route("/users")
class Users(MethodView):
    @blp.arguments(UserCreateSchema())
    @blp.response(201, UserSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Create a user (admin)."""
        principal = require_role("admin")
        password = data.pop("password", None)
        gw = gateway()
        events = gw.directory.recorder(principal.user_id)
        with gw.store.begin() as session:
            _check_team(session, data.get("team_id"))
            if session.scalar(select(User.id).where(User.username == data["username"])):
                raise ApiProblem(409, "This username is taken.", type_=PROBLEM_BASE + "conflict",
                                 errors={"username": ["Already exists."]})
            user = User(
                **data,
                active=True,
                password_hash=generate_password_hash(password) if password else None,
            )
            session.add(user)
            session.flush()
            gw.directory.record_user(events, session, user)
            body = user_dict(user)
        gw.directory.publish(events)
        return body, 201, {"Location": f"/users/{body['id']}"}

    @blp.response(200, UserSchema(many=True))
    def get(self) -> Any:
        """Users: every user for admins, their teams and themselves for managers."""
        principal = require_role("admin", "manager")
        with gateway().store.read() as session:
            query = select(User).order_by(User.username)
            if principal.role == "manager":
                managed = select(Team.id).where(Team.manager_id == principal.user_id)
                query = query.where(
                    (User.team_id.in_(managed)) | (User.id == principal.user_id)
                )
            return [user_dict(user) for user in session.scalars(query)]


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
            return user_dict(user)

    @blp.arguments(UserPatchSchema())
    @blp.response(200, UserSchema)
    def patch(self, data: dict[str, Any], user_id: str) -> Any:
        """Change role, team, active flag, name, email or password (admin)."""
        principal = require_role("admin")
        gw = gateway()
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
            password = data.pop("password", None)
            if password:
                user.password_hash = generate_password_hash(password)
            for name, value in data.items():
                setattr(user, name, value)
            session.flush()
            gw.directory.record_user(events, session, user)
            body = user_dict(user)
        gw.directory.publish(events)
        # Role, team and active flag feed authorisation: forget cached principals now.
        gw.authenticator.invalidate()
        return body


# -- teams ---------------------------------------------------------------------------------


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

    @blp.response(200, TeamSchema(many=True))
    def get(self) -> Any:
        """All teams with their managers and members."""
        current_principal()
        with gateway().store.read() as session:
            teams = session.scalars(select(Team).order_by(Team.name))
            return [team_dict(session, team) for team in teams]


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


# -- API keys ------------------------------------------------------------------------------


def _may_manage_keys_of(principal: Principal, user_id: str) -> bool:
    return principal.role == "admin" or principal.user_id == user_id


@blp.route("/api-keys")
class ApiKeys(MethodView):
    @blp.arguments(ApiKeyCreateSchema())
    @blp.response(201, ApiKeyCreatedSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Create an API key; the key itself is in this response only."""
        principal = current_principal()
        owner_id = data.get("user_id") or principal.user_id
        if not _may_manage_keys_of(principal, owner_id):
            raise forbidden("Only admins create keys for other users.")
        with gateway().store.begin() as session:
            owner = session.get(User, owner_id)
            if owner is None or not owner.active:
                raise validation_problem({"user_id": ["No such active user."]})
            key, prefix, key_hash = generate_api_key()
            row = ApiKey(user_id=owner_id, name=data["name"], prefix=prefix, key_hash=key_hash)
            session.add(row)
            session.flush()
            body = key_dict(row)
        body["key"] = key
        return body, 201, {"Location": f"/api-keys/{body['id']}"}

    @blp.arguments(ApiKeyQuerySchema(), location="query", unknown=RAISE)
    @blp.response(200, ApiKeySchema(many=True))
    def get(self, query: dict[str, Any]) -> Any:
        """Own keys; admins see everyone's (filter with user_id)."""
        principal = current_principal()
        user_id = query.get("user_id")
        if principal.role != "admin":
            if user_id not in (None, principal.user_id):
                raise forbidden("You can only list your own keys.")
            user_id = principal.user_id
        with gateway().store.read() as session:
            statement = select(ApiKey).order_by(ApiKey.created_at)
            if user_id is not None:
                statement = statement.where(ApiKey.user_id == user_id)
            if not query["include_revoked"]:
                statement = statement.where(ApiKey.revoked_at.is_(None))
            return [key_dict(key) for key in session.scalars(statement)]


@blp.route("/api-keys/<string:key_id>", methods=["DELETE"])
@blp.response(204)
def revoke_api_key(key_id: str) -> Any:
    """Revoke a key (its owner or an admin); it stops working at once."""
    principal = current_principal()
    gw = gateway()
    with gw.store.begin() as session:
        key = session.get(ApiKey, key_id)
        if key is None or not _may_manage_keys_of(principal, key.user_id):
            raise not_found("API key")
        if key.revoked_at is None:
            key.revoked_at = datetime.now(UTC)
    gw.authenticator.invalidate()
    return None
