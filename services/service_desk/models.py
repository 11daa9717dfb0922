"""Tables of the service_desk service (its own database)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
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


# -- SLA: business calendars and SLA policies ----


class BusinessCalendarRow(Base):
    """A business calendar; `hours` maps weekday ("0" = Monday) to "HH:MM-HH:MM" intervals,
    `holidays` / `workdays` are ISO dates that override the holiday source."""

    __tablename__ = "business_calendars"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    time_zone: Mapped[str] = mapped_column(String(64))
    holiday_source: Mapped[str] = mapped_column(String(16))
    hours: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    holidays: Mapped[list[str]] = mapped_column(JSON, default=list)
    workdays: Mapped[list[str]] = mapped_column(JSON, default=list)
    declared_years: Mapped[list[int]] = mapped_column(JSON, default=list)
    extra_day_hours: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SlaPolicyRow(Base):
    """An SLA policy; `position` orders them (the first that matches a ticket applies)."""

    __tablename__ = "sla_policies"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    position: Mapped[int] = mapped_column(Integer, index=True)
    calendar_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    priorities: Mapped[list[str]] = mapped_column(JSON, default=list)
    customer_tiers: Mapped[list[str]] = mapped_column(JSON, default=list)
    targets: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    warn_at: Mapped[list[float]] = mapped_column(JSON, default=list)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SlaNoticeRow(Base):
    """A warning or breach already published for a ticket's target, so a timer that fires
    twice (at least once) publishes it once. `due_at` is part of the key: a target that falls
    due anew (a next-reply cycle, a reopened ticket, a changed policy) warns again."""

    __tablename__ = "sla_notices"

    ticket_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    target: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # warning / breach
    threshold: Mapped[str] = mapped_column(String(8), primary_key=True)  # "0.75", "1"
    due_at: Mapped[str] = mapped_column(String(40), primary_key=True)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime())


# -- knowledge base ----
# The full-text index (kb_search) is not a table here: an FTS5 virtual table on SQLite and a
# table with a tsvector column and a GIN index on PostgreSQL, created by migration 0004k
# (kb_search_title, the titles' own FTS5 table on SQLite, 0012k, is covered by the prefix).
metadata.info["migration_only_tables"] = ("kb_search",)


class KbCategory(Base):
    __tablename__ = "kb_categories"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class KbArticle(Base):
    __tablename__ = "kb_articles"
    __table_args__ = (Index("ix_kb_articles_status", "status"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    body_format: Mapped[str] = mapped_column(String(20))  # markdown | text
    category_id: Mapped[str | None] = mapped_column(ForeignKey("kb_categories.id"))
    tags: Mapped[list[str]] = mapped_column(JSON)
    language: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))  # draft | published | archived
    version: Mapped[int] = mapped_column(Integer)  # 0 until first published
    author_id: Mapped[str | None] = mapped_column(String(64))
    source_ticket_id: Mapped[str | None] = mapped_column(String(36))
    helpful_yes: Mapped[int] = mapped_column(Integer)
    helpful_no: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class KbArticleVersion(Base):
    __tablename__ = "kb_article_versions"

    article_id: Mapped[str] = mapped_column(ForeignKey("kb_articles.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    body_format: Mapped[str] = mapped_column(String(20))
    category_id: Mapped[str | None] = mapped_column(String(36))
    tags: Mapped[list[str]] = mapped_column(JSON)
    language: Mapped[str] = mapped_column(String(20))
    author_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class KbFeedback(Base):
    __tablename__ = "kb_feedback"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    article_id: Mapped[str] = mapped_column(ForeignKey("kb_articles.id"), index=True)
    helpful: Mapped[bool] = mapped_column(Boolean)
    comment: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


# -- tickets ----
# The ticket number (T-000123) comes from the counter row `ticket_counters` ("ticket"), taken
# in the ticket's own transaction: a rolled-back creation gives its number back, no gaps.


class TicketCounterRow(Base):
    __tablename__ = "ticket_counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class TicketRow(Base):
    __tablename__ = "tickets"
    __table_args__ = (Index("ix_tickets_created", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    number: Mapped[int] = mapped_column(BigInteger, unique=True)
    subject: Mapped[str] = mapped_column(String(500))
    requester_email: Mapped[str] = mapped_column(String(320))
    requester_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    priority: Mapped[str] = mapped_column(String(16))
    type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    category: Mapped[str | None] = mapped_column(String(100), nullable=True)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    assignee_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    group_id: Mapped[str | None] = mapped_column(String(64), nullable=True,
                                                 index=True)  # groups part: visibility
    channel: Mapped[str] = mapped_column(String(16))
    customer_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    customer_tier: Mapped[str | None] = mapped_column(String(32), nullable=True)
    contact_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # groups part (migration 0006g): what routing and skills match on
    product: Mapped[str | None] = mapped_column(String(100), nullable=True)
    language: Mapped[str | None] = mapped_column(String(20), nullable=True)
    merged_into_id: Mapped[str | None] = mapped_column(String(36), nullable=True)


class TicketEntryRow(Base):
    """The ticket's history and conversation, in order (`seq`): `created`, `reply` (public or
    internal, author agent / customer), `status_changed`, `priority_changed`, `group_changed`
    (from / to)."""

    __tablename__ = "ticket_entries"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    public: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    author_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    author_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    body: Mapped[str | None] = mapped_column(Text, nullable=True)
    # 64 since 0014g: a `group_changed` entry holds the groups' ids
    from_value: Mapped[str | None] = mapped_column(String(64), nullable=True)
    to_value: Mapped[str | None] = mapped_column(String(64), nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_ticket_entries_kind_at", "kind", "at"),)  # numbers (0011n)


# -- groups, routing and web forms (issue 17: groups part) ----
# A ticket's `group_id` (the tickets table above) refers to ticket_groups.id; `product` and
# `language` (migration 0006g) are what routing rules and skills match on besides type,
# category and the customer's tier.


class TicketGroupRow(Base):
    """A group (queue) of agents. `strategy` chooses the member within it; `last_assignee_id`
    is the round-robin pointer; `is_default` marks the group of tickets no rule routes."""

    __tablename__ = "ticket_groups"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    manager_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    strategy: Mapped[str] = mapped_column(String(32))  # round_robin | least_loaded
    skills_matching: Mapped[bool] = mapped_column(Boolean, default=False)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    last_assignee_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TicketGroupMemberRow(Base):
    """A member of a group: a gateway user id, with skills (`{"products": [...],
    "languages": [...]}`), a capacity (open tickets at most; null: unlimited) and whether
    they take new tickets now."""

    __tablename__ = "ticket_group_members"

    group_id: Mapped[str] = mapped_column(ForeignKey("ticket_groups.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    skills: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    capacity: Mapped[int | None] = mapped_column(Integer, nullable=True)
    available: Mapped[bool] = mapped_column(Boolean, default=True)


class TicketRoutingRuleRow(Base):
    """A routing rule: the first (by `position`) whose conditions all match sends a ticket to
    `group_id`; an empty list of a condition matches anything."""

    __tablename__ = "ticket_routing_rules"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    position: Mapped[int] = mapped_column(Integer, index=True)
    group_id: Mapped[str] = mapped_column(ForeignKey("ticket_groups.id"))
    conditions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TicketFormRow(Base):
    """A public web form a company site posts tickets to. `token_hash` is the SHA-256 of its
    token (the token itself is shown once); `signing_key` signs the fill-time stamps."""

    __tablename__ = "ticket_forms"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    allowed_origins: Mapped[list[str]] = mapped_column(JSON, default=list)
    default_group_id: Mapped[str | None] = mapped_column(ForeignKey("ticket_groups.id"),
                                                         nullable=True)
    default_type: Mapped[str] = mapped_column(String(32))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    signing_key: Mapped[str] = mapped_column(String(64))
    min_fill_seconds: Mapped[int] = mapped_column(Integer)
    rate_per_minute: Mapped[int] = mapped_column(Integer)
    ip_rate_per_minute: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TicketFormHitRow(Base):
    """Posts counted per form (or per form and client address) in a one-minute window, in
    the database so that every gateway worker and service process share the limit."""

    __tablename__ = "ticket_form_hits"

    bucket: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


# -- SLA scheduling (ticket_sla_scheduled, check_sla by id, the sweep) ----


class SlaScheduleRow(Base):
    """The last `ticket_sla_scheduled` published for a ticket: `sequence` grows with each one
    (the rules service keeps the newest timer), `schedule` is what it said, so an unchanged
    schedule is not published again."""

    __tablename__ = "sla_schedules"
    __table_args__ = (Index("ix_sla_schedules_next_check", "next_check_at"),)

    ticket_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger)
    policy_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    schedule: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The latest instant the ticket's clocks were computed at: never computed earlier again
    # (a check at the rules service's clock, then a change stamped by this process's).
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SlaCommandRow(Base):
    """A rule command done (`command_id` from the rules service), so a repeat does nothing."""

    __tablename__ = "sla_commands"

    command_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    ticket_id: Mapped[str] = mapped_column(String(64))
    command: Mapped[str] = mapped_column(String(32))
    done_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SlaSweepRow(Base):
    """The recomputation of every open ticket after a policy or calendar change: `cursor` is
    the last ticket id done ("" = from the start, null = nothing to do). A change during a sweep
    starts it again from the start."""

    __tablename__ = "sla_sweeps"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    cursor: Mapped[str | None] = mapped_column(String(64), nullable=True)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


# -- e-mail: intake, attachments, the mail outbox (issue 17, part s-mail) ----


class MailMessageRow(Base):
    """Every Message-ID of a ticket's mail thread: inbound ones (the idempotency key of intake:
    the same mail delivered twice is taken once) and our own outgoing replies' (so a customer's
    answer to them threads in). `outcome` of an inbound mail: created, replied, ignored (an
    auto-reply or a loop: no ticket, no answer)."""

    __tablename__ = "mail_messages"

    message_id: Mapped[str] = mapped_column(String(998), primary_key=True)
    direction: Mapped[str] = mapped_column(String(8))  # in / out
    ticket_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    entry_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    sender: Mapped[str | None] = mapped_column(String(320), nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class TicketAttachmentRow(Base):
    """A file that came with a ticket's mail, kept in this service's database (within the
    limits of domain/mail.py's MailLimits)."""

    __tablename__ = "ticket_attachments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.id"), index=True)
    entry_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MailOutboxRow(Base):
    """A public reply to send by e-mail, written in the reply's transaction. The sender claims
    due rows (`sending` with a lease in `next_attempt_at`), sends, and records the outcome:
    sent, or pending again with back-off, or failed (permanent). `message_id` is fixed when
    the row is written, so a message sent again after a crash is the same message."""

    __tablename__ = "mail_outbox"
    __table_args__ = (Index("ix_mail_outbox_due", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    ticket_id: Mapped[str] = mapped_column(String(36), index=True)
    entry_id: Mapped[str] = mapped_column(String(36))
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(1000))
    in_reply_to: Mapped[str | None] = mapped_column(String(998), nullable=True)
    references: Mapped[str | None] = mapped_column(Text, nullable=True)
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # pending / sending / sent / failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


# -- CSAT: satisfaction surveys ----


class CsatSurveyRow(Base):
    """A ticket's satisfaction survey, created when the ticket is first solved; `token` is the
    link's secret; `month` ("YYYY-MM" in the organisation's time zone) the month it was sent;
    `assignee_id` / `group_id` whom the answer counts for (the ticket's at the solve)."""

    __tablename__ = "csat_surveys"
    __table_args__ = (Index("ix_csat_surveys_created", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.id"), unique=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    requester_email: Mapped[str] = mapped_column(String(320))
    assignee_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    group_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    month: Mapped[str] = mapped_column(String(7), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    rating: Mapped[str | None] = mapped_column(String(8), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


# -- requesters: the sales service's customers and contacts, as its events tell them ----


class DeskCustomerRow(Base):
    """A customer as the sales events last told it (`updated_at`: the snapshot's, so an older
    event arriving late changes nothing); `merged_into_id` once merged into another."""

    __tablename__ = "desk_customers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    tier: Mapped[str | None] = mapped_column(String(32), nullable=True)
    owner_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    merged_into_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DeskContactRow(Base):
    """A customer's contact with its e-mail address (lower case), how a requester is known."""

    __tablename__ = "desk_contacts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320), nullable=True, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


# -- numbers (issue 17, sd-numbers; migration 0011n) ----


class TicketSlaOutcomeRow(Base):
    """Each SLA target's clock of a ticket as last computed (kept on every change by the
    scheduling, in the change's transaction): what the numbers count. `elapsed_seconds` is the
    clock's measured time (business time on the policy's calendar for a business target,
    pauses left out); `achieved_at` the instant it was met (first reply given, solved)."""

    __tablename__ = "ticket_sla_outcomes"
    __table_args__ = (Index("ix_ticket_sla_outcomes_achieved", "target", "achieved_at"),)

    ticket_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    target: Mapped[str] = mapped_column(String(32), primary_key=True)
    policy_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    business: Mapped[bool] = mapped_column(Boolean)
    state: Mapped[str] = mapped_column(String(16))
    breached: Mapped[bool] = mapped_column(Boolean)
    elapsed_seconds: Mapped[int] = mapped_column(BigInteger)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    achieved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
