"""sales numbers: custom fields, quotas, forecast snapshots, imports, stage flow

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 14:23:24.578242

Frozen: the roll-up triggers, their rebuild and the first fold of the stage history are
copied here as they were when this revision was written (services/sales/numbers/queries/
rollups.py and stage_flow.py then), so that later changes to that code cannot change what
this migration does. A later change of the triggers is a new revision.
"""
import os
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from alembic import op
import sqlalchemy as sa
from sqlalchemy import text
from sqlalchemy.engine import Connection

import shared.db
from shared import config


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


# -- the opportunity roll-up's triggers, as of this revision ---------------------------------

NO_DATE = "1900-01-01"
KEY_LENGTH = 200
COLUMNS = ("pipeline_id", "stage_id", "owner_id", "team_id", "status", "amount",
           "created_at", "closed_at", "expected_close_date", "source", "won_lost_reason")


def _offset_minutes() -> int:
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


def _install(connection: Connection) -> None:
    """Create the triggers; fill the roll-up from what is stored already."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(PG_FUNCTIONS)
        for statement in PG_TRIGGERS:
            connection.exec_driver_sql(statement)
    else:
        for statement in SQLITE_TRIGGERS:
            connection.exec_driver_sql(statement)
    _rebuild(connection, _offset_minutes())


def _uninstall(connection: Connection) -> None:
    for statement in PG_DROP if connection.dialect.name == "postgresql" else SQLITE_DROP:
        connection.exec_driver_sql(statement)


def _rebuild(connection: Connection, minutes: int) -> None:
    """Fill the roll-up from the opportunities stored already (set-based), with the offset
    `minutes`. (Migrations run without a statement timeout: see shared/migrations.py.)"""
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


# -- the first fold of the stage history into stage_flow, as of this revision ---------------

_STAGE_HISTORY = sa.table("stage_history", sa.column("id", sa.Integer),
                          sa.column("entered_at", shared.db.UTCDateTime()))
FLOW_MARK = "stage_flow"


def _fold_sql(table: str, cohort: str, seconds: str) -> str:
    return f"""
        WITH touched AS (
            SELECT DISTINCT opportunity_id FROM stage_history WHERE id > :low AND id <= :high
        ),
        seq AS (
            SELECT h.id, h.opportunity_id, h.stage_id, h.entered_at,
                   LAG(h.stage_id) OVER w AS prev_stage,
                   LAG(h.entered_at) OVER w AS prev_entered,
                   ROW_NUMBER() OVER (PARTITION BY h.opportunity_id, h.stage_id ORDER BY h.id)
                       AS nth
            FROM stage_history h JOIN touched t ON t.opportunity_id = h.opportunity_id
            WHERE h.id <= :high
            WINDOW w AS (PARTITION BY h.opportunity_id ORDER BY h.id)
        ),
        d AS (SELECT * FROM seq WHERE id > :low),
        moves AS (
            SELECT d.opportunity_id, d.stage_id, 1 AS reached, 0 AS stays, 0 AS secs
            FROM d WHERE d.nth = 1
            UNION ALL
            SELECT d.opportunity_id, d.prev_stage, 0, 1, {seconds}
            FROM d WHERE d.prev_stage IS NOT NULL
        )
        INSERT INTO {table} (pipeline_id, stage_id, owner_id, team_id, cohort_day,
                                reached, reached_amount, stays, stay_seconds)
        SELECT o.pipeline_id, m.stage_id, COALESCE(o.owner_id, ''), COALESCE(o.team_id, ''),
               {cohort}, SUM(m.reached),
               SUM(CASE WHEN m.reached = 1 THEN COALESCE(o.amount, 0) ELSE 0 END),
               SUM(m.stays), SUM(m.secs)
        FROM moves m JOIN opportunities o ON o.id = m.opportunity_id
        WHERE 1 = 1
        GROUP BY o.pipeline_id, m.stage_id, COALESCE(o.owner_id, ''), COALESCE(o.team_id, ''),
                 {cohort}
        ON CONFLICT (pipeline_id, stage_id, owner_id, team_id, cohort_day) DO UPDATE SET
            reached = {table}.reached + excluded.reached,
            reached_amount = {table}.reached_amount + excluded.reached_amount,
            stays = {table}.stays + excluded.stays,
            stay_seconds = {table}.stay_seconds + excluded.stay_seconds
    """


def _fold_stage_history(connection: Connection) -> None:
    """Fold the stage history so far into stage_flow and stage_flow_month, so the first
    funnel request has nothing large to fold; on PostgreSQL only rows a few seconds old
    (SALES_STAGE_FLOW_LAG_SECONDS), like every later fold."""
    postgres = connection.dialect.name == "postgresql"
    lag = float(os.environ.get("SALES_STAGE_FLOW_LAG_SECONDS", "5" if postgres else "0"))
    low = connection.execute(text("SELECT last_id FROM stage_flow_mark WHERE name = :n"),
                             {"n": FLOW_MARK}).scalar()
    if low is None:
        low = 0
        connection.execute(text("INSERT INTO stage_flow_mark (name, last_id) VALUES (:n, 0)"),
                           {"n": FLOW_MARK})
    upto = sa.select(sa.func.max(_STAGE_HISTORY.c.id))
    if lag:
        upto = upto.where(_STAGE_HISTORY.c.entered_at
                          <= datetime.now(UTC) - timedelta(seconds=lag))
    high = connection.execute(upto).scalar() or 0
    if high <= low:
        return
    if postgres:
        seconds = "EXTRACT(EPOCH FROM (d.entered_at - d.prev_entered))"
        cohort = "(o.created_at AT TIME ZONE :tz)::date"
        month = "date_trunc('month', o.created_at AT TIME ZONE :tz)::date"
        params: dict[str, Any] = {"tz": config.timezone_name()}
    else:
        seconds = "CAST(ROUND((julianday(d.entered_at) - julianday(d.prev_entered)) * 86400) " \
                  "AS INTEGER)"
        params = {"offset": f"{_offset_minutes():+d} minutes"}
        cohort = "date(o.created_at, :offset)"
        month = "date(o.created_at, :offset, 'start of month')"
    for table, grain in (("stage_flow", cohort), ("stage_flow_month", month)):
        connection.execute(text(_fold_sql(table, grain, seconds)),
                           {"low": low, "high": high, **params})
    connection.execute(text("UPDATE stage_flow_mark SET last_id = :high WHERE name = :n"),
                       {"high": high, "n": FLOW_MARK})


def upgrade() -> None:
    # ### commands auto generated by Alembic - please adjust! ###
    op.create_table('custom_field_definitions',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('entity', sa.String(length=16), nullable=False),
    sa.Column('key', sa.String(length=40), nullable=False),
    sa.Column('label', sa.String(length=100), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('required', sa.Boolean(), nullable=False),
    sa.Column('options', sa.JSON(), nullable=False),
    sa.Column('regex', sa.Text(), nullable=True),
    sa.Column('min_value', sa.JSON(), nullable=True),
    sa.Column('max_value', sa.JSON(), nullable=True),
    sa.Column('unique', sa.Boolean(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('created_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_custom_field_definitions')),
    sa.UniqueConstraint('entity', 'key', name='uq_custom_field_entity_key')
    )
    op.create_table('forecast_snapshot_runs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('taken_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('week', sa.String(length=10), nullable=False),
    sa.Column('trigger', sa.String(length=10), nullable=False),
    sa.Column('first_day', sa.Date(), nullable=False),
    sa.Column('last_day', sa.Date(), nullable=False),
    sa.Column('actor', sa.String(length=36), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_forecast_snapshot_runs'))
    )
    with op.batch_alter_table('forecast_snapshot_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_forecast_snapshot_runs_taken_at'), ['taken_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_forecast_snapshot_runs_week'), ['week'], unique=False)

    op.create_table('import_jobs',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('entity', sa.String(length=16), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('format', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('dry_run', sa.Boolean(), nullable=False),
    sa.Column('on_duplicate', sa.String(length=8), nullable=False),
    sa.Column('total_rows', sa.Integer(), nullable=False),
    sa.Column('processed_rows', sa.Integer(), nullable=False),
    sa.Column('created', sa.Integer(), nullable=False),
    sa.Column('updated', sa.Integer(), nullable=False),
    sa.Column('skipped', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('errors', sa.JSON(), nullable=False),
    sa.Column('options', sa.JSON(), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=True),
    sa.Column('actor', sa.String(length=36), nullable=True),
    sa.Column('created_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', shared.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', shared.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', shared.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_jobs'))
    )
    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_import_jobs_status'), ['status'], unique=False)

    op.create_table('numbers_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('offset_minutes', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_numbers_settings'))
    )
    op.create_table('opportunity_rollup',
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('grain', sa.String(length=1), nullable=False),
    sa.Column('pipeline_id', sa.String(length=36), nullable=False),
    sa.Column('stage_id', sa.String(length=36), nullable=False),
    sa.Column('owner_id', sa.String(length=36), nullable=False),
    sa.Column('team_id', sa.String(length=36), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.Column('amount', sa.Numeric(precision=20, scale=2), nullable=False),
    sa.Column('seconds', sa.Numeric(precision=20, scale=0), nullable=False),
    sa.PrimaryKeyConstraint('kind', 'grain', 'pipeline_id', 'stage_id', 'owner_id', 'team_id', 'day', 'key', name=op.f('pk_opportunity_rollup'))
    )
    with op.batch_alter_table('opportunity_rollup', schema=None) as batch_op:
        batch_op.create_index('ix_opportunity_rollup_day', ['kind', 'grain', 'day'], unique=False)

    op.create_table('quotas',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('subject_kind', sa.String(length=8), nullable=False),
    sa.Column('subject_id', sa.String(length=36), nullable=False),
    sa.Column('period_kind', sa.String(length=8), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('amount', sa.Numeric(precision=18, scale=2), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('updated_by', sa.String(length=36), nullable=True),
    sa.Column('created_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quotas')),
    sa.UniqueConstraint('subject_kind', 'subject_id', 'period_kind', 'period_start', name='uq_quotas_subject_period')
    )
    op.create_table('stage_flow',
    sa.Column('pipeline_id', sa.String(length=36), nullable=False),
    sa.Column('stage_id', sa.String(length=36), nullable=False),
    sa.Column('owner_id', sa.String(length=36), nullable=False),
    sa.Column('team_id', sa.String(length=36), nullable=False),
    sa.Column('cohort_day', sa.Date(), nullable=False),
    sa.Column('reached', sa.Integer(), nullable=False),
    sa.Column('reached_amount', sa.Numeric(precision=20, scale=2), nullable=False),
    sa.Column('stays', sa.Integer(), nullable=False),
    sa.Column('stay_seconds', sa.Numeric(precision=20, scale=0), nullable=False),
    sa.PrimaryKeyConstraint('pipeline_id', 'stage_id', 'owner_id', 'team_id', 'cohort_day', name=op.f('pk_stage_flow'))
    )
    with op.batch_alter_table('stage_flow', schema=None) as batch_op:
        batch_op.create_index('ix_stage_flow_cohort', ['cohort_day', 'pipeline_id'], unique=False)

    op.create_table('stage_flow_mark',
    sa.Column('name', sa.String(length=16), nullable=False),
    sa.Column('last_id', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_stage_flow_mark'))
    )
    op.create_table('stage_flow_month',
    sa.Column('pipeline_id', sa.String(length=36), nullable=False),
    sa.Column('stage_id', sa.String(length=36), nullable=False),
    sa.Column('owner_id', sa.String(length=36), nullable=False),
    sa.Column('team_id', sa.String(length=36), nullable=False),
    sa.Column('cohort_day', sa.Date(), nullable=False),
    sa.Column('reached', sa.Integer(), nullable=False),
    sa.Column('reached_amount', sa.Numeric(precision=20, scale=2), nullable=False),
    sa.Column('stays', sa.Integer(), nullable=False),
    sa.Column('stay_seconds', sa.Numeric(precision=20, scale=0), nullable=False),
    sa.PrimaryKeyConstraint('pipeline_id', 'stage_id', 'owner_id', 'team_id', 'cohort_day', name=op.f('pk_stage_flow_month'))
    )
    op.create_table('forecast_snapshot_items',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('opportunity_id', sa.String(length=36), nullable=False),
    sa.Column('expected_close_date', sa.Date(), nullable=False),
    sa.Column('amount', sa.Numeric(precision=18, scale=2), nullable=True),
    sa.Column('probability', sa.Integer(), nullable=False),
    sa.Column('stage_id', sa.String(length=36), nullable=False),
    sa.Column('owner_id', sa.String(length=36), nullable=True),
    sa.Column('team_id', sa.String(length=36), nullable=True),
    sa.Column('pipeline_id', sa.String(length=36), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['forecast_snapshot_runs.id'], name=op.f('fk_forecast_snapshot_items_run_id_forecast_snapshot_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_forecast_snapshot_items'))
    )
    with op.batch_alter_table('forecast_snapshot_items', schema=None) as batch_op:
        batch_op.create_index('ix_forecast_snapshot_items_run_close', ['run_id', 'expected_close_date'], unique=False)

    op.create_table('forecast_snapshots',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('period_kind', sa.String(length=8), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('owner_id', sa.String(length=36), nullable=True),
    sa.Column('team_id', sa.String(length=36), nullable=True),
    sa.Column('pipeline_id', sa.String(length=36), nullable=False),
    sa.Column('open_count', sa.Integer(), nullable=False),
    sa.Column('weighted', sa.Numeric(precision=18, scale=2), nullable=False),
    sa.Column('best_case', sa.Numeric(precision=18, scale=2), nullable=False),
    sa.Column('commit', sa.Numeric(precision=18, scale=2), nullable=False),
    sa.Column('closed_won', sa.Numeric(precision=18, scale=2), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['forecast_snapshot_runs.id'], name=op.f('fk_forecast_snapshots_run_id_forecast_snapshot_runs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_forecast_snapshots'))
    )
    with op.batch_alter_table('forecast_snapshots', schema=None) as batch_op:
        batch_op.create_index('ix_forecast_snapshots_run_period', ['run_id', 'period_kind', 'period_start'], unique=False)

    op.create_table('import_errors',
    sa.Column('job_id', sa.String(length=36), nullable=False),
    sa.Column('row', sa.Integer(), nullable=False),
    sa.Column('errors', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['import_jobs.id'], name=op.f('fk_import_errors_job_id_import_jobs')),
    sa.PrimaryKeyConstraint('job_id', 'row', name=op.f('pk_import_errors'))
    )
    # ### end Alembic commands ###
    # triggers keep opportunity_rollup; the rebuild fills it from what is stored already
    _install(op.get_bind())
    # the stage history so far, so the first funnel request has nothing large to fold
    _fold_stage_history(op.get_bind())


def downgrade() -> None:
    _uninstall(op.get_bind())
    # ### commands auto generated by Alembic - please adjust! ###
    op.drop_table('import_errors')
    with op.batch_alter_table('forecast_snapshots', schema=None) as batch_op:
        batch_op.drop_index('ix_forecast_snapshots_run_period')

    op.drop_table('forecast_snapshots')
    with op.batch_alter_table('forecast_snapshot_items', schema=None) as batch_op:
        batch_op.drop_index('ix_forecast_snapshot_items_run_close')

    op.drop_table('forecast_snapshot_items')
    op.drop_table('stage_flow_month')
    op.drop_table('stage_flow_mark')
    with op.batch_alter_table('stage_flow', schema=None) as batch_op:
        batch_op.drop_index('ix_stage_flow_cohort')

    op.drop_table('stage_flow')
    op.drop_table('quotas')
    with op.batch_alter_table('opportunity_rollup', schema=None) as batch_op:
        batch_op.drop_index('ix_opportunity_rollup_day')

    op.drop_table('opportunity_rollup')
    op.drop_table('numbers_settings')
    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_import_jobs_status'))

    op.drop_table('import_jobs')
    with op.batch_alter_table('forecast_snapshot_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_forecast_snapshot_runs_week'))
        batch_op.drop_index(batch_op.f('ix_forecast_snapshot_runs_taken_at'))

    op.drop_table('forecast_snapshot_runs')
    op.drop_table('custom_field_definitions')
    # ### end Alembic commands ###
