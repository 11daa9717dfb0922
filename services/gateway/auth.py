"""Who is calling: API keys, signed user tokens, scopes, rate limits, password hashing and the
throttling of failed authentications."""

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
from sqlalchemy import case, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from services.gateway.models import ApiKey, AuthThrottle, Team, User
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

    def issue(self, user_id: str, generation: int = 0) -> tuple[str, datetime]:
        token = self._serializer.dumps({"uid": user_id, "gen": generation})
        return token, datetime.now(UTC) + timedelta(seconds=self.ttl_seconds)

    def verify(self, token: str) -> tuple[str, int] | None:
        """(user id, token generation), or None for a forged, tampered or expired token.

        Tokens issued before generations existed carry none and count as generation 0.
        """
        try:
            payload = self._serializer.loads(token, max_age=self.ttl_seconds)
        except (SignatureExpired, BadSignature):
            return None
        if not isinstance(payload, dict):
            return None
        uid, generation = payload.get("uid"), payload.get("gen", 0)
        if not isinstance(uid, str) or type(generation) is not int:
            return None
        return uid, generation


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


class RateLimiter:
    """Token buckets per principal in process memory (each worker enforces its share)."""

    def __init__(self, rate: float, burst: float):
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def reset(self, key: str) -> None:
        with self._lock:
            self._buckets.pop(key, None)

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


# -- passwords -----------------------------------------------------------------------------

# PBKDF2-HMAC-SHA256 with 600,000 iterations: OWASP's Password Storage Cheat Sheet figure for
# this algorithm (2023). About 80 ms of one core per hash on an idle 2-core machine of ours
# (150 ms under load). werkzeug's default, scrypt N=2^15 r=8 p=1, is below OWASP's scrypt
# minimum (N=2^17, 400 ms and 128 MiB per hash here). Stored hashes name their method, so old
# ones still verify and are re-hashed with this method at the next successful sign-in.
DEFAULT_PASSWORD_METHOD = "pbkdf2:sha256:600000"


def password_method() -> str:
    """CRM_PASSWORD_METHOD (any method werkzeug's generate_password_hash takes), else ours."""
    return shared_config.env("CRM_PASSWORD_METHOD", DEFAULT_PASSWORD_METHOD)


class HashBusy(Exception):
    """Every hashing slot of this process stayed taken for the whole wait."""


class PasswordHasher:
    """werkzeug's hashing behind a per-process semaphore.

    A hash costs tens of milliseconds of CPU; sixteen at once on two cores starved every other
    request for seconds. At most `concurrency` hashes run at a time in a process; a request that
    cannot get a slot within `wait_seconds` fails fast (HashBusy -> 503 with Retry-After)
    instead of holding a thread in a queue. The default wait is 0: with 0.25 s, 16 bogus
    sign-ins held gunicorn's 8 threads and other requests waited up to 550 ms; with 0 they
    waited at most 70 ms (2 cores, under load).
    """

    def __init__(self, method: str = DEFAULT_PASSWORD_METHOD, concurrency: int = 1,
                 wait_seconds: float = 0.0):
        self.method = method
        self.wait_seconds = wait_seconds
        self.slots = threading.BoundedSemaphore(max(1, concurrency))
        self._dummy: str | None = None

    def _slot(self) -> None:
        if not self.slots.acquire(timeout=self.wait_seconds):
            raise HashBusy

    def hash(self, password: str) -> str:
        self._slot()
        try:
            return generate_password_hash(password, method=self.method)
        finally:
            self.slots.release()

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """Unknown users and users without a password cost the same hash as the others, so the
        time of the answer tells nothing about whether the account exists."""
        self._slot()
        try:
            if self._dummy is None:
                self._dummy = generate_password_hash(secrets.token_urlsafe(16),
                                                     method=self.method)
            valid = check_password_hash(stored_hash or self._dummy, password)
        finally:
            self.slots.release()
        return valid and bool(stored_hash)

    def needs_rehash(self, stored_hash: str) -> bool:
        return stored_hash.split("$", 1)[0] != self.method


