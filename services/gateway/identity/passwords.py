"""Password hashing: werkzeug's, with OWASP's cost, at most a few hashes at once per process."""

from __future__ import annotations

import secrets
import threading

from werkzeug.security import check_password_hash, generate_password_hash

from shared import config as shared_config

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
