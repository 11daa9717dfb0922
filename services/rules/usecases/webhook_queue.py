"""Webhook deliveries queued for an event (in the transaction that takes it in or records it),
for the subscriptions whose owner may see it; and our own events, recorded with theirs."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import eventlet.corolocal
from sqlalchemy.orm import Session

from services.rules.domain import records
from services.rules.domain import rules as rules_domain
from services.rules.models import WebhookDelivery
from services.rules.usecases.cached import effective_authority, subscriptions
from services.rules.usecases.support import OWN_PRODUCER
from shared.outbox import EventRecorder


def subscribed(session: Session, name: str) -> bool:
    return any(rules_domain.event_matches(sub.event_types, name)
               for sub in subscriptions(session))


def queue_webhooks(
    session: Session, envelope: dict[str, Any], name: str, now: datetime,
    record_type: str | None = None, record: dict[str, Any] | None = None,
) -> None:
    body = None
    for sub in subscriptions(session):
        if not rules_domain.event_matches(list(sub.event_types), name):
            continue
        if sub.authority and not subscriber_sees(session, sub.authority, name, envelope,
                                                 record_type, record):
            continue  # a manager's subscription carries what the manager may see
        if body is None:
            body = json.dumps({**envelope, "type": name}, ensure_ascii=False)
        session.add(WebhookDelivery(
            id="msg_" + uuid.uuid4().hex, subscription_id=sub.id,
            event_id=envelope["event_id"], event_type=name, body=body, status="pending",
            attempts=0, next_attempt_at=now, attempt_log=[], created_at=now,
        ))


def subscriber_sees(
    session: Session, stored: dict[str, Any], name: str, envelope: dict[str, Any],
    record_type: str | None, record: dict[str, Any] | None,
) -> bool:
    authority = effective_authority(session, stored)
    if record is not None and not name.startswith(("rules.", "gateway.")):
        return authority.covers(record_type, record)  # the snapshot, when only an id came
    return authority.sees_event(name, envelope.get("data") or {})


def owner_refuses(session: Session, stored: dict[str, Any], row: Any) -> str | None:
    """Why a manager's subscription may no longer get this delivery (checked again when
    it is sent: the owner may have left, the record may have left their teams)."""
    authority = effective_authority(session, stored)
    if authority.revoked:
        return f"not sent: {authority.revoked}"
    try:
        data = json.loads(row.body).get("data") or {}
    except (ValueError, AttributeError):
        data = {}
    record_type, record = records.primary_record(data) if isinstance(
        data, dict) else (None, None)
    if record is not None and "owner_id" in record and not authority.covers(
            record_type, record):
        return "not sent: the record is outside the subscription owner's view"
    return None


class OwnEvents:
    """The rules service's own events: inserted together at the commit of the transaction
    that records them. They do not come back through `crm.events`: their webhook deliveries
    are queued here."""

    def __init__(self, recorder: Any, clock: Any) -> None:
        self._recorder = recorder
        self._lanes = eventlet.corolocal.local()
        self.clock = clock

    @property
    def recorder(self) -> Any:
        """The worker's recorder, or the current lane's (lanes.py)."""
        return getattr(self._lanes, "recorder", None) or self._recorder

    @contextmanager
    def lane(self) -> Iterator[None]:
        """A recorder of this green thread's own, for a lane running beside others in one
        worker: a recorder follows one transaction at a time (a rollback of one lane's
        would forget the events of another's, a commit pass them on uncommitted) and holds
        the context its events carry. What the lane's transactions commit joins the
        worker's recorder at the end, for the relay."""
        parent = self._recorder
        if not isinstance(parent, EventRecorder):
            yield
            return
        child = EventRecorder(parent.service, parent.table, parent.schemas, parent.ctx,
                              parent.quick_checks)
        self._lanes.recorder = child
        try:
            yield
        finally:
            del self._lanes.recorder
            parent.committed.extend(child.committed)

    def record(self, session: Session, event_type: str, data: dict[str, Any]) -> None:
        envelope = self.recorder.record(session, event_type, data, defer=True)
        name = f"{OWN_PRODUCER}.{event_type}"
        if subscribed(session, name):
            queue_webhooks(session, envelope, name, self.clock.now())
