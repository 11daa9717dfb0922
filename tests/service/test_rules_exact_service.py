"""`"at": "exact"` date triggers in the rules service (SQLite and PostgreSQL, the controllable
clock): a timer at the field's instant, replaced by a newer event, none (and a run saying why)
for a missing or unparsable value, refused at save when `at` is bad."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from services.rules import clock as clock_module
from services.rules.models import RuleRun, Timer
from shared.errors import ValidationFailed
from tests.service import test_rules_service as base
from tests.service.test_rules_service import advance, envelope, runs_of

# The rules service's fixtures (both databases, the SMTP test server, the controllable clock).
urls, smtp, system = base.urls, base.smtp, base.system


def exact_rule(system, events: list[str], record: str, name: str = "准时检查") -> dict:
    return system.rules().create_rule({
        "name": name, "trigger": {"type": "date", "events": events, "field": "next_check_at",
                                  "at": "exact", "record": record},
        "actions": [{"type": "notify", "to": ["user:u-lina"], "title": "检查 {{ record.id }}"}],
    })


def timers_of(system, rule_id: str) -> list[Timer]:
    with system.session() as session:
        return list(session.scalars(select(Timer).where(Timer.rule_id == rule_id)
                                    .order_by(Timer.created_at, Timer.due_at)).all())


def pending(system, rule_id: str) -> list[Timer]:
    return [t for t in timers_of(system, rule_id) if t.status == "pending"]


def at(seconds: float) -> datetime:
    return clock_module.CLOCK.now() + timedelta(seconds=seconds)


def lead_event(lead_id: str, next_check_at: object) -> dict:
    """A lead-based test event carrying the instant in the record's snapshot."""
    return envelope("leads", "lead_updated", {"lead": {
        "id": lead_id, "name": "客户", "owner_id": "u-lina", "next_check_at": next_check_at}})


def sla_event(ticket_id: str, next_check_at: object) -> dict:
    """The shape service_desk will publish: the ticket by its id, the instant beside it."""
    return envelope("service_desk", "ticket_sla_scheduled", {
        "ticket_id": ticket_id, "policy_id": "p1", "next_check_at": next_check_at})


def test_the_timer_fires_at_the_instant_once(system):
    rule = exact_rule(system, ["leads.lead_updated"], "lead")
    instant = at(3600)  # a minute's margin of real time before it: a loaded machine is slow
    system.rules().on_any_event(lead_event("l1", instant.isoformat()))
    [timer] = pending(system, rule["id"])
    assert timer.kind == "date" and timer.record_key == "lead:l1"
    assert timer.due_at == instant  # the instant itself, not a time of day on its date
    assert advance(system, 3540) == 0
    assert runs_of(system, rule["id"]) == []
    assert advance(system, 61) == 1
    runs = runs_of(system, rule["id"])
    assert [(r["trigger"], r["status"], r["record_key"]) for r in runs] == [
        ("timer", "completed", "lead:l1")]
    assert system.rules().list_notifications("u-lina")["items"][0]["title"] == "检查 l1"
    assert advance(system, 7200) == 0  # once
    assert len(runs_of(system, rule["id"])) == 1
    assert [t.status for t in timers_of(system, rule["id"])] == ["fired"]


def test_a_newer_event_replaces_the_timer_earlier_or_later(system):
    rule = exact_rule(system, ["service_desk.ticket_sla_scheduled"], "ticket")
    system.rules().on_any_event(sla_event("t1", at(600).isoformat()))
    earlier = at(20)
    system.rules().on_any_event(sla_event("t1", earlier.isoformat().replace("+00:00", "Z")))
    timers = timers_of(system, rule["id"])
    assert [(t.status, t.outcome) for t in timers] == [
        ("cancelled", "replaced by a newer start"), ("pending", None)]
    assert timers[1].due_at == earlier and timers[1].record_key == "ticket:t1"
    system.rules().on_any_event(sla_event("t2", at(40).isoformat()))  # another ticket's own
    assert advance(system, 21) == 1
    assert [r["record_key"] for r in runs_of(system, rule["id"])] == ["ticket:t1"]
    later = at(300)
    system.rules().on_any_event(sla_event("t2", later.isoformat()))  # t2 moves later
    assert advance(system, 100) == 0
    assert [t.due_at for t in pending(system, rule["id"])] == [later]
    assert advance(system, 200) == 1
    runs = runs_of(system, rule["id"])
    assert sorted(r["record_key"] for r in runs) == ["ticket:t1", "ticket:t2"]
    assert {r["status"] for r in runs} == {"completed"}


