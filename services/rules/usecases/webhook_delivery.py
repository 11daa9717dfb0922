"""Sending the webhook deliveries queued for events and notifications: checked again for the
subscription's owner, signed and sent (notify/webhooks.py), retried with back-off; a 410 Gone
disables the subscription."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from services.rules.clock import Clock
from services.rules.models import WebhookDelivery, WebhookSubscription
from services.rules.usecases.cached import forget_cached_rules
from services.rules.usecases.email_delivery import DELIVERY_LEASE
from services.rules.usecases.support import Ports, claim_due
from services.rules.usecases.webhook_queue import OwnEvents, owner_refuses
from shared.db import DatabaseAccess

WEBHOOK_BATCH = 50


class WebhookDeliveries:
    def __init__(self, db: DatabaseAccess, clock: Clock, ports: Ports,
                 own_events: OwnEvents) -> None:
        self.db = db
        self.clock = clock
        self.ports = ports
        self.own_events = own_events

    def deliver_due(self) -> int:
        now = self.clock.now()
        with self.db.begin() as session:
            rows = claim_due(session, WebhookDelivery.__table__, "next_attempt_at", now,
                             WEBHOOK_BATCH, ("pending", "sending"),
                             {"status": "sending", "next_attempt_at": now + DELIVERY_LEASE})
            subs = {s.id: (s.url, s.secret, s.active, s.authority) for s in session.scalars(
                select(WebhookSubscription).where(WebhookSubscription.id.in_(
                    {row.subscription_id for row in rows})))}
        for row in rows:
            self.deliver(row, subs.get(row.subscription_id))
        return len(rows)

    def deliver(self, row: Any, subscription: tuple[str, str, bool, Any] | None) -> None:
        from services.rules.notify import next_attempt_delay

        refusal = None
        if subscription is None or not subscription[2]:
            refusal = "the subscription is disabled or deleted"
        elif subscription[3]:
            with self.db.read() as session:
                refusal = owner_refuses(session, subscription[3], row)
        if refusal:
            with self.db.begin() as session:
                item = session.get(WebhookDelivery, row.id)
                item.status, item.next_attempt_at = "failed", None
                item.last_error = refusal
            return
        url, secret = subscription[0], subscription[1]
        outcome = self.ports.deliver_webhook(url, secret, row.id, row.body.encode("utf-8"))
        now = self.clock.now()
        with self.db.begin() as session:
            item = session.get(WebhookDelivery, row.id)
            item.attempts = row.attempts + 1
            item.last_status_code = outcome.status_code
            item.last_error = None if outcome.ok else (outcome.error or "")[:2000]
            item.attempt_log = [*(item.attempt_log or [])[-49:], {
                "at": now.isoformat(), "status_code": outcome.status_code, "ok": outcome.ok,
                "error": outcome.error, "duration_ms": outcome.duration_ms}]
            if outcome.ok:
                item.status, item.delivered_at, item.next_attempt_at = "delivered", now, None
                return
            if outcome.disable:
                sub = session.get(WebhookSubscription, row.subscription_id)
                sub.active = False
                sub.disabled_reason = f"the receiver answered 410 Gone at {now.isoformat()}"
                forget_cached_rules()
                item.status, item.next_attempt_at = "failed", None
                self.own_events.record(session, "webhook_subscription_disabled", {
                    "subscription_id": sub.id, "reason": sub.disabled_reason})
                return
            delay = next_attempt_delay(item.attempts) if outcome.retry else None
            if delay is None:
                item.status, item.next_attempt_at = "failed", None
                self.own_events.record(session, "webhook_delivery_failed", {
                    "delivery_id": item.id, "subscription_id": item.subscription_id,
                    "event_type": item.event_type, "attempts": item.attempts,
                    "last_status_code": item.last_status_code, "last_error": item.last_error})
            else:
                item.status, item.next_attempt_at = "pending", now + delay
