"""Tables of the rules service (its own database)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import UTCDateTime
from shared.inbox import inbox_table
from shared.kernel.naming import service_metadata
from shared.outbox import outbox_table

metadata = service_metadata()


class Base(DeclarativeBase):
    metadata = metadata


outbox = outbox_table(metadata)
inbox = inbox_table(metadata)


class Rule(Base):
    """The current version of a rule; every edit adds a `RuleVersion`."""

    __tablename__ = "rules"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    key: Mapped[str | None] = mapped_column(String(100), unique=True)  # shipped rules' handle
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    version: Mapped[int] = mapped_column(Integer)
    trigger_type: Mapped[str] = mapped_column(String(20), index=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)  # trigger, conditions, actions
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str | None] = mapped_column(String(36))
    # Who the rule acts for (services/rules/domain/authority.py); null: the organisation.
    authority: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ShippedRule(Base):
    """What the seed installed of a shipped rule (by its key), so that the next seed can tell
    a rule nobody changed since (upgraded to the new shipped definition) from one an admin
    edited (kept, and the new shipped definition offered: `update_available`)."""

    __tablename__ = "shipped_rules"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(36))
    # The rule's version the seed wrote (an edit makes a new one) and the hash of its content.
    installed_version: Mapped[int] = mapped_column(Integer)
    installed_hash: Mapped[str] = mapped_column(String(64))
    # The shipped rule as of the last seed: name, description, definition; and its hash.
    shipped: Mapped[dict[str, Any]] = mapped_column(JSON)
    shipped_hash: Mapped[str] = mapped_column(String(64))
    update_available: Mapped[bool] = mapped_column(Boolean, default=False)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RuleVersion(Base):
    __tablename__ = "rule_versions"

    rule_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str | None] = mapped_column(String(36))


class RuleRun(Base):
    """One rule considered for one event or timer: the audit of what it did and why."""

    __tablename__ = "rule_runs"
    __table_args__ = (
        Index("ix_rule_runs_rule", "rule_id", "started_at"),
        Index("ix_rule_runs_started", "started_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(36))
    rule_version: Mapped[int] = mapped_column(Integer)
    trigger: Mapped[str] = mapped_column(String(20))  # event / timer / schedule / dry_run
    event_id: Mapped[str | None] = mapped_column(String(36), index=True)
    event_type: Mapped[str | None] = mapped_column(String(120))
    timer_id: Mapped[str | None] = mapped_column(String(36))
    record_key: Mapped[str | None] = mapped_column(String(120), index=True)
    matched: Mapped[bool | None] = mapped_column(Boolean)
    # running / completed / failed / stopped (loop guard) / no_match / error
    status: Mapped[str] = mapped_column(String(20), index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # what actions need
    correlation_id: Mapped[str | None] = mapped_column(String(128), index=True)
    causation_depth: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    duration_ms: Mapped[float | None] = mapped_column(Float)


class RuleFiring(Base):
    """When a rule last acted on a record: the per-rule, per-record dedupe window."""

    __tablename__ = "rule_firings"

    rule_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    record_key: Mapped[str] = mapped_column(String(120), primary_key=True)
    fired_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Timer(Base):
    """Something to do at `due_at`: a delayed or date-relative rule, a schedule, an action's
    retry. Taken and fired by one process in one transaction (SKIP LOCKED on PostgreSQL, a
    conditional UPDATE on SQLite)."""

    __tablename__ = "timers"
    __table_args__ = (
        Index("ix_timers_status_due", "status", "due_at"),
        Index("ix_timers_rule_record", "rule_id", "record_key", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # rule / schedule / action_retry
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(12))  # pending / fired / cancelled / failed
    rule_id: Mapped[str | None] = mapped_column(String(36))
    rule_version: Mapped[int | None] = mapped_column(Integer)
    record_key: Mapped[str | None] = mapped_column(String(120))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    cancel_keys: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    outcome: Mapped[str | None] = mapped_column(Text)


class TimerCancel(Base):
    """Index of cancelling keys (`lead:<id>|leads.lead_status_changed`) to pending timers."""

    __tablename__ = "timer_cancels"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    timer_id: Mapped[str] = mapped_column(String(36), primary_key=True)


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_assignee_status", "assignee_id", "status", "due_at"),
        Index("ix_tasks_record", "record_type", "record_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(Text)
    record_type: Mapped[str | None] = mapped_column(String(20))
    record_id: Mapped[str | None] = mapped_column(String(36))
    assignee_id: Mapped[str | None] = mapped_column(String(36))
    team_id: Mapped[str | None] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(10))  # open / done
    priority: Mapped[str] = mapped_column(String(10), default="normal")
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    snoozed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    rule_id: Mapped[str | None] = mapped_column(String(36))
    run_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completed_by: Mapped[str | None] = mapped_column(String(36))


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user", "user_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36))
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str | None] = mapped_column(Text)
    record_type: Mapped[str | None] = mapped_column(String(20))
    record_id: Mapped[str | None] = mapped_column(String(36))
    rule_id: Mapped[str | None] = mapped_column(String(36))
    run_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class EmailDelivery(Base):
    __tablename__ = "email_deliveries"
    __table_args__ = (Index("ix_email_deliveries_due", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    recipients: Mapped[list[str]] = mapped_column(JSON)
    subject: Mapped[str] = mapped_column(String(300))
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10))  # pending / sending / sent / failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(300))
    run_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookSubscription(Base):
    __tablename__ = "webhook_subscriptions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(200))
    event_types: Mapped[list[str]] = mapped_column(JSON)  # patterns: leads.*, leads.lead_created
    description: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str | None] = mapped_column(String(36))
    # Whose view its deliveries carry (services/rules/domain/authority.py); null: everything.
    authority: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_subscription", "subscription_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the webhook-id sent
    subscription_id: Mapped[str] = mapped_column(String(36))
    event_id: Mapped[str | None] = mapped_column(String(36))
    event_type: Mapped[str] = mapped_column(String(120))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12))  # pending / sending / delivered / failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    attempt_log: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class DirectoryUser(Base):
    """Projection of the gateway's users (`gateway.user_changed`)."""

    __tablename__ = "directory_users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(20))
    team_id: Mapped[str | None] = mapped_column(String(36), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # The `occurred_at` of the event that wrote the row: events are taken concurrently, so an
    # older one (a user's creation) may arrive after a newer one (their deactivation).
    changed_at: Mapped[str | None] = mapped_column(String(40))


class DirectoryTeam(Base):
    """Projection of the gateway's teams (`gateway.team_changed`)."""

    __tablename__ = "directory_teams"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    manager_id: Mapped[str | None] = mapped_column(String(36))
    changed_at: Mapped[str | None] = mapped_column(String(40))  # as DirectoryUser's


class MemberSetting(Base):
    """Assignment settings the rules service owns: capacity and absence per user."""

    __tablename__ = "member_settings"

    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    capacity: Mapped[int | None] = mapped_column(Integer)
    out_of_office_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Rotation(Base):
    """Who got the last record of an assignment group (round-robin pointer)."""

    __tablename__ = "rotations"

    group_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_user_id: Mapped[str | None] = mapped_column(String(36))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RecordSnapshot(Base):
    """The last state of every record seen in events (leads, contacts, ...): conditions of
    timers are evaluated on it, changes are computed against it, and open leads per owner give
    the assignment load."""

    __tablename__ = "records"
    __table_args__ = (Index("ix_records_owner_open", "record_type", "owner_id", "is_open"),)

    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    record_type: Mapped[str] = mapped_column(String(20))
    owner_id: Mapped[str | None] = mapped_column(String(36))
    is_open: Mapped[bool] = mapped_column(Boolean, default=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ClockOffset(Base):
    """The controllable test clock's offset, shared by every process (CRM_CLOCK=controllable)."""

    __tablename__ = "clock"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    offset_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class EventLog(Base):
    """Recent events as received (kept `CRM_RULES_EVENT_RETENTION_DAYS`), so a rule can be
    dry-run against a past event."""

    __tablename__ = "event_log"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_name: Mapped[str] = mapped_column(String(160))  # <producer>.<event_type>
    envelope: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
