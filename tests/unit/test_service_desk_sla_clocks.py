"""SLA clocks from a ticket's event log: targets in business and calendar time, pauses that stop
only the clocks they should, warnings, breaches, reopen, policy selection and a policy changed
mid-ticket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.service_desk.domain.calendar import STANDARD_HOURS, calendar_from_dict
from services.service_desk.domain.sla import clocks, policy_from_dict, select_policy, ticket_clocks
from shared.errors import ValidationFailed

SH = ZoneInfo("Asia/Shanghai")
CAL = calendar_from_dict({"name": "cn", "hours": STANDARD_HOURS})


def at(day, hour, minute=0):
    """A Shanghai instant in December 2026 (1 December is a Tuesday)."""
    return datetime(2026, 12, day, hour, minute, tzinfo=SH)


def policy(**targets):
    return policy_from_dict({"id": "p1", "name": "standard", "targets": targets})


def created(when, priority="normal", tier=None):
    return {"at": when, "kind": "created", "priority": priority, "customer_tier": tier}


def status(when, old, new):
    return {"at": when, "kind": "status_changed", "from": old, "to": new}


def reply(when, author, public=True):
    return {"at": when, "kind": "reply", "author": author, "public": public}


def sh(instant):
    return instant.astimezone(SH).replace(tzinfo=None)


def test_first_reply_running_in_business_time_with_warnings():
    pol = policy(first_reply={"minutes": 120})
    events = [created(at(1, 11, 0))]
    got = clocks(events, pol, CAL, now=at(1, 11, 30))["first_reply"]
    assert got["state"] == "running"
    # 11:00 + 2 h business: 12:00, break, 13:30 + 1 h
    assert sh(got["due_at"]) == datetime(2026, 12, 1, 14, 30)
    assert got["elapsed_seconds"] == 30 * 60
    assert got["remaining_seconds"] == 90 * 60
    assert not got["breached"] and not got["paused"]
    warnings = {w["threshold"]: w for w in got["warnings"]}
    assert sh(warnings[0.75]["at"]) == datetime(2026, 12, 1, 14, 0)  # 90 business minutes
    assert sh(warnings[0.9]["at"]) == datetime(2026, 12, 1, 14, 18)  # 108 business minutes
    assert not warnings[0.75]["passed"]


def test_first_reply_achieved_by_a_public_agent_reply_only():
    pol = policy(first_reply={"minutes": 60})
    events = [
        created(at(1, 9)),
        reply(at(1, 9, 20), "agent", public=False),  # an internal note does not count
        reply(at(1, 9, 30), "customer"),
        reply(at(1, 9, 40), "agent"),
    ]
    got = clocks(events, pol, CAL, now=at(1, 15))["first_reply"]
    assert got["state"] == "achieved"
    assert got["achieved_at"] == at(1, 9, 40).astimezone(UTC)
    assert got["elapsed_seconds"] == 40 * 60
    assert not got["breached"]


def test_first_reply_breached_when_due_has_passed():
    pol = policy(first_reply={"minutes": 60})
    got = clocks([created(at(1, 9))], pol, CAL, now=at(1, 10, 30))["first_reply"]
    assert got["breached"]
    assert sh(got["breached_at"]) == datetime(2026, 12, 1, 10, 0)
    assert got["remaining_seconds"] == -30 * 60
    assert all(w["passed"] for w in got["warnings"])


def test_pending_pauses_resolution_but_not_first_reply():
    pol = policy(first_reply={"minutes": 240}, resolution={"minutes": 480})
    events = [
        created(at(1, 9)),
        status(at(1, 10), "new", "pending"),
    ]
    got = clocks(events, pol, CAL, now=at(1, 16))
    resolution, first = got["resolution"], got["first_reply"]
    assert resolution["paused"] and resolution["state"] == "paused"
    assert resolution["elapsed_seconds"] == 3600
    assert resolution["due_at"] is None  # not due while paused
    assert not resolution["breached"]
    assert first["state"] == "running" and not first["paused"]
    # 09:00 + 4 h business = 14:30, passed at 16:00
    assert first["breached"]
    assert sh(first["due_at"]) == datetime(2026, 12, 1, 14, 30)


def test_resolution_resumes_after_the_pause_and_due_moves_by_the_pause():
    pol = policy(resolution={"minutes": 240})
    events = [
        created(at(1, 9)),
        status(at(1, 10), "new", "pending"),
        status(at(2, 9), "pending", "open"),  # the customer answered the next morning
    ]
    got = clocks(events, pol, CAL, now=at(2, 10))["resolution"]
    assert got["state"] == "running"
    assert got["elapsed_seconds"] == 2 * 3600
    # 1 h used on day 1; the 3 h left fill 09:00-12:00 of day 2
    assert sh(got["due_at"]) == datetime(2026, 12, 2, 12, 0)


def test_pause_statuses_are_configurable_per_target():
    pol = policy(
        first_reply={"minutes": 60, "pause_statuses": ["on_hold"]},
        resolution={"minutes": 480, "pause_statuses": []},
    )
    events = [created(at(1, 9)), status(at(1, 9, 30), "new", "on_hold")]
    got = clocks(events, pol, CAL, now=at(1, 11))
    assert got["first_reply"]["paused"] and not got["first_reply"]["breached"]
    assert got["resolution"]["state"] == "running"
    assert got["resolution"]["elapsed_seconds"] == 2 * 3600


def test_calendar_time_target_ignores_the_calendar():
    pol = policy(resolution={"minutes": 24 * 60, "business": False})
    got = clocks([created(at(4, 17))], pol, None, now=at(5, 9))["resolution"]
    assert got["due_at"] == at(5, 17).astimezone(UTC)
    assert got["elapsed_seconds"] == 16 * 3600


def test_business_target_without_calendar_is_refused():
    pol = policy(resolution={"minutes": 60})
    with pytest.raises(ValidationFailed) as raised:
        clocks([created(at(1, 9))], pol, None, now=at(1, 10))
    assert "calendar" in raised.value.errors


def test_solved_achieves_resolution_and_reopen_resumes_it():
    pol = policy(resolution={"minutes": 240})
    events = [
        created(at(1, 9)),
        status(at(1, 10), "new", "solved"),
    ]
    solved = clocks(events, pol, CAL, now=at(1, 15))["resolution"]
    assert solved["state"] == "achieved"
    assert solved["achieved_at"] == at(1, 10).astimezone(UTC)
    assert not solved["breached"]
    events.append(status(at(2, 9), "solved", "open"))
    reopened = clocks(events, pol, CAL, now=at(2, 10))["resolution"]
    assert reopened["state"] == "running"
    assert reopened["achieved_at"] is None
    assert reopened["elapsed_seconds"] == 2 * 3600
    assert sh(reopened["due_at"]) == datetime(2026, 12, 2, 12, 0)


def test_solving_stops_an_unanswered_first_reply():
    pol = policy(first_reply={"minutes": 60})
    events = [created(at(1, 9)), status(at(1, 9, 30), "new", "solved")]
    got = clocks(events, pol, CAL, now=at(1, 15))["first_reply"]
    assert got["state"] == "stopped"
    assert not got["breached"]
    assert got["stopped_at"] == at(1, 9, 30).astimezone(UTC)


def test_next_reply_cycles_on_customer_replies():
    pol = policy(next_reply={"minutes": 60})
    events = [created(at(1, 9)), reply(at(1, 9, 10), "customer")]
    # no agent reply yet: the next-reply clock has not started (that is the first reply's job)
    assert clocks(events, pol, CAL, now=at(1, 10))["next_reply"]["state"] == "not_started"
    events += [reply(at(1, 9, 30), "agent"), reply(at(1, 14), "customer")]
    running = clocks(events, pol, CAL, now=at(1, 14, 30))["next_reply"]
    assert running["state"] == "running"
    assert sh(running["due_at"]) == datetime(2026, 12, 1, 15, 0)
    events.append(reply(at(1, 14, 45), "agent"))
    done = clocks(events, pol, CAL, now=at(1, 16))["next_reply"]
    assert done["state"] == "achieved" and not done["breached"]
    assert done["elapsed_seconds"] == 45 * 60


def test_periodic_update_restarts_at_each_agent_reply():
    pol = policy(periodic_update={"minutes": 120})
    events = [created(at(1, 9)), reply(at(1, 10), "agent")]
    got = clocks(events, pol, CAL, now=at(1, 10, 30))["periodic_update"]
    assert got["state"] == "running"
    assert got["elapsed_seconds"] == 30 * 60
    assert sh(got["due_at"]) == datetime(2026, 12, 1, 12, 0)  # 10:00-12:00 is 2 h


def test_make_up_saturday_counts_in_a_clock():
    pol = policy(resolution={"minutes": 120})
    friday = datetime(2026, 2, 13, 17, 0, tzinfo=SH)
    got = clocks([created(friday)], pol, CAL, now=friday + timedelta(minutes=5))["resolution"]
    assert sh(got["due_at"]) == datetime(2026, 2, 14, 10, 0)  # Saturday 14 Feb 2026 works


def test_events_out_of_order_and_iso_strings():
    pol = policy(first_reply={"minutes": 60})
    events = [reply(at(1, 9, 20).isoformat(), "agent"), created(at(1, 9).isoformat())]
    got = clocks(events, pol, CAL, now=at(1, 12))["first_reply"]
    assert got["state"] == "achieved" and got["elapsed_seconds"] == 20 * 60


def test_a_log_must_start_with_created_and_carry_zones():
    pol = policy(first_reply={"minutes": 60})
    with pytest.raises(ValidationFailed) as raised:
        clocks([reply(at(1, 9), "agent")], pol, CAL, now=at(1, 10))
    assert "events" in raised.value.errors
    with pytest.raises(ValidationFailed) as raised:
        clocks([created(datetime(2026, 12, 1, 9))], pol, CAL, now=at(1, 10))
    assert "events.at" in raised.value.errors


def test_first_matching_policy_in_order():
    vip_urgent = policy_from_dict(
        {
            "id": "a",
            "name": "vip urgent",
            "priorities": ["urgent"],
            "customer_tiers": ["vip"],
            "targets": {"first_reply": {"minutes": 30}},
        }
    )
    urgent = policy_from_dict(
        {
            "id": "b",
            "name": "urgent",
            "priorities": ["urgent"],
            "targets": {"first_reply": {"minutes": 60}},
        }
    )
    fallback = policy_from_dict(
        {"id": "c", "name": "any", "targets": {"first_reply": {"minutes": 480}}}
    )
    ordered = [vip_urgent, urgent, fallback]
    assert select_policy(ordered, "urgent", "vip").id == "a"
    assert select_policy(ordered, "urgent", "standard").id == "b"
    assert select_policy(ordered, "low", "vip").id == "c"
    assert select_policy([vip_urgent], "low", None) is None


def test_policy_edited_mid_ticket_recomputes_the_open_ticket():
    events = [created(at(1, 9))]
    before = clocks(events, policy(resolution={"minutes": 480}), CAL, now=at(1, 10))["resolution"]
    # 8 h from 09:00: 3 h before the break, 4.5 h after it, 0.5 h the next morning
    assert sh(before["due_at"]) == datetime(2026, 12, 2, 9, 30)
    after = clocks(events, policy(resolution={"minutes": 60}), CAL, now=at(1, 10, 30))["resolution"]
    assert sh(after["due_at"]) == datetime(2026, 12, 1, 10, 0)
    assert after["breached"]


def test_priority_raised_mid_ticket_selects_the_stricter_policy_from_the_start():
    urgent = policy_from_dict(
        {
            "id": "u",
            "name": "urgent",
            "priorities": ["urgent"],
            "targets": {"resolution": {"minutes": 240}},
        }
    )
    normal = policy_from_dict(
        {"id": "n", "name": "normal", "targets": {"resolution": {"minutes": 960}}}
    )
    events = [created(at(1, 9), priority="normal")]
    first = ticket_clocks(events, [urgent, normal], {None: CAL}, now=at(1, 10))
    assert first["policy_id"] == "n"
    events.append({"at": at(1, 10), "kind": "priority_changed", "from": "normal", "to": "urgent"})
    second = ticket_clocks(events, [urgent, normal], {None: CAL}, now=at(1, 11))
    assert second["policy_id"] == "u" and second["policy_name"] == "urgent"
    resolution = second["clocks"]["resolution"]
    # measured from creation: 09:00 + 4 business hours = 12:00 + 1 h after the break
    assert sh(resolution["due_at"]) == datetime(2026, 12, 1, 14, 30)
    assert resolution["elapsed_seconds"] == 2 * 3600


def test_calendar_change_recomputes_the_clock():
    events = [created(at(4, 17))]  # Friday 17:00
    pol = policy(resolution={"minutes": 120})
    plain = clocks(events, pol, CAL, now=at(4, 17, 30))["resolution"]
    assert sh(plain["due_at"]) == datetime(2026, 12, 7, 10, 0)
    saturday_works = calendar_from_dict({"hours": STANDARD_HOURS, "workdays": ["2026-12-05"]})
    moved = clocks(events, pol, saturday_works, now=at(4, 17, 30))["resolution"]
    assert sh(moved["due_at"]) == datetime(2026, 12, 5, 10, 0)


def test_bad_policies_name_their_field():
    with pytest.raises(ValidationFailed) as raised:
        policy_from_dict({"targets": {"resolution": {"minutes": 0}}})
    assert "targets.resolution.minutes" in raised.value.errors
    with pytest.raises(ValidationFailed) as raised:
        policy_from_dict({"targets": {"lunch": {"minutes": 5}}})
    assert "targets.lunch" in raised.value.errors
    with pytest.raises(ValidationFailed) as raised:
        policy_from_dict({"targets": {"resolution": {"minutes": 5, "pause_statuses": ["solved"]}}})
    assert "targets.resolution.pause_statuses" in raised.value.errors
    with pytest.raises(ValidationFailed) as raised:
        policy_from_dict({"warn_at": [1.5], "targets": {}})
    assert "warn_at" in raised.value.errors


def test_next_reply_pauses_while_pending_and_periodic_update_too():
    pol = policy(next_reply={"minutes": 60}, periodic_update={"minutes": 120})
    events = [
        created(at(1, 9)),
        reply(at(1, 9, 10), "agent"),
        reply(at(1, 10), "customer"),
        status(at(1, 10, 30), "open", "pending"),
    ]
    got = clocks(events, pol, CAL, now=at(1, 16))
    assert got["next_reply"]["paused"] and got["next_reply"]["elapsed_seconds"] == 30 * 60
    assert not got["next_reply"]["breached"]
    assert got["periodic_update"]["paused"]
    assert got["periodic_update"]["elapsed_seconds"] == 80 * 60  # 09:10 to 10:30
    assert all(w["at"] is None for w in got["next_reply"]["warnings"])


def test_customer_tier_change_selects_another_policy():
    vip = policy_from_dict(
        {
            "id": "v",
            "name": "vip",
            "customer_tiers": ["vip"],
            "targets": {"first_reply": {"minutes": 30}},
        }
    )
    anyone = policy_from_dict(
        {"id": "a", "name": "any", "targets": {"first_reply": {"minutes": 240}}}
    )
    events = [
        created(at(1, 9), tier="standard"),
        {"at": at(1, 9, 5), "kind": "tier_changed", "from": "standard", "to": "vip"},
    ]
    before = ticket_clocks(events, [vip, anyone], {None: CAL}, now=at(1, 9, 1))
    assert before["policy_id"] == "a"
    after = ticket_clocks(events, [vip, anyone], {None: CAL}, now=at(1, 9, 10))
    assert after["policy_id"] == "v"
    assert sh(after["clocks"]["first_reply"]["due_at"]) == datetime(2026, 12, 1, 9, 30)


def test_closing_ends_resolution_and_a_closed_ticket_does_not_reopen_it():
    pol = policy(resolution={"minutes": 60})
    events = [created(at(1, 9)), status(at(1, 9, 30), "new", "closed")]
    got = clocks(events, pol, CAL, now=at(1, 12))["resolution"]
    assert got["state"] == "stopped" and not got["breached"]
    assert got["elapsed_seconds"] == 30 * 60
