"""What every part of the engine uses: its settings, its ports to the outside world, the
errors an action raises, ids, and the claim of due rows (timers, deliveries)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from services.rules.domain import rules as rules_domain
from shared import config
from shared.errors import CrmError

OWN_PRODUCER = "rules"


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
    # The runs of a fired batch performed side by side (their calls to other services in
    # flight together), one subject's in order; 1: one after the other.
    timer_concurrency: int = 16
    # Fired and cancelled timers kept this long (engine.maintenance prunes older ones).
    timer_retention: timedelta = timedelta(days=7)

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
            timer_concurrency=max(1, int(_float_env("CRM_RULES_TIMER_CONCURRENCY", 16))),
            timer_retention=timedelta(days=_float_env("CRM_RULES_TIMER_RETENTION_DAYS", 7)),
        )


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


class PermanentFailure(Exception):
    """An action that trying again will not fix (no such team, a refused command)."""


class Skipped(Exception):
    """An action with nothing to do (no owner to give a task to)."""


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


@dataclass(frozen=True)
class Worker:
    """What a use case behind an RPC works with: the database, the outbox recorder, the
    engine (made when first needed), and who calls (the actor of the call's context)."""

    db: Any
    events: Any
    make_engine: Callable[[], Any]
    actor: str | None

    @property
    def engine(self) -> Any:
        return self.make_engine()