@pytest.mark.parametrize(("value", "reason"), [
    (None, "no timer: next_check_at is missing"),
    ("", "no timer: next_check_at is missing"),
    ("next tuesday", "no timer: next_check_at is not an instant: 'next tuesday'"),
    ("2026-12-03", "no timer: next_check_at is not an instant: '2026-12-03'"),
])
def test_no_instant_no_timer_and_the_run_says_why(system, value, reason):
    rule = exact_rule(system, ["service_desk.ticket_sla_scheduled"], "ticket")
    system.rules().on_any_event(sla_event("t1", at(60).isoformat()))
    event = sla_event("t1", value)
    system.rules().on_any_event(event)  # e.g. every clock paused: the pending one goes
    assert pending(system, rule["id"]) == []
    runs = runs_of(system, rule["id"])
    assert [(r["trigger"], r["status"], r["reason"], r["record_key"]) for r in runs] == [
        ("event", "no_match", reason, "ticket:t1")]
    with system.session() as session:
        stored = session.scalars(select(RuleRun).where(RuleRun.rule_id == rule["id"])).one()
        assert stored.event_id == event["event_id"] and stored.actions == []
        assert stored.event_type == "service_desk.ticket_sla_scheduled"
    assert advance(system, 3600) == 0
    assert len(runs_of(system, rule["id"])) == 1


def test_an_instant_already_past_when_told_fires_at_the_next_tick(system):
    rule = exact_rule(system, ["leads.lead_updated"], "lead")
    system.rules().on_any_event(lead_event("l1", at(-5).isoformat()))
    assert system.rules().engine.tick() == 1  # the clock not moved
    assert [r["status"] for r in runs_of(system, rule["id"])] == ["completed"]


def test_a_rule_saved_later_times_the_known_records_but_not_past_instants(system):
    future = at(120)
    system.rules().on_any_event(lead_event("l-future", future.isoformat()))
    system.rules().on_any_event(lead_event("l-past", at(-120).isoformat()))
    system.rules().on_any_event(lead_event("l-none", None))
    rule = exact_rule(system, ["leads.lead_updated"], "lead")
    assert [(t.record_key, t.due_at) for t in pending(system, rule["id"])] == [
        ("lead:l-future", future)]
    assert runs_of(system, rule["id"]) == []  # saving records no skipped runs
    assert advance(system, 121) == 1


def test_a_time_of_day_date_trigger_is_unchanged_beside_an_exact_one(system):
    day = exact_rule(system, ["leads.lead_updated"], "lead")
    system.rules().update_rule(day["id"], {
        "name": "日期", "trigger": {"type": "date", "events": ["leads.lead_updated"],
                                   "field": "next_check_at", "at": "09:00", "record": "lead"},
        "actions": day["actions"]})
    system.rules().on_any_event(lead_event("l1", (at(0) + timedelta(days=5)).isoformat()))
    [timer] = pending(system, day["id"])
    assert (timer.due_at.hour, timer.due_at.minute, timer.due_at.second) == (1, 0, 0)
    system.rules().on_any_event(lead_event("l1", "garbage"))  # as before: no run recorded
    assert pending(system, day["id"]) == [] and runs_of(system, day["id"]) == []


@pytest.mark.parametrize("bad", ["soon", "EXACT", 30, "24:00"])
def test_a_bad_at_is_refused_at_save_naming_trigger_at(system, bad):
    with pytest.raises(ValidationFailed) as raised:
        system.rules().create_rule({
            "name": "x", "trigger": {"type": "date", "events": ["leads.lead_updated"],
                                     "field": "next_check_at", "at": bad, "record": "lead"},
            "actions": [{"type": "notify", "to": ["owner"], "title": "x"}]})
    assert list(raised.value.errors) == ["trigger.at"]
    with pytest.raises(ValidationFailed) as raised:
        system.rules().create_rule({
            "name": "x", "trigger": {"type": "date", "events": ["leads.lead_updated"],
                                     "field": "next_check_at", "at": "exact", "yearly": True},
            "actions": [{"type": "notify", "to": ["owner"], "title": "x"}]})
    assert list(raised.value.errors) == ["trigger.yearly"]


def test_dry_run_tells_the_exact_instant(system):
    rule = exact_rule(system, ["service_desk.ticket_sla_scheduled"], "ticket")
    instant = at(90)
    result = system.rules().dry_run(rule["id"], {"sample": {
        "event_type": "service_desk.ticket_sla_scheduled",
        "data": {"ticket_id": "t9", "next_check_at": instant.isoformat()}}})
    assert result["trigger"]["matches"] is True
    assert datetime.fromisoformat(result["trigger"]["would_fire_at"]) == instant
    assert pending(system, rule["id"]) == []  # a dry run starts nothing
