"""Who is calling: the principal of a request, its row-level scope, and the authenticator that
resolves an API key or a user token to it."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.gateway.identity.api_keys import API_KEY_PREFIX, hash_api_key
from services.gateway.identity.models import ApiKey, Team, User
from services.gateway.identity.tokens import TokenSigner


@dataclass(frozen=True)
class Principal:
    user_id: str
    username: str
    display_name: str
    role: str
    team_id: str | None
    # Set when authenticated by API key: rate limits and key management refer to it.
    api_key_id: str | None = None
    managed_member_ids: tuple[str, ...] = field(default=())
    token_generation: int = 0

    @property
    def rate_key(self) -> str:
        # Per user, not per key: every key and token of a user draws on one budget, so minting
        # keys does not multiply anyone's rate.
        return f"user:{self.user_id}"

    def leads_scope(self) -> dict[str, Any]:
        return compute_scope(self.role, self.user_id, self.managed_member_ids)

    def tickets_scope(self) -> dict[str, Any]:
        """The service desk's scope: the leads' (own, a manager's teams' members', unassigned
        included) and the caller's `user_id` (a group's members and manager see its tickets;
        the desk's "mine" and an admin's own groups)."""
        scope = {k: v for k, v in self.leads_scope().items() if k != "manage_pool"}
        return {**scope, "user_id": self.user_id}


def compute_scope(role: str, user_id: str, managed_member_ids: tuple[str, ...] = ()) -> dict:
    """The row-level visibility passed to the leads service (see services/leads/README.md)."""
    if role == "admin":
        return {"all": True}
    if role == "manager":
        owner_ids = sorted({user_id, *managed_member_ids})
        return {"owner_ids": owner_ids, "include_pool": True}
    return {"owner_ids": [user_id], "include_pool": True}


def managed_member_ids(session: Session, manager_id: str) -> tuple[str, ...]:
    """Active members of every team `manager_id` manages."""
    rows = session.scalars(
        select(User.id)
        .join(Team, Team.id == User.team_id)
        .where(Team.manager_id == manager_id, User.active.is_(True))
    )
    return tuple(sorted(set(rows)))


def principal_for(session: Session, user: User, api_key_id: str | None = None) -> Principal:
    members = managed_member_ids(session, user.id) if user.role == "manager" else ()
    return Principal(
        user_id=user.id,
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        team_id=user.team_id,
        api_key_id=api_key_id,
        managed_member_ids=members,
        token_generation=user.token_generation or 0,
    )


class Authenticator:
    """Resolves credentials to a principal, with a short in-process cache.

    A database round trip (and for keys a last_used_at write) on every request would dominate
    the gateway's latency budget; the cache keeps a principal for `cache_seconds`, so a revoked
    key, a deactivated user or a token revoked by a password change is refused at once by the
    worker that made the change (it calls `invalidate()`) and within that time by the others.
    """

    def __init__(self, sessionmaker: Any, signer: TokenSigner, cache_seconds: float = 5.0,
                 touch_interval: float = 60.0):
        self._sessionmaker = sessionmaker
        self.signer = signer
        self.cache_seconds = cache_seconds
        self.touch_interval = touch_interval
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._touched: dict[str, float] = {}
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()

    def _cached(self, cache_key: str) -> Principal | None:
        with self._lock:
            hit = self._cache.get(cache_key)
        if hit and time.monotonic() - hit[0] < self.cache_seconds:
            return hit[1]
        return None

    def _remember(self, cache_key: str, principal: Principal) -> None:
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[cache_key] = (time.monotonic(), principal)

    def from_api_key(self, key: str) -> Principal | None:
        key_hash = hash_api_key(key)
        cache_key = "k:" + key_hash
        principal = self._cached(cache_key)
        if principal is not None:
            return principal
        with self._sessionmaker() as session, session.begin():
            row = session.execute(
                select(ApiKey, User)
                .join(User, User.id == ApiKey.user_id)
                .where(ApiKey.key_hash == key_hash)
            ).first()
            if row is None:
                return None
            api_key, user = row
            if api_key.revoked_at is not None or not user.active:
                return None
            now = time.monotonic()
            if now - self._touched.get(api_key.id, 0.0) > self.touch_interval:
                api_key.last_used_at = datetime.now(UTC)
                self._touched[api_key.id] = now
            principal = principal_for(session, user, api_key.id)
        self._remember(cache_key, principal)
        return principal

    def from_token(self, token: str) -> Principal | None:
        verified = self.signer.verify(token)
        if verified is None:
            return None
        user_id, generation = verified
        cache_key = "u:" + user_id
        principal = self._cached(cache_key)
        # A newer generation than the cached one means the cache is stale: look again.
        if principal is not None and generation <= principal.token_generation:
            return principal if generation == principal.token_generation else None
        with self._sessionmaker() as session:
            user = session.get(User, user_id)
            if user is None or not user.active:
                return None
            principal = principal_for(session, user)
        self._remember(cache_key, principal)
        return principal if generation == principal.token_generation else None

    def authenticate(self, authorization: str | None, x_api_key: str | None) -> Principal | None:
        if x_api_key:
            return self.from_api_key(x_api_key.strip())
        if not authorization:
            return None
        scheme, _, credential = authorization.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            return None
        if credential.startswith(API_KEY_PREFIX):
            return self.from_api_key(credential)
        return self.from_token(credential)
