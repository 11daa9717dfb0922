"""Lifting sign-in lockouts and an address's blocks (admin)."""

from __future__ import annotations

from typing import Any

from services.gateway.app import gateway, require_role
from services.gateway.identity.models import User
from services.gateway.identity.resources.auth import login_limiter_key
from services.gateway.identity.resources.blueprint import blp, not_found
from services.gateway.identity.schemas import UnblockSchema
from services.gateway.identity.throttles import account_key, address_keys


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
    gw.login_limiter.reset(login_limiter_key(data["address"]))
    return None