# -- failed authentications ----------------------------------------------------------------


@dataclass(frozen=True)
class ThrottlePolicy:
    """How failures of one key (an account, an address, a key prefix) are answered.

    Failures are counted from the first one in a window. From `throttle_after` failures each
    new failure blocks the key for 1, 2, 4 ... seconds (at most `max_delay`); from `lock_after`
    it is locked for `lock_seconds`. A success resets account keys (not address keys: one valid
    account must not wash an address that sprays others).
    """

    throttle_after: int
    lock_after: int
    lock_seconds: float
    window_seconds: float
    max_delay: float = 60.0

    def block_seconds(self, failures: int) -> float:
        if failures >= self.lock_after:
            return self.lock_seconds
        if failures >= self.throttle_after:
            return min(2.0 ** (failures - self.throttle_after), self.max_delay)
        return 0.0


# Sign-in: 10 wrong passwords lock an account for 15 minutes. The window is a day, so after a
# lock each further failure locks again: at most about 100 guesses a day per account (NIST SP
# 800-63B asks for no more than 100 consecutive failures).
ACCOUNT_POLICY = ThrottlePolicy(throttle_after=5, lock_after=10, lock_seconds=900,
                                window_seconds=86_400)
# Addresses are shared (offices behind NAT): higher thresholds, a shorter window.
LOGIN_ADDRESS_POLICY = ThrottlePolicy(throttle_after=20, lock_after=100, lock_seconds=900,
                                      window_seconds=900)
CREDENTIAL_ADDRESS_POLICY = ThrottlePolicy(throttle_after=50, lock_after=500, lock_seconds=300,
                                           window_seconds=900)
KEY_PREFIX_POLICY = ThrottlePolicy(throttle_after=10, lock_after=100, lock_seconds=900,
                                   window_seconds=900)


def address_keys(address: str) -> list[str]:
    return [login_address_key(address), credential_address_key(address)]


def account_key(username: str) -> str:
    # The same key shape for names that exist and names that do not: locking says nothing
    # about whether an account exists.
    return "login:user:" + username


def login_address_key(address: str) -> str:
    return "login:addr:" + address


def credential_address_key(address: str) -> str:
    return "cred:addr:" + address


def key_prefix_key(credential: str) -> str:
    return "cred:prefix:" + credential[:12]


