"""The recent events a rule's trigger listens to (the event log kept for dry runs), newest
first, for picking one to dry-run against. The organisation's view only (admins): an event
names records of every team."""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select

from services.rules.domain import records
from services.rules.domain import rules as rules_domain
from services.rules.domain.authority import Authority
from services.rules.models import EventLog
from services.rules.usecases.support import Worker, iso
from shared.errors import Forbidden

SCAN_BATCH = 500
SCAN_LIMIT = 20_000  # rows read at most for patterns SQL cannot filter ('?', '[...]')


def _like(pattern: str) -> str | None:
    """The SQL LIKE of an fnmatch pattern that has only `*` wildcards, else None."""
    if "?" in pattern or "[" in pattern:
        return None
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


def recent_events(worker: Worker, query: dict[str, Any], acting: Authority
                  ) -> dict[str, Any]:
    if not acting.is_organisation:
        raise Forbidden("only an admin lists recent events")
    patterns: list[str] = query.get("event") or []
    limit: int = query["limit"]
    likes = [_like(pattern) for pattern in patterns]
    statement = select(EventLog).order_by(EventLog.received_at.desc(), EventLog.event_id)
    if patterns and None not in likes:
        statement = statement.where(or_(*(EventLog.event_name.like(like, escape="\\")
                                          for like in likes)))
    found: list[dict[str, Any]] = []
    with worker.db.read() as session:
        for offset in range(0, SCAN_LIMIT, SCAN_BATCH):
            batch = list(session.scalars(statement.offset(offset).limit(SCAN_BATCH)))
            for logged in batch:
                if not patterns or rules_domain.event_matches(patterns, logged.event_name):
                    found.append(_summary(logged))
                    if len(found) == limit:
                        return {"items": found}
            if len(batch) < SCAN_BATCH:
                break
    return {"items": found}


def _summary(logged: EventLog) -> dict[str, Any]:
    envelope = logged.envelope or {}
    record_type, record = records.primary_record(envelope.get("data") or {})
    producer, _, event_type = logged.event_name.partition(".")
    return {
        "event_id": logged.event_id, "event_name": logged.event_name,
        "event_type": envelope.get("event_type") or event_type,
        "producer": envelope.get("producer") or producer,
        "occurred_at": envelope.get("occurred_at"), "received_at": iso(logged.received_at),
        "actor": envelope.get("actor"), "correlation_id": envelope.get("correlation_id"),
        "record_key": records.record_key(record_type, str(record["id"]))
        if record_type and record else None,
    }
