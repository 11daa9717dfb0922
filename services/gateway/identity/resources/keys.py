"""API keys: own keys for everyone, any user's for admins; a key is shown once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask.views import MethodView
from marshmallow import RAISE
from sqlalchemy import and_, func, or_, select

from services.gateway.app import current_principal, gateway
from services.gateway.identity.api_keys import generate_api_key
from services.gateway.identity.models import ApiKey, User
from services.gateway.identity.principal import Principal
from services.gateway.identity.resources.blueprint import (
    blp,
    decode_cursor,
    forbidden,
    key_dict,
    not_found,
    page,
)
from services.gateway.identity.schemas import (
    ApiKeyCreatedSchema,
    ApiKeyCreateSchema,
    ApiKeyPageSchema,
    ApiKeyQuerySchema,
)
from services.gateway.problems import PROBLEM_BASE, ApiProblem, validation_problem


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
    @blp.response(200, ApiKeyPageSchema)
    def get(self, query: dict[str, Any]) -> Any:
        """Own keys; admins see everyone's (filter with user_id). Oldest first, one page
        per cursor: `{"items", "next_cursor"}`."""
        principal = current_principal()
        user_id = query.get("user_id")
        if principal.role != "admin":
            if user_id not in (None, principal.user_id):
                raise forbidden("You can only list your own keys.")
            user_id = principal.user_id
        after = _key_cursor(query.get("cursor"))
        limit = query["limit"]
        with gateway().store.read() as session:
            statement = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id).limit(limit + 1)
            if after is not None:
                created_at, key_id = after
                statement = statement.where(or_(
                    ApiKey.created_at > created_at,
                    and_(ApiKey.created_at == created_at, ApiKey.id > key_id)))
            if user_id is not None:
                statement = statement.where(ApiKey.user_id == user_id)
            if not query["include_revoked"]:
                statement = statement.where(ApiKey.revoked_at.is_(None))
            rows, next_cursor = page(list(session.scalars(statement)), limit,
                                     lambda key: f"{key.created_at.isoformat()}|{key.id}")
            return {"items": [key_dict(key) for key in rows], "next_cursor": next_cursor}


def _key_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    value = decode_cursor(cursor)
    if value is None:
        return None
    created_at, _, key_id = value.partition("|")
    try:
        return datetime.fromisoformat(created_at), key_id
    except ValueError:
        raise validation_problem({"cursor": ["Not a cursor from this list."]}) from None


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
