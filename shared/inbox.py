"""Idempotent consumption: a handler records the event id in the same transaction as its effect."""

from __future__ import annotations

import functools

from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

from shared.db import UTCDateTime
from shared.envelope import utcnow


def inbox_table(metadata: MetaData) -> Table:
    return Table(
        "inbox",
        metadata,
        Column("event_id", String(36), nullable=False),
        Column("handler", String(200), nullable=False),
        Column("processed_at", UTCDateTime(), nullable=False),
        PrimaryKeyConstraint("event_id", "handler"),
    )


def first_delivery(session: Session, table: Table, event_id: str, handler: str) -> bool:
    """Record the event as handled; False when it was already (the caller then does nothing).

    Of two consumers racing on one event, the second waits for the first's commit and then
    inserts nothing.
    """
    statement = _insert_once(session.get_bind().dialect.name, table)
    inserted = session.connection().execute(
        statement, {"event_id": event_id, "handler": handler, "processed_at": utcnow()}
    ).first()
    return inserted is not None


@functools.cache
def _insert_once(dialect_name: str, table: Table) -> Insert:
    """Built once per database kind: every consumed event runs it."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing().returning(table.c.event_id)
