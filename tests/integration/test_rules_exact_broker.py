"""An `"at": "exact"` date trigger over the real broker and the real ticker: a test event shaped
as service_desk's `ticket_sla_scheduled` (`{ticket_id, next_check_at}`; the service_desk
service does not publish it yet) sets the timer, a newer one replaces it, and after the
controllable clock is advanced past the instant the run fires exactly once."""

from __future__ import annotations

from datetime import timedelta

import eventlet
import pytest
from nameko.standalone.rpc import ServiceRpcProxy
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.rules import clock as clock_module
from services.rules.models import RuleRun, Timer
from services.rules.service import RulesService
from shared.db import get_engine
from tests.integration import test_rules_broker as base
from tests.integration.test_rules_broker import add_rule, count, envelope, publish, wait_until

pytestmark = pytest.mark.integration

rules_url = base.rules_url  # SQLite and PostgreSQL, with the controllable clock

RULE = {
    "trigger": {"type": "date", "events": ["service_desk.ticket_sla_scheduled"],
                "field": "next_check_at", "at": "exact", "record": "ticket"},
    "conditions": "",
    "actions": [{"type": "notify", "to": ["user:u1"], "title": "check {{ record.id }}"}],
}


def sla_scheduled(ticket_id: str, seconds: float) -> dict:
    instant = clock_module.CLOCK.now() + timedelta(seconds=seconds)
    return envelope("service_desk", "ticket_sla_scheduled", {
        "ticket_id": ticket_id, "policy_id": "p1", "next_check_at": instant.isoformat()})


def timers(url: str) -> list[tuple[str, str | None]]:
    with Session(get_engine(url)) as session:
        return [(t.status, t.outcome) for t in session.scalars(
            select(Timer).where(Timer.rule_id == "sla-exact").order_by(Timer.created_at))]


def test_the_exact_timer_fires_once_after_the_clock_passes_the_instant(
    container_factory, nameko_config, amqp_uri, rules_url
):
    add_rule(rules_url, "sla-exact", RULE)
    container = container_factory(RulesService, nameko_config)
    container.start()
    publish(amqp_uri, sla_scheduled("t-exact", 3600))
    wait_until(lambda: timers(rules_url) == [("pending", None)])
    publish(amqp_uri, sla_scheduled("t-exact", 30))  # recomputed: earlier
    wait_until(lambda: len(timers(rules_url)) == 2)
    assert timers(rules_url) == [("cancelled", "replaced by a newer start"), ("pending", None)]
    eventlet.sleep(1.0)  # four ticks: not due yet
    assert count(rules_url, select(func.count()).select_from(RuleRun)) == 0

    with ServiceRpcProxy("rules", nameko_config, timeout=10) as proxy:
        proxy.advance_clock(31)
    wait_until(lambda: count(rules_url, select(func.count()).select_from(RuleRun)) >= 1)
    eventlet.sleep(1.5)  # six more ticks: nothing fires again
    with Session(get_engine(rules_url)) as session:
        runs = session.scalars(select(RuleRun)).all()
        assert [(r.trigger, r.status, r.record_key) for r in runs] == [
            ("timer", "completed", "ticket:t-exact")]
        [fired] = session.scalars(select(Timer).where(Timer.status == "fired")).all()
        assert runs[0].timer_id == fired.id
    assert timers(rules_url) == [("cancelled", "replaced by a newer start"),
                                 ("fired", fired.outcome)]
