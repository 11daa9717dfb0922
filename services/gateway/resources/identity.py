"""Login tokens, the caller, users, teams and API keys."""

from __future__ import annotations

import base64
import binascii
import math
from datetime import UTC, datetime
from typing import Any

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, fields, validate
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.gateway.app import current_principal, gateway, require_role
from services.gateway.auth import (
    ACCOUNT_POLICY,
    LOGIN_ADDRESS_POLICY,
    HashBusy,
    Principal,
    account_key,
    address_keys,
    client_address,
    generate_api_key,
    login_address_key,
)
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


class PageQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    cursor = fields.String(validate=validate.Length(max=1000),
                           metadata={"description": "`next_cursor` of the previous page."})
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class UserPageSchema(Schema):
    items = fields.List(fields.Nested(UserSchema))
    next_cursor = fields.String(allow_none=True)


class TeamPageSchema(Schema):
    items = fields.List(fields.Nested(TeamSchema))
    next_cursor = fields.String(allow_none=True)


class UnblockSchema(Schema):
    class Meta:
        unknown = RAISE

    address = fields.String(required=True, validate=validate.Length(min=1, max=100),
                            metadata={"description": "Client address as the gateway sees it."})


class PasswordChangeSchema(Schema):
    class Meta:
        unknown = RAISE

    current_password = fields.String(required=True, load_only=True,
                                     validate=validate.Length(min=1, max=256))
    new_password = fields.String(required=True, load_only=True,
                                 validate=validate.Length(min=8, max=256))


def _encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise validation_problem({"cursor": ["Not a cursor from this list."]}) from None


def _page(rows: list[Any], limit: int, sort_value: Any) -> tuple[list[Any], str | None]:
    """`limit + 1` rows were fetched: the extra one says whether another page exists."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, _encode_cursor(sort_value(rows[-1]))


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


def _retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


def _client_address() -> str:
    gw = gateway()
    return client_address(request.remote_addr, request.headers.get("X-Forwarded-For"),
                          gw.auth_settings.trusted_proxy_hops)


def _login_limiter_key(address: str) -> str:
    return "login:" + address


def _sign_in_blocked(seconds: float) -> ApiProblem:
    # One answer whether the name exists or not, and whether the account or the address is
    # blocked: the client only learns to wait.
    return ApiProblem(
        429, "Too many failed sign-in attempts; try again later.",
        type_=PROBLEM_BASE + "sign-in-blocked", headers={"Retry-After": _retry_after(seconds)},
    )


def _hashing_busy() -> ApiProblem:
    return ApiProblem(503, "The server is busy checking passwords; try again in a moment.",
                      type_=PROBLEM_BASE + "busy", headers={"Retry-After": "1"})


def _wrong_credentials() -> ApiProblem:
    return ApiProblem(
        401, "Unknown user or wrong password.", type_=PROBLEM_BASE + "unauthenticated",
        headers={"WWW-Authenticate": 'Bearer realm="crm"'},
    )


def check_password(username: str, password: str) -> User | None:
    """The active user whose password this is, or None; throttled per account and address.

    The block is checked before hashing, so a blocked client costs no hash at all.
    """
    gw = gateway()
    address = _client_address()
    keys = [account_key(username), login_address_key(address)]
    blocked = gw.throttle.blocked(keys)
    if blocked:
        raise _sign_in_blocked(blocked)
    with gw.store.read() as session:
        user = session.scalar(select(User).where(User.username == username))
    usable = user is not None and user.active
    try:
        valid = gw.passwords.verify(user.password_hash if usable and user else None, password)
    except HashBusy:
        raise _hashing_busy() from None
    if not valid or user is None:
        gw.throttle.record_failure(account_key(username), ACCOUNT_POLICY)
        gw.throttle.record_failure(login_address_key(address), LOGIN_ADDRESS_POLICY)
        return None
    gw.throttle.clear([account_key(username)])
    _rehash_if_outdated(user, password)
    return user


def _rehash_if_outdated(user: User, password: str) -> None:
    """A hash of an older method (or cost) is replaced by one of the current method."""
    gw = gateway()
    old = user.password_hash
    if not old or not gw.passwords.needs_rehash(old):
        return
    try:
        new = gw.passwords.hash(password)
    except HashBusy:
        return  # next time; the sign-in itself must not fail for it
    with gw.store.begin() as session:
        # Compare-and-set: a password changed meanwhile is not overwritten.
        session.execute(update(User).where(User.id == user.id, User.password_hash == old)
                        .values(password_hash=new))


def _hash_new_password(password: str) -> str:
    try:
        return gateway().passwords.hash(password)
    except HashBusy:
        raise _hashing_busy() from None


def revoke_tokens(user: User) -> None:
    """Every token issued to `user` before now stops working (see Authenticator.from_token)."""
    user.token_generation = (user.token_generation or 0) + 1


def _check_team(session: Session, team_id: str | None) -> None:
    if team_id is not None and session.get(Team, team_id) is None:
        raise validation_problem({"team_id": ["No such team."]})


# -- tokens and the caller ---------------------------------------------------------------


@blp.route("/auth/tokens", methods=["POST"], endpoint="create_token")
@blp.doc(security=[])
@blp.arguments(TokenRequestSchema())
@blp.response(201, TokenSchema)
def create_token(credentials: dict[str, Any]) -> Any:
    """Exchange a username and password for a signed user token.

    Failed attempts are throttled per account and per client address (429 with Retry-After,
    the same whether the account exists or not); 10 failures lock an account for 15 minutes
    (an admin can unlock it: POST /users/{id}/unlock). 503 with Retry-After when every
    password-hashing slot of the process is busy.
    """
    gw = gateway()
    wait = gw.login_limiter.acquire(_login_limiter_key(_client_address()))
    if wait:
        raise ApiProblem(429, "Too many login attempts.", headers={"Retry-After": str(wait)},
                         type_=PROBLEM_BASE + "rate-limited")
    user = check_password(credentials["username"], credentials["password"])
    if user is None:
        raise _wrong_credentials()
    token, expires_at = gw.authenticator.signer.issue(user.id, user.token_generation or 0)
    return {"token": token, "token_type": "Bearer", "expires_at": expires_at}


@blp.route("/me/password", methods=["POST"])
@blp.arguments(PasswordChangeSchema())
@blp.response(200, TokenSchema)
def change_own_password(data: dict[str, Any]) -> Any:
    """Change the caller's password. Every token issued before stops working; the answer is a
    new token. API keys stay valid (they belong to systems; revoke them with DELETE
    /api-keys/{id})."""
    principal = current_principal()
    gw = gateway()
    user = check_password(principal.username, data["current_password"])
    if user is None or user.id != principal.user_id:
        raise validation_problem({"current_password": ["Wrong password."]})
    new_hash = _hash_new_password(data["new_password"])
    with gw.store.begin() as session:
        row = session.get(User, principal.user_id, with_for_update=True)
        if row is None or not row.active:
            raise _wrong_credentials()
        row.password_hash = new_hash
        row.password_changed_at = datetime.now(UTC)
        revoke_tokens(row)
        generation = row.token_generation
    gw.authenticator.invalidate()
    token, expires_at = gw.authenticator.signer.issue(principal.user_id, generation)
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
        password_hash = _hash_new_password(password) if password else None
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
        after = _decode_cursor(query.get("cursor"))
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
            rows, next_cursor = _page(list(session.scalars(statement)), limit,
                                      lambda user: user.username)
            return {"items": [user_dict(user) for user in rows], "next_cursor": next_cursor}


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
        """Change role, team, active flag, name, email or password (admin). A new password or
        a deactivation revokes the user's tokens (API keys stop with the deactivation)."""
        principal = require_role("admin")
        gw = gateway()
        password = data.pop("password", None)
        password_hash = _hash_new_password(password) if password else None
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


