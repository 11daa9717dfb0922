"""`shared.db`: `insert_row`'s precompiled single-row INSERT on SQLite and PostgreSQL (defaults,
types, errors as SQLAlchemy's), and pooled PostgreSQL connections pinged only after idling."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, func, select, text
from sqlalchemy.exc import IntegrityError

import shared.db
from shared.db import DatabaseAccess, UTCDateTime, insert_row, make_engine
from tests.service.workers import tables_database

metadata = MetaData()
notes = Table(
    "notes", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("body", String(40), nullable=False),
    Column("data", JSON, nullable=False, default=dict),
    Column("kind", String(10), nullable=False, default="plain"),
    Column("shout", String(10), default=func.upper("quiet")),
    Column("label", String(10), default=lambda: "generated"),
    Column("at", UTCDateTime()),
)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path) -> DatabaseAccess:
    return tables_database(request, tmp_path, metadata)


def test_a_row_gets_its_defaults_and_its_types_converted(db):
    at = datetime(2026, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=8)))
    with db.begin() as session:
        insert_row(session, notes, {"body": "first", "data": {"城市": "上海", "n": [1, 2]},
                                    "at": at})
        insert_row(session, notes, {"body": "second", "kind": "given", "label": "mine"})
    with db.read() as session:
        rows = session.execute(select(notes).order_by(notes.c.id)).mappings().all()
    first, second = (dict(row) for row in rows)
    assert first["data"] == {"城市": "上海", "n": [1, 2]}
    assert first["at"] == at and first["at"].utcoffset() == timedelta(0)  # read back in UTC
    assert (first["kind"], first["shout"], first["label"]) == ("plain", "QUIET", "generated")
    assert second["data"] == {} and second["kind"] == "given" and second["label"] == "mine"
    assert second["id"] == first["id"] + 1


def test_a_failed_insert_raises_sqlalchemys_error_and_rolls_back(db):
    with db.begin() as session:
        insert_row(session, notes, {"id": 7, "body": "kept"})
    with pytest.raises(IntegrityError), db.begin() as session:
        insert_row(session, notes, {"body": "lost"})
        insert_row(session, notes, {"id": 7, "body": "same key"})
    with pytest.raises(IntegrityError), db.begin() as session:
        insert_row(session, notes, {"body": None})  # NOT NULL
    with db.read() as session:
        assert session.execute(select(notes.c.body)).scalars().all() == ["kept"]


def test_many_rows_go_in_one_statement_with_their_defaults(db):
    with db.begin() as session:
        # The rows share their columns (SQLAlchemy takes the first row's): defer_insert
        # groups rows by columns for this.
        insert_row(session, notes, [{"body": "a"}, {"body": "b"}])
    with db.read() as session:
        got = session.execute(select(notes.c.body, notes.c.data, notes.c.kind)
                              .order_by(notes.c.id)).all()
    assert [tuple(row) for row in got] == [("a", {}, "plain"), ("b", {}, "plain")]


# -- pooled PostgreSQL connections --------------------------------------------------------


@pytest.fixture
def pg_engine(pg_url_factory, monkeypatch):
    def make(ping_after_idle: float):
        monkeypatch.setattr(shared.db, "PING_AFTER_IDLE", ping_after_idle)
        engine = make_engine(pg_url_factory(), pool_size=1)
        pings = []
        real_ping = engine.dialect.do_ping

        def counted(dbapi_conn):
            pings.append(1)
            return real_ping(dbapi_conn)

        monkeypatch.setattr(engine.dialect, "do_ping", counted)
        engines.append(engine)
        return engine, pings

    engines = []
    yield make
    for engine in engines:
        engine.dispose()


def backend_pid(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()


def test_a_connection_reused_at_once_is_not_pinged(pg_engine):
    engine, pings = pg_engine(ping_after_idle=60)
    pids = {backend_pid(engine) for _ in range(5)}
    assert len(pids) == 1 and pings == []


def test_an_idle_connection_whose_server_side_died_is_replaced_before_use(pg_engine):
    engine, pings = pg_engine(ping_after_idle=0)
    dead = backend_pid(engine)
    with psycopg.connect(str(engine.url.set(drivername="postgresql")), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (dead,))
    alive = backend_pid(engine)  # no error: the ping found it dead and the pool reconnected
    assert alive != dead and pings
