"""SLA scheduling in the service_desk service (worker_factory, migrated SQLite and PostgreSQL,
the real outbox recorder): `ticket_sla_scheduled` on every change of a ticket's clocks,
`check_sla` by ticket id publishing each warning and breach once (also when two calls run at
once), a paused clock publishing nothing, `escalate_ticket` exactly once, and the sweep after a
policy change."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest

from shared.errors import NotFound
from tests.service import desk

ADMIN = {"all": True}


database_url = desk.database_url


@pytest.fixture
def service(database_url):
    return desk.worker(database_url, actor="agent-1")


def events_of(engine, event_type: str) -> list[dict]:
    return [e["data"] for e in desk.envelopes(engine, event_type)]


def urgent_policy(service, **first_reply):
    return service.create_sla_policy({
        "name": "urgent 1h", "priorities": ["high", "urgent"],
        "targets": {"first_reply": {"minutes": 60, "business": False, **first_reply},
                    "resolution": {"minutes": 240, "business": False}}})


def new_ticket(service, **fields) -> dict:
    return service.create_ticket({"subject": "系统宕机", "requester_email": "li@example.cn",
                                  "priority": "urgent", "assignee_id": "agent-1", **fields},
                                 ADMIN)


def plus(ticket: dict, minutes: float) -> str:
    return (datetime.fromisoformat(ticket["created_at"]) + timedelta(minutes=minutes)).isoformat()


def instant(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_a_new_ticket_is_scheduled_and_each_change_reschedules(service):
    urgent_policy(service)
    ticket = new_ticket(service)
    [scheduled] = events_of(service.engine, "ticket_sla_scheduled")
    assert scheduled["ticket_id"] == ticket["id"] and scheduled["sequence"] == 1
    assert scheduled["ticket"]["assignee_id"] == "agent-1"
    first = scheduled["clocks"]["first_reply"]
    assert [instant(w) for w in first["warn_at"]] == [instant(plus(ticket, 45)),
                                                      instant(plus(ticket, 54))]
    assert instant(first["breach_at"]) == instant(plus(ticket, 60))
    assert instant(scheduled["next_check_at"]) == instant(plus(ticket, 45))

    # an agent's public reply achieves first reply: resolution's 75 % is next
    service.add_ticket_reply(ticket["id"], {"body": "在查", "author_kind": "agent"}, ADMIN)
    replied = events_of(service.engine, "ticket_sla_scheduled")[-1]
    assert replied["sequence"] == 2
    assert replied["clocks"]["first_reply"]["state"] == "achieved"
    assert instant(replied["next_check_at"]) == instant(plus(ticket, 180))

    # pending pauses resolution: nothing runs, no timer
    service.update_ticket(ticket["id"], {"status": "pending"}, ADMIN)
    paused = events_of(service.engine, "ticket_sla_scheduled")[-1]
    assert paused["sequence"] == 3 and paused["next_check_at"] is None
    assert paused["clocks"]["resolution"]["paused"] is True

    # a change that moves no clock publishes no new schedule
    service.update_ticket(ticket["id"], {"tags": ["vip"]}, ADMIN)
    assert len(events_of(service.engine, "ticket_sla_scheduled")) == 3


def test_check_sla_by_id_publishes_each_notice_once(service):
    urgent_policy(service)
    ticket = new_ticket(service)
    early = service.check_sla(ticket_id=ticket["id"], now=plus(ticket, 10), scope=ADMIN,
                              command_id="rules:r1:0")
    assert early["published"] == []

    warned = service.check_sla(ticket_id=ticket["id"], now=plus(ticket, 46))
    assert [(p["event_type"], p["target"], p["threshold"]) for p in warned["published"]] == [
        ("ticket_sla_warning", "first_reply", 0.75)]
    assert instant(warned["next_check_at"]) == instant(plus(ticket, 54))
    assert service.check_sla(ticket_id=ticket["id"], now=plus(ticket, 47))["published"] == []

    late = service.check_sla(ticket_id=ticket["id"], now=plus(ticket, 61))
    assert [(p["event_type"], p.get("threshold")) for p in late["published"]] == [
        ("ticket_sla_warning", 0.9), ("ticket_sla_breached", None)]
    assert service.check_sla(ticket_id=ticket["id"], now=plus(ticket, 62))["published"] == []

    [breach] = events_of(service.engine, "ticket_sla_breached")
    assert breach["ticket"]["assignee_id"] == "agent-1"
    assert instant(breach["due_at"]) == instant(plus(ticket, 60))
    assert len(events_of(service.engine, "ticket_sla_warning")) == 2
    # the schedules published along the way: 54 min, then resolution's 75 % at 180
    nexts = [s["next_check_at"] for s in events_of(service.engine, "ticket_sla_scheduled")]
    assert instant(nexts[-1]) == instant(plus(ticket, 180))
    with pytest.raises(NotFound):
        service.check_sla(ticket_id="no-such-ticket")
    with pytest.raises(NotFound):  # outside the caller's scope: not found, like a missing one
        service.check_sla(ticket_id=ticket["id"], scope={"owner_ids": ["someone-else"]})


def test_two_concurrent_checks_publish_once(service):
    urgent_policy(service)
    tickets = [new_ticket(service) for _ in range(3)]

    def check(ticket):
        return service.check_sla(ticket_id=ticket["id"], now=plus(ticket, 61))

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(check, [t for t in tickets for _ in range(2)]))
    assert sum(len(r["published"]) for r in results) == 3 * 3  # 75 %, 90 %, breach each
    warnings = events_of(service.engine, "ticket_sla_warning")
    assert sorted((w["ticket_id"], w["threshold"]) for w in warnings) == sorted(
        (t["id"], th) for t in tickets for th in (0.75, 0.9))
    assert len(events_of(service.engine, "ticket_sla_breached")) == 3


def test_a_paused_or_satisfied_clock_publishes_nothing(service):
    urgent_policy(service, pause_statuses=["pending"])
    paused = new_ticket(service)
    service.update_ticket(paused["id"], {"status": "pending"}, ADMIN)
    answered = new_ticket(service)
    service.add_ticket_reply(answered["id"], {"body": "收到", "author_kind": "agent"}, ADMIN)
    for ticket in (paused, answered):
        result = service.check_sla(ticket_id=ticket["id"], now=plus(ticket, 70))
        assert [p for p in result["published"] if p["target"] == "first_reply"] == []
    assert [w["ticket_id"] for w in events_of(service.engine, "ticket_sla_warning")
            if w["target"] == "first_reply"] == []
    assert events_of(service.engine, "ticket_sla_scheduled")[-1]["ticket_id"] == answered["id"]


def test_escalate_raises_one_step_once_per_command(service):
    urgent_policy(service)
    ticket = new_ticket(service, priority="normal")
    raised = service.escalate_ticket(ticket["id"], reason="SLA breached", scope=ADMIN,
                                     command_id="rules:run-1:1")
    assert raised["priority"] == "high" and raised["escalated"] is True
    again = service.escalate_ticket(ticket["id"], reason="SLA breached", scope=ADMIN,
                                    command_id="rules:run-1:1")
    assert again["priority"] == "high" and again["escalated"] is False
    top = service.escalate_ticket(ticket["id"], priority="urgent", command_id="rules:run-2:1")
    assert top["priority"] == "urgent"
    assert service.escalate_ticket(ticket["id"], priority="low")["priority"] == "urgent"
    assert [(e["from"], e["to"]) for e in events_of(service.engine, "ticket_escalated")] == [
        ("normal", "high"), ("high", "urgent")]
    entries = service.get_ticket(ticket["id"])["entries"]
    assert [(e["from"], e["to"]) for e in entries if e["kind"] == "priority_changed"] == [
        ("normal", "high"), ("high", "urgent")]
    # high now matches the 1-hour policy: the ticket was rescheduled under it
    assert events_of(service.engine, "ticket_sla_scheduled")[-1]["policy_id"] is not None


def test_a_policy_change_sweeps_the_open_tickets(service):
    policy = urgent_policy(service)
    open_ticket = new_ticket(service)
    solved = new_ticket(service)
    service.update_ticket(solved["id"], {"status": "solved"}, ADMIN)
    before = len(events_of(service.engine, "ticket_sla_scheduled"))
    service.update_sla_policy(policy["id"], {"targets": {
        "first_reply": {"minutes": 120, "business": False},
        "resolution": {"minutes": 240, "business": False}}})
    assert service.sla_sweep_timer() is None
    swept = events_of(service.engine, "ticket_sla_scheduled")[before:]
    assert [s["ticket_id"] for s in swept] == [open_ticket["id"]]
    assert instant(swept[0]["next_check_at"]) == instant(plus(open_ticket, 90))
    service.sla_sweep_timer()  # done: nothing more
    assert len(events_of(service.engine, "ticket_sla_scheduled")) == before + 1


def test_a_ticket_no_policy_applies_to_is_not_scheduled(service):
    urgent_policy(service)
    ticket = new_ticket(service, priority="low")
    assert events_of(service.engine, "ticket_sla_scheduled") == []
    assert service.check_sla(ticket_id=ticket["id"])["next_check_at"] is None
    service.update_ticket(ticket["id"], {"priority": "urgent"}, ADMIN)  # now it applies
    [scheduled] = events_of(service.engine, "ticket_sla_scheduled")
    assert scheduled["sequence"] == 2 and scheduled["next_check_at"] is not None


def test_ticket_sla_reads_the_policy_and_clocks_now_and_publishes_nothing(service):
    assert service.ticket_sla(new_ticket(service)["id"], ADMIN)["policy_id"] is None
    policy = urgent_policy(service)
    ticket = new_ticket(service)
    published = len(desk.envelopes(service.engine, "ticket_sla_scheduled"))
    sla = service.ticket_sla(ticket["id"], ADMIN)
    assert (sla["ticket_id"], sla["policy_id"], sla["policy_name"]) == (
        ticket["id"], policy["id"], "urgent 1h")
    first = sla["clocks"]["first_reply"]
    assert (first["state"], first["breached"]) == ("running", False)
    assert instant(first["due_at"]) == instant(plus(ticket, 60))
    assert sla["clocks"]["resolution"]["state"] == "running"

    service.add_ticket_reply(ticket["id"], {"body": "在查", "author_kind": "agent"}, ADMIN)
    assert service.ticket_sla(ticket["id"], ADMIN)["clocks"]["first_reply"]["state"] == \
        "achieved"
    assert len(desk.envelopes(service.engine, "ticket_sla_scheduled")) == published + 1
    with pytest.raises(NotFound):
        service.ticket_sla(ticket["id"], {"owner_ids": ["agent-9"], "user_id": "agent-9"})


def test_warnings_and_breaches_carry_the_groups_manager(service):
    urgent_policy(service)
    group = service.create_ticket_group({"name": "二线", "manager_id": "boss-1",
                                         "members": [{"user_id": "agent-1"}]})
    grouped = new_ticket(service, group_id=group["id"])
    alone = new_ticket(service)
    for ticket in (grouped, alone):
        service.check_sla(ticket_id=ticket["id"], now=plus(ticket, 61))
    breaches = {b["ticket_id"]: b for b in events_of(service.engine, "ticket_sla_breached")}
    assert breaches[grouped["id"]]["group_manager_id"] == "boss-1"
    assert breaches[grouped["id"]]["ticket"]["group_manager_id"] == "boss-1"
    assert breaches[alone["id"]]["group_manager_id"] is None
    assert breaches[alone["id"]]["ticket"]["group_manager_id"] is None
    warnings = [w for w in events_of(service.engine, "ticket_sla_warning")
                if w["ticket_id"] == grouped["id"]]
    assert warnings and all(w["group_manager_id"] == "boss-1" for w in warnings)
