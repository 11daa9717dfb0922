"""The service_desk SLA entrypoints (business calendars, SLA policies, clocks, preview) with
nameko's worker_factory: a migrated SQLite and PostgreSQL database and the real outbox recorder."""

from __future__ import annotations

import pytest

from services.service_desk.domain.calendar import CalendarYearUnknown
from shared.errors import Conflict, NotFound, ValidationFailed
from tests.service import desk

database_url = desk.database_url


@pytest.fixture
def service(database_url):
    return desk.worker(database_url, actor="admin-1")


def events_of(engine, event_type: str) -> list[dict]:
    return desk.envelopes(engine, event_type)


def new_calendar(service, **fields) -> dict:
    return service.create_business_calendar({"name": "中国标准工时", **fields})


def new_policy(service, calendar_id, name="standard", **fields) -> dict:
    body = {
        "name": name,
        "calendar_id": calendar_id,
        "targets": {"first_reply": {"minutes": 60}, "resolution": {"minutes": 240}},
        **fields,
    }
    return service.create_sla_policy(body)


def test_calendar_defaults_coverage_and_event(service):
    calendar = new_calendar(service)
    assert calendar["time_zone"] == "Asia/Shanghai"
    assert calendar["holiday_source"] == "cn"
    assert calendar["hours"]["0"] == ["09:00-12:00", "13:30-18:00"]
    assert "5" not in calendar["hours"]
    assert 2026 in calendar["coverage"]["library_years"]
    assert 2027 not in calendar["coverage"]["library_years"]
    assert service.get_business_calendar(calendar["id"]) == calendar
    assert [c["id"] for c in service.list_business_calendars()] == [calendar["id"]]
    [event] = events_of(service.engine, "business_calendar_changed")
    assert event["data"]["change"] == "created"
    assert event["data"]["calendar"]["id"] == calendar["id"]
    assert event["actor"] == "admin-1"


def test_calendar_update_adds_a_year_by_hand(service):
    calendar = new_calendar(service)
    changed = service.update_business_calendar(
        calendar["id"],
        {"holidays": ["2027-01-01"], "workdays": ["2027-01-02"], "declared_years": [2027]},
    )
    assert changed["holidays"] == ["2027-01-01"]
    assert changed["workdays"] == ["2027-01-02"]
    assert changed["declared_years"] == [2027]
    assert changed["version"] == 2
    assert changed["name"] == calendar["name"]  # untouched fields keep their values
    assert changed["hours"] == calendar["hours"]
    assert 2027 not in changed["coverage"]["missing_years"]
    kinds = [e["data"]["change"] for e in events_of(service.engine, "business_calendar_changed")]
    assert kinds == ["created", "updated"]


def test_bad_calendars_name_the_field(service):
    with pytest.raises(ValidationFailed) as raised:
        new_calendar(service, time_zone="Mars/Olympus")
    assert "time_zone" in raised.value.errors
    with pytest.raises(ValidationFailed) as raised:
        new_calendar(service, hours={"0": ["9-12"]})
    assert "hours" in raised.value.errors
    with pytest.raises(ValidationFailed) as raised:
        new_calendar(service, hours={"0": ["09:00-12:00", "11:00-14:00"]})
    assert "hours" in raised.value.errors
    with pytest.raises(ValidationFailed) as raised:
        new_calendar(service, hours={"0": []})
    assert "hours" in raised.value.errors
    with pytest.raises(ValidationFailed) as raised:
        new_calendar(service, holiday_source="us")
    assert "holiday_source" in raised.value.errors
    with pytest.raises(ValidationFailed) as raised:
        new_calendar(service, holidays=["2027-01-01"], workdays=["2027-01-01"])
    assert "workdays" in raised.value.errors
    new_calendar(service)
    with pytest.raises(Conflict) as raised:
        new_calendar(service)
    assert raised.value.extra["field"] == "name"
    with pytest.raises(NotFound):
        service.get_business_calendar("nope")


