"""The service desk's numbers end to end over HTTP, as an agent (zhangwei), his manager,
another team's agent (chenjing) and the admin: tickets created, replied to and solved (one
reopened by the customer) through the real API, on a business calendar and an SLA policy of
this test's own customer tier; first-reply and resolution times measured by the SLA clocks
(the controllable clock moved two hours before one reply: a breach), attainment, volume,
backlog, reopen rate, the tickets behind each figure, and the customer 360's tickets (and what
it says while the service desk is down).

The system is shared: figures are compared before and after, narrowed to the agent, and the
drill-downs are checked for this test's own tickets.
"""

from __future__ import annotations

import sqlite3
import uuid
from datetime import datetime, timedelta

import pytest

from tests.e2e.system import System

pytestmark = pytest.mark.e2e

AGENT, MANAGER, OTHER = "zhangwei", "manager", "chenjing"
FIGURES = ("volume", "backlog", "first-reply-time", "resolution-time", "sla-attainment",
           "reopen-rate")


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


def figure(system: System, name: str, user: str, **params) -> dict:
    return ok(system.get(f"/reports/tickets/{name}", user=user, params=params))


def records(system: System, name: str, user: str, **params) -> dict[str, dict]:
    """Every page of the figure's records, by ticket id."""
    found: dict[str, dict] = {}
    cursor = None
    while True:
        page = ok(system.get(f"/reports/tickets/{name}/records", user=user,
                             params={**params, "limit": 200,
                                     **({"cursor": cursor} if cursor else {})}))
        found.update({item["id"]: item for item in page["items"]})
        cursor = page["next_cursor"]
        if not cursor:
            return found


def desk_now(system: System) -> datetime:
    """The service desk's now (it follows the rules' controllable clock, polled each 0.5 s)."""
    return datetime.fromisoformat(figure(system, "backlog", "admin",
                                         interval="month")["now"]["at"])


def attainment(report: dict, target: str) -> dict:
    return next((r for r in report["total"] if r["target"] == target),
                {"met": 0, "breached": 0, "open": 0})


@pytest.fixture(scope="module")
def week(system: System) -> dict:
    mark = uuid.uuid4().hex[:8]
    tier = f"numbers-{mark}"
    agent_id = system.users[AGENT]
    calendar = ok(system.post("/business-calendars", user="admin", json={
        "name": f"全天 {mark}", "holiday_source": "none",
        "hours": {d: ["00:00-00:00"] for d in "0123456"}}), 201)
    policy = ok(system.post("/sla-policies", user="admin", json={
        "name": f"数字 {mark}", "customer_tiers": [tier], "calendar_id": calendar["id"],
        "targets": {"first_reply": {"minutes": 60}, "resolution": {"minutes": 480}}}), 201)
    others = [p["id"] for p in ok(system.get("/sla-policies", user="admin"))["items"]
              if p["id"] != policy["id"]]
    ok(system.put("/sla-policies/order", user="admin",
                  json={"policy_ids": [policy["id"], *others]}))
    customer = ok(system.post("/customers", user=AGENT,
                              json={"name": f"杭州{mark}服务有限公司"}), 201)
    mine = {"assignee_id": agent_id}
    before = {name: figure(system, name, MANAGER, **mine) for name in FIGURES}

    def new(subject: str) -> dict:
        return ok(system.post("/tickets", user=AGENT, json={
            "subject": f"{subject} {mark}", "requester_email": f"n.{mark}@example.cn",
            "customer_id": customer["id"], "customer_tier": tier, "assignee_id": agent_id}),
            201)

    def reply(ticket: dict, author: str = "agent") -> None:
        ok(system.post(f"/tickets/{ticket['id']}/replies", user=AGENT,
                       json={"body": "您好", "author_kind": author}), 201)

    def solve(ticket: dict) -> None:
        ok(system.patch(f"/tickets/{ticket['id']}", user=AGENT, json={"status": "solved"}))

    quick = new("发票抬头")
    reply(quick)
    solve(quick)
    slow = new("退款进度")
    later = desk_now(system) + timedelta(hours=2)
    ok(system.post("/system/clock", user="admin", json={"advance_seconds": 7200}))
    system.wait_for(lambda: desk_now(system) >= later, timeout=120, interval=0.2,
                    message="the service desk did not follow the clock")
    reply(slow)  # two hours (24x7 business time) after its creation: breached
    solve(slow)
    reply(slow, author="customer")  # reopens it
    solve(slow)
    waiting = new("无法登录")  # open, not replied
    return {"quick": quick, "slow": slow, "waiting": waiting, "customer": customer,
            "policy": policy, "before": before, "agent_id": agent_id}


