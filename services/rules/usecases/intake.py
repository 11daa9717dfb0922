"""The intake: one event, once, in one transaction -> the directory projection, the record's
snapshot and changes, the timers it cancels, the webhook deliveries it queues, and the runs
of the matching rules (started; the local ones completed) and the timers it starts. Returns
the runs whose actions call other services, performed after the commit (`Runs.execute`)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from services.rules.clock import Clock
from services.rules.domain import records
from services.rules.domain import rules as rules_domain
from services.rules.models import EventLog, inbox
from services.rules.usecases.cached import enabled_rules, forget_directory
from services.rules.usecases.projections import project_directory, store_snapshot
from services.rules.usecases.runs import Runs
from services.rules.usecases.support import OWN_PRODUCER
from services.rules.usecases.timers import Timers
from services.rules.usecases.webhook_queue import queue_webhooks
from shared.db import DatabaseAccess, defer_insert
from shared.inbox import first_delivery

log = logging.getLogger(__name__)

EVENT_LOG = EventLog.__table__


class Intake:
    def __init__(self, db: DatabaseAccess, clock: Clock, timers: Timers, runs: Runs) -> None:
        self.db = db
        self.clock = clock
        self.timers = timers
        self.runs = runs

    def take(self, envelope: dict[str, Any]) -> list[str]:
        """Record an event once: projections, cancelled and started timers, webhook deliveries
        and the runs of matching rules. Returns the runs whose actions are to be performed."""
        event_id = envelope.get("event_id")
        producer = envelope.get("producer") or ""
        event_type = envelope.get("event_type") or ""
        if not event_id or not event_type:
            log.warning("ignoring a message that is not an event envelope")
            return []
        name = f"{producer}.{event_type}"
        if producer == OWN_PRODUCER:
            # Our own events are not published into crm.events (their webhooks are queued
            # when they are recorded); one arriving anyway, e.g. through a binding made by an
            # older version, is not acted on: rules never react to rules.
            return []
        now = self.clock.now()
        with self.db.begin() as session:
            if not first_delivery(session, inbox, event_id, "rules.intake"):
                return []
            # One flush at commit (batched inserts) instead of one before every query; the
            # intake never reads back what it added in the same transaction.
            session.autoflush = False
            defer_insert(session, EVENT_LOG, {"event_id": event_id, "event_name": name,
                                              "envelope": envelope, "received_at": now})
            data = envelope.get("data") or {}
            if producer == "gateway":
                project_directory(session, event_type, data, envelope.get("occurred_at"))
                forget_directory()
            record_type, record, changes, first_seen = store_snapshot(session, data, now)
            keys = records.related_keys(data)
            # The first event about a record, concerning no other: no timer and no firing can
            # refer to it yet, so there is nothing to look up.
            fresh = first_seen and len(keys) == 1
            if not fresh:
                self.timers.cancel_for_event(session, keys, name, event_id)
            queue_webhooks(session, envelope, name, now, record_type, record)
            return self._match_rules(session, envelope, name, record_type, record, changes,
                                     keys, now, fresh)

    def _match_rules(
        self, session: Session, envelope: dict[str, Any], name: str, record_type: str | None,
        record: dict[str, Any] | None, changes: dict[str, Any], keys: dict[str, str],
        now: datetime, fresh: bool = False,
    ) -> list[str]:
        """Event rules start a run; delay and date rules start (or restart) a timer."""
        run_ids: list[str] = []
        depth = int(envelope.get("causation_depth") or 0)
        firings: dict | None = {} if fresh else None  # a fresh record has fired no rule
        for rule in enabled_rules(session):
            trigger = rule.definition["trigger"]
            kind = trigger["type"]
            if kind == "event":
                if not rules_domain.event_matches(trigger["event"], name):
                    continue
                if not rules_domain.field_change_matches(trigger, changes):
                    continue
                key = records.record_key(record_type, str(record["id"])) if record else None
                run = self.runs.start(session, rule, "event", envelope, key, record_type,
                                      record, changes, depth, now, firings=firings)
                if run.status != "running":
                    continue
                run_id = self.runs.proceed(session, run, rule.definition)
                if run_id is not None:
                    run_ids.append(run_id)
            elif kind == "delay" and rules_domain.event_matches(trigger["events"], name):
                self.timers.schedule_delay(session, rule, trigger, envelope, keys, now, fresh)
            elif kind == "date" and rules_domain.event_matches(trigger["events"], name):
                wanted = trigger.get("record") or record_type
                if wanted == record_type and record is not None:
                    skipped = self.timers.schedule_date(
                        session, rule, trigger, record_type, record, depth, now, fresh,
                        event_data=envelope.get("data"))
                    if skipped:  # `"at": "exact"` without an instant: said in a run
                        self.runs.record_skipped(session, rule, envelope, record_type, record,
                                                 depth, now, skipped)
        return run_ids
