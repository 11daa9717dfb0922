"""Limits on callers: request rate buckets in memory, and the counters and blocks of failed
authentications in the database (shared by every worker and replica)."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from services.gateway.identity.models import AuthThrottle


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

    def locked_accounts(self, usernames: list[str]) -> dict[str, float]:
        """username -> epoch seconds its sign-in lockout ends, for the accounts locked now (the
        failures reached the policy's lock, not a short throttling delay)."""
        if not usernames:
            return {}
        now = self.clock()
        keys = {account_key(name): name for name in usernames}
        with self._sessionmaker() as session:
            rows = session.execute(
                select(AuthThrottle.key, AuthThrottle.blocked_until).where(
                    AuthThrottle.key.in_(list(keys)),
                    AuthThrottle.failures >= ACCOUNT_POLICY.lock_after,
                    AuthThrottle.blocked_until > now,
                )
            ).all()
        return {keys[key]: until for key, until in rows}

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
