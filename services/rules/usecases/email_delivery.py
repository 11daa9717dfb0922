"""Sending the email deliveries the runs queued: up to a batch over one SMTP connection per
tick, each outcome recorded as it happens, with a Message-ID made from the delivery's id."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from sqlalchemy import update

from services.rules.clock import Clock
from services.rules.models import EmailDelivery
from services.rules.usecases.support import Ports, claim_due
from shared.db import DatabaseAccess

DELIVERY_LEASE = timedelta(minutes=2)
EMAIL_BACKOFF = (10, 60, 300, 1800, 3600, 6 * 3600)
EMAIL_BATCH = 100  # deliveries sent over one SMTP connection per tick


class EmailDeliveries:
    def __init__(self, db: DatabaseAccess, clock: Clock, ports: Ports) -> None:
        self.db = db
        self.clock = clock
        self.ports = ports

    def deliver_due(self) -> int:
        """Send the email deliveries due, over one SMTP connection, and record each outcome as
        it happens: sent with its Message-ID, or failed with the reason, retried with back-off
        (EMAIL_BACKOFF) unless the failure is permanent (a refused address).

        The Message-ID is made from the delivery's id, so a delivery sent again is the same
        message; and since each outcome is stored before the next message goes, a process
        dying mid-batch leaves at most the one message in flight to be sent again (with that
        same Message-ID), not the whole claimed batch."""
        now = self.clock.now()
        with self.db.begin() as session:
            rows = claim_due(session, EmailDelivery.__table__, "next_attempt_at", now,
                             EMAIL_BATCH, ("pending", "sending"),
                             {"status": "sending", "next_attempt_at": now + DELIVERY_LEASE})
        if not rows:
            return 0
        done: set[str] = set()
        # Well within the claim's lease, so that no other process takes these while they are
        # being sent; what is left when it passes goes back for the next tick.
        deadline = time.monotonic() + DELIVERY_LEASE.total_seconds() / 2
        try:
            with self.ports.email_connection() as connection:
                for row in rows:
                    try:
                        outcome: str | Exception = self.ports.send_email(
                            list(row.recipients), row.subject, row.text, connection, row.id)
                    except Exception as exc:  # noqa: BLE001 - recorded on the delivery
                        outcome = exc
                    self.record_outcome(row, outcome)
                    done.add(row.id)
                    if isinstance(outcome, Exception) and not connection.open:
                        break  # no session with the relay: the rest would fail alike
                    if time.monotonic() > deadline:
                        break
        except Exception as exc:  # noqa: BLE001 - e.g. CRM_SMTP_* wrong: each delivery says so
            for row in rows:
                if row.id not in done:
                    self.record_outcome(row, exc)
                    done.add(row.id)
        left = [row.id for row in rows if row.id not in done]
        if left:
            with self.db.begin() as session:
                session.execute(update(EmailDelivery).where(
                    EmailDelivery.id.in_(left), EmailDelivery.status == "sending")
                    .values(status="pending", next_attempt_at=self.clock.now()))
        return len(rows)

    def record_outcome(self, row: Any, outcome: str | Exception) -> None:
        from services.rules.notify import DeliveryFailed

        now = self.clock.now()
        attempts = (row.attempts or 0) + 1
        values: dict[str, Any]
        if isinstance(outcome, str):
            values = {"status": "sent", "message_id": outcome, "sent_at": now,
                      "next_attempt_at": None, "last_error": None}
        else:
            values = {"last_error": f"{type(outcome).__name__}: {outcome}"[:2000]}
            permanent = isinstance(outcome, DeliveryFailed) and outcome.permanent
            if permanent or attempts > len(EMAIL_BACKOFF):
                values.update(status="failed", next_attempt_at=None)
            else:
                values.update(status="pending", next_attempt_at=now + timedelta(
                    seconds=EMAIL_BACKOFF[attempts - 1]))
        with self.db.begin() as session:
            session.execute(update(EmailDelivery).where(EmailDelivery.id == row.id)
                            .values(attempts=attempts, **values))
