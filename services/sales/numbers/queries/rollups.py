"""Opportunity roll-ups kept by database triggers, so the funnel, forecast, wins and channels
over a million opportunities sum thousands of rows instead of scanning millions.

`opportunity_rollup` holds, per kind of figure, the count, amount and (closed deals) cycle
seconds of opportunities by pipeline, stage, owner, team, a day and a key, at two grains:
'd' (the day) and 'm' (its month), so a period reads whole months and only its edge days.

kind     day                         key                 rows of
created  creation day (local)        ''                  every opportunity (current stage)
source   creation day (local)        source              every opportunity
close    expected close date         ''                  open ones (1900-01-01: no date)
closed   closing day (local)         loss reason (lost)  won and lost ones

Triggers on `opportunities` (PostgreSQL: a PL/pgSQL function; SQLite: generated statements)
subtract a row's old contribution and add its new one in the same transaction as the change,
so the roll-up is never stale and needs nothing from the code that writes opportunities.
Local days use the UTC offset stored in `numbers_settings` (CRM_TIMEZONE's, no daylight
saving: China's); `rebuild(connection)` recomputes everything (after a bulk load with
triggers off, or when the zone changes). Migration 0002 installed a frozen copy of these
triggers: a change here needs a new migration that copies (never imports) the new DDL.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.engine import Connection

from shared import config
from shared.db import limit_statements

NO_DATE = "1900-01-01"
KEY_LENGTH = 200
COLUMNS = ("pipeline_id", "stage_id", "owner_id", "team_id", "status", "amount",
           "created_at", "closed_at", "expected_close_date", "source", "won_lost_reason")


def offset_minutes() -> int:
    offset = datetime.now(ZoneInfo(config.timezone_name())).utcoffset() or timedelta(0)
    return int(offset.total_seconds() // 60)


# -- PostgreSQL ------------------------------------------------------------------------------

PG_FUNCTIONS = f"""
CREATE OR REPLACE FUNCTION sales_rollup_add(
    v_kind text, v_pipeline text, v_stage text, v_owner text, v_team text, v_day date,
    v_key text, v_n integer, v_amount numeric, v_seconds numeric
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO opportunity_rollup
        (kind, grain, pipeline_id, stage_id, owner_id, team_id, day, key, n, amount, seconds)
    VALUES (v_kind, 'd', v_pipeline, v_stage, v_owner, v_team, v_day, v_key, v_n, v_amount,
            v_seconds),
           (v_kind, 'm', v_pipeline, v_stage, v_owner, v_team,
            date_trunc('month', v_day)::date, v_key, v_n, v_amount, v_seconds)
    ON CONFLICT ON CONSTRAINT pk_opportunity_rollup DO UPDATE SET
        n = opportunity_rollup.n + excluded.n,
        amount = opportunity_rollup.amount + excluded.amount,
        seconds = opportunity_rollup.seconds + excluded.seconds;
END $$;

CREATE OR REPLACE FUNCTION sales_rollup_apply(r opportunities, sign integer)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_shift interval := make_interval(mins => (SELECT offset_minutes FROM numbers_settings
                                               WHERE id = 1));
    v_owner text := coalesce(r.owner_id, '');
    v_team text := coalesce(r.team_id, '');
    v_amount numeric := sign * coalesce(r.amount, 0);
    v_created date := ((r.created_at AT TIME ZONE 'UTC') + v_shift)::date;
BEGIN
    PERFORM sales_rollup_add('created', r.pipeline_id, r.stage_id, v_owner, v_team,
                             v_created, '',
                             sign, v_amount, 0);
    PERFORM sales_rollup_add('source', r.pipeline_id, r.stage_id, v_owner, v_team, v_created,
                             left(coalesce(r.source, ''), {KEY_LENGTH}), sign, v_amount, 0);
    IF r.status = 'open' THEN
        PERFORM sales_rollup_add('close', r.pipeline_id, r.stage_id, v_owner, v_team,
                                 coalesce(r.expected_close_date, date '{NO_DATE}'), '',
                                 sign, v_amount, 0);
    ELSIF r.status IN ('won', 'lost') AND r.closed_at IS NOT NULL THEN
        PERFORM sales_rollup_add(
            'closed', r.pipeline_id, r.stage_id, v_owner, v_team,
            ((r.closed_at AT TIME ZONE 'UTC') + v_shift)::date,
            CASE WHEN r.status = 'lost'
                 THEN left(coalesce(r.won_lost_reason, ''), {KEY_LENGTH}) ELSE '' END,
            sign, v_amount, sign * extract(epoch FROM r.closed_at - r.created_at));
    END IF;
END $$;

CREATE OR REPLACE FUNCTION sales_rollup_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM sales_rollup_apply(OLD, -1);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM sales_rollup_apply(NEW, 1);
    END IF;
    RETURN NULL;
END $$;
"""

_CHANGED = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in COLUMNS)
PG_TRIGGERS = [
    "DROP TRIGGER IF EXISTS opportunities_rollup_write ON opportunities",
    "DROP TRIGGER IF EXISTS opportunities_rollup_update ON opportunities",
    "CREATE TRIGGER opportunities_rollup_write AFTER INSERT OR DELETE ON opportunities "
    "FOR EACH ROW EXECUTE FUNCTION sales_rollup_trigger()",
    "CREATE TRIGGER opportunities_rollup_update AFTER UPDATE ON opportunities "
    f"FOR EACH ROW WHEN ({_CHANGED}) EXECUTE FUNCTION sales_rollup_trigger()",
]
PG_DROP = [
    "DROP TRIGGER IF EXISTS opportunities_rollup_write ON opportunities",
    "DROP TRIGGER IF EXISTS opportunities_rollup_update ON opportunities",
    "DROP FUNCTION IF EXISTS sales_rollup_trigger()",
    "DROP FUNCTION IF EXISTS sales_rollup_apply(opportunities, integer)",
    "DROP FUNCTION IF EXISTS sales_rollup_add(text, text, text, text, text, date, text, "
    "integer, numeric, numeric)",
]


# -- SQLite ----------------------------------------------------------------------------------

_SHIFT = "(SELECT offset_minutes FROM numbers_settings WHERE id = 1) || ' minutes'"


def _sqlite_parts(row: str) -> list[tuple[str, str, str, str, str]]:
    """(kind, day expression, key expression, seconds expression, condition) for OLD/NEW."""
    created = f"date({row}.created_at, {_SHIFT})"
    return [
        ("created", created, "''", "0", "1"),
        ("source", created, f"substr(coalesce({row}.source, ''), 1, {KEY_LENGTH})", "0", "1"),
        ("close", f"coalesce({row}.expected_close_date, '{NO_DATE}')", "''", "0",
         f"{row}.status = 'open'"),
        ("closed", f"date({row}.closed_at, {_SHIFT})",
         f"CASE WHEN {row}.status = 'lost' THEN substr(coalesce({row}.won_lost_reason, ''), 1, "
         f"{KEY_LENGTH}) ELSE '' END",
         f"(julianday({row}.closed_at) - julianday({row}.created_at)) * 86400",
         f"{row}.status IN ('won', 'lost') AND {row}.closed_at IS NOT NULL"),
    ]


def _sqlite_statements(row: str, sign: int) -> list[str]:
    statements = []
    for kind, day, key, seconds, condition in _sqlite_parts(row):
        for grain, grain_day in (("d", day), ("m", f"date({day}, 'start of month')")):
            statements.append(
                "INSERT INTO opportunity_rollup (kind, grain, pipeline_id, stage_id, owner_id, "
                "team_id, day, key, n, amount, seconds) "
                f"SELECT '{kind}', '{grain}', {row}.pipeline_id, {row}.stage_id, "
                f"coalesce({row}.owner_id, ''), coalesce({row}.team_id, ''), {grain_day}, {key}, "
                f"{sign}, {sign} * coalesce({row}.amount, 0), {sign} * ({seconds}) "
                f"WHERE {condition} "
                "ON CONFLICT (kind, grain, pipeline_id, stage_id, owner_id, team_id, day, key) "
                "DO UPDATE SET n = opportunity_rollup.n + excluded.n, "
                "amount = opportunity_rollup.amount + excluded.amount, "
                "seconds = opportunity_rollup.seconds + excluded.seconds"
            )
    return statements


def _sqlite_trigger(name: str, event: str, rows: list[tuple[str, int]], when: str = "") -> str:
    body = ";\n".join(s for row, sign in rows for s in _sqlite_statements(row, sign))
    return f"CREATE TRIGGER {name} AFTER {event} ON opportunities FOR EACH ROW {when}\n" \
           f"BEGIN\n{body};\nEND"


SQLITE_TRIGGERS = [
    "DROP TRIGGER IF EXISTS opportunities_rollup_insert",
    "DROP TRIGGER IF EXISTS opportunities_rollup_update",
    "DROP TRIGGER IF EXISTS opportunities_rollup_delete",
    _sqlite_trigger("opportunities_rollup_insert", "INSERT", [("NEW", 1)]),
    _sqlite_trigger("opportunities_rollup_update", "UPDATE", [("OLD", -1), ("NEW", 1)],
                    "WHEN " + " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in COLUMNS)),
    _sqlite_trigger("opportunities_rollup_delete", "DELETE", [("OLD", -1)]),
]
SQLITE_DROP = SQLITE_TRIGGERS[:3]


# -- install and rebuild ---------------------------------------------------------------------


def install(connection: Connection) -> None:
    """Create (or replace) the triggers; set the offset; rebuild from the table."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(PG_FUNCTIONS)
        for statement in PG_TRIGGERS:
            connection.exec_driver_sql(statement)
    else:
        for statement in SQLITE_TRIGGERS:
            connection.exec_driver_sql(statement)
    rebuild(connection)


def uninstall(connection: Connection) -> None:
    for statement in PG_DROP if connection.dialect.name == "postgresql" else SQLITE_DROP:
        connection.exec_driver_sql(statement)


def rebuild(connection: Connection, minutes: int | None = None) -> int:
    """Recompute the roll-up from the opportunities (set-based; a million rows take seconds)
    with the offset of CRM_TIMEZONE; returns the number of roll-up rows."""
    minutes = offset_minutes() if minutes is None else minutes
    limit_statements(connection, 0)  # set-based over every opportunity: may take a while
    connection.execute(text("DELETE FROM numbers_settings"))
    connection.execute(text("INSERT INTO numbers_settings (id, offset_minutes) VALUES (1, :m)"),
                       {"m": minutes})
    connection.execute(text("DELETE FROM opportunity_rollup"))
    postgres = connection.dialect.name == "postgresql"

    def local(column: str) -> str:
        if postgres:
            return f"(({column} AT TIME ZONE 'UTC') + make_interval(mins => :m))::date"
        return f"date({column}, :shift)"

    def month(day: str) -> str:
        return f"date_trunc('month', {day})::date" if postgres else f"date({day}, 'start of month')"

    seconds = ("extract(epoch FROM closed_at - created_at)" if postgres
               else "(julianday(closed_at) - julianday(created_at)) * 86400")
    key_of = (lambda c: f"left(coalesce({c}, ''), {KEY_LENGTH})") if postgres else (
        lambda c: f"substr(coalesce({c}, ''), 1, {KEY_LENGTH})")
    no_date = f"date '{NO_DATE}'" if postgres else f"'{NO_DATE}'"
    parts = [
        ("created", local("created_at"), "''", "0", "1 = 1"),
        ("source", local("created_at"), key_of("source"), "0", "1 = 1"),
        ("close", f"coalesce(expected_close_date, {no_date})", "''", "0", "status = 'open'"),
        ("closed", local("closed_at"),
         f"CASE WHEN status = 'lost' THEN {key_of('won_lost_reason')} ELSE '' END", seconds,
         "status IN ('won', 'lost') AND closed_at IS NOT NULL"),
    ]
    params: dict[str, Any] = {"m": minutes, "shift": f"{minutes} minutes"}

    def per_row(secs: str) -> str:
        # PostgreSQL's numeric(20, 0) column rounds each row the triggers add: so must the
        # rebuild, or a sum of two 0.6 s differs (1 against 2) by timing alone
        return f"round({secs})" if postgres else secs

    for kind, day, key, secs, condition in parts:
        for grain, grain_day in (("d", day), ("m", month(day))):
            connection.execute(text(
                "INSERT INTO opportunity_rollup (kind, grain, pipeline_id, stage_id, owner_id, "
                "team_id, day, key, n, amount, seconds) "
                f"SELECT '{kind}', '{grain}', pipeline_id, stage_id, coalesce(owner_id, ''), "
                f"coalesce(team_id, ''), {grain_day}, {key}, count(*), "
                f"sum(coalesce(amount, 0)), sum({per_row(secs)}) FROM opportunities "
                f"WHERE {condition} "
                "GROUP BY 3, 4, 5, 6, 7, 8"  # by position: the day and key are expressions
            ), params)
    return connection.execute(text("SELECT count(*) FROM opportunity_rollup")).scalar_one()


def check_offset(connection: Connection) -> bool:
    """Rebuild when CRM_TIMEZONE's offset is not the one the roll-up was built with; True
    when it rebuilt."""
    stored = connection.execute(
        text("SELECT offset_minutes FROM numbers_settings WHERE id = 1")).scalar()
    if stored == offset_minutes():
        return False
    rebuild(connection)
    return True
