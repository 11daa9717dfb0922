"""Two events about one new record taken at once (two workers; the two events of one SLA check
about a new ticket): both stores of the record's first snapshot go through without a unique
violation on `records` (which rolled the whole intake back and retried it), the second as if
it had come after the first (what changed is computed against the first's snapshot), and the
newest snapshot wins. PostgreSQL through the intake of two engines; the snapshot store on
both databases (SQLite: two connections to one file)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import eventlet
import pytest
from eventlet import patcher
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from services.rules import clock as clock_module
from services.rules.contract import EVENT_SCHEMAS
from services.rules.domain.rules import GuardSettings
from services.rules.models import (
    EventLog,
    RecordSnapshot,
    Rule,
    RuleRun,
    RuleVersion,
    inbox,
    outbox,
)
from services.rules.usecases.cached import forget_cached_rules
from services.rules.usecases.engine import Engine as RulesEngine
from services.rules.usecases.projections import store_snapshot
from services.rules.usecases.support import Ports, Settings
from shared.context import Context
from shared.db import DatabaseAccess, get_engine, make_engine
from shared.outbox import EventRecorder
from tests.service.workers import migrated_database

RULE = {"trigger": {"type": "event", "event": "service_desk.ticket_*"}, "conditions": "",
        "actions": [{"type": "notify", "to": ["user:u1"], "title": "{{ record.id }}"}]}
OS_THREADING = patcher.original("threading")
WAIT = 30.0  # seconds: only ever reached when the code under test is broken


def ticket(updated_at: str, **fields: Any) -> dict[str, Any]:
    return {"id": "t-new", "subject": "打印机坏了", "assignee_id": "u1", "status": "open",
            "updated_at": updated_at, **fields}


def envelope(n: int, record: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": f"ev-{n}", "event_type": f"ticket_sla_warning_{n}", "version": 1,
            "producer": "service_desk", "occurred_at": record["updated_at"],
            "correlation_id": f"corr-{n}", "data": {"ticket": record}}


def when_inserting_a_snapshot(engine: Engine, signal: Any) -> None:
    """`signal.set()` when a connection of `engine` is about to INSERT into `records`."""

    @event.listens_for(engine, "before_cursor_execute")
    def _inserting(_conn, _cursor, statement, *_args) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO RECORDS"):
            signal.set()


class HeldOpen(DatabaseAccess):
    """Each write transaction, its work done, waits for `go` before it commits."""

    def __init__(self, factory: sessionmaker[Session], written: Any, go: Any) -> None:
        super().__init__(factory)
        self.written, self.go = written, go

    @contextmanager
    def begin(self) -> Iterator[Session]:
        with self._factory() as session, session.begin():
            yield session
            self.written.set()
            assert self.go.wait(WAIT), "the other intake never reached its INSERT"


def rules_engine(db: DatabaseAccess) -> RulesEngine:
    def nothing(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("no call to the outside expected")

    recorder = EventRecorder("rules", outbox, EVENT_SCHEMAS, Context(correlation_id="corr"))
    # no dedupe window: the rule acts on both events about the record
    settings = Settings(guard=GuardSettings(dedupe_window=timedelta(0)))
    return RulesEngine(db, recorder=recorder, clock=clock_module.CLOCK, settings=settings,
                       ports=Ports(call=nothing, email_connection=nothing, send_email=nothing,
                                   deliver_webhook=nothing, set_context=lambda *_a: None))


def add_rule(engine: Engine) -> None:
    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        session.add(Rule(id="sla-note", key=None, name="sla-note", description=None,
                         enabled=True, version=1, trigger_type="event", definition=RULE,
                         created_at=now, updated_at=now))
        session.add(RuleVersion(rule_id="sla-note", version=1, name="sla-note",
                                definition=RULE, created_at=now))


@pytest.fixture
def pg_rules(request, tmp_path, monkeypatch) -> Iterator[tuple[Engine, Engine]]:
    monkeypatch.setattr(clock_module, "CLOCK", clock_module.Clock())
    forget_cached_rules()
    request.param = "postgresql"
    url = migrated_database(request, tmp_path, "rules")
    second = make_engine(url)
    yield get_engine(url), second
    second.dispose()
    forget_cached_rules()


def test_two_intakes_of_one_new_record_at_once_keep_both_without_a_conflict(pg_rules):
    first, second = pg_rules
    add_rule(first)
    older, newer = ticket("2026-12-03T10:00:00+00:00"), ticket(
        "2026-12-03T10:00:05+00:00", status="pending")
    # green threads (the test runs monkey-patched; psycopg yields while it waits)
    written, go = threading.Event(), threading.Event()
    when_inserting_a_snapshot(second, go)
    holding = rules_engine(HeldOpen(sessionmaker(first, expire_on_commit=False), written, go))
    plain = rules_engine(DatabaseAccess(sessionmaker(second, expire_on_commit=False)))

    outcomes: dict[str, Any] = {}

    def take(name: str, engine: RulesEngine, env: dict[str, Any]) -> None:
        try:
            engine.take_event(env)
            outcomes[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - what the test reports
            outcomes[name] = exc

    one = eventlet.spawn(take, "first", holding, envelope(1, older))
    assert written.wait(WAIT)  # the first snapshot inserted, its transaction still open
    two = eventlet.spawn(take, "second", plain, envelope(2, newer))
    one.wait()
    two.wait()

    assert outcomes == {"first": "ok", "second": "ok"}
    with Session(first) as session:
        snapshot = session.get(RecordSnapshot, "ticket:t-new")
        assert snapshot.data == {**newer, "owner_id": "u1"}
        assert sorted(session.scalars(select(EventLog.event_id))) == ["ev-1", "ev-2"]
        assert sorted(session.scalars(select(inbox.c.event_id))) == ["ev-1", "ev-2"]
        runs = {r.event_id: r for r in session.scalars(select(RuleRun))}
    assert {r.status for r in runs.values()} == {"completed"}
    assert set(runs) == {"ev-1", "ev-2"}
    # the second as if it came after the first: only what it changed
    assert runs["ev-2"].context["changes"] == {
        "status": {"from": "open", "to": "pending"},
        "updated_at": {"from": older["updated_at"], "to": newer["updated_at"]},
    }
    assert set(runs["ev-1"].context["changes"]) == set(older) | {"owner_id"}


@pytest.fixture(params=["sqlite", "postgresql"])
def two_connections(request, tmp_path, monkeypatch) -> Iterator[tuple[Engine, Engine]]:
    monkeypatch.setattr(clock_module, "CLOCK", clock_module.Clock())
    url = migrated_database(request, tmp_path, "rules")
    engines = make_engine(url), make_engine(url)
    yield engines
    for engine in engines:
        engine.dispose()


@pytest.mark.parametrize("second_is_newer", [True, False])
def test_a_first_snapshot_stored_meanwhile_by_another_transaction_is_built_on(
    two_connections, second_is_newer
):
    """The second transaction read no snapshot, then the first committed its own before the
    second's INSERT: no IntegrityError; the second's changes are against the first's
    snapshot, and the newer of the two (by `updated_at`) is what is stored."""
    first, second = two_connections
    older, newer = ticket("2026-12-03T10:00:00+00:00"), ticket(
        "2026-12-03T10:00:05+00:00", status="pending")
    first_record, second_record = (older, newer) if second_is_newer else (newer, older)
    now = datetime.now(UTC)
    inserting = OS_THREADING.Event()
    when_inserting_a_snapshot(second, inserting)
    outcome: dict[str, Any] = {}

    def store_second() -> None:
        try:
            with Session(second) as session, session.begin():
                outcome["result"] = store_snapshot(session, {"ticket": second_record}, now)
        except Exception as exc:  # noqa: BLE001 - what the test reports
            outcome["result"] = exc

    # An OS thread: a SQLite connection waiting for the file's lock blocks its whole thread.
    with Session(first) as session, session.begin():
        assert store_snapshot(session, {"ticket": first_record}, now)[3] is True
        thread = OS_THREADING.Thread(target=store_second)
        thread.start()
        assert inserting.wait(WAIT)  # it read no snapshot and is inserting its own
    thread.join(WAIT)

    result = outcome["result"]
    assert not isinstance(result, Exception), result
    record_type, record, changes, first_seen = result
    assert (record_type, first_seen) == ("ticket", False)
    with Session(first) as session:
        stored = session.get(RecordSnapshot, "ticket:t-new").data
    assert stored == {**newer, "owner_id": "u1"}
    if second_is_newer:
        assert record == {**newer, "owner_id": "u1"}
        assert set(changes) == {"status", "updated_at"}
    else:  # an older snapshot arriving late changes nothing
        assert record == stored
        assert changes == {}