def test_policies_in_order_and_reordered(service):
    calendar = new_calendar(service)
    urgent = new_policy(service, calendar["id"], "urgent", priorities=["urgent"])
    vip = new_policy(service, calendar["id"], "vip", customer_tiers=["vip"])
    assert [p["id"] for p in service.list_sla_policies()] == [urgent["id"], vip["id"]]
    assert urgent["targets"]["resolution"]["pause_statuses"] == ["pending", "on_hold"]
    assert urgent["targets"]["first_reply"]["pause_statuses"] == []
    assert urgent["warn_at"] == [0.75, 0.9]
    reordered = service.reorder_sla_policies({"policy_ids": [vip["id"], urgent["id"]]})
    assert [p["id"] for p in reordered] == [vip["id"], urgent["id"]]
    assert [p["id"] for p in service.list_sla_policies()] == [vip["id"], urgent["id"]]
    with pytest.raises(ValidationFailed) as raised:
        service.reorder_sla_policies({"policy_ids": [vip["id"]]})
    assert "policy_ids" in raised.value.errors
    changes = [e["data"]["change"] for e in events_of(service.engine, "sla_policy_changed")]
    assert changes == ["created", "created", "reordered"]


def test_bad_policies_name_the_field(service):
    calendar = new_calendar(service)
    with pytest.raises(ValidationFailed) as raised:
        new_policy(service, None)
    assert "calendar_id" in raised.value.errors
    with pytest.raises(ValidationFailed) as raised:
        new_policy(service, "no-such-calendar")
    assert "calendar_id" in raised.value.errors
    with pytest.raises(ValidationFailed) as raised:
        new_policy(service, calendar["id"], priorities=["critical"])
    assert "priorities" in raised.value.errors
    with pytest.raises(ValidationFailed) as raised:
        new_policy(service, calendar["id"], targets={"resolution": {"minutes": 0}})
    assert "targets" in raised.value.errors
    with pytest.raises(ValidationFailed) as raised:
        new_policy(service, calendar["id"], targets={})
    assert "targets" in raised.value.errors
    # calendar time needs no calendar
    ok = new_policy(service, None, "calendar-time",
                    targets={"resolution": {"minutes": 60, "business": False}})
    assert ok["targets"]["resolution"]["business"] is False


def test_preview_picks_the_first_matching_policy_and_its_due_instants(service):
    calendar = new_calendar(service)
    new_policy(service, calendar["id"], "urgent", priorities=["urgent"],
               targets={"first_reply": {"minutes": 60}, "resolution": {"minutes": 240}})
    new_policy(service, calendar["id"], "default",
               targets={"first_reply": {"minutes": 480}})
    start = "2026-12-01T11:00:00+08:00"
    urgent = service.sla_preview({"priority": "urgent", "start": start})
    assert urgent["policy_name"] == "urgent"
    assert urgent["clocks"]["first_reply"]["due_at"] == "2026-12-01T04:00:00+00:00"  # 12:00
    # 11:00 + 4 h business: 1 h to the break, 3 h from 13:30
    assert urgent["clocks"]["resolution"]["due_at"] == "2026-12-01T08:30:00+00:00"
    assert [w["threshold"] for w in urgent["clocks"]["resolution"]["warnings"]] == [0.75, 0.9]
    normal = service.sla_preview({"priority": "normal", "start": start})
    assert normal["policy_name"] == "default"
    assert set(normal["clocks"]) == {"first_reply"}


def test_compute_clocks_follows_an_edited_policy_and_calendar(service):
    calendar = new_calendar(service)
    policy = new_policy(service, calendar["id"], "default",
                        targets={"resolution": {"minutes": 120}})
    events = [{"at": "2026-12-04T17:00:00+08:00", "kind": "created", "priority": "normal"}]
    now = "2026-12-04T17:30:00+08:00"
    before = service.compute_clocks({"events": events, "now": now})
    assert before["policy_id"] == policy["id"]
    # Friday 17:00 + 2 h: Monday 10:00
    assert before["clocks"]["resolution"]["due_at"] == "2026-12-07T02:00:00+00:00"
    service.update_business_calendar(calendar["id"], {"workdays": ["2026-12-05"]})
    after_calendar = service.compute_clocks({"events": events, "now": now})
    assert after_calendar["clocks"]["resolution"]["due_at"] == "2026-12-05T02:00:00+00:00"
    service.update_sla_policy(policy["id"], {"targets": {"resolution": {"minutes": 30}}})
    after_policy = service.compute_clocks({"events": events, "now": now})
    assert after_policy["clocks"]["resolution"]["breached"] is True
    assert after_policy["clocks"]["resolution"]["due_at"] == "2026-12-04T09:30:00+00:00"


