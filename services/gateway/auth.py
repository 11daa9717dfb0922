"""Who is calling: API keys, signed user tokens, scopes and rate limits."""

from __future__ import annotations

import hashlib
import math
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.gateway.models import ApiKey, Team, User
from shared import config as shared_config

API_KEY_PREFIX = "crm_"
TOKEN_SALT = "crm-gateway-user-token"


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_api_key() -> tuple[str, str, str]:
    """(key, display prefix, hash); the key itself is shown once and never stored."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    return key, key[:12], hash_api_key(key)


def load_secret_key() -> str:
    """CRM_SECRET_KEY, else a random secret created once (mode 0600) under the data dir.

    Every gunicorn worker must sign with the same secret, so it is shared through a file that
    the first process creates atomically (O_EXCL); the others read it.
    """
    configured = os.environ.get("CRM_SECRET_KEY")
    if configured:
        return configured
    path: Path = shared_config.data_dir() / "gateway-secret"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):
            secret = path.read_text().strip()
            if secret:
                return secret
            time.sleep(0.02)  # another worker is between create and write
        raise RuntimeError(f"{path} exists but is empty") from None
    secret = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    return secret


class TokenSigner:
    def __init__(self, secret: str, ttl_seconds: int):
        self._serializer = URLSafeTimedSerializer(secret, salt=TOKEN_SALT)
        self.ttl_seconds = ttl_seconds

    def issue(self, user_id: str) -> tuple[str, datetime]:
        token = self._serializer.dumps({"uid": user_id})
        return token, datetime.now(UTC) + timedelta(seconds=self.ttl_seconds)

    def verify(self, token: str) -> str | None:
        try:
            payload = self._serializer.loads(token, max_age=self.ttl_seconds)
        except (SignatureExpired, BadSignature):
            return None
        uid = payload.get("uid") if isinstance(payload, dict) else None
        return uid if isinstance(uid, str) else None


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

    @property
    def rate_key(self) -> str:
        return f"key:{self.api_key_id}" if self.api_key_id else f"user:{self.user_id}"

    def leads_scope(self) -> dict[str, Any]:
        return compute_scope(self.role, self.user_id, self.managed_member_ids)


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
    )


class Authenticator:
    """Resolves credentials to a principal, with a short in-process cache.

    A database round trip (and for keys a last_used_at write) on every request would dominate
    the gateway's latency budget; the cache keeps a principal for `cache_seconds`, so a revoked
    key or deactivated user is refused within that time by other workers and at once by this one.
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
        user_id = self.signer.verify(token)
        if user_id is None:
            return None
        cache_key = "u:" + user_id
        principal = self._cached(cache_key)
        if principal is not None:
            return principal
        with self._sessionmaker() as session:
            user = session.get(User, user_id)
            if user is None or not user.active:
                return None
            principal = principal_for(session, user)
        self._remember(cache_key, principal)
        return principal

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


class RateLimiter:
    """Token buckets per principal in process memory (each worker enforces its share)."""

    def __init__(self, rate: float, burst: float):
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> int:
        """0 when allowed, else the seconds to wait (for Retry-After)."""
        if self.rate <= 0:
            return 0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0
            self._buckets[key] = (tokens, now)
            return max(1, math.ceil((1 - tokens) / self.rate))