@blp.route("/users/<string:user_id>/unlock", methods=["POST"])
@blp.response(204)
def unlock_user(user_id: str) -> Any:
    """Lift a sign-in lockout of this user's account at once (admin)."""
    require_role("admin")
    gw = gateway()
    with gw.store.read() as session:
        user = session.get(User, user_id)
        if user is None:
            raise not_found("User")
        username = user.username
    gw.throttle.clear([account_key(username)])
    return None


@blp.route("/auth/unblock", methods=["POST"])
@blp.arguments(UnblockSchema())
@blp.response(204)
def unblock_address(data: dict[str, Any]) -> Any:
    """Lift the blocks of a client address: sign-in failures and failed credentials (admin).
    Effective at once in this worker and within 5 seconds in the others."""
    require_role("admin")
    gw = gateway()
    gw.throttle.clear(address_keys(data["address"]))
    gw.login_limiter.reset(_login_limiter_key(data["address"]))
    return None


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

    @blp.arguments(PageQuerySchema(), location="query")
    @blp.response(200, TeamPageSchema)
    def get(self, query: dict[str, Any]) -> Any:
        """Teams by name with their managers and members, one page per cursor."""
        current_principal()
        after = _decode_cursor(query.get("cursor"))
        limit = query["limit"]
        with gateway().store.read() as session:
            statement = select(Team).order_by(Team.name).limit(limit + 1)
            if after is not None:
                statement = statement.where(Team.name > after)
            rows, next_cursor = _page(list(session.scalars(statement)), limit,
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
        gw = gateway()
        limit = gw.auth_settings.max_api_keys_per_user
        with gw.store.begin() as session:
            # The row lock serialises concurrent creations for one user on PostgreSQL (SQLite
            # serialises writers anyway), so the count below cannot be overtaken.
            owner = session.get(User, owner_id, with_for_update=True)
            if owner is None or not owner.active:
                raise validation_problem({"user_id": ["No such active user."]})
            active = session.scalar(
                select(func.count()).select_from(ApiKey)
                .where(ApiKey.user_id == owner_id, ApiKey.revoked_at.is_(None))
            )
            if active >= limit:
                raise ApiProblem(
                    409,
                    f"This user has {active} active API keys; the limit is {limit} "
                    "(CRM_MAX_API_KEYS_PER_USER). Revoke one first.",
                    type_=PROBLEM_BASE + "api-key-limit", limit=limit, active=active,
                )
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
