"""Per-service database: SQLAlchemy 2 engines and a nameko dependency giving a session per worker.

SQLite (one WAL-mode file per service) is the embedded default; PostgreSQL is chosen by URL.
Under eventlet, a SQLite writer that yields while holding the lock makes other writers fail, so
SQLite engines get a single connection (`StaticPool` is wrong across threads; a one-slot
`QueuePool` serialises writers instead). WAL checkpoints run in a thread of their own
(`_Checkpointer`), not in the commit that happens to fill the WAL: a fast path
(`shared.fastpaths`, `sqlite_checkpoints`); with it off, SQLite checkpoints as it does by default.
"""

from __future__ import annotations

import functools
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from eventlet import patcher
from nameko.extensions import DependencyProvider
from sqlalchemy import (
    Connection,
    DateTime,
    Engine,
    Table,
    TypeDecorator,
    create_engine,
    event,
    inspect,
)
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.dml import Insert

from shared import config, fastpaths

# psycopg 3 does not yield to eventlet by itself (see STACK-NOTES); must be set before import.
os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_select")

log = logging.getLogger(__name__)


def normalise_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class _Checkpointer:
    """Copies a SQLite file's write-ahead log into the database every `INTERVAL` seconds, in
    an OS thread with its own connection.

    By default the commit that fills the WAL to 1,000 pages runs the checkpoint: with the
    pages of a lead capture, one commit in about 70 wrote 4 MB and waited for two fsyncs,
    10-25 ms during which an eventlet process serves nothing (in process, a capture's p99
    went from 13-16 ms to 2.5-3 ms without them). Here the sqlite3 module releases the GIL
    while it checkpoints; the service's connections checkpoint only if the WAL grows past
    `FALLBACK_PAGES` (this thread fell behind or died). The thread ends when the file is gone
    (a test's database, say) or never appears."""

    INTERVAL = float(config.env("CRM_SQLITE_CHECKPOINT_SECONDS", "1"))
    RESTART_PAGES = 8000
    FALLBACK_PAGES = 20000
    WAIT = 0.2  # seconds
    FILE_WAIT = 60.0  # seconds for a new database's file to appear
    _started: set[str] = set()

    @classmethod
    def start(cls, path: str) -> None:
        path = os.path.abspath(path)
        if path in cls._started:
            return
        cls._started.add(path)
        thread = patcher.original("threading").Thread(
            target=cls._run, args=(path,), name=f"sqlite-checkpoint {path}", daemon=True)
        thread.start()

    @classmethod
    def _checkpoint(cls, connection: sqlite3.Connection) -> None:
        """Copy the WAL's pages without holding anyone up. Under steady writes that never
        copies the frames added meanwhile, and the WAL starts anew only once all are copied:
        when it is long, the remaining few are copied holding writers briefly (a commit waits
        for two fsyncs, 10-20 ms, every few seconds; at most `WAIT` for a reader or a writer
        to finish, else the next interval tries again)."""
        ((_, log_pages, _),) = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        if log_pages >= cls.RESTART_PAGES:
            connection.execute("PRAGMA wal_checkpoint(FULL)").fetchall()

    @classmethod
    def _run(cls, path: str) -> None:
        sleep = patcher.original("time").sleep  # an OS thread: eventlet's sleep is not for it
        connection = None
        waited = 0.0
        try:
            while True:
                sleep(cls.INTERVAL)
                if not os.path.exists(path):
                    waited += cls.INTERVAL
                    if connection is not None or waited > cls.FILE_WAIT:
                        return  # gone, or never made
                    continue
                try:
                    if connection is None:
                        connection = sqlite3.connect(path, timeout=cls.WAIT,
                                                     check_same_thread=False)
                    cls._checkpoint(connection)
                except sqlite3.Error:  # the next interval tries again; commits are not held up
                    log.debug("a WAL checkpoint of %s failed", path, exc_info=True)
        finally:
            cls._started.discard(path)
            if connection is not None:
                connection.close()


# A pooled connection idle for longer than this is pinged before use.
PING_AFTER_IDLE = float(config.env("CRM_DB_PING_AFTER_IDLE", "5"))
# Every statement is cancelled after this many seconds (0: never), so one runaway query cannot
# hold a connection (SQLite's only one) for ever; `limit_statements` narrows it for a
# transaction. PostgreSQL: `statement_timeout`; SQLite: a progress handler (below).
STATEMENT_TIMEOUT = float(config.env("CRM_DB_STATEMENT_TIMEOUT_SECONDS", "60"))
_DEADLINE = "crm_statement_deadline"
_LIMIT = "crm_statement_limit"


