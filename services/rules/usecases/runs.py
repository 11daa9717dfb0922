"""Runs: started for a rule and an event or a timer (authority, conditions, the loop guard),
then their actions performed in order, each outcome stored as it happens, so that a run
resumed after a crash does nothing twice; failing actions retried by a timer."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from eventlet.timeout import Timeout as CallTimeout
from sqlalchemy import bindparam, update
from sqlalchemy.orm import Session

from services.rules.clock import Clock
from services.rules.domain import conditions, records
from services.rules.domain import rules as rules_domain
from services.rules.models import Rule, RuleFiring, RuleRun, RuleVersion
from services.rules.usecases.actions import Actions
from services.rules.usecases.cached import directory, effective_authority
from services.rules.usecases.dumps import (
    RUN_SUMMARY_FIELDS,
    StartedRun,
    event_summary,
    run_summary,
    user_to_dict,
)
from services.rules.usecases.local_actions import LOCAL_ACTIONS
from services.rules.usecases.support import (
    PermanentFailure,
    Ports,
    Settings,
    Skipped,
    failure,
    new_id,
)
from services.rules.usecases.timers import Timers
from services.rules.usecases.webhook_queue import OwnEvents
from shared.db import DatabaseAccess, defer_insert
from shared.errors import CrmError

log = logging.getLogger(__name__)

# An action's outcome once it is done: a resumed run goes on from the first action without one.
FINAL_OUTCOMES = ("ok", "skipped", "failed")
RUNS = RuleRun.__table__
FIRINGS = RuleFiring.__table__
UPDATE_RUN = update(RUNS).where(RUNS.c.id == bindparam("run_id"))


@dataclass(frozen=True)
class RunState:
    """What performing a run's actions needs, kept by the engine that started it."""

    summary: dict[str, Any]  # what `rule_run_completed` reports that the actions do not change
    started_at: datetime
    causation_depth: int
    definition: dict[str, Any]
    context: dict[str, Any]
    actions: list[dict[str, Any]]

    @classmethod
    def of(cls, run: RuleRun | StartedRun, definition: dict[str, Any]) -> RunState:
        return cls(summary={name: getattr(run, name) for name in RUN_SUMMARY_FIELDS},
                   started_at=run.started_at, causation_depth=run.causation_depth,
                   definition=definition, context=dict(run.context or {}),
                   actions=list(run.actions or []))


def condition_names(
    session: Session, envelope: dict[str, Any], record_type: str | None,
    record: dict[str, Any] | None, changes: dict[str, Any],
) -> dict[str, Any]:
    """What a condition can refer to."""
    record = record or {}
    owner = directory(session).users.get(record.get("owner_id") or "")
    names: dict[str, Any] = {name: value for name, value in record.items()
                             if isinstance(name, str) and name.isidentifier()}
    names.update({
        "record": record, "record_type": record_type, "event": event_summary(envelope),
        "data": envelope.get("data") or {}, "changes": changes,
        "owner": user_to_dict(owner),
    })
    if record_type:
        names[record_type] = record
    return names


def only_local(definition: dict[str, Any]) -> bool:
    """A run of this rule completes in the transaction that starts it."""
    return all(a["type"] in LOCAL_ACTIONS for a in definition["actions"])


