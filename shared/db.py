"""Per-service database: SQLAlchemy 2 engines and a nameko dependency giving a session per worker.

SQLite (one WAL-mode file per service) is the embedded default; PostgreSQL is chosen by URL.
Under eventlet, a SQLite writer that yields while holding the lock makes other writers fail, so
SQLite engines get a single connection (`StaticPool` is wrong across threads; a one-slot
`QueuePool` serialises writers instead).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from nameko.extensions import DependencyProvider
from sqlalchemy import DateTime, Engine, Table, TypeDecorator, create_engine, event, inspect
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.dml import Insert

from shared import config

# psycopg 3 does not yield to eventlet by itself (see STACK-NOTES); must be set before import.
os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_select")


def normalise_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            pool_size=1,
            max_overflow=0,
            pool_timeout=30,
            connect_args={"check_same_thread": False, "timeout": 30},
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    import psycopg

    # psycopg turns `%(name)s` placeholders into PostgreSQL's `$1` by parsing each query in
    # Python, and caches only short ones: parsing a batch's multi-row INSERT cost more than
    # running it (a quarter of the CPU of a fired timer). Queries written with `$1` and run on
    # psycopg's raw cursors go to the server as they are.
    engine = create_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
        paramstyle="numeric_dollar", connect_args={"cursor_factory": psycopg.RawCursor},
    )

    @event.listens_for(engine, "connect")
    def _raw_server_cursors(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
        dbapi_conn.server_cursor_factory = psycopg.RawServerCursor

    return engine


_engines: dict[str, Engine] = {}


def get_engine(url: str) -> Engine:
    """One engine per URL and process, so the outbox relay and the workers share SQLite's one
    connection instead of contending for the file lock."""
    if url not in _engines:
        _engines[url] = make_engine(url)
    return _engines[url]


class Database(DependencyProvider):
    """A `sessionmaker` per container; each worker gets a fresh session, closed on teardown.

    Entrypoints use `with self.db.begin() as session:` for one transaction that commits on
    success and rolls back on error; the outbox hooks into the same session.
    """

    def __init__(self, service_name: str, url: str | None = None):
        self.service_name = service_name
        self.url = url
        self.engine: Engine | None = None
        self.sessionmaker: sessionmaker[Session] | None = None

    def setup(self) -> None:
        self.engine = get_engine(self.url or config.database_url(self.service_name))
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    def stop(self) -> None:
        if self.engine is not None:
            self.engine.dispose()

    def get_dependency(self, worker_ctx) -> DatabaseAccess:
        return DatabaseAccess(self.sessionmaker)


class DatabaseAccess:
    def __init__(self, factory: sessionmaker[Session]):
        self._factory = factory

    @contextmanager
    def begin(self) -> Iterator[Session]:
        with self._factory() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._factory() as session:
            yield session


@functools.cache
def cached_insert(table: Table) -> Insert:
    """One INSERT statement object per table, for rows written on every request: a statement
    built anew is compiled (or looked up in the cache by a freshly computed key) each time."""
    return table.insert()


def insert_row(session: Session, table: Table, values: dict | list[dict]) -> None:
    """Insert through the session's transaction without the ORM's unit of work."""
    session.connection().execute(cached_insert(table), values)


_DEFERRED_ROWS = "crm_deferred_rows"


def defer_insert(session: Session, table: Table, values: dict) -> None:
    """Insert a row just before the transaction commits, together with the other rows of its
    table deferred in the transaction (one multi-row INSERT), without the unit of work: for
    the small rows an event or a timer batch adds and never reads back (the unit of work cost
    several times the INSERT for each). A rollback forgets them. Like the unit of work's
    flush at commit, the rows are not visible to queries earlier in the transaction."""
    batches = session.info.setdefault(_DEFERRED_ROWS, {})
    batches.setdefault((table, tuple(values)), []).append(values)


@event.listens_for(Session, "before_commit")
def _insert_deferred_rows(session: Session) -> None:
    for (table, _columns), rows in session.info.pop(_DEFERRED_ROWS, {}).items():
        insert_row(session, table, rows)


@event.listens_for(Session, "after_rollback")
def _forget_deferred_rows(session: Session) -> None:
    session.info.pop(_DEFERRED_ROWS, None)


def insert_object(session: Session, obj: object) -> None:
    """Insert a new mapped object's row at once, without the unit of work: for a request that
    adds a row or two that are never changed afterwards (a new lead, its history), where the
    unit of work's flush costs more than the INSERT. The object stays a plain value holder,
    untracked; attributes it leaves unset get their columns' defaults. One statement per call:
    many rows in one transaction go better through `defer_insert`, one INSERT for them all."""
    state = inspect(obj)
    values = {column: state.dict[attribute] for attribute, column in _columns_of(type(obj))
              if attribute in state.dict}
    insert_row(session, state.mapper.local_table, values)


@functools.cache
def _columns_of(cls: type) -> tuple[tuple[str, str], ...]:
    return tuple((prop.key, prop.columns[0].key) for prop in inspect(cls).column_attrs)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC in and out; SQLite stores no zone, so it is put back on load."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None:
            if value.tzinfo is None:
                raise ValueError("naive datetime given; store UTC-aware datetimes")
            value = value.astimezone(UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value
