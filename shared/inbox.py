"""Idempotent consumption: a handler records the event id in the same transaction as its effect."""

from __future__ import annotations

import functools
import uuid
from typing import Any

from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

from shared.db import UTCDateTime
from shared.envelope import utcnow
from shared.errors import Conflict, ValidationFailed


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


# --------------------------------------------------------------------------- commands
# A command with an idempotency key (a client's retry after a lost reply) is recorded in the
# same inbox, in the transaction of its effect: its `event_id` is a UUID made from the key, its
# `handler` names the command and a reference to the result (e.g. `create_lead:created:<id>`).
# The commands on one record that take a `command_id` (the rules service's `call` actions:
# `rules:<run id>:<action index>`) go through `first_command`, their reference the record's id.

COMMAND_ID_MAX = 200

_COMMAND_NAMESPACE = uuid.UUID("5b0f3c1e-7a52-4f0e-9a55-0d5c1c2e6a11")


def command_id(key: str) -> str:
    """The inbox id of an idempotency key (any length, any characters)."""
    return str(uuid.uuid5(_COMMAND_NAMESPACE, key))


def recorded_command(session: Session, table: Table, key: str, command: str) -> str | None:
    """The result reference a command with this key recorded, or None when it never ran."""
    handler = session.execute(
        select(table.c.handler).where(table.c.event_id == command_id(key),
                                      table.c.handler.startswith(f"{command}:", autoescape=True))
    ).scalar()
    return handler[len(command) + 1:] if handler else None


def record_command(session: Session, table: Table, key: str, command: str, result: str) -> None:
    """Record the command's result reference with its effect (the caller's transaction)."""
    session.connection().execute(table.insert().values(
        event_id=command_id(key), handler=f"{command}:{result}"[:200], processed_at=utcnow()))


def checked_command_id(value: Any) -> str | None:
    """`command_id` as an entrypoint takes it: None (no key: the command as ever) or a string
    of 1 to 200 characters; anything else is a ValidationFailed naming `command_id`."""
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= COMMAND_ID_MAX:
        raise ValidationFailed.for_fields(
            {"command_id": [f"a string of 1 to {COMMAND_ID_MAX} characters"]})
    return value


def first_command(session: Session, table: Table, key: str, command: str,
                  record_id: str) -> bool:
    """Record `command` with this key on the record `record_id`, in the caller's transaction and
    before its effect (a failing command rolls it back with everything else): True when it is
    the first time, so the caller performs the command; False when it was done already, so the
    caller performs nothing and answers the record as it is now.

    Of two calls racing with one key, the second waits for the first's commit and then inserts
    nothing (or inserts, when the first rolled back). A key already used for another record is
    a Conflict naming `command_id`."""
    done = recorded_command(session, table, key, command)
    if done is not None and done != record_id:
        raise Conflict(f"command_id {key} was used for {command} of another record",
                       {"field": "command_id"})
    if done is not None:
        return False
    statement = _insert_once(session.get_bind().dialect.name, table)
    inserted = session.connection().execute(statement, {
        "event_id": command_id(key), "handler": f"{command}:{record_id}"[:200],
        "processed_at": utcnow()}).first()
    return inserted is not None
