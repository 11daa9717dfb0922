"""Signing in (a token for a username and password, throttled), the caller and their password."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from flask import request
from sqlalchemy import select, update

from services.gateway.app import current_principal, gateway
from services.gateway.identity.models import User
from services.gateway.identity.passwords import HashBusy
from services.gateway.identity.resources.blueprint import blp, not_found, user_dict
from services.gateway.identity.schemas import (
    MeSchema,
    PasswordChangeSchema,
    TokenRequestSchema,
    TokenSchema,
)
from services.gateway.identity.throttles import (
    ACCOUNT_POLICY,
    LOGIN_ADDRESS_POLICY,
    account_key,
    client_address,
    login_address_key,
)
from services.gateway.problems import PROBLEM_BASE, ApiProblem, validation_problem


def _retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


def request_address() -> str:
    gw = gateway()
    return client_address(request.remote_addr, request.headers.get("X-Forwarded-For"),
                          gw.auth_settings.trusted_proxy_hops)


def login_limiter_key(address: str) -> str:
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
    address = request_address()
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


def hash_new_password(password: str) -> str:
    try:
        return gateway().passwords.hash(password)
    except HashBusy:
        raise _hashing_busy() from None


def revoke_tokens(user: User) -> None:
    """Every token issued to `user` before now stops working (see Authenticator.from_token)."""
    user.token_generation = (user.token_generation or 0) + 1


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
    wait = gw.login_limiter.acquire(login_limiter_key(request_address()))
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
    new_hash = hash_new_password(data["new_password"])
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
