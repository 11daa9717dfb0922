"""Rule definitions are validated at save time with errors named by path; triggers match events;
the loop guard stops deep causation chains and repeats within the dedupe window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.rules.domain import records
from services.rules.domain.rules import (
    GuardSettings,
    event_matches,
    field_change_matches,
    loop_guard,
    validate_definition,
)
from services.rules.notify.templates import check_template
from services.rules.seed import SHIPPED_RULES

VALID = {
    "trigger": {"type": "event", "event": "leads.lead_created"},
    "conditions": 'source == "website"',
    "actions": [
        {"type": "assign", "strategy": "round_robin", "territories": {"华东": "华东销售部"}},
        {"type": "create_task", "title": "立即致电 {{ lead.name }}", "due_in": "15m"},
        {"type": "notify", "to": ["owner", "owner_manager"], "channels": ["in_app", "email"],
         "title": "新线索 {{ lead.name }}"},
    ],
}


def test_a_valid_definition_has_no_problems() -> None:
    assert validate_definition(VALID, check_template) == {}


def test_every_shipped_rule_is_valid() -> None:
    for rule in SHIPPED_RULES:
        assert validate_definition(rule, check_template) == {}, rule["key"]


def test_problems_are_named_by_path() -> None:
    bad = {
        "trigger": {"type": "delay", "events": ["lead_created"], "delay": "3 days",
                    "colour": "red"},
        "conditions": "score >= ",
        "actions": [
            {"type": "create_task", "title": "{{ lead.name ", "assignee": "boss"},
            {"type": "call", "service": "leads", "method": "delete_everything"},
            {"type": "notify", "to": ["role:ceo"], "title": "x", "channels": ["sms"]},
            {"type": "teleport"},
        ],
    }
    problems = validate_definition(bad, check_template)
    assert "trigger.events.0" in problems
    assert "trigger.delay" in problems
    assert problems["trigger.colour"] == ["Unknown field."]
    assert "line 1, column 9" in problems["conditions"][0]
    assert "actions.0.title" in problems
    assert "actions.0.assignee" in problems
    assert "actions.1.method" in problems
    assert "actions.2.to.0" in problems
    assert "actions.2.channels" in problems
    assert "actions.3.type" in problems


def test_schedule_and_date_triggers_are_checked() -> None:
    problems = validate_definition({
        "trigger": {"type": "schedule", "cron": "every monday"},
        "actions": [{"type": "notify", "to": ["role:manager"], "title": "周报"}],
    }, check_template)
    assert list(problems) == ["trigger.cron"]
    problems = validate_definition({
        "trigger": {"type": "date", "events": ["sales.contact_created"], "field": "",
                    "offset_days": "three", "at": "9am"},
        "actions": [{"type": "notify", "to": ["owner"], "title": "生日"}],
    }, check_template)
    assert {"trigger.field", "trigger.offset_days", "trigger.at"} <= set(problems)


def test_event_patterns_and_field_changes() -> None:
    assert event_matches("leads.lead_created", "leads.lead_created")
    assert event_matches(["sales.*", "leads.lead_status_changed"], "sales.followup_recorded")
    assert not event_matches("leads.lead_created", "leads.lead_created_x")
    changes = records.changes({"status": "new", "score": 10}, {"status": "contacted",
                                                              "score": 10})
    assert changes == {"status": {"from": "new", "to": "contacted"}}
    assert field_change_matches({"field": "status", "to": "contacted"}, changes)
    assert not field_change_matches({"field": "status", "to": "qualified"}, changes)
    assert not field_change_matches({"field": "score"}, changes)
    assert field_change_matches({}, changes)


def test_related_records_of_an_event() -> None:
    followup = {"followup": {"id": "f1", "lead_id": "l1", "customer_id": "c1"}}
    assert records.related_keys(followup) == {"followup": "followup:f1", "lead": "lead:l1",
                                              "customer": "customer:c1"}
    assert records.related_keys({"lead_id": "l2", "customer_id": "c2"}) == {
        "lead": "lead:l2", "customer": "customer:c2"}
    assert records.primary_record({"lead": {"id": "l3", "score": 5}}) == (
        "lead", {"id": "l3", "score": 5})


def test_loop_guard() -> None:
    now = datetime(2026, 5, 1, tzinfo=UTC)
    settings = GuardSettings(max_depth=5, dedupe_window=timedelta(seconds=60))
    assert loop_guard(0, None, now, settings) is None
    assert loop_guard(5, now - timedelta(seconds=61), now, settings) is None
    assert "causation depth 6" in loop_guard(6, None, now, settings)
    assert "dedupe window" in loop_guard(1, now - timedelta(seconds=10), now, settings)
