"""SLA scheduling from a ticket's log (services/service_desk/domain/sla_schedule.py): the next
instants per running clock (each warning threshold and the breach), pauses that stop the right
clocks and so their instants, a policy changed mid-ticket, the notices due once per cycle, and
the log built from a ticket's stored entries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.service_desk.domain.sla import clocks, policy_from_dict, ticket_clocks
from services.service_desk.domain.sla_schedule import (
    cycle_key,
    due_notices,
    schedule,
    ticket_log,
)

T0 = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def policy(pid="p1", priorities=(), **targets):
    return policy_from_dict({"id": pid, "name": pid, "priorities": list(priorities),
                             "targets": {k: {"business": False, **v}
                                         for k, v in targets.items()}})


def created(priority="urgent"):
    return {"at": T0, "kind": "created", "priority": priority, "status": "new"}


def test_next_instants_are_the_thresholds_then_the_breach_of_each_running_clock():
    pol = policy(first_reply={"minutes": 60}, resolution={"minutes": 240})
    plan = schedule(clocks([created()], pol, None, minutes(1)), minutes(1))
    assert plan["clocks"]["first_reply"]["warn_at"] == [minutes(45), minutes(54)]
    assert plan["clocks"]["first_reply"]["breach_at"] == minutes(60)
    assert plan["clocks"]["resolution"]["warn_at"] == [minutes(180), minutes(216)]
    assert plan["next_check_at"] == minutes(45)

    # past 75 %: the 90 % instant is next; past the breach: resolution's 75 %
    assert schedule(clocks([created()], pol, None, minutes(50)), minutes(50))[
        "next_check_at"] == minutes(54)
    late = schedule(clocks([created()], pol, None, minutes(61)), minutes(61))
    assert late["clocks"]["first_reply"]["warn_at"] == []
    assert late["clocks"]["first_reply"]["breach_at"] is None
    assert late["next_check_at"] == minutes(180)


def test_a_pause_stops_only_the_clocks_it_pauses_and_their_instants():
    pol = policy(first_reply={"minutes": 60},  # not paused by pending (the default)
                 resolution={"minutes": 240})  # paused by pending
    events = [created(), {"at": minutes(10), "kind": "status_changed", "from": "new",
                          "to": "pending"}]
    plan = schedule(clocks(events, pol, None, minutes(20)), minutes(20))
    assert plan["clocks"]["resolution"] == {"state": "paused", "paused": True, "due_at": None,
                                            "warn_at": [], "breach_at": None}
    assert plan["clocks"]["first_reply"]["warn_at"] == [minutes(45), minutes(54)]
    assert plan["next_check_at"] == minutes(45)

    both = policy(first_reply={"minutes": 60, "pause_statuses": ["pending"]},
                  resolution={"minutes": 240})
    assert schedule(clocks(events, both, None, minutes(20)), minutes(20))[
        "next_check_at"] is None  # nothing runs: no timer
    resumed = [*events, {"at": minutes(30), "kind": "status_changed", "from": "pending",
                         "to": "open"}]
    plan = schedule(clocks(resumed, both, None, minutes(31)), minutes(31))
    # 10 minutes ran before the pause: 75 % (45 min) comes 35 minutes after the resume
    assert plan["clocks"]["first_reply"]["warn_at"] == [minutes(65), minutes(74)]
    assert plan["next_check_at"] == minutes(65)


def test_an_achieved_clock_has_no_instants_and_no_notices():
    pol = policy(first_reply={"minutes": 60})
    events = [created(), {"at": minutes(5), "kind": "reply", "public": True,
                          "author": "agent"}]
    result = clocks(events, pol, None, minutes(70))
    assert schedule(result, minutes(70))["next_check_at"] is None
    assert due_notices(result, minutes(70)) == []


def test_a_policy_change_mid_ticket_reschedules():
    short = policy("urgent", priorities=["urgent"], first_reply={"minutes": 60})
    long = policy("normal", priorities=["normal"], first_reply={"minutes": 240})
    events = [created("normal")]
    before = ticket_clocks(events, [short, long], {}, minutes(10))
    assert before["policy_id"] == "normal"
    assert schedule(before["clocks"], minutes(10))["next_check_at"] == minutes(180)
    raised = [*events, {"at": minutes(20), "kind": "priority_changed", "from": "normal",
                        "to": "urgent"}]
    after = ticket_clocks(raised, [short, long], {}, minutes(21))
    assert after["policy_id"] == "urgent"
    assert schedule(after["clocks"], minutes(21))["next_check_at"] == minutes(45)
    # an edited policy (the same id, 30 minutes now) re-targets the ticket from its start
    edited = policy("urgent", priorities=["urgent"], first_reply={"minutes": 30})
    again = ticket_clocks(raised, [edited, long], {}, minutes(21))
    assert [(n.target, n.threshold) for n in due_notices(again["clocks"], minutes(21))] == []
    assert schedule(again["clocks"], minutes(21))["next_check_at"] == minutes(22.5)
    assert cycle_key(again["clocks"]["first_reply"]) != cycle_key(after["clocks"]["first_reply"])


def test_notices_due_and_their_cycle_survives_a_pause():
    pol = policy(resolution={"minutes": 100})
    events = [created()]
    notices = due_notices(clocks(events, pol, None, minutes(95)), minutes(95))
    assert [(n.target, n.kind, n.threshold) for n in notices] == [
        ("resolution", "warning", 0.75), ("resolution", "warning", 0.9)]
    cycle = notices[0].cycle
    assert cycle == f"{T0.isoformat()}/100"
    paused = [*events, {"at": minutes(96), "kind": "status_changed", "from": "new",
                        "to": "on_hold"}]
    assert due_notices(clocks(paused, pol, None, minutes(200)), minutes(200)) == []
    resumed = [*paused, {"at": minutes(300), "kind": "status_changed", "from": "on_hold",
                         "to": "open"}]
    after = due_notices(clocks(resumed, pol, None, minutes(305)), minutes(305))
    # the same cycle (same keys: already warned), and the breach now
    assert {n.cycle for n in after} == {cycle}
    assert [(n.kind, n.threshold) for n in after] == [
        ("warning", 0.75), ("warning", 0.9), ("breach", 1.0)]


def test_next_reply_cycles_are_distinct():
    pol = policy(next_reply={"minutes": 30})
    events = [created(),
              {"at": minutes(1), "kind": "reply", "public": True, "author": "agent"},
              {"at": minutes(2), "kind": "reply", "public": True, "author": "customer"}]
    first = due_notices(clocks(events, pol, None, minutes(40)), minutes(40))
    more = [*events, {"at": minutes(41), "kind": "reply", "public": True, "author": "agent"},
            {"at": minutes(50), "kind": "reply", "public": True, "author": "customer"}]
    second = due_notices(clocks(more, pol, None, minutes(90)), minutes(90))
    assert first and second and first[0].cycle != second[0].cycle


def test_the_log_from_stored_entries():
    ticket = {"priority": "urgent", "customer_tier": "vip"}
    entries = [
        {"kind": "created", "at": T0, "to": "new", "public": True, "author_kind": "customer"},
        {"kind": "reply", "at": minutes(1), "public": False, "author_kind": "agent"},
        {"kind": "priority_changed", "at": minutes(2), "from": "normal", "to": "urgent"},
        {"kind": "status_changed", "at": minutes(3), "from": "new", "to": "pending"},
        {"kind": "merged", "at": minutes(4)},
        {"kind": "tier_changed", "at": minutes(5), "from": "gold", "to": "vip"},
    ]
    assert ticket_log(ticket, entries) == [
        {"at": T0, "kind": "created", "status": "new", "priority": "normal",
         "customer_tier": "gold"},
        {"at": minutes(1), "kind": "reply", "public": False, "author": "agent"},
        {"at": minutes(2), "kind": "priority_changed", "from": "normal", "to": "urgent"},
        {"at": minutes(3), "kind": "status_changed", "from": "new", "to": "pending"},
        {"at": minutes(5), "kind": "tier_changed", "from": "gold", "to": "vip"},
    ]
