"""Firing due timers: a batch taken and fired in one transaction (the runs of rule, date and
schedule timers start there; resume and retry timers go on after the commit), one by one
when the batch fails."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.rules.clock import Clock
from services.rules.models import RecordSnapshot, Rule, RuleFiring, RuleRun, Timer
from services.rules.usecases.dumps import StartedRun
from services.rules.usecases.lanes import run_in_lanes
from services.rules.usecases.runs import Runs
from services.rules.usecases.support import Settings, claim_due
from services.rules.usecases.timers import RESUME_AFTER, Timers
from shared.db import DatabaseAccess

log = logging.getLogger(__name__)

# Timers that go on with a run after the commit, rather than start one.
RUN_TIMERS = ("action_retry", "run_resume")


class TimerFiring:
    def __init__(self, db: DatabaseAccess, clock: Clock, settings: Settings, worker_id: str,
                 timers: Timers, runs: Runs) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings
        self.worker_id = worker_id
        self.timers = timers
        self.runs = runs

    def fire_due(self, now: datetime) -> int:
        """Fire up to a batch of due timers; returns how many.

        A timer is taken (`fired`, by this process) and fired in one transaction: its runs
        start there, and runs made only of local actions (tasks, notifications) complete in it
        too. On PostgreSQL the rows stay locked until the commit, so no other process takes
        them (it skips them); if the process dies, the rollback leaves them pending. Runs that
        call another service and actions' retries go on after the commit. If the batch fails
        as a whole, each timer is fired on its own so that one bad timer cannot hold up the
        others."""
        from services.rules import metrics

        values = {"status": "fired", "fired_at": now, "outcome": "fired",
                  "claimed_by": self.worker_id, "claimed_at": now}
        rows: list[Any] = []
        try:
            with self.db.begin() as session:
                rows = claim_due(session, Timer.__table__, "due_at", now,
                                 self.settings.timer_batch, ("pending",), values)
                remote, retries, subjects = self._fire_taken(session, rows, now)
        except Exception:
            if not rows:
                raise
            log.exception("firing %d timers together failed; firing one by one", len(rows))
            for row in rows:
                self._fire_alone(row, values)
        else:
            self._after_commit(remote, retries, subjects)
        for row in rows:
            metrics.TIMER_LATENESS.observe(max((now - row.due_at).total_seconds(), 0.0))
        metrics.TIMERS_FIRED.inc(len(rows))
        return len(rows)

    def _after_commit(self, remote: list[tuple[str, str | None]], retries: list[Any],
                      subjects: dict[str, str | None] | None = None) -> None:
        """Perform the runs the batch started and the retries and resumes it took, side by
        side (lanes.py): those of one record in firing order (the started runs first, as
        before), at most `timer_concurrency` at once."""
        items: list[tuple[str, Callable[[], object]]] = []
        fired_at = self.clock.now()
        for run_id, record_key in remote:
            items.append((record_key or run_id, partial(self._perform, run_id, fired_at)))
        for row in retries:
            run_id = row.payload["run_id"]
            subject = (subjects or {}).get(run_id) or run_id
            if row.kind == "run_resume":
                items.append((subject, partial(self.runs.resume, run_id)))
            else:
                items.append((subject, partial(self.runs.execute, run_id,
                                               row.payload["action_index"],
                                               row.payload["attempt"])))
        run_in_lanes(items, self.settings.timer_concurrency, self.runs.own_events.lane)

    def _perform(self, run_id: str, fired_at: datetime) -> None:
        """A run the batch started. One that waited its turn in a lane for a while (a large
        batch) first pushes its resume timer on: if that came due meanwhile and another
        process took it, the run is that process's now."""
        if self.clock.now() - fired_at > RESUME_AFTER / 3:
            with self.db.begin() as session:
                ours = self.timers.keep_resume(session, run_id)
            if not ours:
                self.runs.forget(run_id)
                log.info("run %s was resumed by another process while it waited", run_id)
                return
        self.runs.execute(run_id)

    def _fire_alone(self, row: Any, values: dict[str, Any]) -> None:
        try:
            with self.db.begin() as session:
                taken = session.execute(
                    update(Timer).where(Timer.id == row.id, Timer.status == "pending")
                    .values(**values)
                ).rowcount == 1
                remote, retries, subjects = self._fire_taken(
                    session, [row] if taken else [], values["fired_at"])
        except Exception:  # one timer's bug must not stop the others
            log.exception("timer %s failed", row.id)
            with self.db.begin() as session:
                session.execute(update(Timer).where(Timer.id == row.id,
                                                    Timer.status == "pending")
                                .values(status="failed", outcome="error; see the log"))
            return
        self._after_commit(remote, retries, subjects)

    def _fire_taken(
        self, session: Session, rows: list[Any], now: datetime
    ) -> tuple[list[tuple[str, str | None]], list[Any], dict[str, str | None]]:
        """Fire timers this transaction took. Returns the runs to execute after the commit
        (with their record keys), the actions' retries to perform then, and the record keys
        of the retried runs."""
        retries = [row for row in rows if row.kind in RUN_TIMERS]
        rows = [row for row in rows if row.kind not in RUN_TIMERS]
        if retries:
            session.execute(update(Timer).where(Timer.id.in_([row.id for row in retries]))
                            .values(outcome="retrying the action"))
            # Should this process die while retrying or resuming, a timer resumes them again.
            found = session.execute(select(RuleRun.id, RuleRun.status, RuleRun.record_key)
                                    .where(RuleRun.id.in_({row.payload["run_id"]
                                                           for row in retries}))).all()
            statuses = {run_id: status for run_id, status, _ in found}
            subjects = {run_id: record_key for run_id, _, record_key in found}
            for run_id in {row.payload["run_id"] for row in retries
                           if statuses.get(row.payload["run_id"]) == "running"
                           or (row.kind == "action_retry"
                               and statuses.get(row.payload["run_id"]) == "retrying")}:
                self.timers.add_resume(session, run_id)
        else:
            subjects = {}
        if not rows:
            return [], retries, subjects
        remote: list[tuple[str, str | None]] = []
        rule_ids = {row.rule_id for row in rows if row.rule_id}
        rules = {r.id: r for r in session.scalars(
            select(Rule).where(Rule.id.in_(rule_ids))).all()}
        keys = {row.record_key for row in rows if row.record_key}
        snapshots = {s.key: s for s in session.scalars(
            select(RecordSnapshot).where(RecordSnapshot.key.in_(keys))).all()}
        firings = {(f.rule_id, f.record_key): f for f in session.scalars(
            select(RuleFiring).where(RuleFiring.rule_id.in_(rule_ids),
                                     RuleFiring.record_key.in_(keys | {"-"}))).all()}
        disabled = []
        # Flushed once at commit, as batched inserts, not before every outbox insert.
        session.autoflush = False
        for row in rows:
            rule = rules.get(row.rule_id)
            if rule is None or not rule.enabled:
                disabled.append(row.id)
                continue
            run = self.timer_run(session, row, rule, snapshots.get(row.record_key), now,
                                 firings)
            if run is None or run.status != "running":
                continue
            run_id = self.runs.proceed(session, run, rule.definition)
            if run_id is not None:
                remote.append((run_id, row.record_key))
        if disabled:
            session.execute(update(Timer).where(Timer.id.in_(disabled))
                            .values(outcome="rule disabled or deleted"))
        return remote, retries, subjects

    def timer_run(
        self, session: Session, row: Any, rule: Rule, snapshot: RecordSnapshot | None,
        now: datetime, firings: dict | None = None,
    ) -> StartedRun | None:
        """The run a rule's timer starts, on the record's latest snapshot; a schedule's next
        timer, a yearly date's next year."""
        trigger = rule.definition["trigger"]
        origin = row.payload.get("event") or {}
        depth = int(origin.get("causation_depth") or 0)
        record_type = record = None
        if row.record_key:
            record_type = row.record_key.split(":", 1)[0]
            record = dict(snapshot.data) if snapshot else {"id": row.record_key.split(":", 1)[1]}
        trigger_name = "schedule" if row.kind == "schedule" else "timer"
        envelope = {**origin, "timer_id": row.id}
        # An exact instant that was waited for (timers.py) is its own cause: no dedupe window.
        run = self.runs.start(session, rule, trigger_name, envelope, row.record_key,
                              record_type, record, {}, depth, now, timer_id=row.id,
                              firings=firings, dedupe=not row.payload.get("waited"))
        if row.kind == "schedule":
            self.timers.schedule_next(session, rule, now)
        elif row.kind == "date" and trigger.get("yearly") and record:
            self.timers.schedule_date(session, rule, trigger, record_type, record, depth,
                                      now + timedelta(seconds=1))
        return run
