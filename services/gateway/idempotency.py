"""Idempotency keys for POST: the first answer is stored and replayed for identical repeats."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import Response
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from services.gateway.models import IdempotencyKey
from services.gateway.problems import PROBLEM_BASE, ApiProblem
from services.gateway.store import Store
from shared import config

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEPT_HEADERS = ("Content-Type", "Location")


def request_hash(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    digest.update(method.upper().encode())
    digest.update(b"\n")
    digest.update(path.encode())
    digest.update(b"\n")
    digest.update(body)
    return digest.hexdigest()


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: str
    headers: dict[str, str]

    def to_response(self) -> Response:
        response = Response(self.body, status=self.status)
        for name, value in self.headers.items():
            response.headers[name] = value
        response.headers[REPLAYED_HEADER] = "true"
        return response


def reservation_lease() -> timedelta:
    """How long a reserved key (its request running) holds off a repeat. Past it the request
    is taken for dead with its process (a kill -9 of the gateway leaves its reservations for
    ever: nothing finishes or abandons them), and a repeat runs the command again; the
    services replay what a key already did (leads.create_lead). Well above the longest
    request (gunicorn's timeout is the RPC timeout + 20 s)."""
    return timedelta(seconds=float(config.env(
        "CRM_IDEMPOTENCY_LEASE_SECONDS", str(max(60.0, 3 * config.rpc_timeout())))))


class Idempotency:
    def __init__(self, store: Store, ttl: timedelta = timedelta(hours=24),
                 purge_every_seconds: float = 600.0, lease: timedelta | None = None):
        self.store = store
        self.ttl = ttl
        self.lease = lease if lease is not None else reservation_lease()
        self.purge_every_seconds = purge_every_seconds
        self._last_purge = 0.0
        self._lock = threading.Lock()

    def begin(self, user_id: str, key: str, method: str, path: str, body: bytes
              ) -> StoredResponse | None:
        """A stored response to replay, or None after reserving the key for this request.

        The key is reserved (status NULL) before the work runs so that a concurrent repeat is
        refused with 409 instead of running the command twice.
        """
        if not key or len(key) > 255:
            raise ApiProblem(
                422, f"{HEADER} must be 1 to 255 characters.", title="Validation failed",
                type_=PROBLEM_BASE + "validation-failed",
                errors={HEADER: ["Must be 1 to 255 characters."]},
            )
        self._maybe_purge()
        fingerprint = request_hash(method, path, body)
        for _ in range(2):
            try:
                with self.store.begin() as session:
                    session.add(IdempotencyKey(
                        key=key, user_id=user_id, method=method, path=path,
                        request_hash=fingerprint,
                    ))
                return None
            except IntegrityError:
                pass
            with self.store.begin() as session:
                row = session.scalar(select(IdempotencyKey).where(
                    IdempotencyKey.user_id == user_id, IdempotencyKey.key == key))
                if row is None:
                    continue  # finished-and-abandoned between our insert and select
                if row.created_at < datetime.now(UTC) - self.ttl:
                    session.delete(row)
                    continue
                if row.request_hash != fingerprint:
                    raise ApiProblem(
                        422,
                        f"This {HEADER} was already used with a different request.",
                        title="Idempotency key reused",
                        type_=PROBLEM_BASE + "idempotency-key-mismatch",
                        errors={HEADER: ["Already used with a different method, path or body."]},
                    )
                if row.status_code is None and row.created_at < datetime.now(UTC) - self.lease:
                    session.delete(row)  # its request died with its process
                    continue
                if row.status_code is None:
                    raise ApiProblem(
                        409,
                        f"A request with this {HEADER} is still being processed.",
                        title="Request in progress",
                        type_=PROBLEM_BASE + "idempotency-key-in-progress",
                        headers={"Retry-After": "1"},
                    )
                return StoredResponse(
                    status=row.status_code,
                    body=row.response_body or "",
                    headers=json.loads(row.response_headers or "{}"),
                )
        raise ApiProblem(409, f"Could not reserve the {HEADER}; retry.",
                         headers={"Retry-After": "1"})

    def finish(self, user_id: str, key: str, response: Response) -> None:
        headers = {
            name: response.headers[name] for name in KEPT_HEADERS if name in response.headers
        }
        with self.store.begin() as session:
            row = session.scalar(select(IdempotencyKey).where(
                IdempotencyKey.user_id == user_id, IdempotencyKey.key == key))
            if row is not None:
                row.status_code = response.status_code
                row.response_body = response.get_data(as_text=True)
                row.response_headers = json.dumps(headers)

    def abandon(self, user_id: str, key: str) -> None:
        """Forget a reservation whose outcome the client should be free to retry (5xx, 429)."""
        with self.store.begin() as session:
            session.execute(delete(IdempotencyKey).where(
                IdempotencyKey.user_id == user_id, IdempotencyKey.key == key))

    def purge(self) -> int:
        cutoff = datetime.now(UTC) - self.ttl
        with self.store.begin() as session:
            result = session.execute(delete(IdempotencyKey).where(
                IdempotencyKey.created_at < cutoff))
            return int(result.rowcount or 0)

    def _maybe_purge(self) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last_purge < self.purge_every_seconds:
                return
            self._last_purge = now
        self.purge()