def test_times_attainment_and_rates_count_the_agents_tickets(system: System, week: dict):
    mine = {"assignee_id": week["agent_id"]}
    before = week["before"]
    first = figure(system, "first-reply-time", MANAGER, **mine)
    assert first["count"] == before["first-reply-time"]["count"] + 2
    assert first["breached"] == before["first-reply-time"]["breached"] + 1
    resolution = figure(system, "resolution-time", MANAGER, **mine)
    assert resolution["count"] == before["resolution-time"]["count"] + 2
    replies = records(system, "first-reply-time", AGENT, **mine)
    quick, slow = replies[week["quick"]["id"]], replies[week["slow"]["id"]]
    assert 0 <= quick["seconds"] < 900
    assert 7200 <= slow["seconds"] < 7200 + 900
    assert week["slow"]["id"] in records(system, "first-reply-time", AGENT, bucket="1-4h")
    assert week["quick"]["id"] not in records(system, "first-reply-time", AGENT,
                                              bucket="1-4h")
    solved = records(system, "resolution-time", AGENT, **mine)
    assert {week["quick"]["id"], week["slow"]["id"]} <= set(solved)

    sla = figure(system, "sla-attainment", MANAGER, **mine)
    was = attainment(before["sla-attainment"], "first_reply")
    now = attainment(sla, "first_reply")
    assert (now["met"], now["breached"]) == (was["met"] + 1, was["breached"] + 1)
    [row] = [r for r in sla["by_policy"] if r["policy_id"] == week["policy"]["id"]
             and r["target"] == "first_reply"]
    assert (row["met"], row["breached"], row["open"], row["attainment_percent"]) == (
        1, 1, 1, "50.00")
    breached = records(system, "sla-attainment", AGENT, target="first_reply",
                       outcome="breached", policy_id=week["policy"]["id"])
    assert set(breached) == {week["slow"]["id"]}

    reopen = figure(system, "reopen-rate", MANAGER, **mine)
    assert reopen["solved"] == before["reopen-rate"]["solved"] + 2
    assert reopen["reopened"] == before["reopen-rate"]["reopened"] + 1
    assert week["slow"]["id"] in records(system, "reopen-rate", AGENT, outcome="reopened")
    assert week["quick"]["id"] not in records(system, "reopen-rate", AGENT, outcome="reopened")

    volume = figure(system, "volume", MANAGER, **mine)
    assert volume["total"]["count"] == before["volume"]["total"]["count"] + 3
    backlog = figure(system, "backlog", MANAGER, **mine)
    assert backlog["now"]["open"] == before["backlog"]["now"]["open"] + 1
    assert week["waiting"]["id"] in records(system, "backlog", AGENT, status="new")
    ours = {week[k]["id"] for k in ("quick", "slow", "waiting")}
    assert ours <= set(records(system, "volume", "admin"))

    links = ok(system.get("/reports/tickets", user=AGENT))["figures"]
    assert {"figure": "csat", "href": "/reports/csat", "records": "/csat-surveys"} in links


def test_another_teams_agent_gets_none_of_it(system: System, week: dict):
    ours = {week[k]["id"] for k in ("quick", "slow", "waiting")}
    mine = {"assignee_id": week["agent_id"]}
    for name in FIGURES:
        assert not ours & set(records(system, name, OTHER)), name
    assert figure(system, "first-reply-time", OTHER, **mine)["count"] == 0
    assert figure(system, "volume", OTHER, **mine)["total"]["count"] == 0
    assert figure(system, "sla-attainment", OTHER, **mine)["by_agent"] == []
    r = system.get("/reports/tickets/volume", user=OTHER, params={"interval": "hour"})
    assert r.status_code == 422 and "interval" in r.json()["errors"]


def test_the_running_service_backfills_tickets_without_outcome_rows(system: System,
                                                                  week: dict):
    """This test's tickets lose their outcome rows, as tickets last changed before 0011n
    have none; the backfill is asked again (as `python -m
    services.service_desk.backfill_outcomes --again` does) and the running service's timer
    gives the figures back."""
    mine = {"assignee_id": week["agent_id"]}
    ours = [week[k]["id"] for k in ("quick", "slow", "waiting")]

    def figures() -> dict:
        return {"first": figure(system, "first-reply-time", MANAGER, **mine),
                "resolution": figure(system, "resolution-time", MANAGER, **mine),
                "sla": figure(system, "sla-attainment", MANAGER, **mine),
                "seconds": {i: r["seconds"] for i, r in records(
                    system, "first-reply-time", AGENT, **mine).items()}}

    before = figures()
    assert set(ours[:2]) <= set(before["seconds"])
    db = sqlite3.connect(system.data_dir / "service_desk.db", timeout=30, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute(f"DELETE FROM ticket_sla_outcomes WHERE ticket_id IN "
                   f"({', '.join('?' * len(ours))})", ours)
        db.execute("UPDATE sla_sweeps SET cursor = '' WHERE name = 'ticket_sla_outcomes'")
        db.execute("COMMIT")
    finally:
        db.close()
    system.wait_for(lambda: figures() == before, timeout=90, interval=0.5,
                    message="the service did not backfill the tickets' outcome rows")


def test_the_customer_360_shows_its_tickets_and_says_when_the_desk_is_down(
        system: System, week: dict):
    customer_id = week["customer"]["id"]
    view = ok(system.get(f"/customers/{customer_id}/360", user=AGENT))
    assert view["partial"] == []
    tickets = view["tickets"]
    assert (tickets["open_count"], tickets["total"]) == (1, 3)
    recent = {t["id"]: t for t in tickets["recent"]}
    assert recent[week["slow"]["id"]]["sla_state"] == "breached"
    assert recent[week["slow"]["id"]]["status"] == "solved"
    assert recent[week["quick"]["id"]]["sla_state"] == "met"
    assert recent[week["waiting"]["id"]]["sla"]["first_reply"]["state"] == "running"
    assert ok(system.get(f"/customers/{customer_id}/360", user=MANAGER))["tickets"][
        "total"] == 3
    assert system.get(f"/customers/{customer_id}/360", user=OTHER).status_code == 404

    system.stop_service("service_desk")
    try:
        view = ok(system.get(f"/customers/{customer_id}/360", user=AGENT, timeout=30))
        assert view["partial"] == ["tickets"] and view["tickets"] is None
        assert view["customer"]["id"] == customer_id
        r = system.get("/reports/tickets/volume", user=AGENT, timeout=30)
        assert r.status_code == 503, r.text
    finally:
        system.start_service("service_desk")
    system.wait_for(lambda: system.get(f"/customers/{customer_id}/360", user=AGENT).json().get(
        "partial") == [], timeout=60, interval=0.5, message="the service desk did not come back")
