"""Business calendars and SLA policies end to end: the whole system as processes, over HTTP.

An admin makes a China calendar (2026 from the holiday library, 2027 missing until entered by
hand) and ordered policies; everyone reads them; a rep cannot write; the preview shows which
policy a ticket gets and when it falls due, across a make-up Saturday and a holiday week.
"""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.e2e


def tag() -> str:
    return uuid.uuid4().hex[:8]


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    return response.json()


def new_calendar(system, **fields) -> dict:
    response = system.post("/business-calendars", user="admin",
                           json={"name": f"中国工作日{tag()}", **fields})
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == f"/business-calendars/{response.json()['id']}"
    return response.json()


def new_policy(system, calendar_id, **fields) -> dict:
    response = system.post("/sla-policies", user="admin", json={
        "name": f"SLA {tag()}", "calendar_id": calendar_id,
        "targets": {"first_reply": {"minutes": 60}, "resolution": {"minutes": 240}}, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def test_calendars_coverage_and_a_year_entered_by_hand(system):
    calendar = new_calendar(system)
    assert calendar["time_zone"] == "Asia/Shanghai"
    assert calendar["hours"]["4"] == ["09:00-12:00", "13:30-18:00"]
    assert 2026 in calendar["coverage"]["library_years"]
    # the rep reads it too
    read = system.get(f"/business-calendars/{calendar['id']}", user="zhangwei")
    assert read.status_code == 200, read.text
    assert read.json()["id"] == calendar["id"]
    listed = system.get("/business-calendars", user="zhangwei")
    assert listed.status_code == 200
    assert calendar["id"] in [c["id"] for c in listed.json()["items"]]

    policy = new_policy(system, calendar["id"], priorities=["urgent"], customer_tiers=[tag()])
    year_end = {"priority": "urgent", "customer_tier": policy["customer_tiers"][0],
                "start": "2026-12-31T16:00:00+08:00"}
    refused = system.post("/sla-policies/preview", user="zhangwei", json=year_end)
    body = assert_problem(refused, 412)
    assert "2027" in body["detail"]

    changed = system.patch(f"/business-calendars/{calendar['id']}", user="admin", json={
        "holidays": ["2027-01-01"], "workdays": ["2027-01-02"], "declared_years": [2027]})
    assert changed.status_code == 200, changed.text
    assert changed.json()["declared_years"] == [2027]
    assert changed.json()["name"] == calendar["name"]
    preview = system.post("/sla-policies/preview", user="zhangwei", json=year_end)
    assert preview.status_code == 200, preview.text
    # 16:00 + 4 h: 2 h on the 31st, the 1st is a holiday, 2 h on Saturday the 2nd (by hand)
    assert preview.json()["clocks"]["resolution"]["due_at"] == "2027-01-02T03:00:00+00:00"
    assert preview.json()["policy_id"] == policy["id"]


def test_policies_first_match_order_and_preview_across_a_make_up_saturday(system):
    calendar = new_calendar(system)
    tier = f"vip-{tag()}"
    broad = new_policy(system, calendar["id"], customer_tiers=[tier],
                       targets={"resolution": {"minutes": 960}})
    urgent = new_policy(system, calendar["id"], customer_tiers=[tier], priorities=["urgent"],
                        targets={"first_reply": {"minutes": 60}, "resolution": {"minutes": 120}})
    friday = {"priority": "urgent", "customer_tier": tier, "start": "2026-02-13T17:00:00+08:00"}
    first = system.post("/sla-policies/preview", user="zhangwei", json=friday)
    assert first.status_code == 200, first.text
    assert first.json()["policy_id"] == broad["id"]  # first in order wins

    order = system.put("/sla-policies/order", user="admin", json={
        "policy_ids": [urgent["id"], broad["id"]] + [
            p["id"] for p in system.get("/sla-policies", user="admin").json()["items"]
            if p["id"] not in (urgent["id"], broad["id"])]})
    assert order.status_code == 200, order.text
    assert [p["id"] for p in order.json()["items"]][:2] == [urgent["id"], broad["id"]]
    second = system.post("/sla-policies/preview", user="zhangwei", json=friday)
    assert second.status_code == 200, second.text
    result = second.json()
    assert result["policy_id"] == urgent["id"] and result["policy_name"] == urgent["name"]
    # Friday 13 Feb 2026 17:00 + 2 h: 1 h on Friday, 1 h on the make-up Saturday 14 Feb
    assert result["clocks"]["resolution"]["due_at"] == "2026-02-14T02:00:00+00:00"
    assert result["clocks"]["first_reply"]["due_at"] == "2026-02-13T10:00:00+00:00"
    warnings = result["clocks"]["resolution"]["warnings"]
    assert [w["threshold"] for w in warnings] == [0.75, 0.9]

    edited = system.patch(f"/sla-policies/{urgent['id']}", user="admin",
                          json={"targets": {"resolution": {"minutes": 30, "business": False}}})
    assert edited.status_code == 200, edited.text
    assert edited.json()["targets"] == {
        "resolution": {"minutes": 30, "business": False, "pause_statuses": ["pending", "on_hold"]}}
    assert edited.json()["version"] == 2
    third = system.post("/sla-policies/preview", user="zhangwei", json=friday)
    assert third.json()["clocks"]["resolution"]["due_at"] == "2026-02-13T09:30:00+00:00"
    got = system.get(f"/sla-policies/{urgent['id']}", user="manager")
    assert got.status_code == 200 and got.json()["targets"]["resolution"]["minutes"] == 30


def test_only_an_admin_writes_and_bad_input_names_the_field(system):
    calendar = new_calendar(system)
    for user in ("zhangwei", "manager"):
        denied = system.post("/business-calendars", user=user, json={"name": f"x{tag()}"})
        assert_problem(denied, 403)
        denied = system.post("/sla-policies", user=user, json={
            "name": f"x{tag()}", "calendar_id": calendar["id"],
            "targets": {"resolution": {"minutes": 60}}})
        assert_problem(denied, 403)
        denied = system.patch(f"/business-calendars/{calendar['id']}", user=user,
                              json={"holidays": ["2026-12-25"]})
        assert_problem(denied, 403)
    assert system.get(f"/business-calendars/{calendar['id']}",
                      user="admin").json()["holidays"] == []

    bad = system.post("/business-calendars", user="admin",
                      json={"name": f"x{tag()}", "hours": {"0": ["9-12"]}})
    assert "hours" in assert_problem(bad, 422)["errors"]
    bad = system.post("/business-calendars", user="admin",
                      json={"name": f"x{tag()}", "time_zone": "Mars/Olympus"})
    assert "time_zone" in assert_problem(bad, 422)["errors"]
    bad = system.post("/sla-policies", user="admin", json={
        "name": f"x{tag()}", "calendar_id": str(uuid.uuid4()),
        "targets": {"resolution": {"minutes": 60}}})
    assert "calendar_id" in assert_problem(bad, 422)["errors"]
    bad = system.post("/sla-policies", user="admin", json={
        "name": f"x{tag()}", "calendar_id": calendar["id"], "priorities": ["critical"],
        "targets": {"resolution": {"minutes": 60}}})
    assert "priorities" in assert_problem(bad, 422)["errors"]
    bad = system.put("/sla-policies/order", user="admin", json={"policy_ids": ["nope"]})
    assert "policy_ids" in assert_problem(bad, 422)["errors"]
    missing = system.get(f"/sla-policies/{uuid.uuid4()}", user="zhangwei")
    assert_problem(missing, 404)