def _bound_sqlite_statements(engine: Engine, seconds: float) -> None:
    """SQLite has no statement timeout: a progress handler, called every few thousand VM
    steps, interrupts the statement ("interrupted") once its deadline, set when it starts and
    cleared when the transaction ends, has passed."""

    @event.listens_for(engine, "connect")
    def _install(dbapi_conn, record) -> None:
        info = record.info

        def past_deadline() -> int:
            deadline = info.get(_DEADLINE)
            return 1 if deadline is not None and time.monotonic() > deadline else 0

        dbapi_conn.set_progress_handler(past_deadline, 5000)

    @event.listens_for(engine, "before_cursor_execute")
    def _start(conn, _cursor, _statement, _params, _context, _many) -> None:
        limit = conn.info.get(_LIMIT, seconds)
        conn.info[_DEADLINE] = time.monotonic() + limit if limit > 0 else None

    def _clear(conn, *_args) -> None:
        conn.info.pop(_DEADLINE, None)
        conn.info.pop(_LIMIT, None)

    event.listen(engine, "commit", _clear)
    event.listen(engine, "rollback", _clear)

    @event.listens_for(engine, "checkin")
    def _forget(_dbapi_conn, record) -> None:
        record.info.pop(_DEADLINE, None)
        record.info.pop(_LIMIT, None)


def limit_statements(target: Session | Connection, seconds: float) -> None:
    """Bound each statement of the current transaction to `seconds` (0: no bound, for a
    rebuild or migration); the engine's default comes back after the transaction."""
    connection = target.connection() if isinstance(target, Session) else target
    if connection.dialect.name == "postgresql":
        milliseconds = max(int(seconds * 1000), 1) if seconds > 0 else 0
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {milliseconds}")
    else:
        connection.info[_LIMIT] = seconds
        connection.info.pop(_DEADLINE, None)


def is_statement_timeout(exc: BaseException) -> bool:
    """Whether a database error is a statement cancelled by its timeout."""
    orig = getattr(exc, "orig", exc)
    if getattr(orig, "sqlstate", None) == "57014":  # PostgreSQL query_canceled
        return True
    return isinstance(orig, sqlite3.OperationalError) and "interrupted" in str(orig)


def make_engine(url: str, *, pool_size: int = 10,
                statement_timeout: float | None = None) -> Engine:
    url = normalise_url(url)
    timeout = STATEMENT_TIMEOUT if statement_timeout is None else statement_timeout
    if url.startswith("sqlite"):
        own_checkpoints = fastpaths.enabled("sqlite_checkpoints")
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
            if own_checkpoints:
                # Checkpoints are the checkpointer's; a commit checkpoints only if it fell behind.
                cursor.execute(f"PRAGMA wal_autocheckpoint={_Checkpointer.FALLBACK_PAGES}")
            cursor.close()

        if timeout > 0:
            _bound_sqlite_statements(engine, timeout)
        if own_checkpoints and engine.url.database and engine.url.database != ":memory:":
            _Checkpointer.start(engine.url.database)
        return engine
    import psycopg

    # psycopg turns `%(name)s` placeholders into PostgreSQL's `$1` by parsing each query in
    # Python, and caches only short ones: parsing a batch's multi-row INSERT cost more than
    # running it (a quarter of the CPU of a fired timer). Queries written with `$1` and run on
    # psycopg's raw cursors go to the server as they are.
    connect_args: dict = {"cursor_factory": psycopg.RawCursor}
    if timeout > 0:
        connect_args["options"] = f"-c statement_timeout={int(timeout * 1000)}"
    engine = create_engine(
        url, pool_size=pool_size, max_overflow=pool_size,
        paramstyle="numeric_dollar", connect_args=connect_args,
    )

    @event.listens_for(engine, "connect")
    def _raw_server_cursors(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
        dbapi_conn.server_cursor_factory = psycopg.RawServerCursor

    ping_after_idle(engine, PING_AFTER_IDLE)
    return engine


def ping_after_idle(engine: Engine, seconds: float) -> None:
    """Check a pooled connection before use only if it sat idle for `seconds`; a dead one is
    replaced. SQLAlchemy's `pool_pre_ping` pings at every checkout: a round trip (and, on
    psycopg, two autocommit switches) for every transaction, which cost as much as an INSERT.
    A connection returned to the pool a moment ago was alive then; what kills connections
    (a database restart, an idle timeout) finds them idle. One in use when the server goes
    fails its statement, and SQLAlchemy then discards the whole pool."""

    @event.listens_for(engine, "checkin")
    def _idle_from_now(_dbapi_conn, record) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_conn, record, _proxy) -> None:
        idle_since = record.info.pop("idle_since", None)  # None: connected just now
        if idle_since is None or time.monotonic() - idle_since < seconds:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # noqa: BLE001 - any failure means the connection is gone
            raise DisconnectionError(f"a pooled connection failed its ping: {exc}") from exc
        if not alive:
            raise DisconnectionError("a pooled connection failed its ping")


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
    """Insert through the session's transaction without the ORM's unit of work. One row goes
    as SQL compiled once per table, dialect and column set (`exec_driver_sql`): for the rows
    written on every request, the Core statement's execution (cache key, parameters) cost more
    than the INSERT itself. Many rows go as one Core INSERT (the dialect batches them)."""
    connection = session.connection()
    if isinstance(values, dict):
        insert = _single_row_insert(table, connection.dialect, tuple(values))
        if insert is not None:
            connection.exec_driver_sql(insert.sql, insert.parameters(values))
            return
    connection.execute(cached_insert(table), values)


