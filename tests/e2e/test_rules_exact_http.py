"""An `"at": "exact"` date trigger end to end, the whole system running: saved over HTTP (a bad
`at` is a 422 naming `trigger.at`), fed a test event shaped as service_desk's
`ticket_sla_scheduled` (`{ticket_id, next_check_at}`, published to the system's broker: the
service_desk service does not publish it yet), fired once after the controllable clock passes
the instant, with the in-app notification of its action."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.e2e.system import System
from tests.integration.test_rules_broker import envelope, publish

pytestmark = pytest.mark.e2e


def rule_runs(system: System, rule_id: str, ticket_id: str) -> list[dict[str, Any]]:
    response = system.get("/rule-runs", user="admin",
                          params={"rule_id": rule_id, "record_key": f"ticket:{ticket_id}"})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def clock_now(system: System) -> datetime:
    response = system.get("/system/clock", user="admin")
    assert response.status_code == 200, response.text
    return datetime.fromisoformat(response.json()["now"])


def sla_scheduled(ticket_id: str, next_check_at: str | None) -> dict[str, Any]:
    return envelope("service_desk", "ticket_sla_scheduled", {
        "ticket_id": ticket_id, "policy_id": "p1", "next_check_at": next_check_at})


def test_an_exact_trigger_fires_once_at_the_instant(system: System):
    trigger = {"type": "date", "events": ["service_desk.ticket_sla_scheduled"],
               "field": "next_check_at", "at": "exact", "record": "ticket"}
    title = f"SLA check {uuid.uuid4().hex[:8]}"
    actions = [{"type": "notify", "to": [f"user:{system.users['lina']}"],
                "channels": ["in_app"], "title": title + " {{ record.id }}"}]
    bad = system.post("/rules", user="admin", json={
        "name": "bad exact", "trigger": {**trigger, "at": "soon"}, "actions": actions})
    assert bad.status_code == 422, bad.text
    assert list(bad.json()["errors"]) == ["trigger.at"]

    created = system.post("/rules", user="admin", json={
        "name": "准时 SLA 检查", "trigger": trigger, "actions": actions})
    assert created.status_code == 201, created.text
    rule = created.json()
    assert rule["trigger"]["at"] == "exact"
    ticket_id = f"t-{uuid.uuid4().hex[:8]}"
    try:
        # no instant: no timer, and a run that says so (and shows the event was taken)
        publish(system.amqp_uri, sla_scheduled(ticket_id, None))
        skipped = system.wait_for(lambda: rule_runs(system, rule["id"], ticket_id), timeout=30,
                                  message="the event without an instant left no run")
        assert [(r["trigger"], r["status"], r["reason"]) for r in skipped] == [
            ("event", "no_match", "no timer: next_check_at is missing")]

        instant = clock_now(system) + timedelta(seconds=120)
        publish(system.amqp_uri, sla_scheduled(ticket_id, instant.isoformat()))
        time.sleep(2.0)  # eight ticks: not due yet
        assert len(rule_runs(system, rule["id"], ticket_id)) == 1

        response = system.post("/system/clock", user="admin", json={"advance_seconds": 121})
        assert response.status_code == 200, response.text
        fired = system.wait_for(
            lambda: [r for r in rule_runs(system, rule["id"], ticket_id)
                     if r["trigger"] == "timer" and r["status"] == "completed"],
            timeout=30, message="the exact timer did not fire")
        time.sleep(2.0)  # and not again
        timer_runs = [r for r in rule_runs(system, rule["id"], ticket_id)
                      if r["trigger"] == "timer"]
        assert len(fired) == 1 and len(timer_runs) == 1
        inbox = system.get("/notifications", user="lina", params={"limit": 200})
        assert inbox.status_code == 200
        assert [n["title"] for n in inbox.json()["items"]
                if n["title"].startswith(title)] == [f"{title} {ticket_id}"]
    finally:
        system.post(f"/rules/{rule['id']}/disable", user="admin")