class Runs:
    def __init__(self, db: DatabaseAccess, clock: Clock, settings: Settings, ports: Ports,
                 timers: Timers, actions: Actions, own_events: OwnEvents) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings
        self.ports = ports
        self.timers = timers
        self.actions = actions
        self.own_events = own_events
        # Runs this engine started, for `execute` (an engine lives for one worker).
        self._started: dict[str, RunState] = {}

    # ---- starting ---------------------------------------------------------------------------

    def start(
        self, session: Session, rule: Rule, trigger: str, envelope: dict[str, Any],
        record_key: str | None, record_type: str | None, record: dict[str, Any] | None,
        changes: dict[str, Any], depth: int, now: datetime, timer_id: str | None = None,
        firings: dict | None = None, dedupe: bool = True,
    ) -> StartedRun:
        definition = rule.definition
        authority = effective_authority(session, getattr(rule, "authority", None))
        if not authority.revoked and not authority.covers(record_type, record):
            # A team rule does not see another team's records: no run, nothing in its audit.
            return SimpleNamespace(id=None, status="outside_authority")
        # Every column is set here: the row is the namespace's __dict__, inserted at commit
        # with the values the run holds then (a batch of timers starts hundreds of runs, and
        # the unit of work cost more than their INSERT).
        run = SimpleNamespace(
            id=new_id(), rule_id=rule.id, rule_version=rule.version, trigger=trigger,
            event_id=envelope.get("event_id"),
            event_type=(f"{envelope['producer']}.{envelope['event_type']}"
                        if envelope.get("producer") and envelope.get("event_type") else None),
            timer_id=timer_id, record_key=record_key, matched=None, status="evaluating",
            reason=None, actions=[],
            context={"record_type": record_type, "record": record or {},
                     "event": event_summary(envelope), "changes": changes,
                     "rule": {"id": rule.id, "name": rule.name, "version": rule.version},
                     "authority": getattr(rule, "authority", None)},
            correlation_id=envelope.get("correlation_id") or new_id(),
            causation_depth=depth, started_at=now, finished_at=None, duration_ms=None,
        )
        defer_insert(session, RUNS, vars(run))
        if authority.revoked:
            run.matched, run.status, run.finished_at = False, "stopped", now
            run.reason = f"the rule acts for nobody: {authority.revoked}"
            return run
        expression = definition.get("conditions") or ""
        names = condition_names(session, envelope, record_type, record, changes) if (
            expression.strip()) else {}
        try:
            run.matched = conditions.evaluate(expression, names, now)
        except conditions.ConditionFailed as exc:
            run.matched = False
            run.status = "no_match"
            run.reason = f"conditions could not be evaluated: {exc}"
            run.finished_at = now
            return run
        if not run.matched:
            run.status, run.reason, run.finished_at = "no_match", "conditions not met", now
            return run
        firing_key = record_key or "-"
        firing = (firings.get((rule.id, firing_key)) if firings is not None
                  else session.get(RuleFiring, (rule.id, firing_key)))
        reason = rules_domain.loop_guard(depth, firing.fired_at if firing and dedupe else None,
                                         now, self.settings.guard)
        if reason:
            run.status, run.reason, run.finished_at = "stopped", reason, now
            return run
        if firing is None:  # its row, like the run's, is its __dict__, inserted at commit
            firing = SimpleNamespace(rule_id=rule.id, record_key=firing_key, fired_at=now)
            defer_insert(session, FIRINGS, vars(firing))
            if firings is not None:  # the next runs of a batch see it
                firings[(rule.id, firing_key)] = firing
        else:
            firing.fired_at = now
        run.status = "running"
        run.actions = [{"index": i, "type": a["type"], "status": "pending"}
                       for i, a in enumerate(definition["actions"])]
        return run

    def record_skipped(
        self, session: Session, rule: Rule, envelope: dict[str, Any], record_type: str,
        record: dict[str, Any], depth: int, now: datetime, reason: str,
    ) -> None:
        """A trigger this event matched but could not start (an `"at": "exact"` date trigger
        whose field holds no instant): a finished `no_match` run saying why, no actions."""
        authority = effective_authority(session, getattr(rule, "authority", None))
        if not authority.revoked and not authority.covers(record_type, record):
            return  # as `start`: not another team's record in this rule's audit
        defer_insert(session, RUNS, {
            "id": new_id(), "rule_id": rule.id, "rule_version": rule.version,
            "trigger": "event", "event_id": envelope.get("event_id"),
            "event_type": (f"{envelope['producer']}.{envelope['event_type']}"
                           if envelope.get("producer") and envelope.get("event_type") else None),
            "timer_id": None, "record_key": records.record_key(record_type, str(record["id"])),
            "matched": False, "status": "no_match", "reason": reason, "actions": [],
            "context": {"record_type": record_type, "record": record,
                        "event": event_summary(envelope), "changes": {},
                        "rule": {"id": rule.id, "name": rule.name, "version": rule.version},
                        "authority": getattr(rule, "authority", None)},
            "correlation_id": envelope.get("correlation_id") or new_id(),
            "causation_depth": depth, "started_at": now, "finished_at": now, "duration_ms": 0,
        })

    def proceed(self, session: Session, run: StartedRun, definition: dict[str, Any]
                ) -> str | None:
        """A run just started: made only of local actions, it completes in this transaction;
        otherwise its id, to `execute` after the commit."""
        if only_local(definition):
            self.run_locally(session, run, definition)
            return None
        return self._keep_for_execution(session, run, definition)

    def run_locally(self, session: Session, run: StartedRun, definition: dict[str, Any]
                    ) -> None:
        """Perform a run made only of local actions inside the caller's transaction."""
        from services.rules import metrics

        context = dict(run.context or {})
        outcomes = list(run.actions or [])
        for index, action in enumerate(definition["actions"]):
            outcome = self.actions.local.outcome(session, action, context, run.id)
            outcomes[index] = {"index": index, "type": action["type"], "attempts": 1, **outcome}
        now = self.clock.now()
        run.actions = outcomes
        run.context = context
        run.status = "failed" if any(o["status"] == "failed" for o in outcomes) else "completed"
        run.reason = "an action failed" if run.status == "failed" else None
        run.finished_at = now
        run.duration_ms = round((now - run.started_at).total_seconds() * 1000, 2)
        self.own_events.record(session, "rule_run_completed", {"run": run_summary(run)})
        metrics.RULE_RUNS.labels(run.status).inc()

    def _keep_for_execution(
        self, session: Session, run: StartedRun, definition: dict[str, Any]
    ) -> str:
        """What `execute` will need, kept so that it reads nothing back; and the timer
        that resumes the run if this process dies before it is finished."""
        self._started[run.id] = RunState.of(run, definition)
        self.timers.add_resume(session, run.id)
        return run.id

    def forget(self, run_id: str) -> None:
        """A started run another process performs (its resume timer was taken)."""
        self._started.pop(run_id, None)
        self.timers.forget_resume(run_id)

    # ---- performing -------------------------------------------------------------------------

    def resume(self, run_id: str) -> dict[str, Any]:
        """Go on with a run a dead process left `running`: from its first action without an
        outcome, an action caught in flight again with what it had decided (an assignment's
        chosen owner), so each effect happens once."""
        with self.db.read() as session:
            run = session.get(RuleRun, run_id)
            if run is None or run.status != "running":
                return {"status": run.status if run else "missing"}
            outcomes = list(run.actions or [])
        start = next((o.get("index", i) for i, o in enumerate(outcomes)
                      if o.get("status") not in FINAL_OUTCOMES), len(outcomes))
        log.info("resuming run %s at action %s", run_id, start)
        attempt = int(outcomes[start].get("attempts") or 1) if start < len(outcomes) else 1
        return self.execute(run_id, start, attempt, resumed=True)

    def execute(self, run_id: str, start: int = 0, attempt: int = 1,
                resumed: bool = False) -> dict[str, Any]:
        """Perform a run's actions in order from `start`. A failing action is retried later
        (a timer) with back-off, then recorded as failed and the next actions go on.

        Each action's outcome is stored as it happens (a local action's in the transaction of
        its effect), so that a run resumed after a crash (`resume`) does nothing twice."""
        state = self._started.pop(run_id, None) if start == 0 and not resumed else None
        if state is None:  # not started by this engine a moment ago: read it
            with self.db.read() as session:
                run = session.get(RuleRun, run_id)
                version = session.get(RuleVersion, (run.rule_id, run.rule_version))
                state = RunState.of(run, version.definition)
        definition, context, outcomes = state.definition, state.context, state.actions
        self.ports.set_context(state.summary["correlation_id"], state.summary["event_id"],
                               state.causation_depth + 1)
        actions = definition["actions"]
        while len(outcomes) < len(actions):
            outcomes.append({"index": len(outcomes), "type": actions[len(outcomes)]["type"],
                             "status": "pending"})
        # The local actions at the end (tasks, notifications) and the run's completion share
        # one transaction; actions calling another service go one by one, outside any.
        tail = next((i for i in range(start, len(actions))
                     if all(a["type"] in LOCAL_ACTIONS for a in actions[i:])), len(actions))
        for index in range(start, tail):
            action = actions[index]
            if outcomes[index].get("status") in FINAL_OUTCOMES:
                continue  # done before a crash
            tries = attempt if index == start else 1
            started = self.clock.now()

            def remember(session: Session, progress: dict[str, Any], index: int = index,
                         tries: int = tries) -> None:
                """What an action decided, stored with the decision (before its effect)."""
                outcomes[index] = {"index": index, "type": actions[index]["type"],
                                   "status": "in_progress", "attempts": tries, **progress}
                self._save(session, state, outcomes, context, "running", None)

            def finish(session: Session, outcome: dict[str, Any], index: int = index,
                       tries: int = tries, started: datetime = started) -> None:
                outcomes[index] = {"index": index, "type": actions[index]["type"],
                                   "attempts": tries, "duration_ms": round(
                                       (self.clock.now() - started).total_seconds() * 1000, 2),
                                   **outcome}
                self._save(session, state, outcomes, context, "running", None)

            try:
                if action["type"] in LOCAL_ACTIONS:
                    # Its effect and its outcome commit together: never done twice.
                    with self.db.begin() as session:
                        finish(session, self.actions.local.outcome(session, action, context,
                                                                   run_id))
                    continue
                detail = self.actions.perform(action, context, run_id, definition,
                                              progress=outcomes[index], remember=remember,
                                              index=index)
                outcome = {"status": "ok", "detail": detail}
            except Skipped as exc:
                outcome = {"status": "skipped", "detail": str(exc)}
            except (PermanentFailure, CrmError) as exc:
                outcome = failure(exc)
            except (Exception, CallTimeout) as exc:
                # Transient: the broker, a timed-out call (eventlet's Timeout is a
                # BaseException), a service down. Retried by a timer.
                error = f"{type(exc).__name__}: {exc}"
                log.warning("run %s action %s failed (attempt %s): %s", run_id, index, tries,
                            error)
                backoff = self.settings.action_backoff
                if tries <= len(backoff):
                    due = self.clock.now() + timedelta(seconds=backoff[tries - 1])
                    outcomes[index] = {**{k: v for k, v in outcomes[index].items()
                                          if k == "chosen"},
                                       "index": index, "type": action["type"],
                                       "status": "retrying", "attempts": tries, "error": error,
                                       "next_attempt_at": due.isoformat()}
                    with self.db.begin() as session:
                        self.timers.add_action_retry(session, due, run_id, index, tries + 1)
                        self._save(session, state, outcomes, context, "retrying", None)
                        self.timers.cancel_resume(session, run_id)
                    return {"status": "retrying"}
                outcome = {"status": "failed", "error": f"{error} (after {tries} attempts)"}
            with self.db.begin() as session:
                finish(session, outcome)
        from services.rules import metrics

        with self.db.begin() as session:
            for index in range(max(tail, start), len(actions)):
                action = actions[index]
                outcome = self.actions.local.outcome(session, action, context, run_id)
                outcomes[index] = {"index": index, "type": action["type"], "attempts": 1,
                                   **outcome}
            status = ("failed" if any(o.get("status") == "failed" for o in outcomes)
                      else "completed")
            summary = self._save(session, state, outcomes, context, status, self.clock.now())
            self.own_events.record(session, "rule_run_completed", {"run": summary})
            self.timers.cancel_resume(session, run_id)
        metrics.RULE_RUNS.labels(status).inc()
        return {"status": status}

    @staticmethod
    def _save(
        session: Session, state: RunState, outcomes: list[dict[str, Any]],
        context: dict[str, Any], status: str, finished: datetime | None,
    ) -> dict[str, Any]:
        """Store a run's progress (an UPDATE: nothing to read); its summary."""
        values: dict[str, Any] = {"actions": outcomes, "context": context, "status": status}
        reason = None
        if finished is not None:
            values["finished_at"] = finished
            values["duration_ms"] = round((finished - state.started_at).total_seconds() * 1000, 2)
            if status == "failed":
                values["reason"] = reason = "an action failed"
        session.connection().execute(UPDATE_RUN, {"run_id": state.summary["id"], **values})
        return {**state.summary, "actions": outcomes, "status": status, "reason": reason}