class _SingleRowInsert:
    """An INSERT of one column set, compiled for one dialect, with the columns' bind
    processors and the Python-side defaults of the columns a row leaves out."""

    def __init__(self, sql: str, names: tuple[str, ...], processors: tuple, defaults: dict,
                 positional: bool):
        self.sql = sql
        self.names = names
        self.processors = processors
        self.defaults = defaults
        self.positional = positional

    def parameters(self, values: dict) -> tuple | dict:
        if self.defaults:
            values = {**{name: make() for name, make in self.defaults.items()}, **values}
        processed = [values[name] if process is None else process(values[name])
                     for name, process in zip(self.names, self.processors, strict=True)]
        if self.positional:
            return tuple(processed)
        return dict(zip(self.names, processed, strict=True))


@functools.cache
def _single_row_insert(table: Table, dialect, keys: tuple[str, ...]) -> _SingleRowInsert | None:
    """None when the INSERT needs what only the Core execution does (a sequence, say)."""
    # inline: the row's generated key is not fetched (RETURNING) and nothing is run before.
    compiled = cached_insert(table).inline().compile(dialect=dialect, column_keys=list(keys))
    names = tuple(compiled.positiontup) if compiled.positional else tuple(compiled.binds)
    defaults: dict[str, Callable[[], object]] = {}
    for name in names:
        if name not in table.c:
            return None
        default = table.c[name].default
        if name not in keys:
            if default is None or not (default.is_scalar or default.is_callable):
                return None
            # SQLAlchemy hands a callable default the execution context; ours take none.
            defaults[name] = ((lambda value=default.arg: value) if default.is_scalar
                              else functools.partial(default.arg, None))
    processors = tuple(table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
                       for name in names)
    return _SingleRowInsert(compiled.string, names, processors, defaults, compiled.positional)


_DEFERRED_ROWS = "crm_deferred_rows"


def defer_insert(session: Session, table: Table, values: dict) -> None:
    """Insert a row just before the transaction commits, together with the other rows of its
    table deferred in the transaction (one multi-row INSERT), without the unit of work: for
    the small rows an event or a timer batch adds and never reads back (the unit of work cost
    several times the INSERT for each). A rollback forgets them. Like the unit of work's
    flush at commit, the rows are not visible to queries earlier in the transaction. `values`
    is read at commit: until then its values (not its keys) may still change."""
    batches = session.info.setdefault(_DEFERRED_ROWS, {})
    batches.setdefault((table, tuple(values)), []).append(values)


@event.listens_for(Session, "before_commit")
def _insert_deferred_rows(session: Session) -> None:
    for (table, _columns), rows in session.info.pop(_DEFERRED_ROWS, {}).items():
        insert_row(session, table, rows if len(rows) > 1 else rows[0])


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
