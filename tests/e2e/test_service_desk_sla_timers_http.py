"""SLA warnings and breaches on time, the whole system running, over HTTP and SMTP, with the rules
service's controllable clock: an urgent-class ticket under a one-hour first-reply policy is
warned past 75 % (the assignee's in-app notification and e-mail) and breached past the hour
(the assignee and their manager notified, the priority raised) by the shipped rules' timers,
with no update of the ticket in between; a ticket paused (pending) before the instant gets no
warning."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.e2e.system import System
from tests.support.smtp_server import SmtpServer

pytestmark = pytest.mark.e2e

AGENT, MANAGER = "zhangwei", "manager"


def clock_now(system: System) -> datetime:
    response = system.get("/system/clock", user="admin")
    assert response.status_code == 200, response.text
    return datetime.fromisoformat(response.json()["now"])


def advance_to(system: System, instant: datetime) -> None:
    seconds = (instant - clock_now(system)).total_seconds()
    if seconds > 0:
        response = system.post("/system/clock", user="admin", json={"advance_seconds": seconds})
        assert response.status_code == 200, response.text


def titles(system: System, user: str) -> list[str]:
    response = system.get("/notifications", user=user, params={"limit": 200})
    assert response.status_code == 200, response.text
    return [n["title"] for n in response.json()["items"]]


def runs(system: System, rule_id: str, ticket_id: str) -> list[dict[str, Any]]:
    response = system.get("/rule-runs", user="admin",
                          params={"rule_id": rule_id, "record_key": f"ticket:{ticket_id}"})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def ticket_of(system: System, ticket_id: str) -> dict[str, Any]:
    response = system.get(f"/tickets/{ticket_id}", user=AGENT)
    assert response.status_code == 200, response.text
    return response.json()


def new_ticket(system: System, subject: str, tier: str) -> dict[str, Any]:
    response = system.post("/tickets", user=AGENT, json={
        "subject": subject, "requester_email": "li@example.cn", "priority": "high",
        "customer_tier": tier, "assignee_id": system.users[AGENT]})
    assert response.status_code == 201, response.text
    return response.json()


def sla_of(system: System, ticket_id: str, user: str = AGENT) -> dict[str, Any]:
    response = system.get(f"/tickets/{ticket_id}/sla", user=user)
    assert response.status_code == 200, response.text
    return response.json()


def test_warning_and_breach_fire_on_time_through_the_rules_timers(
        system: System, mailbox: SmtpServer) -> None:
    mark = uuid.uuid4().hex[:8]
    tier = f"sla-{mark}"
    created = system.post("/sla-policies", user="admin", json={
        "name": f"紧急一小时 {mark}", "priorities": ["high", "urgent"], "customer_tiers": [tier],
        "targets": {"first_reply": {"minutes": 60, "business": False,
                                    "pause_statuses": ["pending"]},
                    "resolution": {"minutes": 240, "business": False}}})
    assert created.status_code == 201, created.text
    policy = created.json()
    listed = system.get("/sla-policies", user="admin")
    assert listed.status_code == 200, listed.text
    others = [p["id"] for p in listed.json()["items"] if p["id"] != policy["id"]]
    ordered = system.put("/sla-policies/order", user="admin",
                         json={"policy_ids": [policy["id"], *others]})
    assert ordered.status_code == 200, ordered.text
    time.sleep(1.5)  # service_desk follows the rules' controllable clock (polled each 0.5 s)

    ticket = new_ticket(system, f"服务器宕机 {mark}", tier)
    paused = new_ticket(system, f"等客户回复 {mark}", tier)
    response = system.patch(f"/tickets/{paused['id']}", user=AGENT, json={"status": "pending"})
    assert response.status_code == 200, response.text
    label = f"{ticket['number']} 服务器宕机 {mark}"
    start = datetime.fromisoformat(ticket["created_at"])
    sla = sla_of(system, ticket["id"])  # the ticket shows its policy and clocks
    assert (sla["policy_id"], sla["policy_name"]) == (policy["id"], f"紧急一小时 {mark}")
    first = sla["clocks"]["first_reply"]
    assert (first["state"], first["breached"]) == ("running", False)
    assert datetime.fromisoformat(first["due_at"]) == start + timedelta(minutes=60)
    assert sla_of(system, paused["id"])["clocks"]["first_reply"]["paused"] is True
    assert system.get(f"/tickets/{ticket['id']}/sla", user="chenjing").status_code == 404

    # past 75 % of the hour: a warning, the agent's notification and e-mail, no ticket update
    advance_to(system, start + timedelta(minutes=46))
    system.wait_for(lambda: f"SLA 预警：{label}" in titles(system, AGENT), timeout=30,
                    message="no SLA warning notification")
    [warned] = runs(system, "ticket-sla-warning", ticket["id"])
    assert warned["event_type"] == "service_desk.ticket_sla_warning"
    assert warned["status"] == "completed"
    mail = mailbox.wait_for(lambda m: "SLA 预警" in str(m["Subject"])
                            and ticket["number"] in str(m["Subject"]), timeout=30)
    assert f"{AGENT}@demo.crm.local" in str(mail["To"])
    checks = [r for r in runs(system, "ticket-sla-check", ticket["id"])
              if r["trigger"] == "timer"]
    assert checks and all(r["status"] == "completed" for r in checks)
    current = ticket_of(system, ticket["id"])
    assert current["priority"] == "high"
    assert [e["kind"] for e in current["entries"]] == ["created"]  # nothing updated it
    assert f"SLA 超时：{label}" not in titles(system, MANAGER)

    # past the hour: breached, the manager notified (and e-mailed), the priority raised
    advance_to(system, start + timedelta(minutes=61))
    system.wait_for(lambda: f"SLA 超时：{label}" in titles(system, MANAGER), timeout=30,
                    message="the manager was not notified of the breach")
    assert f"SLA 超时：{label}" in titles(system, AGENT)
    system.wait_for(lambda: ticket_of(system, ticket["id"])["priority"] == "urgent",
                    timeout=30, message="the priority was not raised")
    mailbox.wait_for(lambda m: f"{MANAGER}@demo.crm.local" in str(m["To"])
                            and "SLA 超时" in str(m["Subject"])
                            and ticket["number"] in str(m["Subject"]), timeout=30)
    [breached] = runs(system, "ticket-sla-breached", ticket["id"])
    assert breached["status"] == "completed"
    # the service desk's clock follows the rules' one by polling it: wait until it has
    first = system.wait_for(
        lambda: (c := sla_of(system, ticket["id"])["clocks"]["first_reply"])["breached"] and c,
        timeout=30, message="the ticket's SLA never read breached")
    assert first["state"] == "running"

    # the ticket paused before its instants got no warning and no breach
    time.sleep(1.0)
    assert runs(system, "ticket-sla-warning", paused["id"]) == []
    assert runs(system, "ticket-sla-breached", paused["id"]) == []
    assert not [t for t in titles(system, AGENT) if paused["number"] in t]
    assert ticket_of(system, paused["id"])["priority"] == "high"


def test_a_breach_notifies_the_tickets_group_manager(system: System, mailbox: SmtpServer) -> None:
    """A ticket routed to a group whose manager is not the assignee's (liuyang has no team, so
    no manager of their own): the warning reaches the assignee only; the breach reaches the
    group's manager too (the event's `group_manager_id`, the shipped rule's
    `field:group_manager_id`), in the app and by e-mail, and the priority is raised."""
    mark = uuid.uuid4().hex[:8]
    tier, product = f"grp-{mark}", f"Grp-{mark}"
    agent = "liuyang"
    created = system.post("/sla-policies", user="admin", json={
        "name": f"组主管一小时 {mark}", "priorities": ["high"], "customer_tiers": [tier],
        "targets": {"first_reply": {"minutes": 60, "business": False}}})
    assert created.status_code == 201, created.text
    policy = created.json()
    listed = system.get("/sla-policies", user="admin")
    assert listed.status_code == 200, listed.text
    others = [p["id"] for p in listed.json()["items"] if p["id"] != policy["id"]]
    ordered = system.put("/sla-policies/order", user="admin",
                         json={"policy_ids": [policy["id"], *others]})
    assert ordered.status_code == 200, ordered.text
    group = system.post("/ticket-groups", user="admin", json={
        "name": f"SLA 组 {mark}", "manager_id": system.users[MANAGER],
        "members": [{"user_id": system.users[agent]}]})
    assert group.status_code == 201, group.text
    rule = system.post("/ticket-routing-rules", user="admin", json={
        "name": f"SLA 组 {mark}", "group_id": group.json()["id"],
        "conditions": {"products": [product]}})
    assert rule.status_code == 201, rule.text
    time.sleep(1.5)  # service_desk follows the rules' controllable clock (polled each 0.5 s)

    response = system.post("/tickets", user="admin", json={
        "subject": f"专线中断 {mark}", "requester_email": "zhou@example.cn",
        "priority": "high", "customer_tier": tier, "product": product})
    assert response.status_code == 201, response.text
    ticket = response.json()
    routed = system.wait_for(
        lambda: (lambda t: t if t["assignee_id"] else None)(
            system.get(f"/tickets/{ticket['id']}", user="admin").json()),
        timeout=30, message="the ticket was not routed")
    assert (routed["group_id"], routed["assignee_id"]) == \
        (group.json()["id"], system.users[agent])
    label = f"{ticket['number']} 专线中断 {mark}"
    start = datetime.fromisoformat(ticket["created_at"])

    advance_to(system, start + timedelta(minutes=46))
    with explained(system, ticket["id"]):
        system.wait_for(lambda: f"SLA 预警：{label}" in titles(system, agent), timeout=60,
                        message="no SLA warning notification")
    assert f"SLA 预警：{label}" not in titles(system, MANAGER)  # a warning is the assignee's

    advance_to(system, start + timedelta(minutes=61))
    with explained(system, ticket["id"]):
        system.wait_for(lambda: f"SLA 超时：{label}" in titles(system, MANAGER), timeout=60,
                        message="the group's manager was not notified of the breach")
    assert f"SLA 超时：{label}" in titles(system, agent)
    mailbox.wait_for(lambda m: f"{MANAGER}@demo.crm.local" in str(m["To"])
                     and "SLA 超时" in str(m["Subject"])
                     and ticket["number"] in str(m["Subject"]), timeout=30)
    system.wait_for(lambda: ticket_of_admin(system, ticket["id"])["priority"] == "urgent",
                    timeout=30, message="the priority was not raised")
    [breached] = runs(system, "ticket-sla-breached", ticket["id"])
    assert breached["status"] == "completed"


@contextmanager
def explained(system: System, ticket_id: str) -> Iterator[None]:
    """A failed wait says what the rules did with the ticket (its runs) and the clock."""
    try:
        yield
    except AssertionError as failed:
        response = system.get("/rule-runs", user="admin",
                              params={"record_key": f"ticket:{ticket_id}", "limit": 50})
        found = [(r["rule_id"], r["status"], r.get("trigger"), r.get("reason"), r["actions"])
                 for r in response.json().get("items", [])]
        raise AssertionError(f"{failed}; clock {clock_now(system)}; runs {found}; "
                             f"ticket {ticket_of_admin(system, ticket_id)}") from None


def ticket_of_admin(system: System, ticket_id: str) -> dict[str, Any]:
    response = system.get(f"/tickets/{ticket_id}", user="admin")
    assert response.status_code == 200, response.text
    return response.json()
