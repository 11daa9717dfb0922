"""A fired batch's runs performed side by side (SQLite and PostgreSQL): their calls to the owning
service are in flight together, at most `CRM_RULES_TIMER_CONCURRENCY`; each call carries its
own run's context and each run's `rule_run_completed` its own correlation id (the lanes of
one worker share its nameko context and its outbox recorder); one record's runs go one after
the other in firing order; a failing call stops none of the others; every run completes once,
and a batch with concurrency 1 does the same one run at a time."""

from __future__ import annotations

import json
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import eventlet
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.rules import clock as clock_module
from services.rules import service as rules_service_module
from services.rules.contract import EVENT_SCHEMAS
from services.rules.models import Rule, RuleRun, RuleVersion, Timer, outbox
from services.rules.service import RulesService
from services.rules.usecases.cached import forget_cached_rules
from services.rules.usecases.support import Settings
from shared.context import Context
from shared.db import get_engine
from tests.service.workers import migrated_database, service_worker

RULE = {
    "trigger": {"type": "date", "events": ["service_desk.ticket_sla_scheduled"],
                "field": "next_check_at", "at": "exact", "record": "ticket"},
    "conditions": "",
    "actions": [{"type": "call", "service": "service_desk", "method": "check_sla",
                 "args": {"now": "{{ now }}"}},
                {"type": "notify", "to": ["user:u1"], "title": "checked {{ record.id }}"}],
}


class SlowDesk:
    """The `service_desk` RPC dependency: each `check_sla` yields a few times before its
    answer (a round trip over the broker), and records what it was sent."""

    def __init__(self, context_data: dict, failing: set[str], on_call=None) -> None:
        self.on_call = on_call
        self.context_data = context_data
        self.failing = failing
        self.in_flight: dict[str, int] = {}
        self.most = 0
        self.calls: list[dict[str, Any]] = []

    @property
    def check_sla(self) -> Any:
        desk = self

        class Method:
            def call_async(self, **kwargs: Any) -> Any:
                ticket = kwargs["ticket_id"]
                if desk.on_call is not None:
                    desk.on_call(ticket)
                desk.calls.append({**kwargs, "headers": dict(desk.context_data)})
                desk.in_flight[ticket] = desk.in_flight.get(ticket, 0) + 1
                desk.most = max(desk.most, sum(desk.in_flight.values()))
                overlapping = desk.in_flight[ticket] > 1

                class Reply:
                    def result(self) -> dict[str, Any]:
                        try:
                            for _ in range(5):
                                eventlet.sleep(0)
                            if overlapping:
                                raise AssertionError(f"two runs of {ticket} at once")
                            if ticket in desk.failing:
                                raise RuntimeError("the desk is down for this one")
                            return {"ticket_id": ticket}
                        finally:
                            desk.in_flight[ticket] -= 1

                return Reply()

        return Method()


@pytest.fixture(params=["sqlite", "postgresql"])
def rules_url(request, tmp_path, monkeypatch):
    monkeypatch.setattr(clock_module, "CLOCK", clock_module.Clock())
    forget_cached_rules()
    return migrated_database(request, tmp_path, "rules")


def setup_batch(url: str, tickets: list[str]) -> list[str]:
    """The rule and a due timer per ticket (in this order of due times); the timers' ids."""
    now = clock_module.CLOCK.now()
    ids = []
    with Session(get_engine(url)) as session, session.begin():
        session.add(Rule(id="sla-check", key=None, name="sla-check", description=None,
                         enabled=True, version=1, trigger_type="date", definition=RULE,
                         created_at=now, updated_at=now))
        session.add(RuleVersion(rule_id="sla-check", version=1, name="sla-check",
                                definition=RULE, created_at=now))
        session.flush()
        for n, ticket in enumerate(tickets):
            ids.append(f"timer-{n:03d}")
            session.add(Timer(id=ids[-1], kind="date", status="pending",
                              due_at=now - timedelta(seconds=60 - n * 0.1),
                              rule_id="sla-check", rule_version=1, record_key=f"ticket:{ticket}",
                              payload={"event": {"causation_depth": 0}, "waited": True},
                              cancel_keys=[], created_at=now))
    return ids


def fire(url: str, concurrency: int, failing: set[str], monkeypatch,
         on_call=None) -> tuple[SlowDesk, Any]:
    monkeypatch.setattr(rules_service_module, "SETTINGS",
                        Settings(timer_batch=500, timer_concurrency=concurrency))
    context_data: dict = {}
    desk = SlowDesk(context_data, failing, on_call)
    worker = service_worker(RulesService, get_engine(url), outbox, EVENT_SCHEMAS,
                            Context(correlation_id="corr-tick"), service_desk=desk,
                            worker_ctx=SimpleNamespace(data=context_data))
    assert worker.engine.tick() > 0
    return desk, worker