class FailureThrottle:
    """Failure counters and blocks in the gateway's database (`auth_throttles`).

    Shared by every worker and replica, so a lockout holds whichever worker a request reaches.
    A failure is one upsert (a single statement that takes the write lock at once, so SQLite
    sees no read-then-write upgrade); blocks already seen are memoised per process so that a
    client hammering while blocked costs no database write at all.
    """

    PRUNE_INTERVAL = 300.0
    # A block seen here is believed this long without asking the database again, so that an
    # admin's unblock in another worker takes effect within these seconds.
    MEMO_SECONDS = 5.0

    def __init__(self, sessionmaker: Any, clock: Any = time.time):
        self._sessionmaker = sessionmaker
        self.clock = clock  # epoch seconds; tests move it
        self._blocked: dict[str, tuple[float, float]] = {}  # key -> (blocked until, seen at)
        self._lock = threading.Lock()
        self._pruned_at = 0.0

    def _insert(self, session: Session) -> Any:
        if session.bind.dialect.name == "postgresql":
            return postgresql.insert(AuthThrottle)
        return sqlite.insert(AuthThrottle)

    def memo_blocked(self, keys: list[str]) -> float:
        """Seconds left on a block this process has already seen (no database access)."""
        now = self.clock()
        until = 0.0
        with self._lock:
            for key in keys:
                memo = self._blocked.get(key)
                if memo is not None and now - memo[1] < self.MEMO_SECONDS:
                    until = max(until, memo[0])
        return max(0.0, until - now)

    def blocked(self, keys: list[str]) -> float:
        """Seconds left on the longest block of `keys`, from the database (0 when none)."""
        now = self.clock()
        with self._sessionmaker() as session:
            until = session.scalar(
                select(func.max(AuthThrottle.blocked_until)).where(AuthThrottle.key.in_(keys))
            )
        return max(0.0, (until or 0.0) - now)

    def record_failure(self, key: str, policy: ThrottlePolicy) -> float:
        """Count one failure; the seconds the key is now blocked for (0 when it is not)."""
        now = self.clock()
        with self._sessionmaker() as session, session.begin():
            insert = self._insert(session)
            statement = insert.values(
                key=key, failures=1, window_started=now, blocked_until=None
            )
            expired = AuthThrottle.window_started < now - policy.window_seconds
            statement = statement.on_conflict_do_update(
                index_elements=[AuthThrottle.key],
                set_={
                    "failures": case((expired, 1), else_=AuthThrottle.failures + 1),
                    "window_started": case((expired, now), else_=AuthThrottle.window_started),
                },
            ).returning(AuthThrottle.failures)
            failures = session.execute(statement).scalar_one()
            seconds = policy.block_seconds(failures)
            if seconds:
                session.execute(
                    update(AuthThrottle)
                    .where(AuthThrottle.key == key)
                    .values(blocked_until=now + seconds)
                )
        if seconds:
            with self._lock:
                if len(self._blocked) > 10_000:
                    self._blocked.clear()
                self._blocked[key] = (now + seconds, now)
        self._maybe_prune(now)
        return seconds

    def clear(self, keys: list[str]) -> None:
        with self._sessionmaker() as session, session.begin():
            session.execute(delete(AuthThrottle).where(AuthThrottle.key.in_(keys)))
        with self._lock:
            for key in keys:
                self._blocked.pop(key, None)

    def clear_prefix(self, prefix: str) -> int:
        """Remove every counter whose key starts with `prefix` (an admin unblocking)."""
        with self._sessionmaker() as session, session.begin():
            result = session.execute(
                delete(AuthThrottle).where(AuthThrottle.key.startswith(prefix, autoescape=True))
            )
        with self._lock:
            for key in [k for k in self._blocked if k.startswith(prefix)]:
                del self._blocked[key]
        return result.rowcount or 0

    def _maybe_prune(self, now: float) -> None:
        """Forget counters idle for a day and no longer blocking, so names an attacker sprays
        do not accumulate for ever."""
        if now - self._pruned_at < self.PRUNE_INTERVAL:
            return
        self._pruned_at = now
        longest = max(ACCOUNT_POLICY.window_seconds, LOGIN_ADDRESS_POLICY.window_seconds)
        with self._sessionmaker() as session, session.begin():
            session.execute(
                delete(AuthThrottle).where(
                    AuthThrottle.window_started < now - longest,
                    (AuthThrottle.blocked_until.is_(None)) | (AuthThrottle.blocked_until < now),
                )
            )
        with self._lock:
            for key in [k for k, (until, _) in self._blocked.items() if until < now]:
                del self._blocked[key]


def client_address(remote_addr: str | None, forwarded_for: str | None, trusted_hops: int) -> str:
    """The address to throttle by. X-Forwarded-For is believed only for `trusted_hops`
    proxies of our own in front of the gateway (CRM_TRUSTED_PROXY_HOPS); a client can put
    anything in it, so by default it is ignored."""
    if trusted_hops > 0 and forwarded_for:
        hops = [part.strip() for part in forwarded_for.split(",") if part.strip()]
        if len(hops) >= trusted_hops:
            return hops[-trusted_hops][:100]
    return (remote_addr or "unknown")[:100]


@dataclass(frozen=True)
class AuthSettings:
    """Limits of the authentication layer (create_app reads them from the environment)."""

    trusted_proxy_hops: int = 0
    max_api_keys_per_user: int = 10
