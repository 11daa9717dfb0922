"""Service desk tickets over HTTP with the whole system running: a rep (zhangwei, 华东) creates
and works a ticket; another team's rep (chenjing, 华南) neither lists nor reads it; the team's
manager does; a customer's reply reopens a solved ticket; a refused move is a 412; bad input a
422 naming the field."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.system import System

pytestmark = pytest.mark.e2e

REP, OTHER_REP, MANAGER = "zhangwei", "chenjing", "manager"


def listed(system: System, user: str, **params) -> list[str]:
    r = system.get("/tickets", user=user, params={"limit": 200, **params})
    assert r.status_code == 200, r.text
    return [t["id"] for t in r.json()["items"]]


def test_tickets_over_http(system: System) -> None:
    mark = uuid.uuid4().hex[:8]
    r = system.post("/tickets", user=REP, json={
        "subject": f"发票抬头错了 {mark}", "requester_email": "wang@example.cn",
        "requester_name": "王芳", "description": "请帮我改一下", "priority": "high",
        "assignee_id": system.users[REP], "tags": ["billing"]})
    assert r.status_code == 201, r.text
    ticket = r.json()
    assert r.headers["Location"] == f"/tickets/{ticket['id']}"
    assert ticket["number"].startswith("T-") and len(ticket["number"]) == 8
    assert (ticket["status"], ticket["priority"], ticket["assignee_id"]) == \
        ("new", "high", system.users[REP])

    # visibility: the rep and the team's manager see it, another team's rep does not
    assert ticket["id"] in listed(system, REP, status="new")
    assert ticket["id"] in listed(system, MANAGER, assignee_id=system.users[REP])
    assert ticket["id"] not in listed(system, OTHER_REP)
    r = system.get(f"/tickets/{ticket['id']}", user=OTHER_REP)
    assert r.status_code == 404, r.text
    r = system.patch(f"/tickets/{ticket['id']}", user=OTHER_REP, json={"status": "open"})
    assert r.status_code == 404, r.text

    # the rep answers and solves; the customer's reply reopens it
    r = system.post(f"/tickets/{ticket['id']}/replies", user=REP,
                    json={"body": "已经改好了", "public": True})
    assert r.status_code == 201, r.text
    assert r.json()["entry"]["author_kind"] == "agent"
    r = system.patch(f"/tickets/{ticket['id']}", user=REP, json={"status": "solved"})
    assert r.status_code == 200 and r.json()["status"] == "solved", r.text
    r = system.post(f"/tickets/{ticket['id']}/replies", user=REP,
                    json={"body": "还是不对", "author_kind": "customer"})
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "open"

    # solved -> pending is refused
    assert system.patch(f"/tickets/{ticket['id']}", user=REP,
                        json={"status": "solved"}).status_code == 200
    r = system.patch(f"/tickets/{ticket['id']}", user=REP, json={"status": "pending"})
    assert r.status_code == 412, r.text
    problem = r.json()
    assert "pending" in problem["detail"] and "solved" in problem["detail"]

    r = system.get(f"/tickets/{ticket['id']}", user=MANAGER)
    assert r.status_code == 200, r.text
    entries = r.json()["entries"]
    assert [(e["kind"], e["to"]) for e in entries] == [
        ("created", "new"), ("reply", None), ("status_changed", "solved"), ("reply", None),
        ("status_changed", "open"), ("status_changed", "solved")]
    assert r.json()["status"] == "solved"

    # bad input: 422 naming the field
    r = system.post("/tickets", user=REP, json={"subject": "x", "requester_email": "nope"})
    assert r.status_code == 422, r.text
    assert "requester_email" in r.text
    r = system.patch(f"/tickets/{ticket['id']}", user=REP, json={"priority": "whenever"})
    assert r.status_code == 422 and "priority" in r.text, r.text
    r = system.post(f"/tickets/{ticket['id']}/replies", user=REP, json={"body": ""})
    assert r.status_code == 422 and "body" in r.text, r.text
