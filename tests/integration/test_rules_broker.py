"""The rules service over the real broker: every event of every service reaches it (also of a
service started later), redeliveries have no second effect, timers fire once with two rules
containers, a failing action is retried and then recorded failed."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import eventlet
import pytest
from kombu import Connection, Exchange
from marshmallow import Schema, fields
from nameko.standalone.rpc import ServiceRpcProxy
from sqlalchemy import MetaData, func, select
from sqlalchemy.orm import Session

from services.rules import clock as clock_module
from services.rules import service as rules_service_module
from services.rules.models import EventLog, Rule, RuleRun, RuleVersion, Timer
from services.rules.service import RulesService
from services.rules.usecases.cached import forget_cached_rules
from services.rules.usecases.support import Settings
from shared.db import Database, get_engine
from shared.migrations import upgrade
from shared.outbox import EventOutbox, outbox_table

pytestmark = pytest.mark.integration

probe_metadata = MetaData()
probe_outbox = outbox_table(probe_metadata)


class Pinged(Schema):
    n = fields.Integer(required=True)


class LateService:
    """A service nobody knew about when the rules service started."""

    name = "late_probe"
    db = Database("late_probe")
    events = EventOutbox("late_probe", probe_outbox, {"pinged": Pinged})

    from shared.rpc import rpc

    @rpc
    def ping(self, n: int) -> int:
        with self.db.begin() as session:
            self.events.record(session, "pinged", {"n": n})
        return n


@pytest.fixture(params=["sqlite", "postgresql"])
def rules_url(request, tmp_path, monkeypatch):
    url = (f"sqlite:///{tmp_path}/rules.db" if request.param == "sqlite"
           else request.getfixturevalue("pg_url_factory")())
    upgrade("rules", url)
    monkeypatch.setenv("RULES_DATABASE_URL", url)
    monkeypatch.setattr(clock_module, "CLOCK", clock_module.Clock(controllable=True))
    return url


@pytest.fixture
def pg_rules_url(pg_url_factory, monkeypatch):
    url = pg_url_factory()
    upgrade("rules", url)
    monkeypatch.setenv("RULES_DATABASE_URL", url)
    monkeypatch.setattr(clock_module, "CLOCK", clock_module.Clock(controllable=True))
    return url


def publish(amqp_uri: str, envelope: dict, times: int = 1) -> None:
    exchange = Exchange("crm.events", type="topic", durable=True)
    with Connection(amqp_uri) as conn:
        producer = conn.Producer()
        for _ in range(times):
            producer.publish(envelope, exchange=exchange, routing_key=envelope["event_type"],
                             serializer="json", delivery_mode=2)


def envelope(producer: str, event_type: str, data: dict) -> dict:
    return {"event_id": str(uuid.uuid4()), "event_type": event_type, "version": 1,
            "occurred_at": "2026-05-01T00:00:00+00:00", "producer": producer,
            "correlation_id": "corr-it", "causation_id": None, "actor": None,
            "causation_depth": 0, "data": data}


def wait_until(predicate, timeout: float = 15.0):
    with eventlet.Timeout(timeout):
        while not (result := predicate()):
            eventlet.sleep(0.05)
    return result


def count(url: str, statement) -> int:
    with Session(get_engine(url)) as session:
        return session.scalar(statement)


def add_rule(url: str, rule_id: str, definition: dict) -> None:
    forget_cached_rules()
    now = clock_module.CLOCK.now()
    with Session(get_engine(url)) as session, session.begin():
        session.add(Rule(id=rule_id, key=None, name=rule_id, description=None, enabled=True,
                         version=1, trigger_type=definition["trigger"]["type"],
                         definition=definition, created_at=now, updated_at=now))
        session.add(RuleVersion(rule_id=rule_id, version=1, name=rule_id,
                                definition=definition, created_at=now))


def test_events_of_a_service_started_later_reach_the_rules_queue(
    container_factory, nameko_config, rules_url, tmp_path, monkeypatch
):
    rules = container_factory(RulesService, nameko_config)
    rules.start()
    monkeypatch.setenv("LATE_PROBE_DATABASE_URL", f"sqlite:///{tmp_path}/late.db")
    probe_metadata.create_all(get_engine(f"sqlite:///{tmp_path}/late.db"))
    late = container_factory(LateService, nameko_config)
    late.start()
    with ServiceRpcProxy("late_probe", nameko_config, timeout=10) as proxy:
        for n in range(5):
            proxy.ping(n)
    wait_until(lambda: count(rules_url, select(func.count()).select_from(EventLog).where(
        EventLog.event_name == "late_probe.pinged")) == 5)
    with Session(get_engine(rules_url)) as session:
        # Only the late service's: the queue also holds what earlier tests published.
        logged = session.scalars(
            select(EventLog).where(EventLog.event_name == "late_probe.pinged")).all()
        assert sorted(e.envelope["data"]["n"] for e in logged) == [0, 1, 2, 3, 4]
        assert all(e.envelope["causation_depth"] == 0 for e in logged)


def test_a_redelivered_event_has_no_second_effect(container_factory, nameko_config, amqp_uri,
                                                  rules_url):
    add_rule(rules_url, "count-me", {
        "trigger": {"type": "event", "event": "probe.thing_happened"}, "conditions": "",
        "actions": [{"type": "notify", "to": ["user:u1"], "title": "hello"}]})
    container = container_factory(RulesService, nameko_config)
    container.start()
    event = envelope("probe", "thing_happened", {"n": 1})
    publish(amqp_uri, event, times=3)
    wait_until(lambda: count(rules_url, select(func.count()).select_from(RuleRun)) >= 1)
    eventlet.sleep(1.0)
    assert count(rules_url, select(func.count()).select_from(RuleRun)) == 1
    assert count(rules_url, select(func.count()).select_from(EventLog).where(
        EventLog.event_name == "probe.thing_happened")) == 1


def test_timers_fire_once_with_two_rules_containers(
    container_factory, nameko_config, amqp_uri, pg_rules_url
):
    add_rule(pg_rules_url, "every-timer", {
        "trigger": {"type": "delay", "events": ["probe.thing_happened"], "delay": "1h"},
        "conditions": "", "actions": [{"type": "notify", "to": ["user:u1"], "title": "t"}]})
    first = container_factory(RulesService, nameko_config)
    first.start()
    events = [envelope("probe", "thing_happened", {"lead": {"id": f"l{n}"}}) for n in range(60)]
    for event in events:
        publish(amqp_uri, event)
    wait_until(lambda: count(pg_rules_url, select(func.count()).select_from(Timer)) == 60)
    second = container_factory(RulesService, nameko_config)
    second.start()
    with ServiceRpcProxy("rules", nameko_config, timeout=10) as proxy:
        proxy.advance_clock(3600 + 1)
    wait_until(lambda: count(pg_rules_url, select(func.count()).select_from(Timer).where(
        Timer.status == "fired")) == 60, timeout=30)
    eventlet.sleep(1.0)
    with Session(get_engine(pg_rules_url)) as session:
        per_timer = session.execute(select(RuleRun.timer_id, func.count()).group_by(
            RuleRun.timer_id)).all()
        claimers = set(session.scalars(select(Timer.claimed_by)).all())
    assert len(per_timer) == 60 and {n for _, n in per_timer} == {1}
    assert len(claimers) >= 1


def test_a_failing_action_is_retried_then_recorded_failed(
    container_factory, nameko_config, amqp_uri, rules_url, monkeypatch
):
    """The leads service is not running: the call fails, is retried with back-off, then the
    run records it as failed; other events keep flowing meanwhile."""
    monkeypatch.setattr(rules_service_module, "SETTINGS",
                        Settings(action_backoff=(0.3, 0.3), timer_batch=100))
    monkeypatch.setenv("CRM_RPC_TIMEOUT", "2")
    add_rule(rules_url, "release", {
        "trigger": {"type": "event", "event": "leads.lead_scored"}, "conditions": "",
        "actions": [{"type": "call", "service": "leads", "method": "release_lead",
                     "args": {"reason": "test"}},
                    {"type": "notify", "to": ["user:u1"], "title": "after the call"}]})
    container = container_factory(RulesService, nameko_config)
    container.start()
    publish(amqp_uri, envelope("leads", "lead_scored", {"lead": {"id": "l1", "owner_id": "u"}}))

    def finished() -> RuleRun | None:
        with Session(get_engine(rules_url)) as session:
            run = session.scalars(select(RuleRun)).first()
            return run if run is not None and run.status in ("failed", "completed") else None

    publish(amqp_uri, envelope("probe", "other", {"n": 1}))
    run = wait_until(finished, timeout=30)
    assert run.status == "failed"
    assert run.actions[0]["status"] == "failed"
    assert run.actions[0]["attempts"] == 3
    assert "after 3 attempts" in run.actions[0]["error"]
    assert run.actions[1]["status"] == "ok"
    assert count(rules_url, select(func.count()).select_from(EventLog).where(
        EventLog.event_name == "probe.other")) == 1
    assert json.dumps(run.actions)  # stored as plain JSON
    assert timedelta(seconds=0.3)
