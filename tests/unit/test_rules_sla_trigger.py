"""The rules service's parts of SLA timers: an exact trigger's `sequence` (checked at save), a
ticket's owner (its assignee), and the shipped SLA rules valid against the registry."""

from __future__ import annotations

import pytest

from services.rules import seed
from services.rules.domain import records
from services.rules.domain.rules import validate_definition
from services.rules.notify.templates import check_template
from services.rules.usecases.recipients import recipients
from services.rules.usecases.timers import _sequence


def exact(**trigger):
    return {"trigger": {"type": "date", "events": ["service_desk.ticket_sla_scheduled"],
                        "field": "next_check_at", "at": "exact", "record": "ticket", **trigger},
            "conditions": "", "actions": [{"type": "notify", "to": ["owner"], "title": "x"}]}


def test_sequence_is_a_field_name_of_an_exact_trigger_only():
    assert validate_definition(exact(sequence="sequence"), check_template) == {}
    for bad in ("", 3, None):
        assert list(validate_definition(exact(sequence=bad), check_template)) == [
            "trigger.sequence"]
    assert list(validate_definition(exact(at="09:00", sequence="sequence"),
                                    check_template)) == ["trigger.sequence"]


@pytest.mark.parametrize(("data", "expected"), [
    ({"sequence": 4}, 4), ({"sequence": "4"}, None), ({"sequence": True}, None), ({}, None),
    (None, None)])
def test_the_sequence_read_from_the_event(data, expected):
    assert _sequence({"sequence": "sequence"}, data) == expected


def test_a_tickets_owner_is_its_assignee():
    ticket = {"id": "t1", "assignee_id": "u-1"}
    assert records.with_owner("ticket", ticket) == {**ticket, "owner_id": "u-1"}
    assert records.with_owner("ticket", {"id": "t1"}) == {"id": "t1"}
    lead = {"id": "l1", "owner_id": "u-2", "assignee_id": "x"}
    assert records.with_owner("lead", lead) is lead
    assert records.primary_record({"ticket_id": "t1", "ticket": ticket}) == ("ticket", ticket)


def test_the_shipped_sla_rules_are_valid():
    shipped = {r["key"]: r for r in seed.SHIPPED_RULES}
    for key in ("ticket-sla-check", "ticket-sla-warning", "ticket-sla-breached"):
        definition = {k: shipped[key][k] for k in ("trigger", "conditions", "actions")}
        assert validate_definition(definition, check_template) == {}, key
    calls = [(a["service"], a["method"]) for key in ("ticket-sla-check", "ticket-sla-breached")
             for a in shipped[key]["actions"] if a["type"] == "call"]
    assert calls == [("service_desk", "check_sla"), ("service_desk", "escalate_ticket")]


def test_a_warning_notifies_the_assignee_and_a_breach_also_the_groups_manager():
    shipped = {r["key"]: r for r in seed.SHIPPED_RULES}
    [warn] = [a for a in shipped["ticket-sla-warning"]["actions"] if a["type"] == "notify"]
    assert warn["to"] == ["owner"]
    [breach] = [a for a in shipped["ticket-sla-breached"]["actions"] if a["type"] == "notify"]
    assert {"owner", "field:group_manager_id"} <= set(breach["to"])
    # the recipient is read from the breach event's ticket snapshot, the rules' record
    data = {"ticket_id": "t1", "group_manager_id": "u-boss",
            "ticket": {"id": "t1", "assignee_id": "u-1", "group_manager_id": "u-boss"}}
    record_type, record = records.primary_record(data)
    record = records.with_owner(record_type, record)
    assert recipients(None, ["owner", "field:group_manager_id"], {"record": record}) == \
        ["u-1", "u-boss"]
    no_group = {**record, "group_manager_id": None}
    assert recipients(None, ["owner", "field:group_manager_id"], {"record": no_group}) == \
        ["u-1"]
