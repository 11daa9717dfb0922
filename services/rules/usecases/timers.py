"""Timers: started and rescheduled by events (delay and date triggers) and by saving a rule
(schedules), cancelled by events (`unless`), and the resume timer that finishes a run whose
process died (see RESUME_AFTER). Firing them is `firing.py`'s."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from services.rules.clock import Clock
from services.rules.domain import records, timing
from services.rules.models import RecordSnapshot, Rule, Timer, TimerCancel
from services.rules.usecases.dumps import event_summary
from services.rules.usecases.support import new_id
from shared import config
from shared.db import defer_insert

# A run that calls other services gets a `run_resume` timer in the transaction that starts it
# (or retries or resumes it): if the process dies before the run is finished, the timer resumes
# it this long after, in whichever rules process takes it (also at start-up: due timers fire
# at the first tick). A run that finished by then makes the timer a no-op.
RESUME_AFTER = timedelta(seconds=float(config.env("CRM_RULES_RESUME_SECONDS", "30")))
TIMERS = Timer.__table__
TIMER_CANCELS = TimerCancel.__table__


def exact_value(field: str, record: dict[str, Any], event_data: dict[str, Any] | None
                ) -> object:
    """An `"at": "exact"` trigger's field: in the event's data when it is there at the top
    level (null included: the event says there is no instant), else in the record."""
    if isinstance(event_data, dict) and field in event_data:
        return event_data[field]
    return record.get(field)


def _sequence(trigger: dict[str, Any], event_data: dict[str, Any] | None) -> int | None:
    field = trigger.get("sequence")
    value = event_data.get(field) if field and isinstance(event_data, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# Fired and cancelled timers pruned per statement (engine.maintenance), each its own transaction.
PRUNE_BATCH = 5000


def prune_settled(session: Session, cutoff: datetime, limit: int = PRUNE_BATCH) -> int:
    """Delete up to `limit` settled timers older than `cutoff`, with their cancelling keys;
    returns how many. Fired: fired before the cutoff. Cancelled (the moment is not stored):
    created and due before it, so each is kept at least a retention after it was set and
    after the moment it would have fired. Pending and failed timers are never pruned. Both
    read the index on (status, due_at): a timer fires at or after its due time."""
    old = []
    for status, since in (("fired", Timer.fired_at), ("cancelled", Timer.created_at)):
        if len(old) >= limit:
            break
        old += session.execute(
            select(Timer.id, Timer.cancel_keys).where(
                Timer.status == status, Timer.due_at < cutoff, since < cutoff)
            .limit(limit - len(old))).all()
    if not old:
        return 0
    ids = [row.id for row in old]
    session.execute(delete(Timer).where(Timer.id.in_(ids),
                                        Timer.status.in_(("fired", "cancelled"))))
    keys = {key for row in old for key in (row.cancel_keys or [])}
    if keys:  # a fired timer keeps its keys; by the key, the table's index
        session.execute(delete(TimerCancel).where(TimerCancel.key.in_(keys),
                                                  TimerCancel.timer_id.in_(ids)))
    return len(ids)


class Timers:
    def __init__(self, clock: Clock, tz: Any) -> None:
        self.clock = clock
        self.tz = tz
        self._resume_timers: dict[str, str] = {}  # run id -> its pending run_resume timer

    def add(
        self, session: Session, *, kind: str, due_at: datetime, rule: Rule | None,
        record_key: str | None, payload: dict[str, Any], cancel_keys: list[str] | None = None,
    ) -> str:
        timer_id = new_id()
        defer_insert(session, TIMERS, {
            "id": timer_id, "kind": kind, "due_at": due_at, "status": "pending",
            "rule_id": rule.id if rule else None, "rule_version": rule.version if rule else None,
            "record_key": record_key, "payload": payload, "cancel_keys": cancel_keys or [],
            "created_at": self.clock.now(),
        })
        for key in cancel_keys or []:
            defer_insert(session, TIMER_CANCELS, {"key": key, "timer_id": timer_id})
        return timer_id

    # ---- what events do to timers ---------------------------------------------------------

    def cancel_for_event(
        self, session: Session, keys: dict[str, str], name: str, event_id: str
    ) -> None:
        """The pending timers this event cancels (an `unless` about one of its records)."""
        cancel_keys = [f"{key}|{name}" for key in keys.values()]
        if not cancel_keys:
            return
        timer_ids = session.scalars(
            select(TimerCancel.timer_id).where(TimerCancel.key.in_(cancel_keys))
        ).all()
        if not timer_ids:
            return
        session.execute(
            update(Timer).where(Timer.id.in_(timer_ids), Timer.status == "pending")
            .values(status="cancelled", outcome=f"cancelled by {name} {event_id}")
        )
        session.execute(delete(TimerCancel).where(TimerCancel.timer_id.in_(timer_ids)))

    def _replace_pending(self, session: Session, rule_id: str, record_key: str | None) -> None:
        ids = session.scalars(
            select(Timer.id).where(Timer.rule_id == rule_id, Timer.record_key == record_key,
                                   Timer.status == "pending")
        ).all()
        if ids:
            session.execute(update(Timer).where(Timer.id.in_(ids), Timer.status == "pending")
                            .values(status="cancelled", outcome="replaced by a newer start"))
            session.execute(delete(TimerCancel).where(TimerCancel.timer_id.in_(ids)))

    def schedule_delay(
        self, session: Session, rule: Rule, trigger: dict[str, Any], envelope: dict[str, Any],
        keys: dict[str, str], now: datetime, fresh: bool = False,
    ) -> None:
        record_type = trigger.get("record")
        key = keys.get(record_type) if record_type else next(iter(keys.values()), None)
        if key is None:
            return
        if not fresh:
            self._replace_pending(session, rule.id, key)
        unless = trigger.get("unless") or []
        self.add(
            session, kind="rule", due_at=now + timing.parse_duration(trigger["delay"]),
            rule=rule, record_key=key,
            payload={"event": event_summary(envelope)},
            cancel_keys=[f"{key}|{name}" for name in unless],
        )

    def schedule_date(
        self, session: Session, rule: Rule, trigger: dict[str, Any], record_type: str,
        record: dict[str, Any], depth: int, now: datetime, fresh: bool = False,
        late_ok: bool = True, event_data: dict[str, Any] | None = None,
    ) -> str | None:
        """Start (or replace) the record's date timer. With `"at": "exact"`: the reason no
        timer was started when the field holds no instant (the caller records it), else None.
        `late_ok`: an exact instant already past fires at once (an event telling it), not when
        a saved rule goes over the records it knows. `event_data`: the starting event's data,
        where an exact trigger's field is read first (`{"ticket_id", "next_check_at"}` names
        its record by a link only, so the snapshot does not carry the field)."""
        key = records.record_key(record_type, str(record["id"]))
        if trigger.get("at") == timing.EXACT and trigger.get("sequence") and not fresh:
            newer = self._newer_pending(session, rule.id, key, trigger["sequence"], event_data)
            if newer:
                return newer
        if not fresh:
            self._replace_pending(session, rule.id, key)
        if trigger.get("at") == timing.EXACT:
            return self._schedule_exact(session, rule, trigger, key, record, depth, now,
                                        late_ok, event_data)
        due = timing.relative_due(
            record.get(trigger["field"]), now=now, tz=self.tz,
            offset_days=trigger.get("offset_days", 0),
            offset_months=trigger.get("offset_months", 0),
            at=timing.parse_time_of_day(trigger.get("at")), yearly=trigger.get("yearly", False),
        )
        if due is not None:
            self.add(session, kind="date", due_at=due, rule=rule, record_key=key,
                     payload={"event": {"causation_depth": depth}})
        return None

    def _schedule_exact(
        self, session: Session, rule: Rule, trigger: dict[str, Any], key: str,
        record: dict[str, Any], depth: int, now: datetime, late_ok: bool,
        event_data: dict[str, Any] | None,
    ) -> str | None:
        field = trigger["field"]
        value = exact_value(field, record, event_data)
        due = timing.exact_due(value, now=now, offset_days=trigger.get("offset_days", 0),
                               offset_months=trigger.get("offset_months", 0), late_ok=late_ok)
        if due is None:
            if timing.parse_instant(value) is not None:
                return None  # past, and not told by an event: nothing to do
            shown = "missing" if value in (None, "") else f"not an instant: {str(value)[:80]!r}"
            return f"no timer: {field} is {shown}"
        # An instant still ahead is waited for: when it comes, time is the cause, not the
        # chain of events that set it (firing.py starts its run at depth 0, outside the dedupe
        # window), so a ticket checked at each of its instants is never cut off as a loop. An
        # instant already past fires at the next tick as part of that chain.
        payload: dict[str, Any] = {"event": {"causation_depth": 0 if due > now else depth}}
        if due > now:
            payload["waited"] = True
        sequence = _sequence(trigger, event_data)
        if sequence is not None:
            payload["sequence"] = sequence
        self.add(session, kind="date", due_at=due, rule=rule, record_key=key, payload=payload)
        return None

    def _newer_pending(self, session: Session, rule_id: str, record_key: str, field: str,
                       event_data: dict[str, Any] | None) -> str | None:
        """Why this event must not replace the pending timer: it numbers an older schedule
        (`trigger.sequence`) than the one the timer was set from (events may be taken out of
        order); None when it may."""
        incoming = _sequence({"sequence": field}, event_data)
        if incoming is None:
            return None
        payloads = session.scalars(
            select(Timer.payload).where(Timer.rule_id == rule_id, Timer.record_key == record_key,
                                        Timer.status == "pending")).all()
        newest = max((p["sequence"] for p in payloads
                      if isinstance(p, dict) and isinstance(p.get("sequence"), int)),
                     default=None)
        if newest is not None and incoming < newest:
            return f"superseded: {field} {incoming} is older than the pending timer's {newest}"
        return None

    def schedule_next(self, session: Session, rule: Rule, now: datetime) -> None:
        """A schedule's next timer."""
        self.add(session, kind="schedule",
                 due_at=timing.next_cron(rule.definition["trigger"]["cron"], now, self.tz),
                 rule=rule, record_key=None, payload={})

    def schedule_rule(self, session: Session, rule: Rule) -> None:
        """After a rule is saved or enabled: its schedule's next timer; date triggers for the
        records already known."""
        trigger = rule.definition["trigger"]
        now = self.clock.now()
        if trigger["type"] == "schedule":
            self._replace_pending(session, rule.id, None)
            if rule.enabled:
                self.schedule_next(session, rule, now)
        elif trigger["type"] == "date" and rule.enabled and trigger.get("record"):
            snapshots = session.scalars(
                select(RecordSnapshot).where(RecordSnapshot.record_type == trigger["record"])
            ).all()
            for snapshot in snapshots:
                self.schedule_date(session, rule, trigger, snapshot.record_type,
                                   snapshot.data, 0, now, late_ok=False)

    # ---- resume timers ----------------------------------------------------------------------

    def add_resume(self, session: Session, run_id: str) -> None:
        # Remembered, so that the transaction finishing the run cancels it (by its key).
        self._resume_timers[run_id] = self.add(
            session, kind="run_resume", due_at=self.clock.now() + RESUME_AFTER, rule=None,
            record_key=None, payload={"run_id": run_id})

    def keep_resume(self, session: Session, run_id: str) -> bool:
        """Before a run that waited in a lane goes on: push its resume timer on, if it is still
        pending. False when another process has taken it (it came due while the run waited
        its turn): that process performs the run, this one must not."""
        timer_id = self._resume_timers.get(run_id)
        if timer_id is None:
            return True
        return session.execute(
            update(Timer).where(Timer.id == timer_id, Timer.status == "pending")
            .values(due_at=self.clock.now() + RESUME_AFTER)).rowcount == 1

    def forget_resume(self, run_id: str) -> None:
        self._resume_timers.pop(run_id, None)

    def cancel_resume(self, session: Session, run_id: str) -> None:
        timer_id = self._resume_timers.pop(run_id, None)
        if timer_id is not None:
            session.execute(update(Timer).where(Timer.id == timer_id,
                                                Timer.status == "pending")
                            .values(status="cancelled", outcome="the run finished"))

    def add_action_retry(self, session: Session, due: datetime, run_id: str, index: int,
                         attempt: int) -> None:
        self.add(session, kind="action_retry", due_at=due, rule=None, record_key=None,
                 payload={"run_id": run_id, "action_index": index, "attempt": attempt})
