"""The rules engine: intake of events, timers, runs and their actions, deliveries.

It works on the rules service's database and talks to the outside only through `Ports` (RPC to
the owning services, SMTP, HTTP). Transactions are short and never span a call to the outside:
under eventlet a yield inside a SQLite write transaction would block every other writer.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from eventlet.timeout import Timeout as CallTimeout
from sqlalchemy import Table, bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from services.rules.clock import Clock
from services.rules.domain import assignment, conditions, records, timing
from services.rules.domain import rules as rules_domain
from services.rules.domain.authority import Authority
from services.rules.models import (
    DirectoryTeam,
    DirectoryUser,
    EmailDelivery,
    EventLog,
    MemberSetting,
    Notification,
    RecordSnapshot,
    Rotation,
    Rule,
    RuleFiring,
    RuleRun,
    RuleVersion,
    Task,
    Timer,
    TimerCancel,
    WebhookDelivery,
    WebhookSubscription,
    inbox,
)
from shared import config
from shared.db import DatabaseAccess, defer_insert, insert_row
from shared.errors import CrmError
from shared.inbox import first_delivery

log = logging.getLogger(__name__)

CLOSED_LEAD_STATUSES = ("converted", "disqualified")
DELIVERY_LEASE = timedelta(minutes=2)
TIMER_LEASE = timedelta(minutes=5)
EMAIL_BACKOFF = (10, 60, 300, 1800, 3600, 6 * 3600)
EMAIL_BATCH = 100  # deliveries sent over one SMTP connection per tick
LOCAL_ACTIONS = ("create_task", "notify", "escalate")
# An action's outcome once it is done: a resumed run goes on from the first action without one.
FINAL_OUTCOMES = ("ok", "skipped", "failed")
# A run that calls other services gets a `run_resume` timer in the transaction that starts it
# (or retries or resumes it): if the process dies before the run is finished, the timer resumes
# it this long after, in whichever rules process takes it (also at start-up: due timers fire
# at the first tick). A run that finished by then makes the timer a no-op.
RESUME_AFTER = timedelta(seconds=float(config.env("CRM_RULES_RESUME_SECONDS", "30")))
OWN_PRODUCER = "rules"
PATTERN_TTL = 2.0
_RULES_CACHE: dict[str, Any] = {}
_SUBSCRIPTIONS_CACHE: dict[str, Any] = {}
# Statements every event runs, built once and run on the connection: the ORM's path (a
# `session.get`, an object to flush) cost several times the query on these small rows.
_RECORDS = RecordSnapshot.__table__
SNAPSHOT_DATA = select(_RECORDS.c.data).where(_RECORDS.c.key == bindparam("key"))
SNAPSHOT_OWNER = select(_RECORDS.c.owner_id).where(_RECORDS.c.key == bindparam("key"))
# Sets the columns named in its parameters besides `record_key`.
UPDATE_SNAPSHOT = update(_RECORDS).where(_RECORDS.c.key == bindparam("record_key"))
_RUNS = RuleRun.__table__
_EVENT_LOG = EventLog.__table__
_TIMERS = Timer.__table__
_TIMER_CANCELS = TimerCancel.__table__
_FIRINGS = RuleFiring.__table__
_NOTIFICATIONS = Notification.__table__
_EMAILS = EmailDelivery.__table__
_ROTATIONS = Rotation.__table__
LAST_CHOSEN = select(_ROTATIONS.c.last_user_id).where(_ROTATIONS.c.group_key == bindparam("group"))
UPDATE_ROTATION = update(_ROTATIONS).where(_ROTATIONS.c.group_key == bindparam("group"))
_SETTINGS = MemberSetting.__table__
MEMBER_SETTINGS = select(_SETTINGS).where(_SETTINGS.c.user_id.in_(bindparam("ids", expanding=True)))
OPEN_LEADS_BY_OWNER = (
    select(_RECORDS.c.owner_id, func.count())
    .where(_RECORDS.c.record_type == "lead", _RECORDS.c.is_open.is_(True),
           _RECORDS.c.owner_id.in_(bindparam("ids", expanding=True)))
    .group_by(_RECORDS.c.owner_id)
)
UPDATE_RUN = update(_RUNS).where(_RUNS.c.id == bindparam("run_id"))


@dataclass(frozen=True)
class RuleView:
    """A rule as the intake needs it (cached between events, detached from any session)."""

    id: str
    name: str
    version: int
    enabled: bool
    definition: dict[str, Any]
    authority: dict[str, Any] | None = None


@dataclass(frozen=True)
class SubscriptionView:
    id: str
    event_types: list[str]
    authority: dict[str, Any] | None = None


# A run started in the current transaction: a RuleRun row's columns as attributes, inserted
# at commit (see Engine._start_run).
StartedRun = SimpleNamespace


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


def forget_cached_rules() -> None:
    """After a rule, a subscription or the directory changed in this process."""
    _RULES_CACHE.clear()
    _SUBSCRIPTIONS_CACHE.clear()
    _DIRECTORY_CACHE.clear()


@dataclass(frozen=True)
class UserView:
    id: str
    username: str
    display_name: str | None
    email: str | None
    role: str
    team_id: str | None
    active: bool


@dataclass(frozen=True)
class TeamView:
    id: str
    name: str
    manager_id: str | None


@dataclass(frozen=True)
class Directory:
    """The users and teams projection, read once per `PATTERN_TTL` seconds per process: every
    run asks it who owns, manages and belongs to what."""

    users: dict[str, UserView]
    teams: dict[str, TeamView]

    def team(self, name_or_id: str) -> TeamView | None:
        return self.teams.get(name_or_id) or next(
            (t for t in self.teams.values() if t.name == name_or_id), None)


_DIRECTORY_CACHE: dict[str, Any] = {}


def directory(session: Session) -> Directory:
    cached = _DIRECTORY_CACHE.get("directory")
    if cached is None or _DIRECTORY_CACHE["at"] + PATTERN_TTL < time.monotonic():
        cached = Directory(
            users={u.id: UserView(u.id, u.username, u.display_name, u.email, u.role,
                                  u.team_id, u.active)
                   for u in session.scalars(select(DirectoryUser)).all()},
            teams={t.id: TeamView(t.id, t.name, t.manager_id)
                   for t in session.scalars(select(DirectoryTeam)).all()},
        )
        _DIRECTORY_CACHE.update(at=time.monotonic(), directory=cached)
    return cached


# --------------------------------------------------------------------------- settings, ports


def _float_env(name: str, default: float) -> float:
    try:
        return float(config.env(name, str(default)))
    except ValueError:
        return default


@dataclass(frozen=True)
class Settings:
    guard: rules_domain.GuardSettings = field(default_factory=rules_domain.GuardSettings)
    timezone: str = "Asia/Shanghai"
    action_backoff: tuple[float, ...] = (2.0, 10.0, 60.0, 300.0, 1800.0)
    timer_batch: int = 500
    event_retention: timedelta = timedelta(days=7)

    @classmethod
    def from_env(cls) -> Settings:
        backoff = tuple(
            float(part) for part in
            config.env("CRM_RULES_ACTION_BACKOFF", "2,10,60,300,1800").split(",") if part.strip()
        )
        return cls(
            guard=rules_domain.GuardSettings(
                max_depth=int(_float_env("CRM_RULES_MAX_DEPTH", 5)),
                dedupe_window=timedelta(seconds=_float_env("CRM_RULES_DEDUPE_SECONDS", 60)),
            ),
            timezone=config.timezone_name(),
            action_backoff=backoff,
            timer_batch=int(_float_env("CRM_RULES_TIMER_BATCH", 500)),
            event_retention=timedelta(days=_float_env("CRM_RULES_EVENT_RETENTION_DAYS", 7)),
        )


class PermanentFailure(Exception):
    """An action that trying again will not fix (no such team, a refused command)."""


class Skipped(Exception):
    """An action with nothing to do (no owner to give a task to)."""


@dataclass
class Ports:
    """The outside world: `call(service, method, **kwargs)` (RPC with the run's context),
    `email_connection()` -> a context manager holding one SMTP connection for several sends
    (its `open` is False after a failure that ended the session),
    `send_email(to, subject, text, connection, message_key)` -> message id (the same for a
    message key at every attempt),
    `deliver_webhook(url, secret, id, body)`,
    `set_context(correlation_id, causation_id, depth)` before acting for a run."""

    call: Callable[..., Any]
    email_connection: Callable[[], AbstractContextManager[Any]]
    send_email: Callable[[list[str], str, str, Any], str]
    deliver_webhook: Callable[[str, str, str, bytes], Any]
    set_context: Callable[[str | None, str | None, int], None]


def render(template: str | None, context: dict[str, Any]) -> str:
    """A template rendered with the record; one that fails on this record fails the action
    (not the event, nor the other rules)."""
    if not template:
        return ""
    from services.rules.notify.templates import render as render_template

    try:
        return render_template(template, context)
    except Exception as exc:  # noqa: BLE001 - any template failure is the rule's problem
        shown = template if len(template) <= 80 else template[:77] + "..."
        raise PermanentFailure(f"the template {shown!r} failed: {exc}") from None


def check_template(template: str) -> str | None:
    from services.rules.notify.templates import check_template as check

    return check(template)


def failure(exc: Exception) -> dict[str, Any]:
    """A failed action's outcome; a service's refusal keeps its details (a refused stage move
    lists what is missing)."""
    outcome: dict[str, Any] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    if isinstance(exc, CrmError) and exc.extra:
        outcome["details"] = exc.extra
    return outcome


def new_id() -> str:
    return str(uuid.uuid4())


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# --------------------------------------------------------------------------- dumps


def rule_to_dict(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.id, "key": rule.key, "name": rule.name, "description": rule.description,
        "enabled": rule.enabled, "version": rule.version, **rule.definition,
        "created_at": iso(rule.created_at), "updated_at": iso(rule.updated_at),
        "updated_by": rule.updated_by, "acts_for": acts_for(rule.authority),
    }


def acts_for(stored: dict[str, Any] | None) -> dict[str, Any]:
    """Whom a rule or subscription acts for, as its readers see it (not its member list)."""
    authority = Authority.of(stored)
    return {"kind": authority.kind, "user_id": authority.user_id}


def run_to_dict(run: RuleRun | StartedRun) -> dict[str, Any]:
    return {
        "id": run.id, "rule_id": run.rule_id, "rule_version": run.rule_version,
        "trigger": run.trigger, "event_id": run.event_id, "event_type": run.event_type,
        "timer_id": run.timer_id, "record_key": run.record_key, "matched": run.matched,
        "status": run.status, "reason": run.reason, "actions": list(run.actions or []),
        "correlation_id": run.correlation_id, "causation_depth": run.causation_depth,
        "started_at": iso(run.started_at), "finished_at": iso(run.finished_at),
        "duration_ms": run.duration_ms,
    }


RUN_SUMMARY_FIELDS = ("id", "rule_id", "rule_version", "trigger", "event_id", "event_type",
                      "record_key", "matched", "status", "reason", "actions", "correlation_id")


def run_summary(run: RuleRun | StartedRun) -> dict[str, Any]:
    """What `rule_run_completed` carries."""
    data = run_to_dict(run)
    return {key: data[key] for key in RUN_SUMMARY_FIELDS}


def task_to_dict(task: Task, now: datetime) -> dict[str, Any]:
    return {
        "id": task.id, "title": task.title, "description": task.description,
        "record_type": task.record_type, "record_id": task.record_id,
        "assignee_id": task.assignee_id, "status": task.status, "priority": task.priority,
        "due_at": iso(task.due_at), "snoozed_until": iso(task.snoozed_until),
        "overdue": is_overdue(task, now), "rule_id": task.rule_id, "run_id": task.run_id,
        "created_at": iso(task.created_at), "updated_at": iso(task.updated_at),
        "completed_at": iso(task.completed_at), "completed_by": task.completed_by,
    }


def is_overdue(task: Task, now: datetime) -> bool:
    if task.status != "open" or task.due_at is None or task.due_at > now:
        return False
    return task.snoozed_until is None or task.snoozed_until <= now


def notification_to_dict(item: Notification | SimpleNamespace) -> dict[str, Any]:
    return {
        "id": item.id, "user_id": item.user_id, "title": item.title, "body": item.body,
        "record_type": item.record_type, "record_id": item.record_id, "rule_id": item.rule_id,
        "run_id": item.run_id, "created_at": iso(item.created_at), "read_at": iso(item.read_at),
    }


def subscription_to_dict(sub: WebhookSubscription) -> dict[str, Any]:
    return {
        "id": sub.id, "url": sub.url, "event_types": list(sub.event_types),
        "description": sub.description, "active": sub.active,
        "disabled_reason": sub.disabled_reason, "created_at": iso(sub.created_at),
        "created_by": sub.created_by, "acts_for": acts_for(sub.authority),
    }


def delivery_to_dict(item: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": item.id, "subscription_id": item.subscription_id, "event_id": item.event_id,
        "event_type": item.event_type, "status": item.status, "attempts": item.attempts,
        "next_attempt_at": iso(item.next_attempt_at) if item.status == "pending" else None,
        "last_status_code": item.last_status_code, "last_error": item.last_error,
        "attempt_log": list(item.attempt_log or []), "created_at": iso(item.created_at),
        "delivered_at": iso(item.delivered_at),
    }


def user_to_dict(user: Any) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"id": user.id, "username": user.username, "display_name": user.display_name,
            "email": user.email, "role": user.role, "team_id": user.team_id,
            "active": user.active}


def event_summary(envelope: dict[str, Any]) -> dict[str, Any]:
    return {key: envelope.get(key) for key in (
        "event_id", "event_type", "producer", "occurred_at", "correlation_id", "causation_id",
        "actor", "causation_depth")}


# --------------------------------------------------------------------------- claims


def claim_due(
    session: Session, table: Table, due_column: str, now: datetime, limit: int,
    statuses: tuple[str, ...], values: dict[str, Any],
) -> list[Any]:
    """Take up to `limit` due rows for this process: each row is claimed by one process only
    (PostgreSQL skips rows another transaction holds; SQLite has a single writer)."""
    due = table.c[due_column]
    candidates = (
        select(table.c.id).where(table.c.status.in_(statuses), due <= now)
        .order_by(due).limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    statement = (
        update(table).where(table.c.id.in_(candidates.scalar_subquery()))
        .values(**values).returning(*table.c)
    )
    # RETURNING keeps no order: oldest due first, as claimed
    return sorted(session.execute(statement).all(), key=lambda row: row._mapping[due_column])


# --------------------------------------------------------------------------- the engine


class Engine:
    def __init__(
        self, db: DatabaseAccess, recorder: Any, clock: Clock, settings: Settings, ports: Ports
    ) -> None:
        self.db = db
        self.events = recorder
        self.clock = clock
        self.settings = settings
        self.ports = ports
        self.tz = timing.zone(settings.timezone)
        self.worker_id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        # Runs this engine started, for execute_run (an engine lives for one worker).
        self._started: dict[str, RunState] = {}
        self._resume_timers: dict[str, str] = {}  # run id -> its pending run_resume timer

    def _record(self, session: Session, event_type: str, data: dict[str, Any]) -> None:
        """Events of a transaction are inserted together at its commit. Our own events do not
        come back through `crm.events`: their webhook deliveries are queued here."""
        envelope = self.events.record(session, event_type, data, defer=True)
        name = f"{OWN_PRODUCER}.{event_type}"
        if self._subscribed(session, name):
            self._queue_webhooks(session, envelope, name, self.clock.now())

    # ---- intake ----------------------------------------------------------------------------

    def intake(self, envelope: dict[str, Any]) -> list[str]:
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
            defer_insert(session, _EVENT_LOG, {"event_id": event_id, "event_name": name,
                                               "envelope": envelope, "received_at": now})
            data = envelope.get("data") or {}
            if producer == "gateway":
                self._directory(session, event_type, data)
                _DIRECTORY_CACHE.clear()
            record_type, record, changes, first_seen = self._snapshot(session, data, now)
            keys = records.related_keys(data)
            # The first event about a record, concerning no other: no timer and no firing can
            # refer to it yet, so there is nothing to look up.
            fresh = first_seen and len(keys) == 1
            if not fresh:
                self._cancel_timers(session, keys, name, event_id)
            self._queue_webhooks(session, envelope, name, now, record_type, record)
            return self._match_rules(session, envelope, name, record_type, record, changes,
                                     keys, now, fresh)

    def _directory(self, session: Session, event_type: str, data: dict[str, Any]) -> None:
        if event_type == "user_changed" and isinstance(data.get("user"), dict):
            user = data["user"]
            row = session.get(DirectoryUser, user["id"]) or DirectoryUser(id=user["id"])
            row.username = user.get("username") or user["id"]
            row.display_name = user.get("display_name")
            row.email = user.get("email")
            row.role = user.get("role") or "sales_rep"
            row.team_id = user.get("team_id")
            row.active = bool(user.get("active", True))
            session.merge(row)
        elif event_type == "team_changed" and isinstance(data.get("team"), dict):
            team = data["team"]
            row = session.get(DirectoryTeam, team["id"]) or DirectoryTeam(id=team["id"])
            row.name = team.get("name") or team["id"]
            row.manager_id = team.get("manager_id")
            session.merge(row)

    def _snapshot(
        self, session: Session, data: dict[str, Any], now: datetime
    ) -> tuple[str | None, dict[str, Any] | None, dict[str, Any], bool]:
        """The event's record, what changed since the stored snapshot (stored anew), and
        whether the record is seen for the first time."""
        record_type, record = records.primary_record(data)
        if record_type is None or record is None:
            return None, None, {}, False
        key = records.record_key(record_type, str(record["id"]))
        connection = session.connection()
        previous = connection.execute(SNAPSHOT_DATA, {"key": key}).scalar()
        if len(record) <= 1:  # only an id: use what we know
            return record_type, dict(previous) if previous else record, {}, False
        if (
            previous and previous.get("updated_at") and record.get("updated_at")
            and str(record["updated_at"]) < str(previous["updated_at"])
        ):
            return record_type, previous, {}, False  # an older snapshot arrived late
        changes = records.changes(previous, record)
        values = {"owner_id": record.get("owner_id"), "data": record, "updated_at": now,
                  "is_open": not (
                      record.get("merged_into_id")
                      or (record_type == "lead" and record.get("status") in CLOSED_LEAD_STATUSES)
                  )}
        if previous is None:
            insert_row(session, _RECORDS, {"key": key, "record_type": record_type, **values})
        else:
            connection.execute(UPDATE_SNAPSHOT, {"record_key": key, **values})
        return record_type, record, changes, previous is None

    def _cancel_timers(
        self, session: Session, keys: dict[str, str], name: str, event_id: str
    ) -> None:
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

    def _subscriptions(self, session: Session) -> list[SubscriptionView]:
        subscriptions = _SUBSCRIPTIONS_CACHE.get("subs")
        if subscriptions is None or _SUBSCRIPTIONS_CACHE["at"] + PATTERN_TTL < time.monotonic():
            subscriptions = [
                SubscriptionView(sub.id, list(sub.event_types), sub.authority)
                for sub in session.scalars(
                    select(WebhookSubscription).where(WebhookSubscription.active.is_(True)))
            ]
            _SUBSCRIPTIONS_CACHE.update(at=time.monotonic(), subs=subscriptions)
        return subscriptions

    def _subscribed(self, session: Session, name: str) -> bool:
        return any(rules_domain.event_matches(sub.event_types, name)
                   for sub in self._subscriptions(session))

    def _queue_webhooks(
        self, session: Session, envelope: dict[str, Any], name: str, now: datetime,
        record_type: str | None = None, record: dict[str, Any] | None = None,
    ) -> None:
        subscriptions = self._subscriptions(session)
        body = None
        for sub in subscriptions:
            if not rules_domain.event_matches(list(sub.event_types), name):
                continue
            if sub.authority and not self._subscriber_sees(session, sub.authority, name,
                                                           envelope, record_type, record):
                continue  # a manager's subscription carries what the manager may see
            if body is None:
                body = json.dumps({**envelope, "type": name}, ensure_ascii=False)
            session.add(WebhookDelivery(
                id="msg_" + uuid.uuid4().hex, subscription_id=sub.id,
                event_id=envelope["event_id"], event_type=name, body=body, status="pending",
                attempts=0, next_attempt_at=now, attempt_log=[], created_at=now,
            ))

    def _subscriber_sees(
        self, session: Session, stored: dict[str, Any], name: str, envelope: dict[str, Any],
        record_type: str | None, record: dict[str, Any] | None,
    ) -> bool:
        people = directory(session)
        authority = Authority.of(stored).effective(people.users, people.teams)
        if record is not None and not name.startswith(("rules.", "gateway.")):
            return authority.covers(record_type, record)  # the snapshot, when only an id came
        return authority.sees_event(name, envelope.get("data") or {})

    def authority(self, session: Session, stored: dict[str, Any] | None) -> Authority:
        """A rule's or a run's authority as the directory stands now."""
        people = directory(session)
        return Authority.of(stored).effective(people.users, people.teams)

    def _enabled_rules(self, session: Session) -> list[Any]:
        """The enabled rules, cached for `PATTERN_TTL` seconds per process (a change made
        through this process applies at once: `forget_cached_rules`)."""
        cached = _RULES_CACHE.get("rules")
        if cached is None or _RULES_CACHE["at"] + PATTERN_TTL < time.monotonic():
            cached = [
                RuleView(r.id, r.name, r.version, r.enabled, r.definition, r.authority)
                for r in session.scalars(select(Rule).where(Rule.enabled.is_(True))).all()
            ]
            _RULES_CACHE.update(at=time.monotonic(), rules=cached)
        return cached

    def _match_rules(
        self, session: Session, envelope: dict[str, Any], name: str, record_type: str | None,
        record: dict[str, Any] | None, changes: dict[str, Any], keys: dict[str, str],
        now: datetime, fresh: bool = False,
    ) -> list[str]:
        run_ids: list[str] = []
        depth = int(envelope.get("causation_depth") or 0)
        firings: dict | None = {} if fresh else None  # a fresh record has fired no rule
        for rule in self._enabled_rules(session):
            trigger = rule.definition["trigger"]
            kind = trigger["type"]
            if kind == "event":
                if not rules_domain.event_matches(trigger["event"], name):
                    continue
                if not rules_domain.field_change_matches(trigger, changes):
                    continue
                key = records.record_key(record_type, str(record["id"])) if record else None
                run = self._start_run(session, rule, "event", envelope, key, record_type,
                                      record, changes, depth, now, firings=firings)
                if run.status != "running":
                    continue
                if all(a["type"] in LOCAL_ACTIONS for a in rule.definition["actions"]):
                    self.run_locally(session, run, rule.definition)
                else:
                    run_ids.append(self._keep_for_execution(session, run, rule.definition))
            elif kind == "delay" and rules_domain.event_matches(trigger["events"], name):
                self._schedule_delay(session, rule, trigger, envelope, keys, now, fresh)
            elif kind == "date" and rules_domain.event_matches(trigger["events"], name):
                wanted = trigger.get("record") or record_type
                if wanted == record_type and record is not None:
                    self._schedule_date(session, rule, trigger, record_type, record, depth, now,
                                        fresh)
        return run_ids

    # ---- timers -----------------------------------------------------------------------------

    def _replace_pending(self, session: Session, rule_id: str, record_key: str | None) -> None:
        ids = session.scalars(
            select(Timer.id).where(Timer.rule_id == rule_id, Timer.record_key == record_key,
                                   Timer.status == "pending")
        ).all()
        if ids:
            session.execute(update(Timer).where(Timer.id.in_(ids), Timer.status == "pending")
                            .values(status="cancelled", outcome="replaced by a newer start"))
            session.execute(delete(TimerCancel).where(TimerCancel.timer_id.in_(ids)))

    def _add_timer(
        self, session: Session, *, kind: str, due_at: datetime, rule: Rule | None,
        record_key: str | None, payload: dict[str, Any], cancel_keys: list[str] | None = None,
    ) -> str:
        timer_id = new_id()
        defer_insert(session, _TIMERS, {
            "id": timer_id, "kind": kind, "due_at": due_at, "status": "pending",
            "rule_id": rule.id if rule else None, "rule_version": rule.version if rule else None,
            "record_key": record_key, "payload": payload, "cancel_keys": cancel_keys or [],
            "created_at": self.clock.now(),
        })
        for key in cancel_keys or []:
            defer_insert(session, _TIMER_CANCELS, {"key": key, "timer_id": timer_id})
        return timer_id

    def _schedule_delay(
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
        self._add_timer(
            session, kind="rule", due_at=now + timing.parse_duration(trigger["delay"]),
            rule=rule, record_key=key,
            payload={"event": event_summary(envelope)},
            cancel_keys=[f"{key}|{name}" for name in unless],
        )

    def _schedule_date(
        self, session: Session, rule: Rule, trigger: dict[str, Any], record_type: str,
        record: dict[str, Any], depth: int, now: datetime, fresh: bool = False,
    ) -> None:
        key = records.record_key(record_type, str(record["id"]))
        if not fresh:
            self._replace_pending(session, rule.id, key)
        due = timing.relative_due(
            record.get(trigger["field"]), now=now, tz=self.tz,
            offset_days=trigger.get("offset_days", 0),
            offset_months=trigger.get("offset_months", 0),
            at=timing.parse_time_of_day(trigger.get("at")), yearly=trigger.get("yearly", False),
        )
        if due is not None:
            self._add_timer(session, kind="date", due_at=due, rule=rule, record_key=key,
                            payload={"event": {"causation_depth": depth}})

    def schedule_rule(self, session: Session, rule: Rule) -> None:
        """After a rule is saved or enabled: its schedule's next timer; date triggers for the
        records already known."""
        trigger = rule.definition["trigger"]
        now = self.clock.now()
        if trigger["type"] == "schedule":
            self._replace_pending(session, rule.id, None)
            if rule.enabled:
                self._add_timer(session, kind="schedule",
                                due_at=timing.next_cron(trigger["cron"], now, self.tz),
                                rule=rule, record_key=None, payload={})
        elif trigger["type"] == "date" and rule.enabled and trigger.get("record"):
            snapshots = session.scalars(
                select(RecordSnapshot).where(RecordSnapshot.record_type == trigger["record"])
            ).all()
            for snapshot in snapshots:
                self._schedule_date(session, rule, trigger, snapshot.record_type,
                                    snapshot.data, 0, now)

    def tick(self) -> int:
        """Fire what is due (timers, then email and webhook deliveries); returns how many."""
        if self.clock.controllable:
            with self.db.read() as session:
                self.clock.refresh(session)
        now = self.clock.now()
        # A read first: an idle tick takes no write lock (SQLite has one writer).
        with self.db.read() as session:
            due = {
                name: session.scalar(
                    select(table.c.id).where(table.c.status.in_(statuses), column <= now)
                    .limit(1)
                ) is not None
                for name, table, column, statuses in (
                    ("timers", Timer.__table__, Timer.__table__.c.due_at, ("pending",)),
                    ("emails", EmailDelivery.__table__,
                     EmailDelivery.__table__.c.next_attempt_at, ("pending", "sending")),
                    ("webhooks", WebhookDelivery.__table__,
                     WebhookDelivery.__table__.c.next_attempt_at, ("pending", "sending")),
                )
            }
        done = self.fire_due(now) if due["timers"] else 0
        if due["emails"]:
            done += self.deliver_due_emails()
        if due["webhooks"]:
            done += self.deliver_due_webhooks()
        return done

    def maintenance(self) -> None:
        """Give back timers a process that died left claimed (versions before timers were
        taken and fired in one transaction); forget old events; export lag."""
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
        from services.rules import metrics

        metrics.TIMER_LAG.set(max((now - oldest).total_seconds(), 0.0) if oldest else 0.0)

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
                remote, retries = self._fire_taken(session, rows, now)
        except Exception:
            if not rows:
                raise
            log.exception("firing %d timers together failed; firing one by one", len(rows))
            for row in rows:
                self._fire_alone(row, values)
        else:
            self._after_commit(remote, retries)
        for row in rows:
            metrics.TIMER_LATENESS.observe(max((now - row.due_at).total_seconds(), 0.0))
        metrics.TIMERS_FIRED.inc(len(rows))
        return len(rows)

    def _after_commit(self, remote: list[str], retries: list[Any]) -> None:
        for run_id in remote:
            self.execute_run(run_id)
        for row in retries:
            if row.kind == "run_resume":
                self.resume_run(row.payload["run_id"])
            else:
                self.execute_run(row.payload["run_id"], row.payload["action_index"],
                                 row.payload["attempt"])

    def _fire_alone(self, row: Any, values: dict[str, Any]) -> None:
        try:
            with self.db.begin() as session:
                taken = session.execute(
                    update(Timer).where(Timer.id == row.id, Timer.status == "pending")
                    .values(**values)
                ).rowcount == 1
                remote, retries = self._fire_taken(session, [row] if taken else [],
                                                   values["fired_at"])
        except Exception:  # one timer's bug must not stop the others
            log.exception("timer %s failed", row.id)
            with self.db.begin() as session:
                session.execute(update(Timer).where(Timer.id == row.id,
                                                    Timer.status == "pending")
                                .values(status="failed", outcome="error; see the log"))
            return
        self._after_commit(remote, retries)

    def _fire_taken(
        self, session: Session, rows: list[Any], now: datetime
    ) -> tuple[list[str], list[Any]]:
        """Fire timers this transaction took. Returns the runs to execute after the commit
        and the actions' retries to perform then."""
        retries = [row for row in rows if row.kind in ("action_retry", "run_resume")]
        rows = [row for row in rows if row.kind not in ("action_retry", "run_resume")]
        if retries:
            session.execute(update(Timer).where(Timer.id.in_([row.id for row in retries]))
                            .values(outcome="retrying the action"))
            # Should this process die while retrying or resuming, a timer resumes them again.
            statuses = dict(session.execute(select(RuleRun.id, RuleRun.status).where(
                RuleRun.id.in_({row.payload["run_id"] for row in retries}))).all())
            for run_id in {row.payload["run_id"] for row in retries
                           if statuses.get(row.payload["run_id"]) == "running"
                           or (row.kind == "action_retry"
                               and statuses.get(row.payload["run_id"]) == "retrying")}:
                self._add_resume_timer(session, run_id)
        if not rows:
            return [], retries
        remote: list[str] = []
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
            run = self._timer_run(session, row, rule, snapshots.get(row.record_key), now,
                                  firings)
            if run is None or run.status != "running":
                continue
            if all(a["type"] in LOCAL_ACTIONS for a in rule.definition["actions"]):
                self.run_locally(session, run, rule.definition)
            else:
                remote.append(self._keep_for_execution(session, run, rule.definition))
        if disabled:
            session.execute(update(Timer).where(Timer.id.in_(disabled))
                            .values(outcome="rule disabled or deleted"))
        return remote, retries

    def _timer_run(
        self, session: Session, row: Any, rule: Rule, snapshot: RecordSnapshot | None,
        now: datetime, firings: dict | None = None,
    ) -> StartedRun | None:
        trigger = rule.definition["trigger"]
        origin = row.payload.get("event") or {}
        depth = int(origin.get("causation_depth") or 0)
        record_type = record = None
        if row.record_key:
            record_type = row.record_key.split(":", 1)[0]
            record = dict(snapshot.data) if snapshot else {"id": row.record_key.split(":", 1)[1]}
        trigger_name = "schedule" if row.kind == "schedule" else "timer"
        envelope = {**origin, "timer_id": row.id}
        run = self._start_run(session, rule, trigger_name, envelope, row.record_key,
                              record_type, record, {}, depth, now, timer_id=row.id,
                              firings=firings)
        if row.kind == "schedule":
            self._add_timer(session, kind="schedule",
                            due_at=timing.next_cron(trigger["cron"], now, self.tz),
                            rule=rule, record_key=None, payload={})
        elif row.kind == "date" and trigger.get("yearly") and record:
            self._schedule_date(session, rule, trigger, record_type, record, depth,
                                now + timedelta(seconds=1))
        return run

    def run_locally(self, session: Session, run: StartedRun, definition: dict[str, Any]
                    ) -> None:
        """Perform a run made only of local actions inside the caller's transaction."""
        from services.rules import metrics

        context = dict(run.context or {})
        outcomes = list(run.actions or [])
        for index, action in enumerate(definition["actions"]):
            try:
                outcome = {"status": "ok", "detail": self.local_action(
                    session, action, context, run.id)}
            except Skipped as exc:
                outcome = {"status": "skipped", "detail": str(exc)}
            except (PermanentFailure, CrmError) as exc:
                outcome = failure(exc)
            outcomes[index] = {"index": index, "type": action["type"], "attempts": 1, **outcome}
        now = self.clock.now()
        run.actions = outcomes
        run.context = context
        run.status = "failed" if any(o["status"] == "failed" for o in outcomes) else "completed"
        run.reason = "an action failed" if run.status == "failed" else None
        run.finished_at = now
        run.duration_ms = round((now - run.started_at).total_seconds() * 1000, 2)
        self._record(session, "rule_run_completed", {"run": run_summary(run)})
        metrics.RULE_RUNS.labels(run.status).inc()

    # ---- runs -------------------------------------------------------------------------------

    def names(
        self, session: Session, envelope: dict[str, Any], record_type: str | None,
        record: dict[str, Any] | None, changes: dict[str, Any],
    ) -> dict[str, Any]:
        """What a condition or a template can refer to."""
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

    def _start_run(
        self, session: Session, rule: Rule, trigger: str, envelope: dict[str, Any],
        record_key: str | None, record_type: str | None, record: dict[str, Any] | None,
        changes: dict[str, Any], depth: int, now: datetime, timer_id: str | None = None,
        firings: dict | None = None,
    ) -> StartedRun:
        definition = rule.definition
        authority = self.authority(session, getattr(rule, "authority", None))
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
        defer_insert(session, _RUNS, vars(run))
        if authority.revoked:
            run.matched, run.status, run.finished_at = False, "stopped", now
            run.reason = f"the rule acts for nobody: {authority.revoked}"
            return run
        expression = definition.get("conditions") or ""
        names = self.names(session, envelope, record_type, record, changes) if (
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
        reason = rules_domain.loop_guard(depth, firing.fired_at if firing else None, now,
                                         self.settings.guard)
        if reason:
            run.status, run.reason, run.finished_at = "stopped", reason, now
            return run
        if firing is None:  # its row, like the run's, is its __dict__, inserted at commit
            firing = SimpleNamespace(rule_id=rule.id, record_key=firing_key, fired_at=now)
            defer_insert(session, _FIRINGS, vars(firing))
            if firings is not None:  # the next runs of a batch see it
                firings[(rule.id, firing_key)] = firing
        else:
            firing.fired_at = now
        run.status = "running"
        run.actions = [{"index": i, "type": a["type"], "status": "pending"}
                       for i, a in enumerate(definition["actions"])]
        return run

    def _keep_for_execution(
        self, session: Session, run: StartedRun, definition: dict[str, Any]
    ) -> str:
        """What `execute_run` will need, kept so that it reads nothing back; and the timer
        that resumes the run if this process dies before it is finished."""
        self._started[run.id] = RunState.of(run, definition)
        self._add_resume_timer(session, run.id)
        return run.id

    def _add_resume_timer(self, session: Session, run_id: str) -> None:
        # Remembered, so that the transaction finishing the run cancels it (by its key).
        self._resume_timers[run_id] = self._add_timer(
            session, kind="run_resume", due_at=self.clock.now() + RESUME_AFTER, rule=None,
            record_key=None, payload={"run_id": run_id})

    def _cancel_resume_timer(self, session: Session, run_id: str) -> None:
        timer_id = self._resume_timers.pop(run_id, None)
        if timer_id is not None:
            session.execute(update(Timer).where(Timer.id == timer_id,
                                                Timer.status == "pending")
                            .values(status="cancelled", outcome="the run finished"))

    def resume_run(self, run_id: str) -> dict[str, Any]:
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
        return self.execute_run(run_id, start, attempt, resumed=True)

    def execute_run(self, run_id: str, start: int = 0, attempt: int = 1,
                    resumed: bool = False) -> dict[str, Any]:
        """Perform a run's actions in order from `start`. A failing action is retried later
        (a timer) with back-off, then recorded as failed and the next actions go on.

        Each action's outcome is stored as it happens (a local action's in the transaction of
        its effect), so that a run resumed after a crash (`resume_run`) does nothing twice."""
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
                self._save_run(session, state, outcomes, context, "running", None)

            def finish(session: Session, outcome: dict[str, Any], index: int = index,
                       tries: int = tries, started: datetime = started) -> None:
                outcomes[index] = {"index": index, "type": actions[index]["type"],
                                   "attempts": tries, "duration_ms": round(
                                       (self.clock.now() - started).total_seconds() * 1000, 2),
                                   **outcome}
                self._save_run(session, state, outcomes, context, "running", None)

            try:
                if action["type"] in LOCAL_ACTIONS:
                    # Its effect and its outcome commit together: never done twice.
                    with self.db.begin() as session:
                        try:
                            outcome = {"status": "ok", "detail": self.local_action(
                                session, action, context, run_id)}
                        except Skipped as exc:
                            outcome = {"status": "skipped", "detail": str(exc)}
                        except (PermanentFailure, CrmError) as exc:
                            outcome = failure(exc)
                        finish(session, outcome)
                    continue
                detail = self.perform(action, context, run_id, definition,
                                      progress=outcomes[index], remember=remember)
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
                        self._add_timer(session, kind="action_retry", due_at=due, rule=None,
                                        record_key=None, payload={
                                            "run_id": run_id, "action_index": index,
                                            "attempt": tries + 1})
                        self._save_run(session, state, outcomes, context, "retrying", None)
                        self._cancel_resume_timer(session, run_id)
                    return {"status": "retrying"}
                outcome = {"status": "failed", "error": f"{error} (after {tries} attempts)"}
            with self.db.begin() as session:
                finish(session, outcome)
        from services.rules import metrics

        with self.db.begin() as session:
            for index in range(max(tail, start), len(actions)):
                action = actions[index]
                try:
                    detail = self.local_action(session, action, context, run_id)
                    outcome = {"status": "ok", "detail": detail}
                except Skipped as exc:
                    outcome = {"status": "skipped", "detail": str(exc)}
                except (PermanentFailure, CrmError) as exc:
                    outcome = failure(exc)
                outcomes[index] = {"index": index, "type": action["type"], "attempts": 1,
                                   **outcome}
            status = ("failed" if any(o.get("status") == "failed" for o in outcomes)
                      else "completed")
            summary = self._save_run(session, state, outcomes, context, status,
                                     self.clock.now())
            self._record(session, "rule_run_completed", {"run": summary})
            self._cancel_resume_timer(session, run_id)
        metrics.RULE_RUNS.labels(status).inc()
        return {"status": status}

    @staticmethod
    def _save_run(
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

    # ---- actions ----------------------------------------------------------------------------

    def perform(
        self, action: dict[str, Any], context: dict[str, Any], run_id: str,
        definition: dict[str, Any], progress: dict[str, Any] | None = None,
        remember: Callable[[Session, dict[str, Any]], None] | None = None,
    ) -> Any:
        """`progress`: the action's stored outcome so far (a resumed run's); `remember(session,
        progress)` stores what the action decided, in the transaction of the decision."""
        kind = action["type"]
        if kind == "assign":
            return self._assign(action, context, progress or {}, remember)
        if kind == "call":
            return self._call(action, context)
        if kind in LOCAL_ACTIONS:
            with self.db.begin() as session:
                return self.local_action(session, action, context, run_id)
        raise PermanentFailure(f"unknown action {kind}")

    def _template_context(self, session: Session, context: dict[str, Any]) -> dict[str, Any]:
        record = context.get("record") or {}
        owner = directory(session).users.get(record.get("owner_id") or "")
        values = {"record": record, "event": context.get("event") or {},
                  "rule": context.get("rule") or {}, "owner": user_to_dict(owner) or {},
                  "now": self.clock.now().isoformat()}
        if context.get("record_type"):
            values[context["record_type"]] = record
        return values

    def _team(self, session: Session, name_or_id: str) -> TeamView | None:
        return directory(session).team(name_or_id)

    def assignment_team(self, action: dict[str, Any], record: dict[str, Any]) -> str | None:
        region = record.get("region")
        territories = action.get("territories") or {}
        if region and region in territories:
            return territories[region]
        lines = action.get("product_lines") or {}
        for product in record.get("product_interest") or []:
            if product in lines:
                return lines[product]
        return action.get("team")

    def members(
        self, session: Session, team: TeamView, roles: list[str], strategy: str = "least_loaded"
    ) -> list[assignment.Member]:
        """The team's members in `roles` with their settings and, where the choice depends on
        it (least-loaded, or a capacity to respect), their open leads."""
        users = [u for u in directory(session).users.values()
                 if u.team_id == team.id and u.role in roles]
        ids = [u.id for u in users]
        connection = session.connection()
        settings = {row.user_id: row for row in connection.execute(MEMBER_SETTINGS, {"ids": ids})}
        loads: dict[str, int] = {}
        if strategy != "round_robin" or any(row.capacity is not None
                                            for row in settings.values()):
            loads = dict(connection.execute(OPEN_LEADS_BY_OWNER, {"ids": ids}).all())
        return [
            assignment.Member(
                user_id=u.id, active=u.active,
                out_of_office_until=settings[u.id].out_of_office_until if u.id in settings
                else None,
                capacity=settings[u.id].capacity if u.id in settings else None,
                load=loads.get(u.id, 0),
            )
            for u in users
        ]

    def choose_assignee(
        self, session: Session, action: dict[str, Any], record: dict[str, Any], commit: bool,
        authority: Authority | None = None,
    ) -> dict[str, Any]:
        team_name = self.assignment_team(action, record)
        if not team_name:
            raise PermanentFailure(f"no team for region {record.get('region')!r}")
        team = self._team(session, team_name)
        if team is None:
            raise PermanentFailure(f"team {team_name!r} is not in the directory")
        strategy = action.get("strategy", "round_robin")
        members = self.members(session, team, action.get("roles") or ["sales_rep"], strategy)
        if authority is not None and not authority.is_organisation:
            members = [m for m in members if m.user_id in authority.owner_ids]
            if not members:
                raise PermanentFailure(f"nobody in {team.name} is within the rule's authority "
                                       "(a manager's rules assign within their teams)")
        group = f"team:{team.id}"
        connection = session.connection()
        last = connection.execute(LAST_CHOSEN, {"group": group}).first()
        choice = assignment.choose(members, strategy, last.last_user_id if last else None,
                                   self.clock.now())
        if choice.user_id is None:
            raise PermanentFailure(f"{choice.reason} in {team.name}: {choice.skipped}")
        if commit:
            values = {"last_user_id": choice.user_id, "updated_at": self.clock.now()}
            if last is None:
                insert_row(session, _ROTATIONS, {"group_key": group, **values})
            else:
                connection.execute(UPDATE_ROTATION, {"group": group, **values})
        return {"owner_id": choice.user_id, "team": team.name, "reason": choice.reason,
                "skipped": choice.skipped}

    def _assign(
        self, action: dict[str, Any], context: dict[str, Any],
        progress: dict[str, Any] | None = None,
        remember: Callable[[Session, dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        record = context.get("record") or {}
        if context.get("record_type") != "lead" or not record.get("id"):
            raise Skipped("assign works on leads")
        chosen = (progress or {}).get("chosen")
        if chosen:
            # Chosen before a crash or a failed call: the same owner again (assigning a lead
            # to its owner changes nothing), not a second choice that moves the rotation on.
            with self.db.begin() as session:
                rule_authority = self.authority(session, context.get("authority"))
            if rule_authority.revoked:
                raise PermanentFailure(f"the rule acts for nobody: {rule_authority.revoked}")
            return self._assign_to(record, context, chosen, rule_authority.scope())
        with self.db.begin() as session:
            key = records.record_key("lead", record["id"])
            connection = session.connection()
            known = connection.execute(SNAPSHOT_OWNER, {"key": key}).first()
            current_owner = known.owner_id if known else record.get("owner_id")
            if action.get("only_unowned") and current_owner:
                record["owner_id"] = current_owner
                raise Skipped(f"the lead already has an owner ({current_owner})")
            rule_authority = self.authority(session, context.get("authority"))
            if rule_authority.revoked:
                raise PermanentFailure(f"the rule acts for nobody: {rule_authority.revoked}")
            chosen = self.choose_assignee(session, action, record, commit=True,
                                          authority=rule_authority)
            if known is not None:  # count the lead at once, for least-loaded fairness
                connection.execute(UPDATE_SNAPSHOT,
                                   {"record_key": key, "owner_id": chosen["owner_id"]})
            if remember is not None:
                remember(session, {"chosen": chosen})
        return self._assign_to(record, context, chosen, rule_authority.scope())

    def _assign_to(
        self, record: dict[str, Any], context: dict[str, Any], chosen: dict[str, Any],
        scope: dict[str, Any],
    ) -> dict[str, Any]:
        self.ports.call("leads", "assign_lead", lead_id=record["id"],
                        owner_id=chosen["owner_id"], scope=scope)
        record["owner_id"] = chosen["owner_id"]
        context["record"] = record
        return chosen

    def _owner_refuses(self, session: Session, stored: dict[str, Any], row: Any) -> str | None:
        """Why a manager's subscription may no longer get this delivery (checked again when
        it is sent: the owner may have left, the record may have left their teams)."""
        authority = self.authority(session, stored)
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

    def manager_chain(self, session: Session, user_id: str | None, levels: int) -> list[str]:
        """The owner's manager, that manager's manager, ... (`levels` at most, no cycles)."""
        chain: list[str] = []
        seen = {user_id}
        people = directory(session)
        current = people.users.get(user_id or "")
        while current is not None and len(chain) < levels:
            team = people.teams.get(current.team_id or "")
            manager_id = team.manager_id if team else None
            if not manager_id or manager_id in seen:
                break
            chain.append(manager_id)
            seen.add(manager_id)
            current = people.users.get(manager_id)
        return chain

    def recipients(
        self, session: Session, spec: list[str], context: dict[str, Any]
    ) -> list[str]:
        record = context.get("record") or {}
        owner_id = record.get("owner_id")
        found: list[str] = []
        for item in spec:
            if item == "owner" and owner_id:
                found.append(owner_id)
            elif item == "owner_manager":
                found.extend(self.manager_chain(session, owner_id, 1))
            elif item == "manager_chain":
                found.extend(self.manager_chain(session, owner_id, 5))
            elif item == "actor" and (context.get("event") or {}).get("actor"):
                found.append(context["event"]["actor"])
            elif item.startswith("user:"):
                found.append(item[5:])
            elif item.startswith("role:"):
                found.extend(sorted(u.id for u in directory(session).users.values()
                                    if u.role == item[5:] and u.active))
            elif item.startswith(("team:", "team_manager:")):
                name = item.split(":", 1)[1]
                team = self._team(session, name)
                if team is None:
                    continue
                if item.startswith("team_manager:"):
                    if team.manager_id:
                        found.append(team.manager_id)
                else:
                    found.extend(sorted(u.id for u in directory(session).users.values()
                                        if u.team_id == team.id and u.active))
        return list(dict.fromkeys(found))

    def _task_assignee(
        self, session: Session, spec: str, context: dict[str, Any]
    ) -> str | None:
        record = context.get("record") or {}
        if spec == "owner":
            return record.get("owner_id")
        if spec == "owner_manager":
            chain = self.manager_chain(session, record.get("owner_id"), 1)
            return chain[0] if chain else None
        if spec.startswith("user:"):
            return spec[5:]
        candidates, _ = self.authority(session, context.get("authority")).within(
            self.recipients(session, [spec], context), directory(session).users)
        if not candidates:
            return None
        open_tasks = dict(session.execute(
            select(Task.assignee_id, func.count()).where(
                Task.assignee_id.in_(candidates), Task.status == "open")
            .group_by(Task.assignee_id)).all())
        return min(sorted(candidates), key=lambda uid: open_tasks.get(uid, 0))

    def _create_task(
        self, session: Session, action: dict[str, Any], context: dict[str, Any], run_id: str
    ) -> dict[str, Any]:
        now = self.clock.now()
        record = context.get("record") or {}
        assignee = self._task_assignee(session, action.get("assignee", "owner"), context)
        if not assignee:
            raise Skipped(f"no assignee for {action.get('assignee', 'owner')!r}")
        if not self.authority(session, context.get("authority")).reaches(
                assignee, directory(session).users):
            raise PermanentFailure(f"user {assignee} is outside the rule's authority "
                                   "(a manager's rules give tasks within their teams)")
        values = self._template_context(session, context)
        user = directory(session).users.get(assignee)
        due_in = action.get("due_in")
        task = Task(
            id=new_id(), title=render(action["title"], values)[:300],
            description=render(action.get("description"), values) or None,
            record_type=context.get("record_type"),
            record_id=str(record["id"]) if record.get("id") else None,
            assignee_id=assignee, team_id=user.team_id if user else None, status="open",
            priority=action.get("priority", "normal"),
            due_at=now + timing.parse_duration(due_in) if due_in is not None else None,
            rule_id=(context.get("rule") or {}).get("id"), run_id=run_id,
            created_at=now, updated_at=now,
        )
        session.add(task)
        self._record(session, "task_created", {"task": task_to_dict(task, now)})
        return {"task_id": task.id, "assignee_id": assignee, "title": task.title,
                "due_at": iso(task.due_at)}

    def _notify(
        self, session: Session, action: dict[str, Any], context: dict[str, Any], run_id: str,
        spec: list[str], extra_recipients: list[str] | None = None,
    ) -> dict[str, Any]:
        """In-app notifications, an email delivery and a webhook delivery (both sent by the
        delivery loop, which sends the emails due together over one SMTP connection)."""
        now = self.clock.now()
        channels = action.get("channels") or ["in_app"]
        record = context.get("record") or {}
        users = extra_recipients if extra_recipients is not None else self.recipients(
            session, spec, context)
        rule_authority = self.authority(session, context.get("authority"))
        users, left_out = rule_authority.within(users, directory(session).users)
        if not users and "webhook" not in channels:
            raise Skipped(f"no recipients for {spec}" + (
                f" within the rule's authority (left out: {', '.join(left_out)})"
                if left_out else ""))
        values = self._template_context(session, context)
        title = render(action["title"], values)[:300]
        body = render(action.get("body"), values)
        notification_ids = []
        if "in_app" in channels:
            for user_id in users:
                row = {
                    "id": new_id(), "user_id": user_id, "title": title, "body": body or None,
                    "record_type": context.get("record_type"),
                    "record_id": str(record["id"]) if record.get("id") else None,
                    "rule_id": (context.get("rule") or {}).get("id"), "run_id": run_id,
                    "created_at": now,
                }
                defer_insert(session, _NOTIFICATIONS, row)
                notification_ids.append(row["id"])
                self._record(session, "notification_created", {
                    "notification": notification_to_dict(SimpleNamespace(**row, read_at=None))})
        addresses: list[str] = []
        email_ids: list[str] = []
        if "email" in channels:
            people = directory(session).users
            addresses = sorted({people[u].email for u in users
                                if u in people and people[u].email})
            if addresses:
                email_ids.append(new_id())
                defer_insert(session, _EMAILS, {
                    "id": email_ids[-1], "recipients": addresses, "subject": title,
                    "text": body or title, "status": "pending", "attempts": 0,
                    "next_attempt_at": now, "run_id": run_id, "created_at": now,
                })
        webhook_id = None
        if "webhook" in channels:
            sub = session.get(WebhookSubscription, action.get("subscription_id"))
            if sub is None or not sub.active:
                raise PermanentFailure("the webhook subscription is missing or disabled")
            if not Authority.of(sub.authority).managed_by(rule_authority):
                raise PermanentFailure("the webhook subscription is not the rule author's")
            webhook_id = "msg_" + uuid.uuid4().hex
            session.add(WebhookDelivery(
                id=webhook_id, subscription_id=sub.id, event_id=None,
                event_type="rules.notification",
                body=json.dumps({"type": "rules.notification", "title": title,
                                 "body": body, "record": record,
                                 "rule": context.get("rule")}, ensure_ascii=False),
                status="pending", attempts=0, next_attempt_at=now, attempt_log=[],
                created_at=now))
        outcome = {"recipients": users, "notifications": notification_ids,
                   "emails": addresses, "email_deliveries": email_ids,
                   "webhook_delivery": webhook_id, "title": title}
        if left_out:
            outcome["left_out"] = left_out  # outside the rule's authority
        return outcome

    def _escalate(
        self, session: Session, action: dict[str, Any], context: dict[str, Any], run_id: str,
    ) -> dict[str, Any]:
        record = context.get("record") or {}
        chain = self.manager_chain(session, record.get("owner_id"), action.get("levels", 1))
        raised = 0
        if action.get("raise_priority", True) and record.get("id"):
            raised = session.execute(
                update(Task).where(Task.record_id == str(record["id"]), Task.status == "open")
                .values(priority="urgent", updated_at=self.clock.now())
            ).rowcount
        if not chain:
            raise Skipped("the owner has no manager to escalate to")
        result = self._notify(session, action, context, run_id, [], extra_recipients=chain)
        return {**result, "manager_chain": chain, "tasks_raised": raised}

    def local_action(
        self, session: Session, action: dict[str, Any], context: dict[str, Any], run_id: str,
    ) -> dict[str, Any]:
        """An action on the rules service's own data, inside the caller's transaction."""
        kind = action["type"]
        if kind == "create_task":
            return self._create_task(session, action, context, run_id)
        if kind == "notify":
            return self._notify(session, action, context, run_id, action.get("to") or [])
        if kind == "escalate":
            return self._escalate(session, action, context, run_id)
        raise PermanentFailure(f"{kind} is not a local action")

    def _call(self, action: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
        record = context.get("record") or {}
        record_type = context.get("record_type")
        service, method = action["service"], action["method"]
        acts_on = rules_domain.ALLOWED_CALLS[f"{service}.{method}"][0]
        if not record.get("id") or record_type != acts_on:
            raise Skipped(f"{service}.{method} needs a {acts_on} record")
        with self.db.read() as session:
            values = self._template_context(session, context)
            rule_authority = self.authority(session, context.get("authority"))
        args = {name: render(value, values) if isinstance(value, str) else value
                for name, value in (action.get("args") or {}).items()}
        if rule_authority.revoked:
            raise PermanentFailure(f"the rule acts for nobody: {rule_authority.revoked}")
        if "owner_id" in args and not rule_authority.is_organisation and (
                args["owner_id"] not in rule_authority.owner_ids):
            raise PermanentFailure(f"user {args['owner_id']} is outside the rule's authority "
                                   "(a manager's rules assign within their teams)")
        # The owner checks the command with the author's own scope, as for a person.
        result = self.ports.call(service, method, **{f"{record_type}_id": record["id"]},
                                 **args, scope=rule_authority.scope())
        if isinstance(result, dict):
            # A new owner counts for the next actions; a release keeps the previous owner in
            # the context, so that "owner" and "owner_manager" still mean the people concerned.
            if result.get("owner_id"):
                record["owner_id"] = result["owner_id"]
            for name in ("status", "stage_id"):
                if name in result:
                    record[name] = result[name]
        return {"called": f"{service}.{method}", "args": args}

    # ---- deliveries -------------------------------------------------------------------------

    def deliver_due_emails(self) -> int:
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
                    self._record_email_outcome(row, outcome)
                    done.add(row.id)
                    if isinstance(outcome, Exception) and not connection.open:
                        break  # no session with the relay: the rest would fail alike
                    if time.monotonic() > deadline:
                        break
        except Exception as exc:  # noqa: BLE001 - e.g. CRM_SMTP_* wrong: each delivery says so
            for row in rows:
                if row.id not in done:
                    self._record_email_outcome(row, exc)
                    done.add(row.id)
        left = [row.id for row in rows if row.id not in done]
        if left:
            with self.db.begin() as session:
                session.execute(update(EmailDelivery).where(
                    EmailDelivery.id.in_(left), EmailDelivery.status == "sending")
                    .values(status="pending", next_attempt_at=self.clock.now()))
        return len(rows)

    def _record_email_outcome(self, row: Any, outcome: str | Exception) -> None:
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

    def deliver_due_webhooks(self) -> int:
        now = self.clock.now()
        with self.db.begin() as session:
            rows = claim_due(session, WebhookDelivery.__table__, "next_attempt_at", now, 50,
                             ("pending", "sending"),
                             {"status": "sending", "next_attempt_at": now + DELIVERY_LEASE})
            subs = {s.id: (s.url, s.secret, s.active, s.authority) for s in session.scalars(
                select(WebhookSubscription).where(WebhookSubscription.id.in_(
                    {row.subscription_id for row in rows})))}
        for row in rows:
            self.deliver_webhook(row, subs.get(row.subscription_id))
        return len(rows)

    def deliver_webhook(self, row: Any, subscription: tuple[str, str, bool, Any] | None
                        ) -> None:
        from services.rules.notify import next_attempt_delay

        refusal = None
        if subscription is None or not subscription[2]:
            refusal = "the subscription is disabled or deleted"
        elif subscription[3]:
            with self.db.read() as session:
                refusal = self._owner_refuses(session, subscription[3], row)
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
                self._record(session, "webhook_subscription_disabled", {
                    "subscription_id": sub.id, "reason": sub.disabled_reason})
                return
            delay = next_attempt_delay(item.attempts) if outcome.retry else None
            if delay is None:
                item.status, item.next_attempt_at = "failed", None
                self._record(session, "webhook_delivery_failed", {
                    "delivery_id": item.id, "subscription_id": item.subscription_id,
                    "event_type": item.event_type, "attempts": item.attempts,
                    "last_status_code": item.last_status_code, "last_error": item.last_error})
            else:
                item.status, item.next_attempt_at = "pending", now + delay