def runs(url: str) -> list[RuleRun]:
    with Session(get_engine(url)) as session:
        return list(session.scalars(select(RuleRun).order_by(RuleRun.timer_id)))


def completed_events(url: str) -> list[dict]:
    with Session(get_engine(url)) as session:
        rows = session.scalars(select(outbox.c.envelope).where(
            outbox.c.event_type == "rule_run_completed")).all()
    return [json.loads(row) for row in rows]


def test_a_batch_calls_side_by_side_each_with_its_own_context(rules_url, monkeypatch):
    tickets = [f"t{n:02d}" for n in range(30)] + ["same", "same", "same"]
    timer_ids = setup_batch(rules_url, tickets)
    desk, worker = fire(rules_url, 8, {"t07"}, monkeypatch)

    assert 1 < desk.most <= 8
    fired = runs(rules_url)
    assert [r.timer_id for r in fired] == timer_ids  # one run per timer
    by_ticket = {r.record_key: r for r in fired}
    assert by_ticket["ticket:t07"].status == "retrying"
    others = [r for r in fired if r.record_key != "ticket:t07"]
    assert {r.status for r in others} == {"completed"}
    assert all(r.actions[1]["status"] == "ok" for r in others)

    # each call with its own run's correlation id and command id, the depth one more
    corr = {r.id: r.correlation_id for r in fired}
    assert len(desk.calls) == len(tickets)
    for call in desk.calls:
        run_id = call["command_id"].split(":")[1]
        assert call["headers"]["correlation_id"] == corr[run_id]
        assert call["headers"]["causation_depth"] == 1
    assert len(set(corr.values())) == len(fired)

    # one record's runs one after the other (SlowDesk fails an overlap), in firing order
    same = [r.id for r in fired if r.record_key == "ticket:same"]
    assert [c["command_id"].split(":")[1] for c in desk.calls
            if c["ticket_id"] == "same"] == same

    # every finished run's event once, with the run's own correlation id, for the relay
    events = completed_events(rules_url)
    assert sorted(e["data"]["run"]["id"] for e in events) == sorted(r.id for r in others)
    assert all(e["correlation_id"] == corr[e["data"]["run"]["id"]] for e in events)
    # and every event the lanes committed (their notifications' too) is the relay's
    with Session(get_engine(rules_url)) as session:
        stored = session.scalars(select(outbox.c.event_id)).all()
    assert len(stored) == 2 * len(others)
    assert sorted(e[0] for e in worker.events.committed) == sorted(stored)


def test_concurrency_one_performs_the_batch_one_run_at_a_time(rules_url, monkeypatch):
    tickets = [f"t{n:02d}" for n in range(10)]
    setup_batch(rules_url, tickets)
    desk, _ = fire(rules_url, 1, set(), monkeypatch)
    assert desk.most == 1
    assert [c["ticket_id"] for c in desk.calls] == tickets
    assert {r.status for r in runs(rules_url)} == {"completed"}


def test_a_run_whose_resume_timer_another_process_took_while_it_waited_is_left_to_it(
    rules_url, monkeypatch
):
    """A large batch: while the first run's call is in flight, time passes (a third of the
    resume delay) and another process takes the third run's resume timer. The second run
    pushes its own resume timer on and goes on; the third is not performed here."""
    setup_batch(rules_url, ["t0", "t1", "t2"])

    def meanwhile(ticket: str) -> None:
        if ticket != "t0":
            return
        clock_module.CLOCK.offset += 11
        with Session(get_engine(rules_url)) as session, session.begin():
            third = session.scalar(select(RuleRun.id).where(RuleRun.record_key == "ticket:t2"))
            session.execute(update(Timer).where(
                Timer.kind == "run_resume", Timer.payload["run_id"].as_string() == third)
                .values(status="fired", claimed_by="another process"))

    desk, _ = fire(rules_url, 1, set(), monkeypatch, on_call=meanwhile)
    assert [c["ticket_id"] for c in desk.calls] == ["t0", "t1"]
    statuses = {r.record_key: r.status for r in runs(rules_url)}
    assert statuses == {"ticket:t0": "completed", "ticket:t1": "completed",
                        "ticket:t2": "running"}  # the other process's to finish
    with Session(get_engine(rules_url)) as session:
        resumes = {t.payload["run_id"]: t for t in session.scalars(
            select(Timer).where(Timer.kind == "run_resume"))}
        by_key = {r.record_key: r.id for r in session.scalars(select(RuleRun))}
    assert resumes[by_key["ticket:t1"]].status == "cancelled"  # pushed on, then finished
    assert resumes[by_key["ticket:t2"]].claimed_by == "another process"