def test_compute_clocks_with_a_pause_and_a_named_policy(service):
    calendar = new_calendar(service)
    policy = new_policy(service, calendar["id"])
    events = [
        {"at": "2026-12-01T09:00:00+08:00", "kind": "created", "priority": "high"},
        {"at": "2026-12-01T10:00:00+08:00", "kind": "status_changed", "from": "new",
         "to": "pending"},
    ]
    got = service.compute_clocks({"events": events, "policy_id": policy["id"],
                                  "now": "2026-12-01T16:00:00+08:00"})
    assert got["ticket"]["status"] == "pending"
    assert got["clocks"]["resolution"]["paused"] is True
    assert got["clocks"]["resolution"]["elapsed_seconds"] == 3600
    assert got["clocks"]["first_reply"]["breached"] is True
    with pytest.raises(ValidationFailed) as raised:
        service.compute_clocks({"events": events, "policy_id": "nope"})
    assert "policy_id" in raised.value.errors
    with pytest.raises(ValidationFailed) as raised:
        service.compute_clocks({"events": [{"at": "2026-12-01T09:00:00", "kind": "created"}]})
    assert "events" in raised.value.errors


def test_an_uncovered_year_is_refused_naming_the_year(service):
    calendar = new_calendar(service)
    new_policy(service, calendar["id"])
    events = [{"at": "2026-12-31T17:00:00+08:00", "kind": "created"}]
    with pytest.raises(CalendarYearUnknown) as raised:
        service.compute_clocks({"events": events, "now": "2026-12-31T17:10:00+08:00"})
    assert raised.value.extra["year"] == 2027


def test_check_sla_publishes_each_warning_and_breach_once(service):
    calendar = new_calendar(service)
    new_policy(service, calendar["id"], "default",
               targets={"first_reply": {"minutes": 60}, "resolution": {"minutes": 480}})
    events = [{"at": "2026-12-01T09:00:00+08:00", "kind": "created", "priority": "normal"}]
    early = service.check_sla({"ticket_id": "t-1", "events": events,
                               "now": "2026-12-01T09:10:00+08:00"})
    assert early["published"] == []
    assert early["next_check_at"] == "2026-12-01T01:45:00+00:00"  # 75 % of 60 min: 09:45

    warned = service.check_sla({"ticket_id": "t-1", "events": events,
                                "now": "2026-12-01T09:50:00+08:00"})
    assert [(p["event_type"], p["target"], p.get("threshold")) for p in warned["published"]] == [
        ("ticket_sla_warning", "first_reply", 0.75)]
    assert warned["next_check_at"] == "2026-12-01T01:54:00+00:00"  # 90 %: 09:54

    late = {"ticket_id": "t-1", "events": events, "now": "2026-12-01T10:05:00+08:00"}
    breached = service.check_sla(late)
    assert [(p["event_type"], p.get("threshold")) for p in breached["published"]] == [
        ("ticket_sla_warning", 0.9), ("ticket_sla_breached", None)]
    assert breached["published"][1]["due_at"] == "2026-12-01T02:00:00+00:00"
    # resolution's 75 % (6 business hours from 09:00) is next: 16:30
    assert breached["next_check_at"] == "2026-12-01T08:30:00+00:00"
    assert service.check_sla(late)["published"] == []  # a timer firing twice publishes nothing

    sent = events_of(service.engine, "ticket_sla_breached")
    assert [e["data"]["target"] for e in sent] == ["first_reply"]
    assert sent[0]["data"]["ticket_id"] == "t-1"
    assert len(events_of(service.engine, "ticket_sla_warning")) == 2

    answered = [*events, {"at": "2026-12-01T10:10:00+08:00", "kind": "reply", "public": True,
                          "author": "agent"},
                {"at": "2026-12-01T10:20:00+08:00", "kind": "status_changed", "from": "open",
                 "to": "pending"}]
    quiet = service.check_sla({"ticket_id": "t-1", "events": answered,
                               "now": "2026-12-01T17:00:00+08:00"})
    assert quiet["published"] == [] and quiet["next_check_at"] is None  # nothing runs
