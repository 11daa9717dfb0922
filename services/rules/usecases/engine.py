"""The rules engine: the parts that take events in, keep timers, perform runs and deliver,
put together for one worker. It works on the rules service's database and talks to the
outside only through `Ports` (RPC to the owning services, SMTP, HTTP). Transactions are short
and never span a call to the outside: under eventlet a yield inside a SQLite write
transaction would block every other writer.

Following one event: `intake.take` (intake.py: projections, snapshot, timers, webhooks, runs
started by `runs.start`) -> `runs.execute` (runs.py) -> `actions.perform` (actions.py,
local_actions.py, with assignment.py and recipients.py) -> own events and webhooks queued
(webhook_queue.py). Then each `tick`: `firing.fire_due` (firing.py: timers start runs, or
resume and retry them), `emails.deliver_due`, `webhooks.deliver_due`.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update

from services.rules.clock import Clock
from services.rules.domain import timing
from services.rules.models import EmailDelivery, EventLog, Timer, WebhookDelivery
from services.rules.usecases.actions import Actions
from services.rules.usecases.email_delivery import EmailDeliveries
from services.rules.usecases.firing import TimerFiring
from services.rules.usecases.intake import Intake
from services.rules.usecases.local_actions import LocalActions
from services.rules.usecases.runs import Runs
from services.rules.usecases.support import Ports, Settings
from services.rules.usecases.timers import PRUNE_BATCH, Timers, prune_settled
from services.rules.usecases.webhook_delivery import WebhookDeliveries
from services.rules.usecases.webhook_queue import OwnEvents
from shared.db import DatabaseAccess

TIMER_LEASE = timedelta(minutes=5)
PRUNE_BATCHES = 4  # per maintenance: up to 20,000 settled timers every few seconds
# What a tick looks at first, with a read: an idle tick takes no write lock (SQLite has one
# writer). name, table, due column, statuses.
_DUE_CHECKS = (
    ("timers", Timer.__table__, Timer.__table__.c.due_at, ("pending",)),
    ("emails", EmailDelivery.__table__, EmailDelivery.__table__.c.next_attempt_at,
     ("pending", "sending")),
    ("webhooks", WebhookDelivery.__table__, WebhookDelivery.__table__.c.next_attempt_at,
     ("pending", "sending")),
)


class Engine:
    def __init__(
        self, db: DatabaseAccess, recorder: Any, clock: Clock, settings: Settings, ports: Ports
    ) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings
        self.ports = ports
        self.tz = timing.zone(settings.timezone)
        self.worker_id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.own_events = OwnEvents(recorder, clock)
        self.timers = Timers(clock, self.tz)
        self.actions = Actions(db, clock, ports, LocalActions(clock, self.own_events))
        self.runs = Runs(db, clock, settings, ports, self.timers, self.actions,
                         self.own_events)
        self.intake = Intake(db, clock, self.timers, self.runs)
        self.firing = TimerFiring(db, clock, settings, self.worker_id, self.timers, self.runs)
        self.emails = EmailDeliveries(db, clock, ports)
        self.webhooks = WebhookDeliveries(db, clock, ports, self.own_events)

    def take_event(self, envelope: dict[str, Any]) -> None:
        """An event in: taken in once, then the actions of the runs it started performed."""
        for run_id in self.intake.take(envelope):
            self.runs.execute(run_id)

    def tick(self) -> int:
        """Fire what is due (timers, then email and webhook deliveries); returns how many."""
        if self.clock.controllable:
            with self.db.read() as session:
                self.clock.refresh(session)
        now = self.clock.now()
        with self.db.read() as session:
            due = {
                name: session.scalar(
                    select(table.c.id).where(table.c.status.in_(statuses), column <= now)
                    .limit(1)
                ) is not None
                for name, table, column, statuses in _DUE_CHECKS
            }
        done = self.firing.fire_due(now) if due["timers"] else 0
        if due["emails"]:
            done += self.emails.deliver_due()
        if due["webhooks"]:
            done += self.webhooks.deliver_due()
        return done

    def maintenance(self) -> None:
        """Give back timers a process that died left claimed (versions before timers were
        taken and fired in one transaction); forget old events and settled timers; export
        lag."""
        now = self.clock.now()
        with self.db.begin() as session:
            session.execute(
                update(Timer).where(Timer.status == "claimed",
                                    Timer.claimed_at < now - TIMER_LEASE)
                .values(status="pending", claimed_by=None)
            )
            session.execute(delete(EventLog).where(
                EventLog.received_at < now - self.settings.event_retention))
            oldest = session.scalar(select(func.min(Timer.due_at)).where(
                Timer.status == "pending"))
        self.prune_timers(now)
        from services.rules import metrics

        metrics.TIMER_LAG.set(max((now - oldest).total_seconds(), 0.0) if oldest else 0.0)

    def prune_timers(self, now: datetime, batch: int = PRUNE_BATCH,
                     batches: int = PRUNE_BATCHES) -> int:
        """Forget fired and cancelled timers older than the retention (`timers.prune_settled`),
        up to `batch` per transaction, at most `batches`; returns how many."""
        cutoff = now - self.settings.timer_retention
        pruned = 0
        for _ in range(batches):
            with self.db.begin() as session:
                count = prune_settled(session, cutoff, batch)
            pruned += count
            if count < batch:
                break
        return pruned
