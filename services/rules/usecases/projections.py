"""The projections the intake keeps from events: the directory of users and teams (from the
gateway's events) and the last snapshot of every record, with what changed since."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

from services.rules.domain import records
from services.rules.models import DirectoryTeam, DirectoryUser, RecordSnapshot

CLOSED_LEAD_STATUSES = ("converted", "disqualified")
# Statements every event runs, built once and run on the connection: the ORM's path (a
# `session.get`, an object to flush) cost several times the query on these small rows.
RECORDS = RecordSnapshot.__table__
SNAPSHOT_DATA = select(RECORDS.c.data).where(RECORDS.c.key == bindparam("key"))
# After a concurrent first insert of the same record: its row, locked until our commit, so
# that what this event changes is computed against it as if the two had come one by one.
SNAPSHOT_DATA_LOCKED = SNAPSHOT_DATA.with_for_update()
SNAPSHOT_OWNER = select(RECORDS.c.owner_id).where(RECORDS.c.key == bindparam("key"))
# Sets the columns named in its parameters besides `record_key`.
UPDATE_SNAPSHOT = update(RECORDS).where(RECORDS.c.key == bindparam("record_key"))


def _insert_new_snapshot(dialect: str) -> Insert:
    """A first snapshot's INSERT that gives way to a row another transaction inserted in the
    meantime (two events about one new record taken at once by two workers: a ticket's SLA
    check publishes two): no row comes back then, instead of a unique violation that rolled
    back and retried the whole intake. It waits for the other transaction to end (PostgreSQL
    on the key, SQLite on the file's write lock), so that row is committed and readable."""
    insert = (postgresql if dialect == "postgresql" else sqlite).insert(RECORDS)
    return insert.on_conflict_do_nothing(index_elements=[RECORDS.c.key]).returning(
        RECORDS.c.key)


INSERT_NEW_SNAPSHOT = {name: _insert_new_snapshot(name) for name in ("postgresql", "sqlite")}


def project_directory(session: Session, event_type: str, data: dict[str, Any],
                      occurred_at: str | None = None) -> None:
    """`gateway.user_changed` / `gateway.team_changed` into the directory projection. An event
    older than the one the row holds (`occurred_at`) arrived late and changes nothing."""
    if event_type == "user_changed" and isinstance(data.get("user"), dict):
        user = data["user"]
        row = session.get(DirectoryUser, user["id"]) or DirectoryUser(id=user["id"])
        if occurred_at and row.changed_at and occurred_at < row.changed_at:
            return
        row.username = user.get("username") or user["id"]
        row.display_name = user.get("display_name")
        row.email = user.get("email")
        row.role = user.get("role") or "sales_rep"
        row.team_id = user.get("team_id")
        row.active = bool(user.get("active", True))
        row.changed_at = occurred_at or row.changed_at
        session.merge(row)
    elif event_type == "team_changed" and isinstance(data.get("team"), dict):
        team = data["team"]
        row = session.get(DirectoryTeam, team["id"]) or DirectoryTeam(id=team["id"])
        if occurred_at and row.changed_at and occurred_at < row.changed_at:
            return
        row.name = team.get("name") or team["id"]
        row.manager_id = team.get("manager_id")
        row.changed_at = occurred_at or row.changed_at
        session.merge(row)


def store_snapshot(
    session: Session, data: dict[str, Any], now: datetime
) -> tuple[str | None, dict[str, Any] | None, dict[str, Any], bool]:
    """The event's record, what changed since the stored snapshot (stored anew), and
    whether the record is seen for the first time."""
    record_type, record = records.primary_record(data)
    if record_type is None or record is None:
        return None, None, {}, False
    record = records.with_owner(record_type, record)
    key = records.record_key(record_type, str(record["id"]))
    connection = session.connection()
    previous = connection.execute(SNAPSHOT_DATA, {"key": key}).scalar()
    if len(record) <= 1:  # only an id: use what we know
        return record_type, dict(previous) if previous else record, {}, False
    values = {"owner_id": record.get("owner_id"), "data": record, "updated_at": now,
              "is_open": not (
                  record.get("merged_into_id")
                  or (record_type == "lead" and record.get("status") in CLOSED_LEAD_STATUSES)
              )}
    if previous is None:
        if _insert_first(connection, {"key": key, "record_type": record_type, **values}):
            return record_type, record, records.changes(None, record), True
        # Another event's transaction stored it first: this one comes after it.
        previous = connection.execute(SNAPSHOT_DATA_LOCKED, {"key": key}).scalar()
    if (
        previous and previous.get("updated_at") and record.get("updated_at")
        and str(record["updated_at"]) < str(previous["updated_at"])
    ):
        return record_type, previous, {}, False  # an older snapshot arrived late
    changes = records.changes(previous, record)
    connection.execute(UPDATE_SNAPSHOT, {"record_key": key, **values})
    return record_type, record, changes, False


def _insert_first(connection: Connection, row: dict[str, Any]) -> bool:
    """Insert a record's first snapshot; False when another transaction's is there."""
    statement = INSERT_NEW_SNAPSHOT.get(connection.dialect.name)
    if statement is None:  # another database: a plain INSERT (a race is retried)
        connection.execute(RECORDS.insert(), row)
        return True
    return connection.execute(statement, row).first() is not None
